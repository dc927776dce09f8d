"""The stream tables' asset checks: they pass after a real ingest and fail on the problems they are for."""

from datetime import datetime
from pathlib import Path

from dagster import DagsterInstance, materialize
from pyspark.sql import Row

from movierec_dagster.resources import LandingFolderSource, LocalSpark
from movierec_dagster.stream.assets import rating_events
from movierec_dagster.stream.ingest import EVENTS_TABLE, REJECTED_TABLE
from movierec_dagster.stream.sensors import INGEST_JOB
from movierec_dagster.stream.transforms import duplicate_event_ids
from tests.conftest import local_definitions
from tests.stream.events import event, write_lines


def _evaluations(result) -> dict[str, bool]:
    return {
        f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}": evaluation.passed
        for evaluation in result.get_asset_check_evaluations()
    }


ALL_CHECKS = {
    "rating_events:event_ids_unique",
    "rating_events:rating_on_scale",
    "rating_events:fields_not_null",
    "rejected_rating_events:every_rejection_has_a_reason",
}


def test_ingest_job_runs_the_checks_and_they_pass(spark, home, synthetic_zip):
    defs = local_definitions(home, synthetic_zip)
    landing = defs.resources["event_source"].folder
    write_lines(
        Path(landing),
        "a.jsonl",
        [event("a").encode(), event("b", rating=9).encode(), event("a").encode(), b"junk"],
    )
    with DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def(INGEST_JOB).execute_in_process(instance=instance)
    assert result.success
    assert _evaluations(result) == dict.fromkeys(ALL_CHECKS, True)


def _bad_rows(spark, lake) -> None:
    """Rows no ingest would write: an id twice, a rating off the scale, a null field, a rejection without reason."""
    now = datetime(2026, 1, 1)
    events = [
        Row(event_id="x", user_id=1, movie_id=2, rating=4.0, rated_at=now, ingested_at=now),
        Row(event_id="x", user_id=1, movie_id=2, rating=4.0, rated_at=now, ingested_at=now),
        Row(event_id="y", user_id=1, movie_id=3, rating=3.25, rated_at=now, ingested_at=now),
        Row(event_id="z", user_id=None, movie_id=3, rating=3.0, rated_at=now, ingested_at=now),
    ]
    schema = "event_id string, user_id int, movie_id int, rating double, rated_at timestamp, ingested_at timestamp"
    lake.write_table(spark.createDataFrame(events, schema), EVENTS_TABLE, part="ingest_batch=cp0-00000000")
    rejected = spark.createDataFrame(
        [Row(raw="{}", raw_length=2, reject_reason=None, event_id=None, source="f", landed_at=now, ingested_at=now)],
        "raw string, raw_length int, reject_reason string, event_id string, source string, landed_at timestamp, ingested_at timestamp",
    )
    lake.write_table(rejected, REJECTED_TABLE, part="ingest_batch=cp0-00000000")


def test_checks_fail_on_the_problems_they_are_for(spark, lake, instance):
    _bad_rows(spark, lake)
    # Nothing new lands: the ingest adds nothing, and its checks look at the whole tables.
    result = materialize(
        [rating_events],
        resources={
            "spark": LocalSpark(master="local[2]"),
            "lake": lake,
            "event_source": LandingFolderSource(folder=lake.fs_path("landing", "rating_events")),
        },
        instance=instance,
        raise_on_error=False,
    )
    assert _evaluations(result) == dict.fromkeys(ALL_CHECKS, False)
    failed = {e.check_name: e.metadata for e in result.get_asset_check_evaluations()}
    assert failed["event_ids_unique"]["duplicated_event_ids"].value == 1
    assert failed["rating_on_scale"]["ratings_off_scale"].value == 1
    assert failed["fields_not_null"]["rows_with_null"].value == 1
    assert failed["every_rejection_has_a_reason"]["rows_with_null"].value == 1


def test_duplicate_event_ids_counts_copies(spark):
    events = spark.createDataFrame([("a",), ("b",), ("a",), ("a",)], "event_id string")
    assert [(row.event_id, row.copies) for row in duplicate_event_ids(events).collect()] == [("a", 3)]
