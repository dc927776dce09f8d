"""The Databricks workspace stand-in as a Unity Catalog workspace, driven by movierec's volume step launcher on a tiny job."""

import hashlib
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
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import DatabricksError
from databricks.sdk.service import jobs
from databricks.sdk.service.files import FilesAPI

import movierec_dagster
from movierec_dagster.resources.volume_launcher import STAGING_FOLDER
from tests.databricks.workspace import FILES, Workspace

SECRET = "v4lue-0f-the-s3cret"
VOLUME = "/Volumes/main/movierec/staging"
SUBMIT, RUNS_GET, RUNS_CANCEL = (
    ("POST", "/api/2.2/jobs/runs/submit"),
    ("GET", "/api/2.2/jobs/runs/get"),
    ("POST", "/api/2.2/jobs/runs/cancel"),
)


@pytest.fixture(scope="module")
def package() -> Iterator[Path]:
    """The launcher's package folder: copies of `tinyjob` and of `movierec_dagster` (the launcher's cluster setup).

    Not under pytest's tmp_path: dagster-pyspark's zip leaves out every file whose absolute path matches `.*pytest.*`.
    """
    with tempfile.TemporaryDirectory(prefix="tinyjob-code-") as root:
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(Path(__file__).parent / "tinyjob", Path(root) / "tinyjob", ignore=ignore)
        shutil.copytree(Path(movierec_dagster.__file__).parent, Path(root) / "movierec_dagster", ignore=ignore)
        yield Path(root)


@pytest.fixture
def workspace(spark, monkeypatch):
    with Workspace(spark, secrets={"s": {"k": SECRET}}, service_principals={"sp-app-id": "sp-oauth-secret"}) as ws:
        monkeypatch.setenv("ORCHESTRATOR_ONLY", "the cluster must not see this")
        yield ws


