"""One Dagster step as one Databricks run, staged on a Unity Catalog volume through the Files API (no DBFS).

dagster-databricks' launcher stages on DBFS, which workspaces created today do not have. This one keeps
its remote half: dagster-databricks' unchanged `databricks_step_main.py` runs on the cluster and reads
its three files from the volume's FUSE path (`/Volumes/...`), as it reads `/dbfs/...` elsewhere, and
writes the step's events, stdout and stderr beside them. Its setup object is our `ClusterSetup`, not
dagster-databricks' `DatabricksConfig`, so the cluster needs dagster alone: dagster-databricks would
bring dagster-pyspark, whose `pyspark` requirement the runtime's own Spark does not satisfy for pip
(it would download and build a second pyspark on every new cluster). `package_root` must hold the
`movierec_dagster` package, where `ClusterSetup` lives. The orchestrator uploads the files, submits the
run (`jobs/runs/submit`, API 2.2), reads the events back through the Files API while it polls, cancels
the run on any error or interrupt, and removes the step's folder when the step ends.
"""

import gzip
import io
import pickle
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagster import DagsterEvent, DagsterEventType, MetadataValue
from dagster._core.errors import raise_execution_interrupts
from dagster._core.events import EngineEventData
from dagster._core.events.log import EventLogEntry
from dagster._core.execution.context.system import StepExecutionContext
from dagster._core.execution.plan.external_step import (
    PICKLED_EVENTS_FILE_NAME,
    PICKLED_STEP_RUN_REF_FILE_NAME,
    step_context_to_step_run_ref,
)
from dagster._serdes import deserialize_value
from dagster_databricks import databricks_step_main
from dagster_pyspark.utils import build_pyspark_zip
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import DatabricksError, NotFound
from databricks.sdk.service.files import FilesAPI

from movierec_dagster.resources.cluster_setup import ClusterSetup

STAGING_FOLDER = "dagster_staging"
MAIN_FILE = Path(databricks_step_main.__file__).name
CONFIG_FILE = "config.pkl"
CODE_ZIP = "code.zip"
# Life-cycle states after which a run changes no more (Databricks' RunLifeCycleState).
TERMINAL_STATES = {"TERMINATED", "SKIPPED", "INTERNAL_ERROR"}
# How long a cancelled run is given to end before its staged files are removed anyway.
CANCEL_WAIT_SECONDS = 120


class DatabricksRunFailed(Exception):
    """The Databricks run ended without success; the message is Databricks' own."""


@dataclass(frozen=True)
class StagedStep:
    """A step's folder on the volume: `<volume>/dagster_staging/<run id>/<step key>`."""

    files: FilesAPI
    folder: str

    @classmethod
    def for_step(cls, client: WorkspaceClient, volume: str, run_id: str, step_key: str) -> "StagedStep":
        # Dynamic step keys hold brackets, which a path had better not.
        safe_key = step_key.replace("[", "__").replace("]", "__")
        return cls(FilesAPI(client.api_client), f"{volume.rstrip('/')}/{STAGING_FOLDER}/{run_id}/{safe_key}")

    def path(self, name: str) -> str:
        return f"{self.folder}/{name}"

    def put(self, name: str, data: bytes) -> None:
        # One PUT of the bytes: the Files API's single-shot upload (our files are far below its limit).
        self.files.upload(self.path(name), io.BytesIO(data), overwrite=True)

    def read(self, name: str) -> bytes | None:
        """The file's bytes, or None while the step has not written it."""
        try:
            return self.files.download(self.path(name)).contents.read()
        except NotFound:
            return None

    def remove(self) -> None:
        """Delete the step's files and its folder (and the run's folder once it is empty)."""
        try:
            entries = list(self.files.list_directory_contents(self.folder))
        except NotFound:
            return
        for entry in entries:
            if not entry.is_directory:
                self.files.delete(entry.path)
        self.files.delete_directory(self.folder)
        run_folder = self.folder.rsplit("/", 1)[0]
        try:
            if not list(self.files.list_directory_contents(run_folder)):
                self.files.delete_directory(run_folder)
        except NotFound:
            pass


