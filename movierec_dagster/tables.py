"""The table layer: immutable snapshots and a log of commits, on any fsspec filesystem. No Spark, no Dagster.

A table at `<table>/` is:

    snapshot=<id>/[<part>/]...      data folders, written once and never changed
    _log/<version>.json            one file per commit, created only if absent: every part of the table
                                   (part "" is the whole table) -> its snapshot and row count, plus properties

The newest log file is the table. A writer writes a new snapshot folder, then
creates the next log file; if another writer created that version first, it
applies its change to the newer version and tries the next number. So:

- a reader never finds the table missing: the previous version stays until the next one is committed;
- a reader that started before a replace finishes on what it started with: a snapshot is deleted
  only `retention_seconds` after a commit stopped using it;
- a writer killed at any point leaves the previous version (its snapshot folder is never referenced,
  and is deleted once older than a day);
- two writers never leave a mixed table: each commit is one whole manifest, built on the one before.

The snapshot folder name doubles as a Hive partition (`snapshot=<id>`), so Spark and DuckDB read the
current parts with partition discovery (`basePath` = the table) and drop the `snapshot` column; readers
without Spark (the dashboard, the HTTP service) read them with pyarrow (`arrow_dataset`). This is
the one module a Delta Lake implementation would replace.
"""

import importlib.util
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec
import pyarrow.dataset as ds
import pyarrow.fs as pafs
from fsspec.implementations.local import LocalFileSystem

from movierec_dagster.home import local_lake

LOG = "_log"
SNAPSHOT = "snapshot"
WHOLE = ""  # the part that is the whole table
RETENTION_SECONDS = 3600  # how long a replaced snapshot stays readable
ORPHAN_SECONDS = 24 * 3600  # a snapshot no commit refers to (a killed writer's) is deleted after this
VACUUM_EVERY = 10  # versions between two clean-ups
MAX_COMMIT_ATTEMPTS = 50
_ID_TIME = "%Y%m%dT%H%M%S"


ADLS_PROTOCOLS = ("abfss", "abfs", "az")


class LakeUnreadable(FileNotFoundError):
    """A lake location no filesystem here can open; the message says why."""


class ConcurrentCommitError(RuntimeError):
    """Other writers kept committing first; nothing of this commit is visible."""


@dataclass(frozen=True)
class Part:
    snapshot: str
    rows: int | None = None


