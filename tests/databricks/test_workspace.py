"""The Databricks workspace stand-in, driven by the real dagster-databricks step launcher on a tiny job."""

import hashlib
import importlib.metadata
import io
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, execute_job
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster_databricks.databricks import DatabricksClient
from databricks.sdk.errors import DatabricksError
from databricks.sdk.service import jobs

from tests.databricks.workspace import Workspace

pytestmark = pytest.mark.filterwarnings("ignore::dagster.SupersessionWarning")

SECRET = "v4lue-0f-the-s3cret"
STAGING = "/dagster_staging"
DBFS_CREATE, DBFS_ADD_BLOCK, DBFS_CLOSE, DBFS_READ = (
    ("POST", "/api/2.0/dbfs/create"),
    ("POST", "/api/2.0/dbfs/add-block"),
    ("POST", "/api/2.0/dbfs/close"),
    ("GET", "/api/2.0/dbfs/read"),
)
SUBMIT, RUNS_GET, RUNS_CANCEL = (
    ("POST", "/api/2.2/jobs/runs/submit"),
    ("GET", "/api/2.2/jobs/runs/get"),
    ("POST", "/api/2.2/jobs/runs/cancel"),
)


@pytest.fixture(scope="module")
def package() -> Iterator[Path]:
    """The launcher's package folder: only a copy of `tinyjob`.

    Not under pytest's tmp_path: dagster-pyspark's zip leaves out every file whose absolute path matches `.*pytest.*`.
    """
    with tempfile.TemporaryDirectory(prefix="tinyjob-code-") as root:
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(Path(__file__).parent / "tinyjob", Path(root) / "tinyjob", ignore=ignore)
        yield Path(root)


@pytest.fixture
def workspace(spark, monkeypatch):
    with Workspace(spark, secrets={"s": {"k": SECRET}}) as ws:
        monkeypatch.setenv("DATABRICKS_TOKEN", ws.token)
        monkeypatch.setenv("ORCHESTRATOR_ONLY", "the cluster must not see this")
        yield ws


def _launch(workspace: Workspace, package: Path, job: str, cluster: str = "test-cluster", libraries=()):
    """Run `job` of tinyjob with the in-process executor: each asset's step goes to the workspace."""
    launcher = {
        "run_config": {"run_name": "tinyjob", "cluster": {"existing": cluster}, "libraries": list(libraries)},
        "databricks_host": workspace.host,
        "databricks_token": {"env": "DATABRICKS_TOKEN"},
        "local_dagster_job_package_path": str(package),
        "staging_prefix": STAGING,
        "secrets_to_env_variables": [{"name": "MY_SECRET", "key": "k", "scope": "s"}],
        # The step's process builds the launcher resource again, from these.
        "env_variables": {"DATABRICKS_HOST": workspace.host, "DATABRICKS_TOKEN": workspace.token},
        "poll_interval_sec": 0.2,
    }
    run_config = {
        "execution": {"config": {"in_process": {}}},
        "resources": {"pyspark_step_launcher": {"config": launcher}},
    }
    repository = ReconstructableRepository.for_file(str(package / "tinyjob" / "definitions.py"), "defs")
    with DagsterInstance.ephemeral() as instance:
        result = execute_job(repository.get_reconstructable_job(job), instance, run_config, raise_on_error=False)
        return result.run_id, result.success, list(result.all_events)


def _step_failure(events) -> str:
    (failure,) = [e for e in events if e.event_type == DagsterEventType.STEP_FAILURE]
    return failure.step_failure_data.error.to_string()


