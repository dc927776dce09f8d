"""A Databricks workspace stand-in: the REST API of dagster-databricks' step launcher, runs executed with local Spark.

The real launcher talks to it through the real databricks-sdk; each submitted
`spark_python_task` (the launcher's unchanged `databricks_step_main.py`) runs in this
process, in a thread, one run at a time, with `sc` the test session's SparkContext: no
JVM per step. Its `/dbfs//...` parameters, the only DBFS paths it uses, become paths
under `dbfs_root`. While it runs, the process looks like a cluster driver and is put
back afterwards: the task's `sys.argv`; an `os.environ` of only the OS's and Spark's
variables plus the cluster's, so the step sees nothing of the orchestrator's
environment that the launcher does not send; a `sys.path` of the interpreter's own
folders, without the project's editable install and with the test process's modules of
the zip's top-level names set aside, so the step's code comes from `code.zip`. Shared
still: the JVM (Spark and Hadoop settings a step makes stay) and, during a run, that
process-wide state, which the test's other threads see too.
"""

from __future__ import annotations

import base64
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
from urllib.parse import parse_qs, urlsplit

MIB = 1024 * 1024
DBFS_READ_DEFAULT = 512 * 1024
# A cluster driver's environment besides its own variables: the operating system's and Spark's.
OS_ENV = {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "JAVA_HOME", "HADOOP_HOME"}
OS_ENV_PREFIXES = ("LC_", "SPARK_", "PYSPARK_")
RUN_GRACE_SECONDS = 120
# This process is the Python driver of every workspace's cluster: one run at a time, whatever the workspace.
_DRIVER = threading.Lock()


class Request(NamedTuple):
    """One recorded call: `body` is the JSON body of a POST, the query of a GET."""

    method: str
    path: str
    body: dict


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


