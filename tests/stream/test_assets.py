"""The ingest job in Dagster on the local deployment: a burst of events in, tables and metadata out."""

from dagster import DagsterInstance

from movierec_dagster.stream.demo import land_burst, print_ingest_summary
from movierec_dagster.stream.sensors import INGEST_JOB
from tests.conftest import local_definitions


def test_ingest_job_materializes_both_tables_with_counts(spark, home, synthetic_zip, capsys):
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

    print_ingest_summary(result)
    assert f"accepted {counts.valid:>7,}" in capsys.readouterr().out
    second = {m.asset_key.to_user_string(): m.metadata for m in again.asset_materializations_for_node("rating_events")}
    assert second["rating_events"]["events_read"].value == 0