def test_a_step_runs_on_the_stand_in_through_the_real_launcher(workspace, package):
    run_id, success, events = _launch(workspace, package, "squares_job")

    assert success
    (materialization,) = [e.event_specific_data.materialization for e in events if e.is_step_materialization]
    metadata = {key: value.value for key, value in materialization.metadata.items()}
    assert metadata["sum_of_squares"] == 385
    assert metadata["secret_sha256"] == hashlib.sha256(SECRET.encode()).hexdigest()
    assert metadata["saw_orchestrator_env"] is False, "the cluster sees only what the launcher sends"
    assert not metadata["code_file"].startswith(str(package)), "the step's code comes from code.zip"

    step_dir = f"{STAGING}/{run_id}/sum_of_squares"
    calls = workspace.calls()
    assert calls[:12] == [DBFS_CREATE, DBFS_ADD_BLOCK, DBFS_CLOSE] * 4
    uploaded = [r.body["path"].removeprefix(step_dir) for r in workspace.requests if (r.method, r.path) == DBFS_CREATE]
    assert uploaded == ["/databricks_step_main.py", "/code.zip", "/step_run_ref.pkl", "/config.pkl"]
    assert calls[12] == SUBMIT
    assert calls[13] == RUNS_GET, "the engine event reads run_page_url"
    assert set(calls[13:]) == {RUNS_GET, DBFS_READ}
    reads = [r.body["path"].removeprefix(step_dir) for r in workspace.requests if (r.method, r.path) == DBFS_READ]
    assert set(reads[:-2]) == {"/0_events.pkl"} and reads[-2:] == ["/stdout", "/stderr"]
    assert workspace.unknown == []

    (run,) = workspace.runs.values()
    defaults = ("dagster", "dagster-databricks", "dagster-pyspark", "databricks-sdk")
    installed = {name: importlib.metadata.version(name) for name in defaults}
    assert run.payload == {
        "run_name": "tinyjob",
        "email_notifications": {},
        "notification_settings": {},
        "tasks": [
            {
                "task_key": "dagster-task",
                "existing_cluster_id": "test-cluster",
                "libraries": [{"pypi": {"package": f"{name}=={version}"}} for name, version in installed.items()],
                "spark_python_task": {
                    "python_file": f"dbfs://{step_dir}/databricks_step_main.py",
                    "parameters": [f"/dbfs/{step_dir}/{f}" for f in ("step_run_ref.pkl", "config.pkl", "code.zip")],
                },
            }
        ],
    }
    assert (run.life_cycle_state, run.result_state) == ("TERMINATED", "SUCCESS")

    assert workspace.secret_reads == [("s", "k")]
    assert workspace.find_text(SECRET) == [], "no secret value in any request nor on DBFS"
    assert f"dbfs:{step_dir}/config.pkl" in workspace.find_text("MY_SECRET"), "only its name and scope travel"
    # env_variables are plain text on DBFS, in config.pkl and (as resource config) in step_run_ref.pkl:
    # a token sent this way is there. A real one belongs in the secret scope.
    token_files = {hit.rsplit("/", 1)[-1] for hit in workspace.find_text(workspace.token)}
    assert token_files == {"config.pkl", "step_run_ref.pkl"}


def test_an_exception_in_the_step_comes_back_as_a_failed_step(workspace, package):
    _, success, events = _launch(workspace, package, "broken_job")

    assert not success
    assert "broken on purpose: table `nowhere` not found" in _step_failure(events)
    (run,) = workspace.runs.values()
    assert run.result_state == "SUCCESS", "as on Databricks: the script caught it and reported a step failure"


def test_an_unknown_cluster_fails_the_step_clearly(workspace, package):
    _, success, events = _launch(workspace, package, "squares_job", cluster="no-such-cluster")

    assert not success
    assert "Cluster no-such-cluster does not exist" in _step_failure(events)
    assert workspace.runs == {} and SUBMIT in workspace.calls() and RUNS_GET not in workspace.calls()


def test_a_failed_databricks_run_fails_the_step_and_is_cancelled(workspace, package):
    _, success, events = _launch(workspace, package, "squares_job", libraries=[{"pypi": {"package": "dagster==1.0.0"}}])

    assert not success
    assert "Library installation failed" in _step_failure(events) and "dagster==1.0.0" in _step_failure(events)
    (run,) = workspace.runs.values()
    cancel, stdout, stderr = workspace.requests[-3:]
    assert cancel == (*RUNS_CANCEL, {"run_id": run.run_id}), "then it reads the logs"
    assert (stdout.body["path"].endswith("/stdout"), stderr.body["path"].endswith("/stderr")) == (True, True)


def _sdk(workspace: Workspace) -> DatabricksClient:
    return DatabricksClient(host=workspace.host, token=workspace.token)


def _submit(workspace: Workspace, script: str, parameters=(), libraries=(), wait=True, **cluster):
    """Upload `script`, submit it as a spark_python_task through the SDK; its runs/get answer once done, or its id."""
    client = _sdk(workspace)
    name = f"dbfs:/scripts/{len(workspace.runs)}.py"
    client.put_file(io.BytesIO(script.encode()), name, overwrite=True)
    task = {
        "task_key": "t",
        **(cluster or {"existing_cluster_id": "test-cluster"}),
        "libraries": list(libraries),
        "spark_python_task": {"python_file": name, "parameters": list(parameters)},
    }
    submitted = client.workspace_client.jobs.submit(run_name="t", tasks=[jobs.SubmitTask.from_dict(task)])
    run_id = submitted.bind()["run_id"]
    if not wait:
        return run_id
    assert workspace.runs[run_id].done.wait(30)
    return client.workspace_client.jobs.get_run(run_id)


def _error_code(call) -> str:
    with pytest.raises(DatabricksError) as error:
        call()
    return error.value.error_code


