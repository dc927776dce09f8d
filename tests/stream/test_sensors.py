"""The ingest sensor through Dagster's sensor test context: it asks for an ingest while the source holds what the checkpoint lacks, one run at a time, and again after a failed run."""

from pathlib import Path

import pytest
from dagster import (
    DagsterRun,
    DagsterRunStatus,
    Definitions,
    Failure,
    RunRequest,
    SkipReason,
    build_sensor_context,
    job,
    op,
)
from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from movierec_dagster.resources import LandingFolderSource, LocalLake, LocalSpark
from movierec_dagster.stream.assets import rating_events
from movierec_dagster.stream.ingest import ingest_rating_events
from movierec_dagster.stream.sensors import (
    INGEST_JOB,
    RETRY_AFTER_FAILURE_ENV,
    build_rating_events_sensor,
    ingest_rating_events_job,
    retry_after_failure_seconds,
)
from tests.conftest import local_definitions
from tests.stream.events import event, write_lines


class Unreachable(LandingFolderSource):
    """The landing folder, except that the ingest's stream cannot be opened while `marker` exists.

    It raises a Failure that bypasses the asset's retry policy: the run fails at once, as it would
    after its last retry (the retries are test_assets.py's subject, and would add 20 s here).
    """

    marker: str

    def read_stream(self, spark, checkpoint):
        if Path(self.marker).exists():
            raise Failure("the event source is not reachable", allow_retries=False)
        return super().read_stream(spark, checkpoint)


@op
def _noop() -> None:
    pass


@job
def other_job() -> None:
    _noop()


def _source(lake: LocalLake) -> LandingFolderSource:
    return LandingFolderSource(folder=lake.fs_path("landing", "rating_events"))


def _tick(instance, lake: LocalLake, source: LandingFolderSource, pause: float = 60) -> RunRequest | SkipReason:
    """One tick of the ingest sensor built to wait `pause` seconds after a failed ingest run."""
    context = build_sensor_context(instance=instance, resources={"lake": lake, "event_source": source})
    return build_rating_events_sensor(pause)(context)


def _land(source: LandingFolderSource, name: str, *event_ids: str) -> None:
    write_lines(Path(source.folder), name, [event(event_id).encode() for event_id in event_ids])


def _ingest_definitions(lake: LocalLake, source: LandingFolderSource) -> Definitions:
    """The ingest job as deployed (its asset, name and tags) on this test's lake and source."""
    return Definitions(
        assets=[rating_events],
        jobs=[ingest_rating_events_job],
        resources={"spark": LocalSpark(master="local[2]"), "lake": lake, "event_source": source},
    )


def _run_in_status(instance, job_def, status: DagsterRunStatus) -> DagsterRun:
    """A run record of `job_def` in `status`, as the run queue, launcher or a cancel would leave it."""
    origin = None
    if status == DagsterRunStatus.QUEUED:
        # Dagster refuses a QUEUED run that names no code location (the daemon dequeues it from there);
        # only a loaded workspace has one, so this test names one through Dagster's private origin
        # classes. Nothing loads it: the sensor only reads the run's job name and status.
        origin = RemoteJobOrigin(
            RemoteRepositoryOrigin(InProcessCodeLocationOrigin(LoadableTargetOrigin(python_file=__file__)), "test"),
            job_def.name,
        )
    return instance.create_run_for_job(job_def, status=status, remote_job_origin=origin)


def _assert_requests(result) -> RunRequest:
    assert isinstance(result, RunRequest), result
    # No run key: a key would make the daemon drop a second request for the same events.
    assert result.run_key is None
    return result


def test_nothing_landed_skips(instance, lake):
    result = _tick(instance, lake, _source(lake))
    assert isinstance(result, SkipReason)
    assert "no file" in result.skip_message


