"""A Databricks workspace stand-in, as a Unity Catalog workspace created today: runs executed with local Spark.

It behaves like a workspace with legacy features disabled: the DBFS API is refused;
files live on Unity Catalog volumes, reached through the Files API (`/api/2.0/fs/files/Volumes/...`,
`/api/2.0/fs/directories/...`) and, inside a run, at their FUSE path `/Volumes/...`; a new job
cluster must ask for dedicated (single user) access; `clusters/get` answers with an access mode,
a runtime and a state. Callers authenticate with a personal access token or, as a service
principal, with OAuth M2M (`/oidc/v1/token`, client credentials); `scim/v2/Me` says who they are.

The launcher talks to it through the real databricks-sdk. Each submitted `spark_python_task`
(dagster-databricks' unchanged `databricks_step_main.py`) runs in this process, in a thread, one
run at a time, with `sc` the test session's SparkContext: no JVM per step. A run goes PENDING,
QUEUED (waiting for the driver), RUNNING, then TERMINATED, or INTERNAL_ERROR when the test asks
for one (`internal_error`); a cancelled run's Spark jobs are cancelled and its thread is
interrupted. Its `/Volumes/...` paths become paths under `root`. While it runs, the process looks like a cluster driver and is put back afterwards: the
task's `sys.argv`; an `os.environ` of only the OS's and Spark's variables plus the cluster's, so
the step sees nothing of the orchestrator's environment that the launcher does not send; a
`sys.path` of the interpreter's own folders, without the project's editable install and with the
test process's modules of the zip's top-level names set aside, so the step's code comes from
`code.zip`. Shared still: the JVM (Spark and Hadoop settings a step makes stay) and, during a
run, that process-wide state, which the test's other threads see too.
"""

from __future__ import annotations

import base64
import ctypes
import email.utils
import gc
import gzip
import importlib
import importlib.metadata
import io
import itertools
import json
import os
import re
import runpy
import sys
import tempfile
import threading
import time
import traceback
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

# A cluster driver's environment besides its own variables: the operating system's and Spark's.
OS_ENV = {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "JAVA_HOME", "HADOOP_HOME"}
OS_ENV_PREFIXES = ("LC_", "SPARK_", "PYSPARK_")
RUN_GRACE_SECONDS = 120
RUNTIME = "17.3.x-scala2.13"
DEDICATED = ("SINGLE_USER", "DATA_SECURITY_MODE_DEDICATED")
# How long a run shows each state before the next, so that a poller can see it.
STATE_SECONDS = 0.05
FILES, DIRECTORIES = "/api/2.0/fs/files", "/api/2.0/fs/directories"
OIDC_METADATA, OIDC_TOKEN = "/oidc/.well-known/oauth-authorization-server", "/oidc/v1/token"
# This process is the Python driver of every workspace's cluster: one run at a time, whatever the workspace.
_DRIVER = threading.Lock()


class Request(NamedTuple):
    """One recorded call: `body` is the JSON (or form) body and the query; `data` the raw bytes of a file upload."""

    method: str
    path: str
    body: dict
    data: bytes = b""


class Answer(NamedTuple):
    """An HTTP answer: JSON (a dict), raw bytes (a file) or nothing (None), with extra headers."""

    status: int
    body: dict | bytes | None
    headers: dict[str, str] = {}


class ApiError(Exception):
    """An error answer of the REST API: HTTP status and `{"error_code", "message"}`."""

    def __init__(self, status: int, error_code: str, message: str):
        super().__init__(message)
        self.status = status
        self.error_code = error_code


class SecretDoesNotExist(Exception):
    """Raised by `dbutils.secrets.get` for a scope or key the workspace does not have."""


class LibraryInstallError(Exception):
    """A library of the task that this environment cannot provide."""


class RunCancelled(BaseException):
    """Raised in a run's thread when the run is cancelled (a BaseException, as a killed process is no error)."""