@dataclass
class Run:
    """A submitted one-time run: its payload and its state."""

    run_id: int
    payload: dict
    cluster_id: str
    life_cycle_state: str = "PENDING"
    result_state: str | None = None
    state_message: str = "Waiting for cluster"
    error_trace: str | None = None
    cancelled: bool = False
    start_time: int = field(default_factory=lambda: int(time.time() * 1000))
    end_time: int = 0
    done: threading.Event = field(default_factory=threading.Event, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def task(self) -> dict:
        return self.payload["tasks"][0]

    def start(self) -> bool:
        """PENDING to RUNNING; False if the run was cancelled meanwhile."""
        with self._lock:
            if self.done.is_set() or self.cancelled:
                return False
            self.life_cycle_state, self.state_message = "RUNNING", "In run"
            return True

    def finish(self, result_state: str, message: str = "", trace: str | None = None) -> None:
        with self._lock:
            if self.cancelled:
                result_state, message = "CANCELED", "Run cancelled."
            self.result_state, self.state_message, self.error_trace = result_state, message, trace
            self.life_cycle_state, self.end_time = "TERMINATED", int(time.time() * 1000)
        self.done.set()

    def cancel(self) -> None:
        with self._lock:
            if self.done.is_set():
                return
            self.cancelled = True
            pending = self.life_cycle_state == "PENDING"
            if not pending:
                # Python code in a thread cannot be killed: the run ends when the script does.
                self.life_cycle_state, self.state_message = "TERMINATING", "Cancelling run"
        if pending:
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
            "creator_user_name": "stand-in@localhost",
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
    `cluster_env`: environment variables every run's driver has. `root`: the DBFS folder (default: a temp folder).
    """

    def __init__(
        self,
        spark: Any = None,
        *,
        token: str = "dapi-stand-in-token",
        clusters: tuple[str, ...] = ("test-cluster",),
        secrets: dict[str, dict[str, str]] | None = None,
        cluster_env: dict[str, str] | None = None,
        root: str | Path | None = None,
    ):
        self.spark = spark
        self.token = token
        self.clusters = set(clusters)
        self.secrets = {scope: dict(keys) for scope, keys in (secrets or {}).items()}
        self.cluster_env = dict(cluster_env or {})
        self.requests: list[Request] = []
        self.unknown: list[Request] = []
        self.runs: dict[int, Run] = {}
        self.secret_reads: list[tuple[str, str]] = []
        self.host = ""
        self._tmp = None if root else tempfile.TemporaryDirectory(prefix="dbfs-")
        self.dbfs_root = Path(root) if root else Path(self._tmp.name)
        self._lock = threading.Lock()
        self._ids = itertools.count(1001, 2)
        self._handles: dict[int, tuple[Path, bytearray]] = {}
        self._handle_paths: dict[int, str] = {}
        self._idempotency: dict[str, int] = {}
        self.routes = {
            ("POST", "/api/2.0/dbfs/create"): self._dbfs_create,
            ("POST", "/api/2.0/dbfs/add-block"): self._dbfs_add_block,
            ("POST", "/api/2.0/dbfs/close"): self._dbfs_close,
            ("GET", "/api/2.0/dbfs/read"): self._dbfs_read,
            ("POST", "/api/2.2/jobs/runs/submit"): self._runs_submit,
            ("GET", "/api/2.2/jobs/runs/get"): self._runs_get,
            ("POST", "/api/2.2/jobs/runs/cancel"): self._runs_cancel,
            ("GET", "/api/2.1/clusters/get"): self._clusters_get,
        }

    def __enter__(self) -> Workspace:
        self.dbfs_root.mkdir(parents=True, exist_ok=True)
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

    def local_path(self, path: str, fuse: bool = True) -> Path:
        """The local file of a DBFS path: `dbfs:/x`, `dbfs:///x`, `/x`; with `fuse`, also `/dbfs/x`, `/dbfs//x`."""
        if path.startswith("dbfs:"):
            path = path[len("dbfs:") :]
        elif fuse and (path == "/dbfs" or path.startswith("/dbfs/")):
            path = path[len("/dbfs") :]
        elif not path.startswith("/"):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Path must be absolute: {path}")
        local = (self.dbfs_root / path.lstrip("/")).resolve()
        if not local.is_relative_to(self.dbfs_root.resolve()):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Invalid path: {path}")
        return local

    def find_text(self, text: str) -> list[str]:
        """Where `text` appears: recorded request bodies (add-block data decoded) and files on DBFS.

        Gzip and zip layers are opened; pickles keep strings as UTF-8, so a byte search finds them.
        """
        needles = {text.encode(), json.dumps(text)[1:-1].encode()}
        found = []
        for index, request in enumerate(self.requests):
            blobs, where = [json.dumps(request.body, ensure_ascii=False).encode()], ""
            if request.path.endswith("/dbfs/add-block") and isinstance(request.body.get("data"), str):
                blobs.append(base64.b64decode(request.body["data"]))
                where = f" to {self._handle_paths.get(request.body.get('handle'))}"
            if any(_contains(blob, needles) for blob in blobs):
                found.append(f"request {index}: {request.method} {request.path}{where}")
        for file in sorted(self.dbfs_root.rglob("*")):
            if file.is_file() and _contains(file.read_bytes(), needles):
                found.append(f"dbfs:/{file.relative_to(self.dbfs_root).as_posix()}")
        return found

    # ----- HTTP

    def answer(self, method: str, path: str, query: str, raw: bytes, authorization: str | None) -> tuple[int, dict]:
        """Record one request and answer it: (HTTP status, JSON body)."""
        body: dict = {key: values[-1] for key, values in parse_qs(query).items()}
        try:
            if raw:
                body.update(json.loads(raw))
        except ValueError:
            body["<unparsed>"] = raw.decode(errors="replace")
        request = Request(method, path, body)
        with self._lock:
            self.requests.append(request)
        try:
            if "<unparsed>" in body:
                raise ApiError(400, "MALFORMED_REQUEST", "Invalid JSON given in the body of the request")
            if authorization != f"Bearer {self.token}":
                raise ApiError(401, "UNAUTHENTICATED", "Invalid access token.")
            route = self.routes.get((method, path))
            if route is None:
                with self._lock:
                    self.unknown.append(request)
                raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {path}'")
            return 200, route(body)
        except ApiError as error:
            return error.status, {"error_code": error.error_code, "message": str(error)}
        except (KeyError, ValueError, TypeError) as error:
            return 400, {"error_code": "INVALID_PARAMETER_VALUE", "message": f"Invalid request: {error!r}"}
        except Exception:  # a bug of the stand-in: say so, in words the SDK does not retry
            return 500, {"error_code": "INTERNAL_ERROR", "message": f"stand-in failure: {traceback.format_exc()}"}

    # ----- DBFS

    def _dbfs_create(self, body: dict) -> dict:
        local = self.local_path(body["path"], fuse=False)
        if local.exists() and not body.get("overwrite"):
            message = f"A file or directory already exists at the input path {body['path']}."
            raise ApiError(400, "RESOURCE_ALREADY_EXISTS", message)
        with self._lock:
            handle = next(self._ids)
            self._handles[handle] = (local, bytearray())
            self._handle_paths[handle] = body["path"]
        return {"handle": handle}

    def _open_handle(self, body: dict) -> tuple[Path, bytearray]:
        try:
            return self._handles[int(body["handle"])]
        except KeyError:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Unknown handle: {body.get('handle')}") from None

    def _dbfs_add_block(self, body: dict) -> dict:
        block = base64.b64decode(body["data"], validate=True)
        if len(block) > MIB:
            raise ApiError(400, "MAX_BLOCK_SIZE_EXCEEDED", "The block of data exceeds 1 MB.")
        self._open_handle(body)[1].extend(block)
        return {}

    def _dbfs_close(self, body: dict) -> dict:
        local, data = self._open_handle(body)
        del self._handles[int(body["handle"])]
        local.parent.mkdir(parents=True, exist_ok=True)
        partial = local.with_name(f".{local.name}.partial")
        partial.write_bytes(bytes(data))
        partial.replace(local)
        return {}

    def _dbfs_read(self, query: dict) -> dict:
        local = self.local_path(query["path"], fuse=False)
        if local.is_dir():
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"The path {query['path']} is a directory.")
        if not local.is_file():
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"No file or directory exists on path {query['path']}.")
        offset, length = int(query.get("offset", 0)), int(query.get("length", DBFS_READ_DEFAULT))
        if length > MIB:
            raise ApiError(400, "MAX_READ_SIZE_EXCEEDED", "Cannot read more than 1 MB at a time.")
        with local.open("rb") as handle:
            handle.seek(offset)
            chunk = handle.read(length)
        return {"bytes_read": len(chunk), "data": base64.b64encode(chunk).decode()}

    # ----- Jobs and clusters

    def _runs_submit(self, body: dict) -> dict:
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
        if new is not None and not new.get("spark_version"):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "Missing required field: new_cluster.spark_version")
        token = body.get("idempotency_token")
        with self._lock:
            if token in self._idempotency:
                return {"run_id": self._idempotency[token]}
            run_id = next(self._ids)
            run = Run(run_id, body, existing or f"job-{run_id}-cluster")
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
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Cluster {cluster_id} does not exist")
        return {
            "cluster_id": cluster_id,
            "cluster_name": cluster_id,
            "state": "RUNNING",
            "spark_version": "stand-in",
            "num_workers": 0,
            "data_security_mode": "SINGLE_USER",
        }

    # ----- execution

    def _execute(self, run: Run) -> None:
        with _DRIVER:
            try:
                _check_libraries(run.task.get("libraries", []))
                if not run.start():
                    return
                self._run_python_task(run)
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

    def _run_python_task(self, run: Run) -> None:
        task = run.task["spark_python_task"]
        main = self.local_path(task["python_file"]) if task["python_file"].startswith("dbfs:") else None
        if main is None or not main.is_file():
            raise FileNotFoundError(f"{task['python_file']} does not exist on DBFS")
        parameters = [self._fuse_path(p) for p in task.get("parameters", [])]
        code_zips = [Path(p) for p in parameters if p.endswith(".zip") and Path(p).is_file()]
        sc = (self.spark or _default_spark()).sparkContext
        try:
            with _as_cluster_driver([str(main), *parameters], self._cluster_environ(run), code_zips):
                runpy.run_path(str(main), init_globals={"dbutils": DBUtils(self), "sc": sc}, run_name="__main__")
        finally:
            _close_step_instance()

    def _fuse_path(self, parameter: str) -> str:
        """A `/dbfs/...` (FUSE) or `dbfs:/...` parameter as the local path; other parameters unchanged."""
        if parameter.startswith(("dbfs:", "/dbfs/")) or parameter == "/dbfs":
            return str(self.local_path(parameter))
        return parameter

    def _cluster_environ(self, run: Run) -> dict[str, str]:
        environ = {k: v for k, v in os.environ.items() if k in OS_ENV or k.startswith(OS_ENV_PREFIXES)}
        environ.update(self.cluster_env)
        environ.update((run.task.get("new_cluster") or {}).get("spark_env_vars") or {})
        return environ


def _handler(workspace: Workspace) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, answer = workspace.answer(self.command, url.path, url.query, raw, self.headers.get("Authorization"))
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

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


def _check_libraries(libraries: list[dict]) -> None:
    """PyPI libraries must be installed here, at the pinned version: the stand-in installs nothing."""
    for library in libraries:
        spec = (library.get("pypi") or {}).get("package")
        if not spec:
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
    try:
        yield
    finally:
        for name in set(sys.modules) - loaded_before:
            if _is_user_module(sys.modules.get(name)):
                sys.modules.pop(name, None)
        sys.modules.update(set_aside)
        sys.argv[:], sys.path[:], sys.meta_path[:] = saved_argv, saved_path, saved_meta_path
        _set_environ(saved_environ)
        importlib.invalidate_caches()


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