@dataclass(frozen=True)
class VolumeStepLauncher:
    """Launches a step on Databricks: `cluster` is a task's cluster (`existing_cluster_id` or `new_cluster`)."""

    client: WorkspaceClient
    volume: str
    cluster: dict[str, Any]
    libraries: tuple[str, ...]
    remote_config: ClusterSetup
    package_root: str
    poll_interval_sec: float
    max_wait_seconds: float

    def launch_step(self, step_context: StepExecutionContext) -> Iterator[DagsterEvent]:
        log = step_context.log
        step_key = step_context.step.key
        staged = StagedStep.for_step(self.client, self.volume, step_context.run_id, step_key)
        try:
            log.info(f"Staging step {step_key} on {staged.folder}")
            self._stage(step_context, staged)
            run_id = self._submit(step_context, staged)
            yield from self._follow(step_context, staged, run_id)
        finally:
            try:
                self._log_output(step_context, staged)
            except DatabricksError as error:
                log.warning(f"Could not read back step {step_key}'s output from {staged.folder}: {error}")
            try:
                staged.remove()
            except DatabricksError as error:
                log.warning(f"Could not remove what step {step_key} staged at {staged.folder}: {error}; remove it by hand")

    def _stage(self, step_context: StepExecutionContext, staged: StagedStep) -> None:
        step_run_ref = step_context_to_step_run_ref(step_context, self.package_root)
        staged.put(MAIN_FILE, Path(databricks_step_main.__file__).read_bytes())
        with tempfile.TemporaryDirectory(prefix="movierec-code-") as scratch:
            code_zip = Path(scratch, CODE_ZIP)
            build_pyspark_zip(str(code_zip), self.package_root)
            staged.put(CODE_ZIP, code_zip.read_bytes())
        staged.put(PICKLED_STEP_RUN_REF_FILE_NAME, pickle.dumps(step_run_ref))
        staged.put(CONFIG_FILE, pickle.dumps(self.remote_config))

    def _submit(self, step_context: StepExecutionContext, staged: StagedStep) -> int:
        task = {
            "task_key": "dagster-step",
            **self.cluster,
            "libraries": [{"pypi": {"package": package}} for package in self.libraries],
            "spark_python_task": {
                "python_file": staged.path(MAIN_FILE),
                "parameters": [staged.path(name) for name in (PICKLED_STEP_RUN_REF_FILE_NAME, CONFIG_FILE, CODE_ZIP)],
            },
        }
        body = {"run_name": f"movierec {step_context.step.key} ({step_context.run_id[:8]})", "tasks": [task]}
        return int(self.client.api_client.do("POST", "/api/2.2/jobs/runs/submit", body=body)["run_id"])

    def _run(self, run_id: int) -> dict[str, Any]:
        return self.client.api_client.do("GET", "/api/2.2/jobs/runs/get", query={"run_id": run_id})

    def _follow(self, step_context: StepExecutionContext, staged: StagedStep, run_id: int) -> Iterator[DagsterEvent]:
        """Poll the run, yielding the step's events as they arrive; cancel the run if anything goes wrong here."""
        run = self._run(run_id)
        yield DagsterEvent.from_step(
            event_type=DagsterEventType.ENGINE_EVENT,
            message=f"Waiting for Databricks run {run_id} to complete...",
            step_context=step_context,
            event_specific_data=EngineEventData(
                metadata={"databricks_run_url": MetadataValue.url(run.get("run_page_url", ""))}
            ),
        )
        events_file = f"{step_context.previous_attempt_count}_{PICKLED_EVENTS_FILE_NAME}"
        seen, started, last_state = 0, time.monotonic(), ""
        try:
            while True:
                with raise_execution_interrupts():
                    time.sleep(self.poll_interval_sec)
                    run = self._run(run_id)
                    state = run.get("state", {})
                    life_cycle = state.get("life_cycle_state", "")
                    if life_cycle != last_state:
                        step_context.log.info(f"Databricks run {run_id}: {life_cycle} {state.get('state_message', '')}")
                        last_state = life_cycle
                    for entry in _events(staged, events_file)[seen:]:
                        step_context.instance.handle_new_event(entry)
                        seen += 1
                        if entry.is_dagster_event:
                            yield entry.get_dagster_event()
                    if life_cycle in TERMINAL_STATES:
                        break
                    if time.monotonic() - started > self.max_wait_seconds:
                        raise DatabricksRunFailed(
                            f"Databricks run {run_id} did not finish within {self.max_wait_seconds:.0f} s; it was cancelled."
                        )
        except BaseException:
            try:
                self._cancel(step_context, run_id)
            except DatabricksError as error:
                step_context.log.error(f"Could not cancel Databricks run {run_id}: {error}; cancel it in the workspace")
            raise
        _raise_unless_succeeded(run_id, run)

    def _cancel(self, step_context: StepExecutionContext, run_id: int) -> None:
        """Cancel the run and wait a while for it to end, so that what it writes is written before the cleanup."""
        step_context.log.warning(f"Cancelling Databricks run {run_id}")
        self.client.api_client.do("POST", "/api/2.2/jobs/runs/cancel", body={"run_id": run_id})
        deadline = time.monotonic() + CANCEL_WAIT_SECONDS
        while time.monotonic() < deadline:
            if self._run(run_id).get("state", {}).get("life_cycle_state") in TERMINAL_STATES:
                return
            time.sleep(self.poll_interval_sec)
        step_context.log.warning(f"Databricks run {run_id} had not ended {CANCEL_WAIT_SECONDS} s after its cancellation")

    def _log_output(self, step_context: StepExecutionContext, staged: StagedStep) -> None:
        for name, stream in (("stdout", sys.stdout), ("stderr", sys.stderr)):
            output = staged.read(name)
            if output:
                step_context.log.info(f"{name} of step {step_context.step.key} on Databricks:\n{output.decode(errors='replace')}")
                stream.write(output.decode(errors="replace"))


def _events(staged: StagedStep, name: str) -> list[EventLogEntry]:
    """The step's events so far; none while the file is missing, or caught half-rewritten (read again next poll)."""
    data = staged.read(name)
    if not data:
        return []
    try:
        return deserialize_value(pickle.loads(gzip.decompress(data)))
    except (EOFError, OSError, zlib.error, pickle.UnpicklingError):
        return []


def _raise_unless_succeeded(run_id: int, run: dict[str, Any]) -> None:
    state = run.get("state", {})
    life_cycle, result = state.get("life_cycle_state"), state.get("result_state")
    if life_cycle == "SKIPPED" or (life_cycle == "TERMINATED" and result == "SUCCESS"):
        return
    outcome = f"{life_cycle}/{result}" if result else life_cycle
    message = state.get("state_message") or "no message"
    raise DatabricksRunFailed(f"Databricks run {run_id} ended {outcome}: {message} ({run.get('run_page_url', '')})")
