"""The model's reaction to the stream: retrain once enough new ratings have arrived since the champion was trained."""

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from movierec_dagster.model.retrain import STREAMED_ROWS
from movierec_dagster.model.registry import read_champion, read_model_info
from movierec_dagster.model.schedules import retrain_model
from movierec_dagster.resources import Lake
from movierec_dagster.names import EVENTS as EVENTS_TABLE

RETRAIN_THRESHOLD_ENV = "MOVIEREC_RETRAIN_THRESHOLD"
DEFAULT_RETRAIN_THRESHOLD = 1000


def retrain_threshold(environ: Mapping[str, str]) -> int:
    """New ratings that trigger a retrain (`MOVIEREC_RETRAIN_THRESHOLD`, default 1000), read when the code location loads."""
    text = environ.get(RETRAIN_THRESHOLD_ENV, "").strip()
    if not text:
        return DEFAULT_RETRAIN_THRESHOLD
    if not text.isdigit() or int(text) <= 0:
        raise ValueError(f"{RETRAIN_THRESHOLD_ENV}={text!r} must be a positive whole number of ratings.")
    return int(text)


@dataclass
class RetrainCursor:
    """Which champion the retrain sensor counts for, and the rating_events rows it counts from."""

    champion: str | None = None
    counted_from: int = 0

    @classmethod
    def load(cls, cursor: str | None) -> "RetrainCursor":
        """The cursor, or a fresh one (counting again from the champion) for none or an earlier version's."""
        state = json.loads(cursor) if cursor else {}
        return cls(**state) if set(state) == {field.name for field in fields(cls)} else cls()

    def dump(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def build_retrain_sensor(threshold: int = DEFAULT_RETRAIN_THRESHOLD) -> SensorDefinition:
    """The retrain sensor, asking for a retrain at `threshold` new ratings (the settings are read once, at load)."""
    if threshold <= 0:
        raise ValueError(f"The retrain threshold must be a positive number of ratings, not {threshold}.")

    @sensor(job=retrain_model, minimum_interval_seconds=60, default_status=DefaultSensorStatus.RUNNING)
    def retrain_sensor(context: SensorEvaluationContext, lake: Lake) -> SensorResult | SkipReason:
        """Requests a retrain once the ratings ingested since the champion was trained pass MOVIEREC_RETRAIN_THRESHOLD.

        Both numbers come from the lake: the rows of rating_events (every ingest batch's commit
        records its rows, so the batches of a run killed half-way count too) and, in the
        champion's model.json, the rows it was trained on.
        """
        champion = read_champion(lake)
        if champion is None:
            return SkipReason("No champion model yet: the first model comes from a retrain run or its schedule.")
        state = RetrainCursor.load(context.cursor)
        if state.champion != str(champion["version"]):
            trained_on = (read_model_info(lake, champion["version"]) or {}).get(STREAMED_ROWS) or 0
            state = RetrainCursor(champion=str(champion["version"]), counted_from=trained_on)
        events = lake.table_version(EVENTS_TABLE)
        rows = events.rows if events else 0
        new = rows - state.counted_from
        if new < threshold:
            return SensorResult(
                skip_reason=SkipReason(f"{new:,} of {threshold:,} new ratings since champion {state.champion} was trained"),
                cursor=state.dump(),
            )
        reason = f"{new:,} new ratings since champion {state.champion} was trained (threshold {threshold:,})"
        context.log.info(f"Requesting {retrain_model.name}: {reason}")
        run_key = f"retrain-{state.champion}-{rows}"
        # Count again from here: if this retrain does not produce a new champion, the next request
        # waits for another `threshold` ratings instead of firing on every tick.
        state.counted_from = rows
        return SensorResult(
            run_requests=[RunRequest(run_key=run_key, tags={"movierec/retrain_reason": reason})], cursor=state.dump()
        )

    return retrain_sensor