@dataclass(frozen=True)
class TableVersion:
    version: int
    parts: dict[str, Part]
    properties: dict[str, Any] = field(default_factory=dict)
    committed_at: float = 0.0

    @property
    def rows(self) -> int | None:
        """Rows in the table, when every commit recorded its count."""
        counts = [part.rows for part in self.parts.values()]
        return None if any(count is None for count in counts) else sum(counts)

    def to_json(self) -> bytes:
        document = {
            "version": self.version,
            "committed_at": self.committed_at,
            "parts": {name: {"snapshot": p.snapshot, "rows": p.rows} for name, p in sorted(self.parts.items())},
            "properties": self.properties,
        }
        return json.dumps(document, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "TableVersion":
        document = json.loads(data)
        return cls(
            version=int(document["version"]),
            parts={name: Part(p["snapshot"], p.get("rows")) for name, p in document["parts"].items()},
            properties=document.get("properties", {}),
            committed_at=float(document.get("committed_at", 0.0)),
        )


def join(base: str, *parts: str) -> str:
    """`base/part/...` as a string: URIs keep their scheme (pathlib would turn `abfss://` into `abfss:/`)."""
    pieces = [base.rstrip("/"), *(p.strip("/") for p in parts if p)]
    return "/".join(pieces)


def _local_temporary(path: str, data: bytes) -> str:
    """A hidden file beside `path` holding `data`, to be moved or linked into place."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = join(os.path.dirname(path), f".{os.path.basename(path)}.{uuid.uuid4().hex}")
    with open(temporary, "wb") as handle:
        handle.write(data)
    return temporary


def put_atomic(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Replace `path` with `data` so that a reader sees the old bytes or the new, never part of them."""
    if isinstance(fs, LocalFileSystem):
        os.replace(_local_temporary(path, data), path)
    else:  # object stores publish an upload whole, when it completes
        fs.pipe_file(path, data)


def put_if_absent(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> bool:
    """Create `path` holding `data` unless it exists (then False); a reader never sees it half-written.

    On an object store this is fsspec's exclusive create, `pipe_file(mode="create")`: adlfs sends it as
    one Put Blob with `If-None-Match: *`, and the Azure SDK reports a blob that exists as such whether
    the service answers 409 or 412. (Not `open(path, "xb")`: adlfs stages blocks and then commits them
    with that header, and turns a 412 into a RuntimeError, so a writer that lost the race would fail
    instead of trying the next version. Azurite answers 409, which hides that.)
    """
    if isinstance(fs, LocalFileSystem):
        temporary = _local_temporary(path, data)
        try:
            os.link(temporary, path)  # fails if `path` exists, atomically
        except FileExistsError:
            return False
        finally:
            os.unlink(temporary)
        return True
    try:
        fs.pipe_file(path, data, mode="create")
    except FileExistsError:
        return False
    return True


def new_snapshot_id(now: float | None = None) -> str:
    """A snapshot name that says when it was made: 20261201T221500-1a2b3c4d5e6f."""
    moment = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    return f"{moment:{_ID_TIME}}-{uuid.uuid4().hex[:12]}"


def _snapshot_made_at(snapshot: str) -> float | None:
    try:
        return datetime.strptime(snapshot.split("-", 1)[0], _ID_TIME).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


class Table:
    """One table of the lake: `path` in `fs`'s own form (no scheme); `uri` is how Spark and DuckDB name it."""

    def __init__(self, fs: fsspec.AbstractFileSystem, path: str, uri: str):
        self.fs, self.path, self.uri = fs, path.rstrip("/"), uri.rstrip("/")

    def _listing(self, folder: str) -> list[str]:
        """What `folder` holds now, asked of the store: a filesystem's cached listing would hide newer commits.

        (adlfs caches listings unless told not to, and its own writes do not refresh them: with a
        cached `_log/` a writer would keep taking the version it has just committed as the next.)
        """
        self.fs.invalidate_cache(folder)
        try:
            return self.fs.ls(folder, detail=False)
        except FileNotFoundError:
            return []

    def _log_versions(self) -> list[int]:
        names = self._listing(join(self.path, LOG))
        stems = (os.path.basename(name.rstrip("/")).removesuffix(".json") for name in names if name.endswith(".json"))
        return sorted(int(stem) for stem in stems if stem.isdigit())

    def _read_version(self, version: int) -> TableVersion:
        return TableVersion.from_json(self.fs.cat_file(self._log_file(version)))

    def _log_file(self, version: int) -> str:
        return join(self.path, LOG, f"{version:020d}.json")

    def current(self) -> TableVersion | None:
        """The committed table, or None while nothing was committed."""
        versions = self._log_versions()
        return self._read_version(versions[-1]) if versions else None

    def snapshot_path(self, snapshot: str, part: str = WHOLE) -> str:
        return join(self.path, f"{SNAPSHOT}={snapshot}", part)

    def snapshot_uri(self, snapshot: str, part: str = WHOLE) -> str:
        return join(self.uri, f"{SNAPSHOT}={snapshot}", part)

    def data_uris(self, version: TableVersion) -> list[str]:
        """The folders that hold `version`'s rows, in part order."""
        return [self.snapshot_uri(p.snapshot, name) for name, p in sorted(version.parts.items())]

    def commit(
        self,
        changes: dict[str, Part],
        *,
        replace_all: bool = False,
        properties: dict[str, Any] | None = None,
        retention_seconds: float = RETENTION_SECONDS,
    ) -> TableVersion:
        """Commit `changes` (part -> its new snapshot) on top of the newest version, or instead of it (`replace_all`)."""
        for _ in range(MAX_COMMIT_ATTEMPTS):
            current = self.current()
            keep_old = current is not None and not replace_all
            parts = {**(current.parts if keep_old else {}), **changes}
            if WHOLE in parts and len(parts) > 1:
                raise ValueError(f"Table {self.uri} is written whole and in parts; write it one way.")
            candidate = TableVersion(
                version=current.version + 1 if current else 0,
                parts=parts,
                properties={**(current.properties if keep_old else {}), **(properties or {})},
                committed_at=time.time(),
            )
            if put_if_absent(self.fs, self._log_file(candidate.version), candidate.to_json()):
                if candidate.version % VACUUM_EVERY == 0:
                    self.vacuum(retention_seconds)
                return candidate
        raise ConcurrentCommitError(f"Gave up committing to {self.uri} after {MAX_COMMIT_ATTEMPTS} attempts.")

    def vacuum(self, retention_seconds: float = RETENTION_SECONDS, now: float | None = None) -> list[str]:
        """Delete snapshots no reader can still be using, and the log files that alone referred to them."""
        now = time.time() if now is None else now
        versions = [self._read_version(v) for v in self._log_versions()]
        if not versions:
            return []
        live: set[str] = set()
        expired: list[TableVersion] = []
        for version, successor in zip(versions, [*versions[1:], None], strict=True):
            if successor is None or successor.committed_at > now - retention_seconds:
                live.update(p.snapshot for p in version.parts.values())
            else:
                expired.append(version)
        referenced = live | {p.snapshot for v in expired for p in v.parts.values()}
        deleted = []
        for snapshot in self._snapshot_folders():
            made_at = _snapshot_made_at(snapshot)
            orphan_expired = snapshot not in referenced and made_at is not None and made_at < now - ORPHAN_SECONDS
            if snapshot not in live and (snapshot in referenced or orphan_expired):
                self.fs.rm(self.snapshot_path(snapshot), recursive=True)
                deleted.append(snapshot)
        for version in expired:
            self.fs.rm(self._log_file(version.version))
        return deleted

    def _snapshot_folders(self) -> list[str]:
        names = self._listing(self.path)
        prefix = f"{SNAPSHOT}="
        return [os.path.basename(n.rstrip("/"))[len(prefix) :] for n in names if os.path.basename(n.rstrip("/")).startswith(prefix)]


def arrow_dataset(table: Table, version: TableVersion, parts: list[str] | None = None) -> ds.Dataset:
    """The rows of `version` (or of its `parts` only) as a pyarrow dataset, without Spark.

    Only the Parquet files in the snapshot folders the commit names are read, never an older or
    uncommitted snapshot still on disk; Hive columns (`date=`, `snapshot=`) come from the folder
    names.
    """
    chosen = version.parts if parts is None else {name: version.parts[name] for name in parts}
    folders = [table.snapshot_path(p.snapshot, name) for name, p in sorted(chosen.items())]
    files = sorted(file for folder in folders for file in table.fs.find(folder) if file.endswith(".parquet"))
    return ds.dataset(
        files, filesystem=arrow_filesystem(table.fs), format="parquet", partitioning="hive", partition_base_dir=table.path
    )


def arrow_filesystem(fs: fsspec.AbstractFileSystem) -> pafs.FileSystem:
    """pyarrow's view of `fs`: its own local filesystem for a local one, else fsspec behind pyarrow's handler."""
    return pafs.LocalFileSystem() if isinstance(fs, LocalFileSystem) else pafs.PyFileSystem(pafs.FSSpecHandler(fs))


# Opening a lake outside Spark (the dashboard, the HTTP service): a location from the environment, one fsspec filesystem.


def lake_location(environ: dict[str, str] | None = None) -> str:
    """`MOVIEREC_LAKE` (a URI, or a folder made absolute), else `$MOVIEREC_HOME/lake`."""
    environ = dict(os.environ if environ is None else environ)
    override = environ.get("MOVIEREC_LAKE", "").strip()
    if not override:
        return str(local_lake(environ))
    return override.rstrip("/") if "://" in override else str(Path(override).expanduser().resolve())


ADLS_CREDENTIALS = {  # adlfs's option -> the environment variable it comes from
    "connection_string": "AZURE_STORAGE_CONNECTION_STRING",
    "tenant_id": "AZURE_TENANT_ID",
    "client_id": "AZURE_CLIENT_ID",
    "client_secret": "AZURE_CLIENT_SECRET",
}


def adls_credentials(environ: dict[str, str]) -> dict[str, str]:
    """The ADLS credentials set in `environ`, by adlfs's option name (blank when unset)."""
    return {option: environ.get(name, "").strip() for option, name in ADLS_CREDENTIALS.items()}


def adls_storage_options(
    connection_string: str = "", tenant_id: str = "", client_id: str = "", client_secret: str = ""
) -> dict[str, str | bool]:
    """adlfs's options: a connection string, else a service principal, else DefaultAzureCredential.

    The one place both the pipeline's lake resource (`AdlsLake`) and the readers without Dagster
    (`lake_filesystem`) turn credentials into options. The account comes from the URL
    (`<container>@<account>.dfs.core.windows.net`), or from the connection string, which may also name
    the Blob endpoint (Azurite's, in the tests). Listings are not cached (adlfs would keep them for the
    life of the process), so a new commit shows up.
    """
    options: dict[str, str | bool] = {"use_listings_cache": False}
    if connection_string.strip():
        return {**options, "connection_string": connection_string.strip()}
    principal = {"tenant_id": tenant_id.strip(), "client_id": client_id.strip(), "client_secret": client_secret.strip()}
    if all(principal.values()):
        return {**options, **principal}
    return {**options, "anon": False}  # a managed identity, or `az login`


def lake_filesystem(location: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem for `location` (ADLS credentials from the environment), and the lake's root in its path form."""
    protocol = location.split("://", 1)[0] if "://" in location else "file"
    options = {}
    if protocol in ADLS_PROTOCOLS:
        if importlib.util.find_spec("adlfs") is None:
            raise LakeUnreadable(f"Reading the lake at {location} needs fsspec's ADLS filesystem: pip install adlfs.")
        options = adls_storage_options(**adls_credentials(dict(os.environ)))
    try:
        fs, root = fsspec.core.url_to_fs(location, **options)
    except ValueError as error:  # "Protocol not known"
        raise LakeUnreadable(f"The lake at {location} cannot be read: {error}.") from error
    return fs, root.rstrip("/")
