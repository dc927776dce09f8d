"""Spark steps run unchanged in another process, through a step launcher, as Databricks would run them."""

from pathlib import Path

from dagster import AssetKey, DagsterInstance, execute_job
from dagster._core.definitions.reconstruct import ReconstructableRepository

from movierec_dagster.stream.ingest import EVENTS_TABLE, REJECTED_TABLE
from tests.conftest import local_definitions
from tests.remote_steps import definitions
from tests.stream.events import event, write_lines


def test_the_ingest_runs_in_a_process_of_its_own(spark, home, synthetic_zip, tmp_path, monkeypatch):
    scratch = tmp_path / "steps"
    # The step's process rebuilds the code location from the environment, as `dagster dev` does.
    monkeypatch.setenv("MOVIEREC_HOME", str(home))
    monkeypatch.setenv("MOVIELENS_SOURCE", str(synthetic_zip))
    monkeypatch.setenv(definitions.SCRATCH_ENV, str(scratch))
    lake = local_definitions(home, synthetic_zip).resources["lake"]
    write_lines(Path(lake.uri("landing", "rating_events")), "a.jsonl", [event("a").encode(), event("b").encode(), b"junk"])
    job = ReconstructableRepository.for_file(definitions.__file__, "defs").get_reconstructable_job("ingest_rating_events")
    # The ingest step alone: each step pays for a JVM of its own, and the checks are Spark steps like it.
    ingest_only = job.get_subset(asset_selection={AssetKey(EVENTS_TABLE), AssetKey(REJECTED_TABLE)}, asset_check_selection=set())

    with DagsterInstance.ephemeral() as instance:
        result = execute_job(ingest_only, instance)

    assert result.success
    assert [path.parent.name for path in scratch.rglob("events.pkl")] == ["rating_events"]
    assert sorted(row.event_id for row in lake.read_table(spark, EVENTS_TABLE).collect()) == ["a", "b"]
    assert lake.read_table(spark, REJECTED_TABLE).count() == 1
    accepted = result.asset_materializations_for_node("rating_events")[0].metadata["accepted"].value
    assert accepted == 2