@dataclass
class Run:
    """A submitted one-time run: its payload and its state."""

    run_id: int
    payload: dict
    cluster_id: str
    creator: str
    life_cycle_state: str = "PENDING"
    result_state: str | None = None
    state_message: str = "Waiting for cluster"
    error_trace: str | None = None
    cancelled: bool = False
    start_time: int = field(default_factory=lambda: int(time.time() * 1000))
    end_time: int = 0
    states: list[str] = field(default_factory=lambda: ["PENDING"])
    thread_id: int | None = None
    spark_context: Any = field(default=None, repr=False)
    done: threading.Event = field(default_factory=threading.Event, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def task(self) -> dict:
        return self.payload["tasks"][0]

    @property
    def job_group(self) -> str:
        return f"databricks-run-{self.run_id}"

    def _enter(self, state: str, message: str) -> None:
        self.life_cycle_state, self.state_message = state, message
        self.states.append(state)

    def queue(self) -> None:
        with self._lock:
            if not self.done.is_set() and not self.cancelled:
                self._enter("QUEUED", "Waiting for the driver")

    def start(self, spark_context: Any) -> bool:
        """QUEUED to RUNNING, in the run's own thread; False if the run was cancelled meanwhile."""
        with self._lock:
            if self.done.is_set() or self.cancelled:
                return False
            self.thread_id, self.spark_context = threading.get_ident(), spark_context
            self._enter("RUNNING", "In run")
            return True

    def finish(self, result_state: str, message: str = "", trace: str | None = None) -> None:
        with self._lock:
            if self.cancelled:
                result_state, message = "CANCELED", "Run cancelled."
            self.result_state, self.error_trace = result_state, trace
            self._enter("TERMINATED", message)
            self.end_time, self.thread_id = int(time.time() * 1000), None
        self.done.set()

    def fail_internally(self, message: str) -> None:
        """End as Databricks does when the platform, not the task, failed (a cluster that would not start)."""
        with self._lock:
            self.result_state = "FAILED"
            self._enter("INTERNAL_ERROR", message)
            self.end_time = int(time.time() * 1000)
        self.done.set()

    def cancel(self) -> None:
        """Stop the run: a run not started ends now; a running one has its Spark jobs cancelled and its thread interrupted."""
        with self._lock:
            if self.done.is_set():
                return
            self.cancelled = True
            running = self.thread_id is not None
            if running:
                self._enter("TERMINATING", "Cancelling run")
                self.spark_context.cancelJobGroup(self.job_group)
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.thread_id), ctypes.py_object(RunCancelled))
        if not running:
            self.finish("CANCELED")

    def as_json(self, host: str) -> dict:
        """The run as `jobs/runs/get` answers it (no `next_page_token`: one page)."""
        with self._lock:
            state = {
                "life_cycle_state": self.life_cycle_state,
                "state_message": self.state_message,
                "user_cancelled_or_timedout": self.cancelled,
            }
            if self.result_state:
                state["result_state"] = self.result_state
        job_id = 900_000 + self.run_id
        times = {"start_time": self.start_time, "end_time": self.end_time}
        task = {
            **self.task,
            "run_id": self.run_id + 1,
            "state": state,
            "cluster_instance": {"cluster_id": self.cluster_id, "spark_context_id": "stand-in"},
            "attempt_number": 0,
            **times,
        }
        return {
            "job_id": job_id,
            "run_id": self.run_id,
            "number_in_job": self.run_id,
            "run_name": self.payload.get("run_name") or "Untitled",
            "run_type": "SUBMIT_RUN",
            "creator_user_name": self.creator,
            "state": state,
            "run_page_url": f"{host}/#job/{job_id}/run/{self.run_id}",
            "tasks": [task],
            **times,
        }


