"""The stream's sensors through Dagster's sensor test context: run requests and cursors."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from dagster import AssetMaterialization, SkipReason, build_sensor_context

from movierec_dagster.metadata import ROW_COUNT
from movierec_dagster.resources import LandingFolderSource, LocalLake
from movierec_dagster.stream.sensors import (
    INGEST_JOB,
    RETRAIN_THRESHOLD_ENV,
    rating_events_sensor,
    retrain_sensor,
    retrain_threshold,
)
from tests.conftest import local_definitions


def _ingest(context_instance, cursor, source):
    context = build_sensor_context(instance=context_instance, cursor=cursor, resources={"event_source": source})
    return rating_events_sensor(context), context


def test_ingest_requested_once_per_new_files(instance, tmp_path):
    source = LandingFolderSource(folder=str(tmp_path))
    result, _ = _ingest(instance, None, source)
    assert isinstance(result, SkipReason)

    (tmp_path / "a.jsonl").write_text("{}\n")
    first, _ = _ingest(instance, None, source)
    assert len(first.run_requests) == 1 and first.cursor
    again, _ = _ingest(instance, first.cursor, source)
    assert isinstance(again, SkipReason), "the same files must not be requested twice"

    (tmp_path / "b.jsonl").write_text("{}\n")
    second, _ = _ingest(instance, first.cursor, source)
    assert len(second.run_requests) == 1
    assert second.run_requests[0].run_key != first.run_requests[0].run_key


def test_ingest_job_carries_the_concurrency_tag(tmp_path):
    defs = local_definitions(tmp_path / "home", tmp_path / "movielens")
    assert defs.resolve_job_def(INGEST_JOB).tags == {"movierec/concurrency": "rating_events_ingest"}
    assert defs.resolve_assets_def("rating_events").op.pool == "rating_events_ingest"


def _champion(lake: LocalLake, version: str, trained_at: datetime, trained_on_events: int | None = None) -> None:
    """The champion pointer and, when `trained_on_events` is given, a model.json recording them."""
    lake.write_json(
        {"version": version, "trained_at": trained_at.isoformat(), "promoted_at": trained_at.isoformat()},
        "models", "als", "champion.json",
    )
    if trained_on_events is not None:
        lake.write_json({"version": version, "streamed_rows": trained_on_events}, "models", "als", version, "model.json")


def _ingested(instance, table_rows: int, accepted: int = 0) -> None:
    """An ingest run's materialization of rating_events: the table's rows after it, and what the run accepted."""
    instance.report_runless_asset_event(
        AssetMaterialization("rating_events", metadata={ROW_COUNT: table_rows, "accepted": accepted})
    )


def _retrain(instance, lake, cursor=None):
    context = build_sensor_context(instance=instance, cursor=cursor, resources={"lake": lake})
    return retrain_sensor(context)


def test_retrain_waits_for_a_champion_then_for_the_threshold(instance, lake, monkeypatch):
    monkeypatch.setenv(RETRAIN_THRESHOLD_ENV, "100")
    assert isinstance(_retrain(instance, lake), SkipReason)

    _ingested(instance, 500)  # before the champion was trained: not counted
    _champion(lake, "v1", datetime.now(UTC))
    _ingested(instance, 560)
    below = _retrain(instance, lake)
    assert not below.run_requests and "60 of 100" in below.skip_reason.skip_message

    _ingested(instance, 610)
    above = _retrain(instance, lake, below.cursor)
    assert [r.run_key for r in above.run_requests] and "110 new ratings" in above.run_requests[0].tags[
        "movierec/retrain_reason"
    ]
    quiet = _retrain(instance, lake, above.cursor)
    assert not quiet.run_requests, "the counted ratings must not request a second retrain"

    _champion(lake, "v2", datetime.now(UTC) + timedelta(seconds=1))
    _ingested(instance, 709)
    assert not _retrain(instance, lake, quiet.cursor).run_requests


def test_retrain_counts_from_the_rows_the_champion_was_trained_on(instance, lake, monkeypatch):
    monkeypatch.setenv(RETRAIN_THRESHOLD_ENV, "100")
    _ingested(instance, 500)  # training_ratings is built from these 500 rows...
    _ingested(instance, 600)  # ...and 100 more arrive while the model trains
    _champion(lake, "v1", datetime.now(UTC), trained_on_events=500)
    _ingested(instance, 640)
    assert "140 new ratings" in _retrain(instance, lake).run_requests[0].tags["movierec/retrain_reason"]


def test_retrain_counts_the_rows_a_killed_ingest_left(instance, lake, monkeypatch):
    monkeypatch.setenv(RETRAIN_THRESHOLD_ENV, "100")
    _ingested(instance, 1000, accepted=1000)
    _champion(lake, "v1", datetime.now(UTC))
    # A run killed after writing 90 events' batches records nothing; the next run accepts 20
    # and reports the table with all 110.
    _ingested(instance, 1110, accepted=20)
    assert "110 new ratings" in _retrain(instance, lake).run_requests[0].tags["movierec/retrain_reason"]


def test_retrain_counts_from_the_new_champions_training_time(instance, lake, monkeypatch):
    monkeypatch.setenv(RETRAIN_THRESHOLD_ENV, "10")
    _champion(lake, "v1", datetime.now(UTC) - timedelta(hours=1))
    _ingested(instance, 8)
    first = _retrain(instance, lake)
    assert json.loads(first.cursor) == {"champion": "v1", "counted_from": 0}
    _champion(lake, "v2", datetime.now(UTC) + timedelta(seconds=1))
    later = _retrain(instance, lake, first.cursor)
    assert json.loads(later.cursor) == {"champion": "v2", "counted_from": 8}


def test_a_cursor_from_an_earlier_version_counts_afresh(instance, lake, monkeypatch):
    monkeypatch.setenv(RETRAIN_THRESHOLD_ENV, "10")
    _champion(lake, "v1", datetime.now(UTC) - timedelta(hours=1))
    _ingested(instance, 8)
    old = json.dumps({"accepted": 500, "after_storage_id": 3, "champion": "v1", "since_timestamp": 0})
    assert json.loads(_retrain(instance, lake, old).cursor) == {"champion": "v1", "counted_from": 0}


def test_retrain_threshold_must_be_a_positive_number():
    assert retrain_threshold({}) == 1000
    assert retrain_threshold({RETRAIN_THRESHOLD_ENV: "250"}) == 250
    with pytest.raises(ValueError, match=RETRAIN_THRESHOLD_ENV):
        retrain_threshold({RETRAIN_THRESHOLD_ENV: "many"})
