"""The ingest job in Dagster on the local deployment: a burst of events in, tables and metadata out."""

from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, materialize

from movierec_dagster.resources import LandingFolderSource, LocalSpark
from movierec_dagster.stream.assets import rating_events

from movierec_dagster.demo_stream import land_burst, print_ingest_summary
from movierec_dagster.stream.sensors import INGEST_JOB
from tests.conftest import local_definitions


def test_ingest_job_materializes_the_tables_with_counts_and_delta_versions(spark, home, synthetic_zip, capsys):
    defs = local_definitions(home, synthetic_zip)
    landing = defs.resources["event_source"].folder
    counts = land_burst(landing, count=600, malformed=0.1, seed=3)
    with DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def(INGEST_JOB).execute_in_process(instance=instance)
        again = defs.resolve_job_def(INGEST_JOB).execute_in_process(instance=instance)

    metadata = {m.asset_key.to_user_string(): m.metadata for m in result.asset_materializations_for_node("rating_events")}
    events = metadata["rating_events"]
    assert events["events_read"].value == 600
    assert events["accepted"].value + events["rejected"].value == 600
    # Malformed lines that resend an earlier event are duplicates; all others are rejected once each.
    assert events["accepted"].value == counts.valid
    assert events["rejected"].value == counts.malformed
    assert events["dagster/row_count"].value == counts.valid
    assert events["batches"].value == 1 and events["lag_seconds"].value >= 0
    assert metadata["rejected_rating_events"]["dagster/row_count"].value == counts.malformed
    assert metadata["rating_event_ids"]["dagster/row_count"].value == counts.valid
    # Each table's materialization names the Delta version it committed, as metadata and as its data version.
    lake = defs.resources["lake"]
    for table in ("rating_events", "rejected_rating_events", "rating_event_ids"):
        assert metadata[table]["delta_version"].value == lake.table_version(table).version
    materializations = {m.asset_key.to_user_string(): m for m in result.asset_materializations_for_node("rating_events")}
    assert materializations["rating_events"].tags["dagster/data_version"] == str(lake.table_version("rating_events").version)

    print_ingest_summary(result)
    assert f"accepted {counts.valid:>7,}" in capsys.readouterr().out
    second = {m.asset_key.to_user_string(): m.metadata for m in again.asset_materializations_for_node("rating_events")}
    assert second["rating_events"]["events_read"].value == 0


class FailsOnce(LandingFolderSource):
    """A landing folder that is not there the first time it is read (marked by a file)."""

    marker: str

    def read_stream(self, spark, checkpoint):
        if not Path(self.marker).exists():
            Path(self.marker).touch()
            raise ConnectionError("the event source is not reachable")
        return super().read_stream(spark, checkpoint)


@pytest.mark.slow  # waits out the retry policy's real delay
def test_a_failed_ingest_is_tried_again(spark, lake, instance, tmp_path):
    source = FailsOnce(folder=lake.fs_path("landing", "rating_events"), marker=str(tmp_path / "failed-once"))
    land_burst(source.folder, count=50, malformed=0.0, seed=4)
    result = materialize(
        [rating_events],
        resources={"spark": LocalSpark(master="local[2]"), "lake": lake, "event_source": source},
        instance=instance,
    )
    assert result.success
    assert [e.event_type for e in result.all_events].count(DagsterEventType.STEP_UP_FOR_RETRY) == 1
    assert lake.read_table(spark, "rating_events").count() == 50