class _Secrets:
    """`dbutils.secrets`: reads the workspace's secret scopes, recording each read."""

    def __init__(self, workspace: Workspace):
        self._workspace = workspace

    def get(self, scope: str, key: str) -> str:
        self._workspace.secret_reads.append((scope, key))
        try:
            return self._workspace.secrets[scope][key]
        except KeyError:
            raise SecretDoesNotExist(f"Secret does not exist with scope: {scope} and key: {key}") from None


class DBUtils:
    """The `dbutils` global of a Databricks Python task: only `secrets.get`, all the launcher's script uses."""

    def __init__(self, workspace: Workspace):
        self.secrets = _Secrets(workspace)


class Workspace:
    """A Databricks workspace on 127.0.0.1; the server runs inside `with Workspace(...) as workspace:`.

    `spark`: the SparkSession whose context runs the steps (default: `SparkSession.builder.getOrCreate()`).
    `token` authenticates as `user_name`; `service_principals` (client id -> OAuth secret) as themselves.
    `clusters`: id -> what `clusters/get` answers beyond the defaults (dedicated to `user_name`, runtime
    RUNTIME, RUNNING). `volumes`: the Unity Catalog volumes that exist. `pools`: the instance pools.
    `cluster_env`: environment variables every run's driver has. `preinstalled`: library specs taken as
    installed although this environment has another version (the stand-in installs nothing).
    `root`: the folder behind the volumes (default: a temporary folder).
    """

    def __init__(
        self,
        spark: Any = None,
        *,
        token: str = "dapi-stand-in-token",
        user_name: str = "someone@example.com",
        service_principals: dict[str, str] | None = None,
        clusters: dict[str, dict] | None = None,
        volumes: tuple[str, ...] = ("/Volumes/main/movierec/staging",),
        pools: tuple[str, ...] = (),
        secrets: dict[str, dict[str, str]] | None = None,
        cluster_env: dict[str, str] | None = None,
        preinstalled: tuple[str, ...] = (),
        root: str | Path | None = None,
    ):
        self.spark = spark
        self.token = token
        self.user_name = user_name
        self.service_principals = dict(service_principals or {})
        self.clusters = {
            cluster_id: {
                "cluster_id": cluster_id,
                "cluster_name": cluster_id,
                "state": "RUNNING",
                "spark_version": RUNTIME,
                "num_workers": 0,
                "data_security_mode": "SINGLE_USER",
                "single_user_name": user_name,
                **answer,
            }
            for cluster_id, answer in (clusters if clusters is not None else {"test-cluster": {}}).items()
        }
        self.volumes = {volume.rstrip("/") for volume in volumes}
        self.pools = set(pools)
        self.secrets = {scope: dict(keys) for scope, keys in (secrets or {}).items()}
        self.cluster_env = dict(cluster_env or {})
        self.preinstalled = set(preinstalled)
        self.internal_error: str | None = None
        self.requests: list[Request] = []
        self.unknown: list[Request] = []
        self.runs: dict[int, Run] = {}
        self.secret_reads: list[tuple[str, str]] = []
        self.host = ""
        self._tmp = None if root else tempfile.TemporaryDirectory(prefix="databricks-")
        self.root = Path(root) if root else Path(self._tmp.name)
        self.volumes_root = self.root / "volumes"
        self._lock = threading.Lock()
        self._ids = itertools.count(1001, 2)
        self._idempotency: dict[str, int] = {}
        self._identities = {token: user_name}
        self.routes = {
            ("POST", "/api/2.2/jobs/runs/submit"): self._runs_submit,
            ("GET", "/api/2.2/jobs/runs/get"): self._runs_get,
            ("POST", "/api/2.2/jobs/runs/cancel"): self._runs_cancel,
            ("GET", "/api/2.1/clusters/get"): self._clusters_get,
            ("GET", "/api/2.0/preview/scim/v2/Me"): self._me,
        }

    def __enter__(self) -> Workspace:
        for volume in self.volumes:
            self.local_volume_path(volume).mkdir(parents=True, exist_ok=True)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.host = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        # A run still executing changes this process's state: let it end first.
        for run in list(self.runs.values()):
            run.done.wait(RUN_GRACE_SECONDS)
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        if self._tmp is not None:
            self._tmp.cleanup()

    # ----- what tests ask

    def calls(self) -> list[tuple[str, str]]:
        """(method, path) of every recorded request, in order."""
        return [(r.method, r.path) for r in self.requests]

    def local_volume_path(self, path: str) -> Path:
        """The local file of `/Volumes/<catalog>/<schema>/<volume>/...`; the volume must exist."""
        parts = path.strip("/").split("/")
        if len(parts) < 4 or parts[0] != "Volumes":
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Not a path on a volume: {path}")
        if "/" + "/".join(parts[:4]) not in self.volumes:
            raise ApiError(404, "NOT_FOUND", f"Volume '{'.'.join(parts[1:4])}' does not exist.")
        return _inside(self.volumes_root, "/".join(parts[1:]))

    def volume_files(self) -> list[str]:
        """Every file on the volumes, as `/Volumes/...` paths."""
        return sorted(
            "/Volumes/" + file.relative_to(self.volumes_root).as_posix()
            for file in self.volumes_root.rglob("*")
            if file.is_file()
        )

    def find_text(self, text: str) -> list[str]:
        """Where `text` appears: recorded requests (file uploads included) and files on the volumes.

        Gzip and zip layers are opened; pickles keep strings as UTF-8, so a byte search finds them.
        """
        needles = {text.encode(), json.dumps(text)[1:-1].encode()}
        found = []
        for index, request in enumerate(self.requests):
            blobs = [json.dumps(request.body, ensure_ascii=False).encode(), request.data]
            if any(_contains(blob, needles) for blob in blobs):
                found.append(f"request {index}: {request.method} {request.path}")
        for file in sorted(self.volumes_root.rglob("*")):
            if file.is_file() and _contains(file.read_bytes(), needles):
                found.append(f"/Volumes/{file.relative_to(self.volumes_root).as_posix()}")
        return found

    # ----- HTTP

    def answer(self, method: str, path: str, query: str, raw: bytes, headers: Any) -> Answer:
        """Record one request and answer it."""
        path = unquote(path)
        body: dict = {key: values[-1] for key, values in parse_qs(query).items()}
        is_upload = method == "PUT" and path.startswith(FILES + "/")
        data = raw if is_upload else b""
        if raw and not is_upload:
            if (headers.get("Content-Type") or "").startswith("application/x-www-form-urlencoded"):
                body.update({key: values[-1] for key, values in parse_qs(raw.decode()).items()})
            else:
                try:
                    body.update(json.loads(raw))
                except ValueError:
                    body["<unparsed>"] = raw.decode(errors="replace")
        request = Request(method, path, body, data)
        with self._lock:
            self.requests.append(request)
        try:
            if "<unparsed>" in body:
                raise ApiError(400, "MALFORMED_REQUEST", "Invalid JSON given in the body of the request")
            if path == OIDC_METADATA:
                return Answer(200, {"authorization_endpoint": f"{self.host}/oidc/v1/authorize", "token_endpoint": f"{self.host}{OIDC_TOKEN}"})
            if path == OIDC_TOKEN:
                return self._oauth_token(body, headers.get("Authorization"))
            identity = self._identities.get((headers.get("Authorization") or "").removeprefix("Bearer "))
            if identity is None:
                raise ApiError(401, "UNAUTHENTICATED", "Invalid access token.")
            if path.startswith("/api/2.0/dbfs/"):
                raise ApiError(
                    403, "PERMISSION_DENIED", "DBFS root is disabled in this workspace: use Unity Catalog volumes."
                )
            if path.startswith((FILES + "/", DIRECTORIES + "/")):
                return self._files_api(method, path, body, data)
            route = self.routes.get((method, path))
            if route is None:
                with self._lock:
                    self.unknown.append(request)
                raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {path}'")
            if route == self._runs_submit:
                return Answer(200, self._runs_submit(body, identity))
            if route == self._me:
                return Answer(200, self._me(identity))
            return Answer(200, route(body))
        except ApiError as error:
            return Answer(error.status, {"error_code": error.error_code, "message": str(error)})
        except (KeyError, ValueError, TypeError) as error:
            return Answer(400, {"error_code": "INVALID_PARAMETER_VALUE", "message": f"Invalid request: {error!r}"})
        except Exception:  # a bug of the stand-in: say so, in words the SDK does not retry
            return Answer(500, {"error_code": "INTERNAL_ERROR", "message": f"stand-in failure: {traceback.format_exc()}"})

    # ----- identity

    def _oauth_token(self, form: dict, authorization: str | None) -> Answer:
        """OAuth client credentials (HTTP basic auth, as the SDK sends them): an access token for the service principal."""
        try:
            client_id, client_secret = base64.b64decode((authorization or "").removeprefix("Basic ")).decode().split(":", 1)
        except ValueError:
            client_id, client_secret = "", ""
        if form.get("grant_type") != "client_credentials" or self.service_principals.get(client_id) != client_secret:
            return Answer(401, {"error": "invalid_client", "error_description": "Client authentication failed"})
        access_token = f"oauth-{client_id}-{next(self._ids)}"
        with self._lock:
            self._identities[access_token] = client_id
        return Answer(200, {"access_token": access_token, "token_type": "Bearer", "expires_in": 3600, "scope": form.get("scope", "")})

    def _me(self, identity: str) -> dict:
        # A service principal's userName is its application (client) id.
        return {"id": str(abs(hash(identity)) % 10**12), "userName": identity, "active": True}

    # ----- Files API (Unity Catalog volumes)

    def _files_api(self, method: str, path: str, query: dict, data: bytes) -> Answer:
        is_file = path.startswith(FILES + "/")
        volume_path = path.removeprefix(FILES if is_file else DIRECTORIES)
        local = self.local_volume_path(volume_path)
        if is_file and method == "PUT":
            if local.is_dir():
                raise ApiError(409, "ALREADY_EXISTS", f"A directory exists at {volume_path}.")
            if local.exists() and str(query.get("overwrite", "true")).lower() == "false":
                raise ApiError(409, "ALREADY_EXISTS", f"The file being created already exists: {volume_path}.")
            local.parent.mkdir(parents=True, exist_ok=True)
            partial = local.with_name(f".{local.name}.partial")
            partial.write_bytes(data)
            partial.replace(local)
            return Answer(204, None)
        if is_file and method in ("GET", "HEAD"):
            if not local.is_file():
                raise ApiError(404, "NOT_FOUND", f"The file being accessed is not found: {volume_path}.")
            content = local.read_bytes()
            headers = {
                "Content-Type": "application/octet-stream",
                "Last-Modified": email.utils.formatdate(local.stat().st_mtime, usegmt=True),
            }
            return Answer(200, content if method == "GET" else b"", {**headers, "X-Content-Length": str(len(content))})
        if is_file and method == "DELETE":
            if not local.is_file():
                raise ApiError(404, "NOT_FOUND", f"The file being accessed is not found: {volume_path}.")
            local.unlink()
            return Answer(204, None)
        if method == "PUT":
            local.mkdir(parents=True, exist_ok=True)
            return Answer(204, None)
        if not local.is_dir():
            raise ApiError(404, "NOT_FOUND", f"The directory being accessed is not found: {volume_path}.")
        if method == "HEAD":
            return Answer(200, b"")
        if method == "DELETE":
            if any(local.iterdir()):
                raise ApiError(409, "DIRECTORY_NOT_EMPTY", f"The directory {volume_path} is not empty.")
            local.rmdir()
            return Answer(204, None)
        if method == "GET":
            contents = [
                {
                    "path": f"{volume_path.rstrip('/')}/{entry.name}" + ("/" if entry.is_dir() else ""),
                    "name": entry.name,
                    "is_directory": entry.is_dir(),
                    **({} if entry.is_dir() else {"file_size": entry.stat().st_size}),
                    "last_modified": int(entry.stat().st_mtime * 1000),
                }
                for entry in sorted(local.iterdir())
                if not entry.name.startswith(".")
            ]
            return Answer(200, {"contents": contents})
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {path}'")

    # ----- Jobs and clusters

    def _check_new_cluster(self, new: dict, identity: str) -> None:
        """A new job cluster as a Unity Catalog workspace without legacy features accepts it."""
        if not new.get("spark_version"):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "Missing required field: new_cluster.spark_version")
        mode = new.get("data_security_mode") or "NONE"
        if mode not in (*DEDICATED, "USER_ISOLATION", "DATA_SECURITY_MODE_STANDARD"):
            raise ApiError(
                400,
                "INVALID_PARAMETER_VALUE",
                f"Clusters with data_security_mode {mode} (no isolation) are disabled in this workspace: "
                "choose dedicated or standard access.",
            )
        if mode in DEDICATED and new.get("single_user_name") != identity:
            raise ApiError(
                400, "INVALID_PARAMETER_VALUE", f"single_user_name must be the run's identity {identity}, not {new.get('single_user_name')!r}."
            )
        pool = new.get("instance_pool_id")
        if pool and pool not in self.pools:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Instance pool {pool} does not exist.")
        if pool and new.get("node_type_id"):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "node_type_id cannot be given with instance_pool_id.")
        if not pool and not new.get("node_type_id"):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "Missing required field: new_cluster.node_type_id")

    def _runs_submit(self, body: dict, identity: str) -> dict:
        tasks = body.get("tasks") or []
        if len(tasks) != 1 or "spark_python_task" not in tasks[0]:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "The stand-in runs exactly one spark_python_task per run.")
        task = tasks[0]
        existing, new = task.get("existing_cluster_id"), task.get("new_cluster")
        if (existing is None) == (new is None):
            message = f"Give exactly one of existing_cluster_id or new_cluster for task {task.get('task_key')}."
            raise ApiError(400, "INVALID_PARAMETER_VALUE", message)
        if existing is not None and existing not in self.clusters:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Cluster {existing} does not exist")
        if new is not None:
            self._check_new_cluster(new, identity)
        token = body.get("idempotency_token")
        with self._lock:
            if token in self._idempotency:
                return {"run_id": self._idempotency[token]}
            run_id = next(self._ids)
            run = Run(run_id, body, existing or f"job-{run_id}-cluster", identity)
            self.runs[run_id] = run
            if token:
                self._idempotency[token] = run_id
        threading.Thread(target=self._execute, args=(run,), name=f"databricks-run-{run_id}", daemon=True).start()
        return {"run_id": run_id}

    def _run(self, run_id: Any) -> Run:
        run = self.runs.get(int(run_id))
        if run is None:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Run {run_id} does not exist.")
        return run

    def _runs_get(self, query: dict) -> dict:
        return self._run(query["run_id"]).as_json(self.host)

    def _runs_cancel(self, body: dict) -> dict:
        self._run(body["run_id"]).cancel()
        return {}

    def _clusters_get(self, query: dict) -> dict:
        cluster_id = query["cluster_id"]
        if cluster_id not in self.clusters:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Cluster {cluster_id} does not exist")
        return dict(self.clusters[cluster_id])

    # ----- execution

    def _execute(self, run: Run) -> None:
        try:
            self._execute_run(run)
        except RunCancelled:  # arrived after the script's own handlers
            if not run.done.is_set():
                run.finish("CANCELED")

    def _execute_run(self, run: Run) -> None:
        time.sleep(STATE_SECONDS)  # the cluster and its libraries
        run.queue()
        with _DRIVER:
            time.sleep(STATE_SECONDS)
            if self.internal_error is not None:
                run.fail_internally(self.internal_error)
                return
            sc = (self.spark or _default_spark()).sparkContext
            try:
                _check_libraries(run.task.get("libraries", []), self.preinstalled)
                if not run.start(sc):
                    return
                sc.setJobGroup(run.job_group, f"Databricks run {run.run_id}", interruptOnCancel=True)
                self._run_python_task(run, sc)
            except LibraryInstallError as error:
                run.finish("FAILED", str(error))
            except SystemExit as exit_:
                if exit_.code in (None, 0):
                    run.finish("SUCCESS")
                else:
                    run.finish("FAILED", f"Python script exited with code {exit_.code}")
            except BaseException as error:  # noqa: BLE001 - every failure of the script fails the run
                run.finish("FAILED", f"{type(error).__name__}: {error}", traceback.format_exc())
            else:
                run.finish("SUCCESS")
            finally:
                sc.setLocalProperty("spark.jobGroup.id", None)

    def _task_path(self, path: str) -> str:
        """A task's file or parameter as the driver sees it: a volume's FUSE path at its local folder."""
        return str(self.local_volume_path(path)) if path.startswith("/Volumes/") else path

    def _run_python_task(self, run: Run, sc: Any) -> None:
        task = run.task["spark_python_task"]
        main = Path(self._task_path(task["python_file"]))
        if not main.is_file():
            raise FileNotFoundError(f"{task['python_file']} does not exist")
        parameters = [self._task_path(p) for p in task.get("parameters", [])]
        code_zips = [Path(p) for p in parameters if p.endswith(".zip") and Path(p).is_file()]
        try:
            with _as_cluster_driver([str(main), *parameters], self._cluster_environ(run), code_zips):
                runpy.run_path(str(main), init_globals={"dbutils": DBUtils(self), "sc": sc}, run_name="__main__")
        finally:
            _close_step_instance()

    def _cluster_environ(self, run: Run) -> dict[str, str]:
        environ = {k: v for k, v in os.environ.items() if k in OS_ENV or k.startswith(OS_ENV_PREFIXES)}
        environ.update(self.cluster_env)
        environ.update((run.task.get("new_cluster") or {}).get("spark_env_vars") or {})
        return environ


