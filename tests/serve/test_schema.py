"""schemathesis against the service's own OpenAPI schema, on the pipeline's lake: no server error, answers as documented;
and what the schema says a recommendation's numbers mean."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from movierec_dagster.serve.app import Service, create_app
from movierec_dagster.serve.writes import LandingFolderWriter

OPERATIONS = ["/users/{user_id}/recommendations", "/movies/{movie_id}/similar", "/movies", "/health"]
WRITE = "/users/{user_id}/ratings"
KEY = "schema-key"


@pytest.fixture(scope="module")
def api_schema(api):
    return schemathesis.openapi.from_asgi("/openapi.json", api)


@pytest.fixture(scope="module")
def writing_schema(pipeline_lake, tmp_path_factory):
    """The API with a key and a landing folder of its own, on a service of its own (posts change what it serves)."""
    service = Service(pipeline_lake.uri(), writer=LandingFolderWriter(tmp_path_factory.mktemp("landing")))
    assert service.refresh()
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(service, api_keys=(KEY,)))


@pytest.mark.slow  # the session's whole-graph run
def test_the_schema_has_every_operation(api_schema):
    assert sorted(f"{o.ok().method.upper()} {o.ok().path}" for o in api_schema.get_all_operations()) == sorted(
        [*(f"GET {path}" for path in OPERATIONS), f"POST {WRITE}"]
    )


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("key", [KEY, None])
def test_the_write_path_keeps_to_its_schema_with_and_without_a_key(writing_schema, mode, key):
    """Posted bodies the schema allows and rules out, with the key and without: every answer documented, none a 5xx.

    A body the schema allows may still be refused (422): a movie outside the catalogue, a time in the
    future. The schema cannot say which movies exist, so schemathesis's check that valid data is
    accepted is left out; every answer must still be one the schema documents.
    """
    headers = {"Authorization": f"Bearer {key}"} if key else {}

    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=writing_schema[WRITE]["POST"].as_strategy(generation_mode=mode))
    def call_and_validate(case):
        case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

    call_and_validate()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("path", "mode"),
    [(path, GenerationMode.POSITIVE) for path in OPERATIONS]
    # /health takes no input, so it has no invalid input either.
    + [(path, GenerationMode.NEGATIVE) for path in OPERATIONS if path != "/health"],
)
def test_the_api_keeps_to_its_schema(api_schema, path, mode):
    """Valid input and (negative mode) input the schema rules out: every answer documented, none a 5xx."""

    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=api_schema[path]["GET"].as_strategy(generation_mode=mode))
    def call_and_validate(case):
        case.call_and_validate()

    call_and_validate()


def test_a_recommendation_documents_its_order_and_its_numbers(tmp_path):
    schema = create_app(Service(str(tmp_path))).openapi()["components"]["schemas"]["Recommendation"]
    assert {"rank", "score", "predicted_rating"} <= set(schema["required"])
    score = schema["properties"]["score"]
    assert (score["type"], score["minimum"], score["maximum"]) == ("number", 0.0, 1.0)
    assert "ordered by" in score["description"] and "match" in score["description"]
    assert "order of `score`" in schema["properties"]["rank"]["description"]
    assert "predicted stars" in schema["properties"]["predicted_rating"]["description"]
