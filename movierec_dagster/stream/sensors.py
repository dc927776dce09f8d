"""The stream's reaction: ingest whenever the event source holds events the ingest's checkpoint has not taken in."""

import time
from collections.abc import Mapping

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    define_asset_job,
    sensor,
)

from movierec_dagster.resources import Lake
from movierec_dagster.resources.event_source import EventSource
from movierec_dagster.stream.assets import INGEST_POOL
from movierec_dagster.stream.ingest import EVENT_IDS_TABLE, EVENTS_TABLE, REJECTED_TABLE, ingest_checkpoint

INGEST_JOB = "ingest_rating_events"
# The run queue lets one run with this tag at a time (infra/local/dagster.yaml).
INGEST_CONCURRENCY_TAG = {"movierec/concurrency": INGEST_POOL}
UNFINISHED = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]
RETRY_AFTER_FAILURE_ENV = "MOVIEREC_INGEST_RETRY_SECONDS"
DEFAULT_RETRY_AFTER_FAILURE_SECONDS = 60

ingest_rating_events_job = define_asset_job(
    INGEST_JOB,
    selection=[EVENTS_TABLE, REJECTED_TABLE, EVENT_IDS_TABLE],
    description="Ingest the rating events that arrived since the last run (exactly once).",
    tags=INGEST_CONCURRENCY_TAG,
)


def retry_after_failure_seconds(environ: Mapping[str, str]) -> float:
    """How long after a failed ingest run the sensor waits before it asks again (`MOVIEREC_INGEST_RETRY_SECONDS`),
    read when the code location loads."""
    text = environ.get(RETRY_AFTER_FAILURE_ENV, "").strip()
    if not text:
        return DEFAULT_RETRY_AFTER_FAILURE_SECONDS
    try:
        return max(0.0, float(text))
    except ValueError as error:
        raise ValueError(f"{RETRY_AFTER_FAILURE_ENV}={text!r} must be a number of seconds.") from error


def build_rating_events_sensor(pause: float = DEFAULT_RETRY_AFTER_FAILURE_SECONDS) -> SensorDefinition:
    """The ingest sensor, waiting `pause` seconds after a failed ingest run before it asks again."""

    @sensor(job=ingest_rating_events_job, minimum_interval_seconds=10, default_status=DefaultSensorStatus.RUNNING)
    def rating_events_sensor(
        context: SensorEvaluationContext, lake: Lake, event_source: EventSource
    ) -> RunRequest | SkipReason:
        """Requests an ingest while the source holds events the checkpoint has not taken in, one run at a time.

        It compares the source with the checkpoint, not with what it saw on earlier ticks, so
        events of a run that failed or was killed are asked for again (after a pause, so a
        failure that repeats does not start a run every tick).
        """
        pending = event_source.pending_events(ingest_checkpoint(lake, event_source))
        if not pending.count:
            return SkipReason(pending.description)
        unfinished = context.instance.get_run_records(RunsFilter(job_name=INGEST_JOB, statuses=UNFINISHED), limit=1)
        if unfinished:
            run = unfinished[0].dagster_run
            return SkipReason(f"{pending.description}; ingest run {run.run_id} ({run.status.value}) will take them in")
        latest = context.instance.get_run_records(RunsFilter(job_name=INGEST_JOB), limit=1)
        if latest and latest[0].dagster_run.status == DagsterRunStatus.FAILURE:
            waited = time.time() - (latest[0].end_time or 0)
            if waited < pause:
                return SkipReason(
                    f"{pending.description}; ingest run {latest[0].dagster_run.run_id} failed {waited:.0f} s ago, "
                    f"asking again {pause:.0f} s after it"
                )
        context.log.info(f"Requesting an ingest: {pending.description}")
        return RunRequest(tags={"movierec/pending_events": pending.description})

    return rating_events_sensor
