"""The retrain sensor through Dagster's sensor test context: it counts rating_events rows in the lake past those the champion was trained on."""

import json
from datetime import UTC, datetime
from itertools import count

import pyarrow as pa
import pytest
from dagster import AssetKey, SensorResult, build_sensor_context

from movierec_dagster.model import registry
from movierec_dagster.model.sensors import RETRAIN_THRESHOLD_ENV, RetrainCursor, build_retrain_sensor, retrain_threshold
from movierec_dagster.resources import Lake
from movierec_dagster.stream.ingest import EVENTS_TABLE, batch_part
from movierec_dagster.tables import write_arrow

REASON = "movierec/retrain_reason"
_batch_ids = count()
EVENTS_SCHEMA = pa.schema(  # rating_events' columns, as the ingest commits them
    [
        ("event_id", pa.string()),
        ("user_id", pa.int32()),
        ("movie_id", pa.int32()),
        ("rating", pa.float64()),
        ("rated_at", pa.timestamp("us", tz="UTC")),
        ("ingested_at", pa.timestamp("us", tz="UTC")),
    ]
)


def _champion(lake: Lake, version: str, streamed_rows: int | None) -> None:
    """`version` as the champion, its model.json recording the rating_events rows it was trained on (None: not recorded)."""
    info = {"version": version, "trained_at": "2026-01-01T00:00:00+00:00"}
    if streamed_rows is not None:
        info["streamed_rows"] = streamed_rows
    registry.write_model_info(lake, info)
    registry.promote(lake, info, datetime.now(UTC))


def _events(rows: int) -> pa.Table:
    now = datetime.now(UTC)
    return pa.Table.from_pylist(
        [
            {"event_id": f"e{n}", "user_id": 1 + n % 7, "movie_id": 1 + n % 11, "rating": 4.0, "rated_at": now, "ingested_at": now}
            for n in range(rows)
        ],
        schema=EVENTS_SCHEMA,
    )


def _batch(lake: Lake, rows: int, part: str | None = None) -> str:
    """An ingest batch's commit of `rows` events to rating_events as its own part (written with pyarrow, not Spark);
    no run reports anything to Dagster. Returns the part."""
    part = part or batch_part("0123456789abcdef", next(_batch_ids))
    write_arrow(lake.table(EVENTS_TABLE), _events(rows), part=part)
    return part


def _retrain(threshold: int, instance, lake: Lake, cursor: str | None = None) -> SensorResult:
    """One tick of the retrain sensor built with `threshold`."""
    sensor = build_retrain_sensor(threshold)
    result = sensor(build_sensor_context(instance=instance, cursor=cursor, resources={"lake": lake}))
    assert isinstance(result, SensorResult), result
    return result


def _skip_message(result: SensorResult) -> str:
    assert not result.run_requests, result.run_requests
    return result.skip_reason.skip_message


def test_retrain_waits_for_a_champion_then_for_the_threshold(instance, lake):
    _batch(lake, 500)
    waiting = build_retrain_sensor(100)(build_sensor_context(instance=instance, resources={"lake": lake}))
    assert "No champion model yet" in waiting.skip_message

    _champion(lake, "v1", streamed_rows=500)  # the 500 rows before it are its training data: not counted
    _batch(lake, 60)
    below = _retrain(100, instance, lake)
    assert "60 of 100 new ratings since champion v1" in _skip_message(below)

    _batch(lake, 50)
    above = _retrain(100, instance, lake, below.cursor)
    assert [request.run_key for request in above.run_requests] == ["retrain-v1-610"]
    assert "110 new ratings since champion v1 was trained (threshold 100)" == above.run_requests[0].tags[REASON]
    quiet = _retrain(100, instance, lake, above.cursor)
    assert "0 of 100" in _skip_message(quiet), "the counted ratings must not request a second retrain"

    _champion(lake, "v2", streamed_rows=610)
    _batch(lake, 99)
    assert "99 of 100 new ratings since champion v2" in _skip_message(_retrain(100, instance, lake, quiet.cursor))
    _batch(lake, 1)
    assert _retrain(100, instance, lake, quiet.cursor).run_requests[0].run_key == "retrain-v2-710"


def test_a_champion_before_any_ingest_waits_for_the_table(instance, lake):
    _champion(lake, "v1", streamed_rows=0)
    assert "0 of 10 new ratings" in _skip_message(_retrain(10, instance, lake))
    _batch(lake, 10)
    assert _retrain(10, instance, lake).run_requests


def test_retrain_counts_from_the_rows_the_champion_was_trained_on(instance, lake):
    _batch(lake, 500)  # training_ratings is built from these 500 rows...
    _batch(lake, 100)  # ...and 100 more arrive while the model trains
    _champion(lake, "v1", streamed_rows=500)
    _batch(lake, 40)
    assert "140 new ratings" in _retrain(100, instance, lake).run_requests[0].tags[REASON]


def test_retrain_counts_the_rows_a_killed_ingest_left(instance, lake):
    _batch(lake, 1000)
    _champion(lake, "v1", streamed_rows=1000)
    # A run killed after committing a batch of 90 events reported nothing to Dagster...
    killed = _batch(lake, 90)
    assert instance.get_latest_materialization_event(AssetKey(EVENTS_TABLE)) is None
    assert "90 of 100" in _skip_message(_retrain(100, instance, lake))
    # ...the next run replays the batch it was in (the same part, replaced: not added again) and 20 more.
    _batch(lake, 90, part=killed)
    assert "90 of 100" in _skip_message(_retrain(100, instance, lake))
    _batch(lake, 20)
    assert "110 new ratings" in _retrain(100, instance, lake).run_requests[0].tags[REASON]


def test_retrain_counts_from_the_new_champions_training_rows(instance, lake):
    _champion(lake, "v1", streamed_rows=0)
    _batch(lake, 8)
    first = _retrain(10, instance, lake)
    assert json.loads(first.cursor) == {"champion": "v1", "counted_from": 0}
    _champion(lake, "v2", streamed_rows=8)
    later = _retrain(10, instance, lake, first.cursor)
    assert json.loads(later.cursor) == {"champion": "v2", "counted_from": 8}
    assert "0 of 10 new ratings since champion v2" in _skip_message(later)


def test_a_champion_without_streamed_rows_counts_every_row(instance, lake):
    """A model.json written before streamed_rows was recorded: every row of rating_events counts as new."""
    _champion(lake, "v1", streamed_rows=None)
    _batch(lake, 12)
    assert "12 new ratings" in _retrain(10, instance, lake).run_requests[0].tags[REASON]


def test_a_cursor_from_an_earlier_version_counts_afresh(instance, lake):
    _champion(lake, "v1", streamed_rows=0)
    _batch(lake, 8)
    old = json.dumps({"accepted": 500, "after_storage_id": 3, "champion": "v1", "since_timestamp": 0})
    assert json.loads(_retrain(10, instance, lake, old).cursor) == {"champion": "v1", "counted_from": 0}
    assert RetrainCursor.load(None) == RetrainCursor()
    assert RetrainCursor.load(RetrainCursor("v3", 42).dump()) == RetrainCursor("v3", 42)


def test_retrain_threshold_must_be_a_positive_number():
    assert retrain_threshold({}) == 1000
    assert retrain_threshold({RETRAIN_THRESHOLD_ENV: "250"}) == 250
    assert retrain_threshold({RETRAIN_THRESHOLD_ENV: " 7 "}) == 7
    for text in ("many", "0", "-5", "2.5"):
        with pytest.raises(ValueError, match=RETRAIN_THRESHOLD_ENV):
            retrain_threshold({RETRAIN_THRESHOLD_ENV: text})