def test_the_stand_in_answers_as_databricks_does(workspace):
    client = _sdk(workspace)
    sdk = client.workspace_client
    data = os.urandom(2 * 1024 * 1024 + 5)
    client.put_file(io.BytesIO(data), "dbfs:/scratch/blob.bin", overwrite=True)
    assert workspace.calls().count(DBFS_ADD_BLOCK) == 3, "1 MiB blocks"
    assert client.read_file("dbfs:/scratch/blob.bin") == data
    assert workspace.local_path("/dbfs//scratch/blob.bin").read_bytes() == data
    at_end = sdk.dbfs.read("/scratch/blob.bin", offset=len(data))
    assert (at_end.bytes_read, at_end.data) == (0, "")
    assert _error_code(lambda: client.read_file("/scratch/nothing")) == "RESOURCE_DOES_NOT_EXIST"
    assert _error_code(lambda: sdk.dbfs.create("/scratch/blob.bin")) == "RESOURCE_ALREADY_EXISTS"
    assert sdk.clusters.get("test-cluster").state.value == "RUNNING"
    assert _error_code(lambda: sdk.clusters.get("nope")) == "RESOURCE_DOES_NOT_EXIST"
    stranger = DatabricksClient(host=workspace.host, token="not-the-token").workspace_client
    assert _error_code(lambda: stranger.dbfs.read("/scratch/blob.bin")) == "UNAUTHENTICATED"
    assert _error_code(lambda: sdk.api_client.do("GET", "/api/2.0/clusters/list")) == "ENDPOINT_NOT_FOUND"
    assert [r.path for r in workspace.unknown] == ["/api/2.0/clusters/list"]
    both = {"existing_cluster_id": "test-cluster", "new_cluster": {"spark_version": "15.4.x-scala2.12"}}
    assert _error_code(lambda: _submit(workspace, "", **both)) == "INVALID_PARAMETER_VALUE"


def test_a_run_executes_its_script_as_on_a_cluster_driver(workspace):
    environ, path = dict(os.environ), list(sys.path)
    script = (
        "import os, sys\n"
        "secret = dbutils.secrets.get('s', 'k')\n"
        "seen = [sc.master, sys.argv[2], str(len(secret)), os.environ.get('ORCHESTRATOR_ONLY', '-')]\n"
        "with open(sys.argv[1], 'w') as out:\n"
        "    out.write(' '.join(seen))\n"
    )
    run = _submit(workspace, script, ["/dbfs//scripts/out.txt", "plain"])
    assert (run.state.life_cycle_state.value, run.state.result_state.value) == ("TERMINATED", "SUCCESS")
    assert workspace.local_path("dbfs:/scripts/out.txt").read_text() == f"local[2] plain {len(SECRET)} -"
    assert run.tasks[0].cluster_instance.cluster_id == "test-cluster" and run.run_page_url.startswith(workspace.host)

    run = _submit(workspace, "dbutils.secrets.get('s', 'missing')")
    assert run.state.result_state.value == "FAILED"
    assert run.state.state_message == "SecretDoesNotExist: Secret does not exist with scope: s and key: missing"

    run = _submit(workspace, "", libraries=[{"pypi": {"package": "dagster==0.0.1"}}])
    assert run.state.result_state.value == "FAILED" and "Library installation failed" in run.state.state_message

    assert (dict(os.environ), sys.path) == (environ, path), "the driver's process state is put back"


def test_a_cancelled_run_ends_cancelled(workspace):
    jobs_api = _sdk(workspace).workspace_client.jobs
    go = "/dbfs//scripts/go"
    waits_for_go = "import os, sys, time\nwhile not os.path.exists(sys.argv[1]):\n    time.sleep(0.02)"
    running = _submit(workspace, waits_for_go, [go], wait=False)
    while jobs_api.get_run(running).state.life_cycle_state.value == "PENDING":
        time.sleep(0.02)
    queued = _submit(workspace, "raise SystemExit('never runs')", wait=False)
    assert jobs_api.get_run(queued).state.life_cycle_state.value == "PENDING", "one run at a time on the driver"

    jobs_api.cancel_run(queued)
    jobs_api.cancel_run(running)
    assert jobs_api.get_run(running).state.life_cycle_state.value == "TERMINATING", "Python code ends on its own"
    workspace.local_path(go).touch()
    assert workspace.runs[running].done.wait(30) and workspace.runs[queued].done.wait(1)
    for run_id in (running, queued):
        state = jobs_api.get_run(run_id).state
        ended = (state.life_cycle_state.value, state.result_state.value, state.user_cancelled_or_timedout)
        assert ended == ("TERMINATED", "CANCELED", True)
    assert workspace.runs[queued].error_trace is None
