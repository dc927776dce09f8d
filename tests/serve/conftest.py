"""The HTTP API's fixtures: a service on the lake the session's whole-graph run wrote."""

import pytest
from fastapi.testclient import TestClient

from movierec_dagster.serve.app import Service, create_app


@pytest.fixture(scope="session")
def pipeline_lake(graph_run):
    """The pipeline's own lake resource (a LocalLake) of the session's graph run; tests must not write to it."""
    return graph_run.defs.resources["lake"]


@pytest.fixture(scope="session")
def service(pipeline_lake) -> Service:
    served = Service(pipeline_lake.uri())
    assert served.refresh()
    return served


@pytest.fixture(scope="session")
def api(service):
    return create_app(service)


@pytest.fixture
def client(api):
    with TestClient(api) as test_client:
        yield test_client