def _inside(root: Path, path: str) -> Path:
    local = (root / path.lstrip("/")).resolve()
    if not local.is_relative_to(root.resolve()):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Invalid path: {path}")
    return local


def _handler(workspace: Workspace) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, body, headers = workspace.answer(self.command, url.path, url.query, raw, self.headers)
            if isinstance(body, dict):
                data, content_type = json.dumps(body).encode(), "application/json"
            else:
                data, content_type = body or b"", headers.get("Content-Type", "application/octet-stream")
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            for name, value in headers.items():
                if name not in ("Content-Type", "X-Content-Length"):
                    self.send_header(name, value)
            self.send_header("Content-Length", headers.get("X-Content-Length", str(len(data))))
            self.end_headers()
            if self.command != "HEAD" and status != 204:
                self.wfile.write(data)

        do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = do_GET

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass

    return Handler


def _default_spark() -> Any:
    from pyspark.sql import SparkSession

    return SparkSession.builder.getOrCreate()


def _close_step_instance() -> None:
    """Free the script's ephemeral Dagster instance in this thread: its SQLite connections may not be closed in another.

    Dagster's cached alembic config (`dagster._core.storage.sql.get_alembic_config`) keeps the last connection it
    stamped; the next instance made in any thread would drop it there, and SQLite would complain.
    """
    from dagster._core.storage import sql

    getattr(sql.get_alembic_config, "cache_clear", lambda: None)()
    gc.collect()