def test_a_landed_file_requests_an_ingest_until_one_takes_it_in(spark, instance, lake):
    source = _source(lake)
    _land(source, "a.jsonl", "e1", "e2")

    first = _assert_requests(_tick(instance, lake, source))
    assert first.tags["movierec/pending_events"] == f"1 file(s) in {source.folder} wait for an ingest"
    # No cursor: until an ingest takes the file in, every tick asks again.
    _assert_requests(_tick(instance, lake, source))

    ingest_rating_events(spark, lake, source, log=lambda _: None)
    done = _tick(instance, lake, source)
    assert isinstance(done, SkipReason), done
    assert done.skip_message == f"no file in {source.folder} waits for an ingest"

    _land(source, "b.jsonl", "e3")
    assert "1 file(s)" in _assert_requests(_tick(instance, lake, source)).tags["movierec/pending_events"]


# Every status of a run that has not finished: queued, being launched, running, being canceled.
UNFINISHED = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]


@pytest.mark.parametrize("status", UNFINISHED, ids=[status.value for status in UNFINISHED])
def test_an_unfinished_ingest_run_skips_naming_it(instance, lake, status):
    source = _source(lake)
    _land(source, "a.jsonl", "e1")
    job = _ingest_definitions(lake, source).resolve_job_def(INGEST_JOB)
    # Another job's unfinished run, and a finished ingest run, do not hold the sensor back.
    _run_in_status(instance, other_job, status)
    _run_in_status(instance, job, DagsterRunStatus.SUCCESS)
    _assert_requests(_tick(instance, lake, source))

    run = _run_in_status(instance, job, status)
    assert instance.get_run_by_id(run.run_id).status == status
    result = _tick(instance, lake, source)
    assert isinstance(result, SkipReason), result
    assert f"ingest run {run.run_id} ({status.value}) will take them in" in result.skip_message


def test_the_sensor_after_a_failed_ingest_still_requests_one(spark, instance, lake, tmp_path):
    marker = tmp_path / "unreachable"
    marker.touch()
    source = Unreachable(folder=lake.fs_path("landing", "rating_events"), marker=str(marker))
    _land(source, "a.jsonl", "e1", "e2")
    _assert_requests(_tick(instance, lake, source))

    job = _ingest_definitions(lake, source).resolve_job_def(INGEST_JOB)
    failed = job.execute_in_process(instance=instance, raise_on_error=False)
    assert not failed.success
    assert "the event source is not reachable" in str(failed.get_step_failure_events()[0].step_failure_data.error)
    assert not [e for e in failed.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert instance.get_run_by_id(failed.run_id).status == DagsterRunStatus.FAILURE

    paused = _tick(instance, lake, source)
    assert isinstance(paused, SkipReason), paused
    assert f"ingest run {failed.run_id} failed" in paused.skip_message
    assert "asking again 60 s after it" in paused.skip_message

    again = _assert_requests(_tick(instance, lake, source, pause=0))
    assert again.tags["movierec/pending_events"] == f"1 file(s) in {source.folder} wait for an ingest"

    # The source is back: the requested run takes the same events in, and the sensor rests.
    marker.unlink()
    assert job.execute_in_process(instance=instance).success
    assert lake.table_version("rating_events").rows == 2
    assert isinstance(_tick(instance, lake, source), SkipReason)


def test_retry_pause_parsing():
    assert retry_after_failure_seconds({}) == 60
    assert retry_after_failure_seconds({RETRY_AFTER_FAILURE_ENV: "2.5"}) == 2.5
    assert retry_after_failure_seconds({RETRY_AFTER_FAILURE_ENV: "-3"}) == 0
    with pytest.raises(ValueError, match=RETRY_AFTER_FAILURE_ENV):
        retry_after_failure_seconds({RETRY_AFTER_FAILURE_ENV: "soon"})


def test_ingest_job_carries_the_concurrency_tag(tmp_path):
    defs = local_definitions(tmp_path / "home", tmp_path / "movielens")
    assert defs.resolve_job_def(INGEST_JOB).tags == {"movierec/concurrency": "rating_events_ingest"}
    assert defs.resolve_assets_def("rating_events").op.pool == "rating_events_ingest"