def _launch(workspace: Workspace, package: Path, job: str, cluster: str = "test-cluster", **config):
    """Run `job` of tinyjob with the in-process executor: each asset's step goes to the workspace."""
    launcher = {
        "host": workspace.host,
        "token": workspace.token,
        "volume": VOLUME,
        "cluster_id": cluster,
        "package_root": str(package),
        # The step's process builds the launcher resource again, from these.
        "env_variables": {"MOVIEREC_TINYJOB_GO": str(workspace.root / "go")},
        **config,
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


def test_a_step_runs_on_a_volume_through_the_files_api_and_leaves_nothing_staged(workspace, package):
    run_id, success, events = _launch(workspace, package, "squares_job")

    assert success
    (materialization,) = [e.event_specific_data.materialization for e in events if e.is_step_materialization]
    metadata = {key: value.value for key, value in materialization.metadata.items()}
    assert metadata["sum_of_squares"] == 385
    assert metadata["secret_sha256"] == hashlib.sha256(SECRET.encode()).hexdigest()
    assert metadata["saw_orchestrator_env"] is False, "the cluster sees only what the launcher sends"
    assert not metadata["code_file"].startswith(str(package)), "the step's code comes from code.zip"

    step_dir = f"{VOLUME}/{STAGING_FOLDER}/{run_id}/sum_of_squares"
    uploads = [r.path.removeprefix(FILES) for r in workspace.requests if r.method == "PUT"]
    assert uploads == [f"{step_dir}/{name}" for name in ("databricks_step_main.py", "code.zip", "step_run_ref.pkl", "config.pkl")]
    assert not [path for _, path in workspace.calls() if "/dbfs/" in path], "no DBFS call"
    assert workspace.unknown == []

    (run,) = workspace.runs.values()
    task = run.payload["tasks"][0]
    assert task["existing_cluster_id"] == "test-cluster"
    assert task["spark_python_task"] == {
        "python_file": f"{step_dir}/databricks_step_main.py",
        "parameters": [f"{step_dir}/{name}" for name in ("step_run_ref.pkl", "config.pkl", "code.zip")],
    }
    assert run.states == ["PENDING", "QUEUED", "RUNNING", "TERMINATED"] and run.result_state == "SUCCESS"
    assert workspace.volume_files() == [], "the step's staged files and events are removed when it ends"

    assert workspace.secret_reads == [("s", "k")]
    assert workspace.find_text(SECRET) == [], "no secret value in any request nor on the volume"
    assert workspace.find_text("MY_SECRET"), "only its name and scope travel"
    # The run config travels in step_run_ref.pkl: the token given here as literal config is there (the
    # databricks deployment takes it from the environment instead; tests/databricks/test_graph.py holds that).
    assert {hit.rsplit("/", 1)[-1] for hit in workspace.find_text(workspace.token)} == {"step_run_ref.pkl"}


def test_an_exception_in_the_step_comes_back_as_a_failed_step(workspace, package):
    _, success, events = _launch(workspace, package, "broken_job")

    assert not success
    assert "broken on purpose: table `nowhere` not found" in _step_failure(events)
    (run,) = workspace.runs.values()
    assert run.result_state == "SUCCESS", "as on Databricks: the script caught it and reported a step failure"
    assert workspace.volume_files() == []


def test_an_unknown_cluster_fails_the_step_clearly(workspace, package):
    _, success, events = _launch(workspace, package, "squares_job", cluster="no-such-cluster")

    assert not success
    assert "Cluster no-such-cluster does not exist" in _step_failure(events)
    assert workspace.runs == {} and SUBMIT in workspace.calls() and RUNS_GET not in workspace.calls()
    assert workspace.volume_files() == []


def test_a_failed_run_fails_the_step_with_databricks_message(workspace, package):
    _, success, events = _launch(workspace, package, "squares_job", libraries=["dagster==1.0.0"])

    assert not success
    failure = _step_failure(events)
    assert "ended TERMINATED/FAILED: Library installation failed" in failure and "dagster==1.0.0" in failure
    assert RUNS_CANCEL not in workspace.calls(), "a run that has ended is not cancelled"


def test_an_internal_error_reaches_dagster_as_a_failure_with_its_message(workspace, package):
    workspace.internal_error = "Cluster 'job-cluster' was terminated. Reason: CLOUD_PROVIDER_LAUNCH_FAILURE"
    _, success, events = _launch(workspace, package, "squares_job")

    assert not success
    assert "ended INTERNAL_ERROR/FAILED: Cluster 'job-cluster' was terminated. Reason: CLOUD_PROVIDER_LAUNCH_FAILURE" in (
        _step_failure(events)
    )
    (run,) = workspace.runs.values()
    assert run.states == ["PENDING", "QUEUED", "INTERNAL_ERROR"]
    assert workspace.volume_files() == []


def test_a_run_past_its_deadline_is_cancelled_and_stops(workspace, package):
    _, success, events = _launch(workspace, package, "slow_job", max_wait_seconds=1.0)

    assert not success
    assert "did not finish within 1 s; it was cancelled" in _step_failure(events)
    (run,) = workspace.runs.values()
    assert run.done.wait(30), "the cancelled run's thread stopped"
    assert (run.life_cycle_state, run.result_state) == ("TERMINATED", "CANCELED")
    assert RUNS_CANCEL in workspace.calls()
    assert not (workspace.root / "finished").exists(), "the step never reached its end"
    assert workspace.volume_files() == []


# ----- the stand-in itself, through the SDK


def _client(workspace: Workspace, **credentials) -> WorkspaceClient:
    credentials = credentials or {"token": workspace.token, "auth_type": "pat"}
    return WorkspaceClient(host=workspace.host, **credentials)


def _error_code(call) -> str:
    with pytest.raises(DatabricksError) as error:
        call()
    return error.value.error_code


def _submit(workspace: Workspace, script: str, parameters=(), libraries=(), wait=True, **cluster):
    """Upload `script` to the volume, submit it as a spark_python_task; its runs/get answer once done, or its id."""
    client = _client(workspace)
    name = f"{VOLUME}/scripts/{len(workspace.runs)}.py"
    FilesAPI(client.api_client).upload(name, io.BytesIO(script.encode()), overwrite=True)
    task = {
        "task_key": "t",
        **(cluster or {"existing_cluster_id": "test-cluster"}),
        "libraries": list(libraries),
        "spark_python_task": {"python_file": name, "parameters": list(parameters)},
    }
    run_id = client.jobs.submit(run_name="t", tasks=[jobs.SubmitTask.from_dict(task)]).bind()["run_id"]
    if not wait:
        return run_id
    assert workspace.runs[run_id].done.wait(30)
    return client.jobs.get_run(run_id)


def test_the_stand_in_answers_as_a_unity_catalog_workspace_does(workspace):
    client = _client(workspace)
    files = FilesAPI(client.api_client)
    data = os.urandom(300_000)
    files.upload(f"{VOLUME}/scratch/blob.bin", io.BytesIO(data), overwrite=True)
    assert files.download(f"{VOLUME}/scratch/blob.bin").contents.read() == data
    assert files.get_metadata(f"{VOLUME}/scratch/blob.bin").content_length == len(data)
    assert [entry.name for entry in files.list_directory_contents(f"{VOLUME}/scratch")] == ["blob.bin"]
    assert _error_code(lambda: files.delete_directory(f"{VOLUME}/scratch")) == "DIRECTORY_NOT_EMPTY"
    files.delete(f"{VOLUME}/scratch/blob.bin")
    files.delete_directory(f"{VOLUME}/scratch")
    assert workspace.volume_files() == []
    assert _error_code(lambda: files.download(f"{VOLUME}/nothing")) == "NOT_FOUND"
    assert _error_code(lambda: files.upload("/Volumes/main/other/volume/x", io.BytesIO(b""))) == "NOT_FOUND"

    assert _error_code(lambda: client.dbfs.get_status("/")) == "PERMISSION_DENIED", "no DBFS root"
    cluster = client.clusters.get("test-cluster")
    assert (cluster.state.value, cluster.data_security_mode.value, cluster.spark_version) == (
        "RUNNING", "SINGLE_USER", "17.3.x-scala2.13"
    )
    assert client.current_user.me().user_name == workspace.user_name
    stranger = WorkspaceClient(host=workspace.host, token="not-the-token", auth_type="pat")
    assert _error_code(lambda: stranger.clusters.get("test-cluster")) == "UNAUTHENTICATED"
    assert _error_code(lambda: client.api_client.do("GET", "/api/2.0/clusters/list")) == "ENDPOINT_NOT_FOUND"
    no_isolation = {"new_cluster": {"spark_version": "17.3.x-scala2.13", "node_type_id": "n", "num_workers": 1}}
    with pytest.raises(DatabricksError, match="no isolation"):
        _submit(workspace, "", **no_isolation)


def test_a_service_principal_signs_in_with_oauth_m2m(workspace):
    client = _client(workspace, client_id="sp-app-id", client_secret="sp-oauth-secret", auth_type="oauth-m2m")
    assert client.current_user.me().user_name == "sp-app-id", "a service principal's userName is its application id"
    assert ("POST", "/oidc/v1/token") in workspace.calls()
    with pytest.raises(Exception, match="invalid_client"):
        _client(workspace, client_id="sp-app-id", client_secret="wrong", auth_type="oauth-m2m").current_user.me()


def test_a_run_executes_its_script_as_on_a_cluster_driver(workspace):
    environ, path = dict(os.environ), list(sys.path)
    script = (
        "import os, sys\n"
        "secret = dbutils.secrets.get('s', 'k')\n"
        "seen = [sc.master, sys.argv[2], str(len(secret)), os.environ.get('ORCHESTRATOR_ONLY', '-')]\n"
        "with open(sys.argv[1], 'w') as out:\n"
        "    out.write(' '.join(seen))\n"
    )
    run = _submit(workspace, script, [f"{VOLUME}/scripts/out.txt", "plain"])
    assert (run.state.life_cycle_state.value, run.state.result_state.value) == ("TERMINATED", "SUCCESS")
    assert workspace.local_volume_path(f"{VOLUME}/scripts/out.txt").read_text() == f"local[2] plain {len(SECRET)} -"
    assert run.tasks[0].cluster_instance.cluster_id == "test-cluster" and run.run_page_url.startswith(workspace.host)

    run = _submit(workspace, "dbutils.secrets.get('s', 'missing')")
    assert run.state.result_state.value == "FAILED"
    assert run.state.state_message == "SecretDoesNotExist: Secret does not exist with scope: s and key: missing"

    run = _submit(workspace, "", libraries=[{"pypi": {"package": "dagster==0.0.1"}}])
    assert run.state.result_state.value == "FAILED" and "Library installation failed" in run.state.state_message

    assert (dict(os.environ), sys.path) == (environ, path), "the driver's process state is put back"


def test_a_cancelled_run_stops_and_ends_cancelled(workspace):
    jobs_api = _client(workspace).jobs
    spins = "import time\nwhile True:\n    time.sleep(0.02)"
    running = _submit(workspace, spins, wait=False)
    while jobs_api.get_run(running).state.life_cycle_state.value != "RUNNING":
        time.sleep(0.02)
    queued = _submit(workspace, "raise SystemExit('never runs')", wait=False)
    time.sleep(0.2)
    assert jobs_api.get_run(queued).state.life_cycle_state.value == "QUEUED", "one run at a time on the driver"

    jobs_api.cancel_run(queued)
    jobs_api.cancel_run(running)
    assert workspace.runs[running].done.wait(30) and workspace.runs[queued].done.wait(30)
    for run_id in (running, queued):
        state = jobs_api.get_run(run_id).state
        ended = (state.life_cycle_state.value, state.result_state.value, state.user_cancelled_or_timedout)
        assert ended == ("TERMINATED", "CANCELED", True)
    assert workspace.runs[queued].error_trace is None
