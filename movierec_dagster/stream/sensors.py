"""Reactions to the stream: ingest when events arrive, retrain when enough of them did."""

import json
import os
from dataclasses import asdict, dataclass, fields
from datetime import datetime

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    sensor,
)

from movierec_dagster.metadata import ROW_COUNT, latest_int_metadata
from movierec_dagster.model.assets import STREAMED_ROWS
from movierec_dagster.model.registry import read_champion, read_model_info
from movierec_dagster.resources import LocalLake
from movierec_dagster.resources.event_source import EventSource
from movierec_dagster.stream.assets import INGEST_POOL
from movierec_dagster.stream.ingest import EVENTS_TABLE, REJECTED_TABLE

INGEST_JOB = "ingest_rating_events"
RETRAIN_JOB = "retrain_model"  # defined by the model domain, targeted by name
# The run queue lets one run with this tag at a time (infra/local/dagster.yaml).
INGEST_CONCURRENCY_TAG = {"movierec/concurrency": INGEST_POOL}
RETRAIN_THRESHOLD_ENV = "MOVIEREC_RETRAIN_THRESHOLD"
DEFAULT_RETRAIN_THRESHOLD = 1000

ingest_rating_events_job = define_asset_job(
    INGEST_JOB,
    selection=[EVENTS_TABLE, REJECTED_TABLE],
    description="Ingest the rating events that arrived since the last run (exactly once).",
    tags=INGEST_CONCURRENCY_TAG,
)


@sensor(job=ingest_rating_events_job, minimum_interval_seconds=10, default_status=DefaultSensorStatus.RUNNING)
def rating_events_sensor(context: SensorEvaluationContext, event_source: EventSource) -> SensorResult | SkipReason:
    """Requests an ingest run when the event source has events past the cursor."""
    found = event_source.new_events(context.cursor)
    if not found.count:
        return SkipReason(found.description)
    waiting = context.instance.get_run_records(
        RunsFilter(job_name=INGEST_JOB, statuses=[DagsterRunStatus.QUEUED]), limit=1
    )
    if waiting:
        # A run that has not started yet will read these events too: no second run for them.
        context.log.info(f"{found.description}: run {waiting[0].dagster_run.run_id} is queued and will ingest them")
        return SensorResult(skip_reason=SkipReason(f"{found.description}; an ingest run is already queued"), cursor=found.cursor)
    return SensorResult(
        run_requests=[RunRequest(run_key=found.run_key, tags={"movierec/new_events": found.description})],
        cursor=found.cursor,
    )


def retrain_threshold(environ: dict[str, str] | None = None) -> int:
    """New ratings that trigger a retrain (`MOVIEREC_RETRAIN_THRESHOLD`, default 1000)."""
    environ = os.environ if environ is None else environ
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


def _event_rows(instance: DagsterInstance, before_timestamp: float | None = None) -> int:
    """Rows in rating_events at its latest materialization (before `before_timestamp`); 0 before any."""
    return latest_int_metadata(instance, EVENTS_TABLE, ROW_COUNT, before_timestamp) or 0


def _trained_at(champion: dict) -> float:
    try:
        return datetime.fromisoformat(champion["trained_at"]).timestamp()
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(
            f"The champion pointer has no ISO-8601 `trained_at` ({champion!r})."
        ) from error


@sensor(job_name=RETRAIN_JOB, minimum_interval_seconds=60, default_status=DefaultSensorStatus.RUNNING)
def retrain_sensor(context: SensorEvaluationContext, lake: LocalLake) -> SensorResult | SkipReason:
    """Requests a retrain once the ratings ingested since the champion was trained pass MOVIEREC_RETRAIN_THRESHOLD.

    It counts rows of rating_events (each ingest records the table's row count) past
    those the champion was trained on, not what each run accepted: the batches of a run
    killed half-way are in the table and are counted once the next ingest reports it.
    """
    threshold = retrain_threshold()
    champion = read_champion(lake)
    if champion is None:
        return SkipReason("No champion model yet: the first model comes from a retrain run or its schedule.")
    state = RetrainCursor.load(context.cursor)
    if state.champion != str(champion["version"]):
        # A new champion: count from the rating_events rows it was trained on (in its model.json),
        # or, for a model that did not record them, from the table as it was when it was trained.
        trained_on = (read_model_info(lake, champion["version"]) or {}).get(STREAMED_ROWS)
        if trained_on is None:
            trained_on = _event_rows(context.instance, before_timestamp=_trained_at(champion))
        state = RetrainCursor(champion=str(champion["version"]), counted_from=trained_on)
    rows = _event_rows(context.instance)
    new = rows - state.counted_from
    if new < threshold:
        return SensorResult(
            skip_reason=SkipReason(f"{new:,} of {threshold:,} new ratings since champion {state.champion} was trained"),
            cursor=state.dump(),
        )
    reason = f"{new:,} new ratings since champion {state.champion} was trained (threshold {threshold:,})"
    context.log.info(f"Requesting {RETRAIN_JOB}: {reason}")
    run_key = f"retrain-{state.champion}-{rows}"
    # Count again from here: if this retrain does not produce a new champion, the next request
    # waits for another `threshold` ratings instead of firing on every tick.
    state.counted_from = rows
    return SensorResult(
        run_requests=[RunRequest(run_key=run_key, tags={"movierec/retrain_reason": reason})], cursor=state.dump()
    )
