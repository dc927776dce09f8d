"""Shared fixtures: one Spark session and one Azurite for the whole test session, a lake per test, synthetic MovieLens."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance, Definitions

from movierec_dagster.resources import Lake, LocalLake, LocalSpark
from movierec_dagster.resources.lake import AdlsLake
from movierec_dagster.tables import ADLS_CREDENTIALS
from tests.azure_storage import azurite as emulator
from tests.synthetic import SyntheticMovieLens, planted_movielens


@pytest.fixture(scope="session")
def spark():
    """The test session's only Spark session; every resource's `session()` returns it."""
    session = LocalSpark(master="local[2]", shuffle_partitions=2, driver_memory="2g").session()
    yield session
    session.stop()


@pytest.fixture
def lake(tmp_path: Path) -> LocalLake:
    return LocalLake(root=str(tmp_path / "lake"))


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[emulator.Azurite]:
    """Azurite's Blob endpoint on loopback for the whole session: the lake on ADLS, as adlfs speaks to it."""
    if reason := emulator.missing():
        pytest.skip(reason)
    server = emulator.Azurite.start(emulator.find_binary(), tmp_path_factory.mktemp("azurite"))
    yield server
    server.stop()


@pytest.fixture
def adls_location(azurite: emulator.Azurite, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh `abfss://` lake on Azurite, its connection string in the environment as a user would set it."""
    monkeypatch.setenv(ADLS_CREDENTIALS["connection_string"], azurite.connection_string)
    return azurite.new_lake_uri()


@pytest.fixture
def adls_lake(azurite: emulator.Azurite) -> AdlsLake:
    """The pipeline's ADLS lake resource on a fresh lake in Azurite."""
    return AdlsLake(root=azurite.new_lake_uri(), connection_string=azurite.connection_string)


@pytest.fixture(params=["local", "azurite"])
def fsspec_lake(request: pytest.FixtureRequest, tmp_path: Path) -> Lake:
    """The lake resource in a folder and on Azurite (ADLS through adlfs), for tests without Spark.

    Spark cannot reach Azurite (its abfss connector speaks the dfs endpoint, which Azurite does not serve).
    No lake in fsspec's `memory://` filesystem: the tables are Delta tables, which delta-rs reads and
    commits through its own object stores, and those cannot share fsspec's memory filesystem.
    """
    if request.param == "azurite":
        return request.getfixturevalue("adls_lake")
    return LocalLake(root=str(tmp_path / "lake"))


@pytest.fixture(scope="session")
def synthetic() -> SyntheticMovieLens:
    return planted_movielens()


@pytest.fixture(scope="session")
def synthetic_zip(synthetic: SyntheticMovieLens, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic.write_zip(tmp_path_factory.mktemp("movielens") / "ml-synthetic.zip")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A fresh $MOVIEREC_HOME."""
    return tmp_path / "home"


def local_definitions(home: Path, source: Path | str) -> Definitions:
    """The local deployment's definitions on `home`, reading MovieLens from `source`."""
    from movierec_dagster.definitions import build_definitions  # imported late: it loads every domain

    return build_definitions("local", {"MOVIEREC_HOME": str(home), "MOVIELENS_SOURCE": str(source)})


@pytest.fixture
def instance():
    with DagsterInstance.ephemeral() as ephemeral:
        yield ephemeral


# The genuine ml-latest-small: MOVIELENS_SOURCE when it names a local archive, else ../shared beside the checkout.
SHARED_MOVIELENS = Path(__file__).resolve().parents[2] / "shared" / "movielens" / "ml-latest-small.zip"


@pytest.fixture(scope="session")
def real_movielens() -> Path:
    """The real archive for tests marked `real_data`; they skip, saying where it was looked for, without it."""
    candidates = [Path(os.environ["MOVIELENS_SOURCE"])] if os.environ.get("MOVIELENS_SOURCE", "").endswith(".zip") else []
    for archive in [*candidates, SHARED_MOVIELENS]:
        if archive.is_file():
            return archive
    pytest.skip(f"the real MovieLens archive is not at {' or '.join(str(c) for c in [*candidates, SHARED_MOVIELENS])}")


@pytest.fixture(scope="session")
def graph_run(spark, synthetic: SyntheticMovieLens, synthetic_zip: Path, tmp_path_factory: pytest.TempPathFactory):
    """The whole graph materialized in one process (tests.pipeline.run_graph), shared by the tests that read its lake."""
    from tests.pipeline import GraphRun, run_graph

    home = tmp_path_factory.mktemp("graph") / "home"
    defs = local_definitions(home, synthetic_zip)
    new_user = max(synthetic.user_genre) + 1
    with DagsterInstance.ephemeral() as instance:

        def run_job(name, run_config=None):
            result = defs.resolve_job_def(name).execute_in_process(instance=instance, run_config=run_config)
            assert result.success, name

        run_graph(run_job, Path(defs.resources["event_source"].folder), new_user)
    return GraphRun(defs=defs, home=home, new_user=new_user)