def _check_libraries(libraries: list[dict], preinstalled: set[str]) -> None:
    """PyPI libraries must be installed here, at the pinned version, or be `preinstalled`: the stand-in installs nothing."""
    for library in libraries:
        spec = (library.get("pypi") or {}).get("package")
        if not spec or spec in preinstalled:
            continue
        name = re.match(r"\s*([A-Za-z0-9._-]+)", spec).group(1)
        pinned = spec.split("==", 1)[1].strip() if "==" in spec else None
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed is None or (pinned and installed != pinned):
            raise LibraryInstallError(
                f'Library installation failed for library due to user error for pypi {{package: "{spec}"}}: '
                f"this environment has {name} {installed or 'not installed'} and the stand-in installs nothing"
            )


_INTERPRETER = tuple({os.path.realpath(p) + os.sep for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)})


def _is_interpreter_path(path: Any) -> bool:
    """In the interpreter's own folders: the stdlib and site-packages, not the project nor the tests."""
    return isinstance(path, str) and bool(path) and (os.path.realpath(path) + os.sep).startswith(_INTERPRETER)


def _is_user_module(module: Any) -> bool:
    """A module loaded from outside the interpreter's folders."""
    file = getattr(module, "__file__", None)
    paths = [file] if file else list(getattr(module, "__path__", None) or [])
    return bool(paths) and not all(_is_interpreter_path(p) for p in paths)


def _top_level_names(zips: list[Path]) -> set[str]:
    names = set()
    for path in zips:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                top = member.split("/", 1)[0].removesuffix(".py")
                if top.isidentifier():
                    names.add(top)
    return names


def _set_environ(target: dict[str, str]) -> None:
    for key in [k for k in os.environ if k not in target]:
        del os.environ[key]
    for key, value in target.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


@contextmanager
def _as_cluster_driver(argv: list[str], environ: dict[str, str], code_zips: list[Path]) -> Iterator[None]:
    """This process as a cluster's Python driver for one run; everything is put back afterwards."""
    saved_argv, saved_path, saved_meta_path = sys.argv[:], sys.path[:], sys.meta_path[:]
    saved_environ = dict(os.environ)
    shipped = _top_level_names(code_zips)
    set_aside = {name: module for name, module in dict(sys.modules).items() if name.split(".", 1)[0] in shipped}
    for name in set_aside:
        sys.modules.pop(name, None)
    loaded_before = set(sys.modules)
    _set_environ(environ)
    sys.path[:] = [p for p in sys.path if _is_interpreter_path(p)]
    sys.meta_path[:] = [f for f in sys.meta_path if not str(getattr(f, "__module__", "")).startswith("__editable__")]
    sys.argv[:] = argv
    _forget_built_jobs()
    try:
        yield
    finally:
        _forget_built_jobs()
        for name in set(sys.modules) - loaded_before:
            if _is_user_module(sys.modules.get(name)):
                sys.modules.pop(name, None)
        sys.modules.update(set_aside)
        sys.argv[:], sys.path[:], sys.meta_path[:] = saved_argv, saved_path, saved_meta_path
        _set_environ(saved_environ)
        importlib.invalidate_caches()


def _forget_built_jobs() -> None:
    """Drop the jobs Dagster keeps built per code pointer, as a new process has none.

    Otherwise the step's process would get the orchestrator's job, built from the orchestrator's
    environment, instead of building it from the cluster's own.
    """
    from dagster._core.definitions.reconstruct import ReconstructableJob

    ReconstructableJob.get_definition.cache_clear()
    ReconstructableJob.get_repository_definition.cache_clear()


def _layers(data: bytes) -> Iterator[bytes]:
    """The bytes, and the bytes inside any gzip or zip layer."""
    yield data
    if data[:2] == b"\x1f\x8b":
        try:
            yield from _layers(gzip.decompress(data))
        except (OSError, EOFError):
            pass
    elif data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for member in archive.namelist():
                    yield from _layers(archive.read(member))
        except zipfile.BadZipFile:
            pass


def _contains(data: bytes, needles: set[bytes]) -> bool:
    return any(needle in layer for layer in _layers(data) for needle in needles)
