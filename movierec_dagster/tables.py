"""The lake's tables: Delta Lake tables, read and committed with delta-rs (`deltalake`). No Spark, no Dagster.

A table at `<table>/` is a Delta table: Parquet files under it, and `_delta_log/` naming which of
them make each version. A writer (Spark in the pipeline, pyarrow elsewhere) writes a table's new files
into a folder of their own, `<table>/write_id=<id>/`, then `Table.commit` adds them in one Delta
transaction that also removes what they replace: the whole table, one part (partition) of it, or
nothing. So:

- a reader never finds the table missing: the previous version stays until the next one is committed;
- a reader pins one version (`current()`, then `file_uris` or `arrow_dataset` of it) and finishes on
  it: a replaced file is deleted only `RETENTION_HOURS` after the commit that removed it;
- a writer killed at any point leaves the previous version: files no commit names are invisible to
  every Delta reader, and deleted once older than the retention;
- two writers never leave a mixed table nor lose each other's part: Delta's conflict checks refuse
  a commit built on a version that another commit made stale where it matters, and the commit is
  tried again on the newer version;
- a commit may carry an application transaction (an id and a number: a stream's checkpoint and its
  batch), so that a replayed batch can tell it was committed (`transaction_version`).

Spark, Databricks SQL (Unity Catalog external tables), DuckDB, Polars and delta-rs read these tables
without movierec's code.
"""

import importlib.util
import json
import os
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, Transaction
from deltalake.exceptions import CommitFailedError, TableNotFoundError
from deltalake.transaction import AddAction
from fsspec.implementations.local import LocalFileSystem

from movierec_dagster.home import local_lake

WHOLE = ""  # the part that is the whole table (an unpartitioned table has only this part)
DELTA_LOG = "_delta_log"
OLD_FORMAT_LOG = "_log"  # the commit log of the table format movierec used before Delta Lake
CONVERT_COMMAND = "python -m movierec_dagster.convert_lake"
RETENTION_HOURS = 24  # how long a replaced file stays readable, and an uncommitted one is left to its writer
VACUUM_EVERY = 10  # versions between two clean-ups
MAX_COMMIT_ATTEMPTS = 30
PROPERTY_PREFIX = "movierec."  # a commit's own properties, in its commitInfo
_COMMIT_ID = PROPERTY_PREFIX + "commit_id"
_NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"  # how Spark and Delta name a part whose value is null
WRITE_ID = "write_id"  # the folder of one write's files (`new_write_folder`)

Replace = Literal["table", "part", "nothing"]

ADLS_PROTOCOLS = ("abfss", "abfs", "az")


class LakeUnreadable(FileNotFoundError):
    """A lake location no filesystem here can open; the message says why."""


class ConcurrentCommitError(RuntimeError):
    """Other writers kept committing conflicting changes first; nothing of this commit is visible."""


class OldTableFormat(RuntimeError):
    """A table in the format movierec wrote before Delta Lake; the message names the conversion."""


@dataclass(frozen=True)
class DataFile:
    """One Parquet file of a table: its path as the Delta log names it (relative to the table), its part, rows and bytes."""

    path: str
    part: str
    rows: int
    size: int


@dataclass(frozen=True)
class TableVersion:
    """One committed version of a table: the files that make it."""

    version: int
    files: tuple[DataFile, ...]
    schema: pa.Schema
    partition_columns: tuple[str, ...] = ()

    @property
    def parts(self) -> dict[str, int]:
        """Each part of the table (`date=2026-12-01`, or WHOLE) and its rows."""
        rows: dict[str, int] = {}
        for file in self.files:
            rows[file.part] = rows.get(file.part, 0) + file.rows
        return dict(sorted(rows.items()))

    @property
    def rows(self) -> int:
        return sum(file.rows for file in self.files)

    def only(self, parts: Iterable[str]) -> "TableVersion":
        """This version restricted to `parts`: what a reader of those parts reads."""
        wanted = set(parts)
        return replace(self, files=tuple(file for file in self.files if file.part in wanted))


def join(base: str, *parts: str) -> str:
    """`base/part/...` as a string: URIs keep their scheme (pathlib would turn `abfss://` into `abfss:/`)."""
    pieces = [base.rstrip("/"), *(p.strip("/") for p in parts if p)]
    return "/".join(pieces)


def part_name(values: Mapping[str, Any]) -> str:
    """The part a file belongs to, named as its folder would be: `date=2026-12-01`, `a=1/b=x`; WHOLE when unpartitioned."""
    return "/".join(f"{column}={_NULL_PARTITION if value is None else value}" for column, value in values.items())


def part_values(part: str) -> dict[str, str | None]:
    """The partition values a part's name holds (the inverse of `part_name`)."""
    if part == WHOLE:
        return {}
    pairs = (piece.split("=", 1) for piece in part.split("/"))
    return {column: None if value == _NULL_PARTITION else unquote(value) for column, value in pairs}


def _partition_text(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return value


def new_write_folder() -> str:
    """A folder for one write's files, named as a partition that says when it was made:
    `write_id=20261201T221500-1a2b3c4d5e6f`.

    Delta readers take partitions from the log, not from paths; Spark, reading a version's files
    by path, infers a `write_id` column from it (`WRITE_ID`, dropped), which keeps every file of a
    table at the same depth below it, as Spark's partition discovery requires.
    """
    return f"{WRITE_ID}={time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:12]}"


class Table:
    """One Delta table of the lake at `uri` (what Spark, DuckDB and delta-rs name it), with delta-rs's `storage_options`.

    `fs` and `path` (the table in that fsspec filesystem's path form), when given, let a table in the
    format movierec wrote before Delta be recognised, and refused with its conversion named; the
    conversion itself opens it with `converting`.
    """

    def __init__(
        self,
        uri: str,
        storage_options: Mapping[str, str] | None = None,
        *,
        fs: fsspec.AbstractFileSystem | None = None,
        path: str | None = None,
        converting: bool = False,
    ):
        self.uri = uri.rstrip("/")
        self.storage_options = dict(storage_options or {})
        self.fs, self.path, self.converting = fs, path, converting

    def _open(self, version: int | None = None) -> DeltaTable | None:
        try:
            return DeltaTable(self.uri, version=version, storage_options=self.storage_options or None)
        except TableNotFoundError:
            self._refuse_old_format()
            return None

    def _refuse_old_format(self) -> None:
        if self.converting or self.fs is None or self.path is None:
            return
        if self.fs.exists(join(self.path, OLD_FORMAT_LOG)):
            raise OldTableFormat(
                f"The table at {self.uri} is in the format movierec wrote before Delta Lake. Convert the lake "
                f"once, with nothing running on it: {CONVERT_COMMAND} (MOVIEREC_LAKE names the lake; make "
                "convert-lake for the local one)."
            )

    def current(self) -> TableVersion | None:
        """The newest committed version, or None while nothing was committed."""
        delta = self._open()
        return None if delta is None else _version_of(delta)

    def at(self, version: int) -> TableVersion:
        """The committed `version` (its files may be vacuumed `RETENTION_HOURS` after it was replaced)."""
        return _version_of(self.delta(version))

    def delta(self, version: TableVersion | int) -> DeltaTable:
        """delta-rs's view of `version`."""
        number = version.version if isinstance(version, TableVersion) else version
        delta = self._open(number)
        if delta is None:
            raise FileNotFoundError(f"There is no table at {self.uri}.")
        return delta

    def file_uri(self, file: DataFile) -> str:
        return file.path if "://" in file.path else join(self.uri, unquote(file.path))

    def file_uris(self, version: TableVersion) -> list[str]:
        """Where `version`'s Parquet files are, as Spark names them."""
        return [self.file_uri(file) for file in version.files]

    def properties(self, version: TableVersion) -> dict[str, str]:
        """The properties the commit that wrote `version`'s data gave (`commit(properties=...)`): a clean-up commits none."""
        for number in range(version.version, max(version.version - VACUUM_EVERY * 2, -1), -1):
            commit = self._commit_info(number)
            if commit.get("operation") in ("WRITE", "CREATE TABLE"):
                return {
                    key.removeprefix(PROPERTY_PREFIX): value
                    for key, value in commit.items()
                    if key.startswith(PROPERTY_PREFIX) and key != _COMMIT_ID
                }
        return {}

    def _commit_info(self, number: int) -> dict[str, Any]:
        """The commitInfo of version `number`, read from its log file ({} once the log was cleaned up).

        Read from the file, not from delta-rs's `history()`: that gives the newest commits in the
        store whatever version the table was opened at, numbered down from that version.
        """
        if self.fs is None or self.path is None:
            raise ValueError(f"Reading {self.uri}'s log needs its fsspec filesystem: open it with Lake.table or LakeFiles.table.")
        try:
            data = self.fs.cat_file(join(self.path, DELTA_LOG, f"{number:020d}.json"))
        except FileNotFoundError:
            return {}
        for line in data.splitlines():
            action = json.loads(line) if line.strip() else {}
            if "commitInfo" in action:
                return action["commitInfo"]
        return {}

    def transaction_version(self, app_id: str) -> int | None:
        """The newest number committed with the application transaction `app_id`, or None."""
        delta = self._open()
        return None if delta is None else delta.transaction_version(app_id)

    def committed_before(self, app_id: str, number: int) -> bool:
        """Whether `app_id` committed `number` (or a later one) to this table."""
        return _committed_before(self.transaction_version(app_id), number)

    def commit(
        self,
        files: Sequence[DataFile],
        *,
        schema: pa.Schema,
        partition_columns: Sequence[str] = (),
        replace: Replace = "table",
        properties: Mapping[str, Any] | None = None,
        transaction: tuple[str, int] | None = None,
    ) -> TableVersion | None:
        """Add `files` (written under the table) in one commit, removing what they replace; the version committed.

        `replace`: "table" replaces every file; "part" the files of the one part `files` belong to;
        "nothing" appends. With `transaction` (app id, number) the commit is skipped, and None
        returned, when that app already committed that number or a later one.
        """
        parts = {file.part for file in files}
        if replace == "part" and len(parts) != 1:
            raise ValueError(f"A commit to {self.uri} replaces one part at a time, not {sorted(parts)}.")
        commit_id = uuid.uuid4().hex
        metadata = {_COMMIT_ID: commit_id, **{PROPERTY_PREFIX + k: str(v) for k, v in (properties or {}).items()}}
        now = int(time.time() * 1000)
        actions = [
            AddAction(file.path, file.size, part_values(file.part), now, True, json.dumps({"numRecords": file.rows}))
            for file in files
        ]
        filters = [(column, "=", value) for column, value in part_values(next(iter(parts))).items()] if replace == "part" else None
        for attempt in range(MAX_COMMIT_ATTEMPTS):
            delta = self._open() or self._create(schema, partition_columns)
            if transaction is not None and _committed_before(delta.transaction_version(transaction[0]), transaction[1]):
                return None
            try:
                delta.create_write_transaction(
                    actions,
                    mode="append" if replace == "nothing" else "overwrite",
                    schema=schema,
                    partition_by=list(partition_columns) or None,
                    partition_filters=filters,
                    commit_properties=CommitProperties(
                        custom_metadata=metadata,
                        app_transactions=[Transaction(*transaction)] if transaction else None,
                        # A commit that lost its version is computed again from the newer snapshot here: delta-rs
                        # would otherwise rebase it, and two replaces of an empty table or part would both land.
                        max_commit_retries=0,
                    ),
                )
            except (CommitFailedError, OSError) as error:
                # A store that answers a taken version file with 412, not 409, surfaces as an OSError.
                if isinstance(error, OSError) and "precondition" not in str(error).lower():
                    raise
                time.sleep(min(0.05 * 2**attempt, 2.0) * (0.5 + uuid.uuid4().int % 100 / 100))
                continue
            committed = self._committed(commit_id)
            if committed.version % VACUUM_EVERY == 0:
                self.vacuum()
            return committed
        raise ConcurrentCommitError(f"Gave up committing to {self.uri} after {MAX_COMMIT_ATTEMPTS} conflicting attempts.")

    def commit_write(
        self,
        files: Sequence[DataFile],
        schema: pa.Schema,
        *,
        part: str = WHOLE,
        partition_by: Sequence[str] = (),
        replace: Replace | None = None,
        properties: Mapping[str, Any] | None = None,
        transaction: tuple[str, int] | None = None,
    ) -> TableVersion | None:
        """`commit` one write's files, of rows with `schema`: the part `part` (which replaces only itself; its
        columns, not in `schema`, are text from its name), or the whole table partitioned by `partition_by`."""
        columns = list(partition_by) or list(part_values(part))
        schema = pa.schema([*schema, *(pa.field(column, pa.string()) for column in columns if column not in schema.names)])
        return self.commit(
            files,
            schema=schema,
            partition_columns=columns,
            replace=replace or ("part" if part else "table"),
            properties=properties,
            transaction=transaction,
        )

    def _create(self, schema: pa.Schema, partition_columns: Sequence[str]) -> DeltaTable:
        """An empty table (version 0): a racing creator's table if it won."""
        try:
            return DeltaTable.create(
                self.uri, schema, mode="ignore", partition_by=list(partition_columns) or None,
                storage_options=self.storage_options or None,
            )
        except CommitFailedError:
            delta = self._open()
            if delta is None:
                raise
            return delta

    def _committed(self, commit_id: str) -> TableVersion:
        """The version this process's commit `commit_id` made (other writers may have committed since)."""
        newest = self._open()
        for number in range(newest.version(), max(newest.version() - MAX_COMMIT_ATTEMPTS * 4, -1), -1):
            if self._commit_info(number).get(_COMMIT_ID) == commit_id:  # usually the newest: no second open
                return _version_of(newest if number == newest.version() else self.delta(number))
        raise ConcurrentCommitError(f"The commit {commit_id} to {self.uri} is not in its log.")

    def vacuum(self, retention_hours: int = RETENTION_HOURS) -> list[str]:
        """Delete the files no version newer than `retention_hours` uses, committed or not; the paths deleted."""
        delta = self._open()
        if delta is None:
            return []
        return delta.vacuum(retention_hours=retention_hours, dry_run=False, enforce_retention_duration=False, full=True)


def _committed_before(committed: int | None, number: int) -> bool:
    return committed is not None and committed >= number


def _version_of(delta: DeltaTable) -> TableVersion:
    partition_columns = tuple(delta.metadata().partition_columns)
    actions = pa.table(delta.get_add_actions(flatten=True))
    columns = [actions.column(f"partition.{c}").to_pylist() for c in partition_columns]
    rows = actions.column("num_records").to_pylist()
    files = tuple(
        DataFile(
            path=path,
            part=part_name({c: _partition_text(v) for c, v in zip(partition_columns, values, strict=True)}),
            rows=count or 0,
            size=size,
        )
        for path, size, count, *values in zip(
            actions.column("path").to_pylist(), actions.column("size_bytes").to_pylist(), rows, *columns, strict=True
        )
    )
    return TableVersion(
        version=delta.version(), files=files, schema=pa.schema(delta.schema().to_arrow()), partition_columns=partition_columns
    )


def write_arrow(
    table: Table,
    rows: pa.Table,
    *,
    part: str = WHOLE,
    partition_by: Sequence[str] = (),
    replace: Replace | None = None,
    properties: Mapping[str, Any] | None = None,
    transaction: tuple[str, int] | None = None,
) -> TableVersion | None:
    """Write `rows` as Parquet with pyarrow and commit them, as `Lake.write_table` does with Spark's files.

    For writers without Spark; `table` must have been opened with its fsspec filesystem (`Lake.table`,
    `LakeFiles.table`). Either `rows` are the part `part` (its columns, e.g. `date`, not in `rows`: they are
    text from its name), or they are split into parts by their columns `partition_by`, a file each.
    """
    if table.fs is None or table.path is None:
        raise ValueError(f"Writing {table.uri} with pyarrow needs its fsspec filesystem: open it with Lake.table or LakeFiles.table.")
    folder = new_write_folder()
    files = []
    for group_part, group in _split_by(rows, partition_by) if partition_by else [(part, rows)]:
        relative = join(folder, group_part, f"part-{len(files):05d}-{uuid.uuid4().hex}.parquet")
        path = join(table.path, relative)
        table.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        pq.write_table(group, path, filesystem=arrow_filesystem(table.fs))
        files.append(DataFile(relative, group_part, group.num_rows, table.fs.size(path)))
    return table.commit_write(
        files, rows.schema, part=part, partition_by=partition_by, replace=replace, properties=properties, transaction=transaction
    )


def _split_by(rows: pa.Table, columns: Sequence[str]) -> list[tuple[str, pa.Table]]:
    """`rows` split by the values of `columns`: each part's name and its rows, without those columns."""
    if rows.num_rows == 0:
        return []
    ordered = rows.sort_by([(column, "ascending") for column in columns])
    changes = np.zeros(ordered.num_rows, dtype=bool)
    changes[0] = True
    for column in columns:
        values = ordered.column(column).to_numpy(zero_copy_only=False)
        changes[1:] |= values[1:] != values[:-1]
    starts = np.flatnonzero(changes).tolist()
    data = ordered.drop_columns(list(columns))
    groups = []
    for start, end in zip(starts, [*starts[1:], ordered.num_rows], strict=True):
        values = {column: _partition_text(ordered.column(column)[start].as_py()) for column in columns}
        groups.append((part_name(values), data.slice(start, end - start)))
    return groups


def arrow_dataset(table: Table, version: TableVersion, parts: Sequence[str] | None = None) -> ds.Dataset:
    """The rows of `version` (or of its `parts` only) as a pyarrow dataset, partition columns included, without Spark.

    Built from the version's file list with pyarrow's own filesystems (`table` opened with its fsspec
    filesystem), not with delta-rs's dataset: a process holding one of those aborts at exit now and
    then ("terminate called without an active exception"), which a service or a test run cannot have.
    """
    if table.fs is None or table.path is None:
        raise ValueError(f"Reading {table.uri} with pyarrow needs its fsspec filesystem: open it with Lake.table or LakeFiles.table.")
    files = version.files if parts is None else version.only(parts).files
    types = {name: version.schema.field(name).type for name in version.partition_columns}
    return ds.FileSystemDataset.from_paths(
        [join(table.path, unquote(file.path)) for file in files],
        schema=version.schema,
        format=ds.ParquetFileFormat(),
        filesystem=arrow_filesystem(table.fs),
        partitions=[_partition_expression(file.part, types) for file in files],
    )


def _partition_expression(part: str, types: Mapping[str, pa.DataType]) -> ds.Expression:
    """What every row of a file of `part` holds in its partition columns: pyarrow fills those columns from it."""
    expression = ds.scalar(True)
    for column, value in part_values(part).items():
        field = ds.field(column)
        expression &= field.is_null() if value is None else field == pa.scalar(value).cast(types[column])
    return expression


def arrow_filesystem(fs: fsspec.AbstractFileSystem) -> pafs.FileSystem:
    """pyarrow's view of `fs`: its own local filesystem for a local one, else fsspec behind pyarrow's handler."""
    return pafs.LocalFileSystem() if isinstance(fs, LocalFileSystem) else pafs.PyFileSystem(pafs.FSSpecHandler(fs))


def put_atomic(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Replace `path` with `data` so that a reader sees the old bytes or the new, never part of them."""
    if isinstance(fs, LocalFileSystem):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        temporary = join(os.path.dirname(path), f".{os.path.basename(path)}.{uuid.uuid4().hex}")
        with open(temporary, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    else:  # object stores publish an upload whole, when it completes
        fs.pipe_file(path, data)


# Opening a lake outside Spark (the dashboard, the HTTP service): its location and credentials from the environment,
# read once by each entry point.


def lake_location(environ: Mapping[str, str] | None = None) -> str:
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


def adls_credentials(environ: Mapping[str, str]) -> dict[str, str]:
    """The ADLS credentials set in `environ`, by adlfs's option name (blank when unset)."""
    return {option: environ.get(name, "").strip() for option, name in ADLS_CREDENTIALS.items()}


def adls_storage_options(
    connection_string: str = "", tenant_id: str = "", client_id: str = "", client_secret: str = ""
) -> dict[str, str | bool]:
    """adlfs's options: a connection string, else a service principal, else DefaultAzureCredential.

    The one place both the pipeline's lake resource (`AdlsLake`) and the readers without Dagster
    (`LakeFiles`) turn credentials into fsspec options; `delta_storage_options` does the same
    for delta-rs. The account comes from the URL (`<container>@<account>.dfs.core.windows.net`), or
    from the connection string, which may also name the Blob endpoint (Azurite's, in the tests).
    Listings are not cached (adlfs would keep them for the life of the process).
    """
    options: dict[str, str | bool] = {"use_listings_cache": False}
    if connection_string.strip():
        return {**options, "connection_string": connection_string.strip()}
    principal = {"tenant_id": tenant_id.strip(), "client_id": client_id.strip(), "client_secret": client_secret.strip()}
    if all(principal.values()):
        return {**options, **principal}
    return {**options, "anon": False}  # a managed identity, or `az login`


def delta_storage_options(
    connection_string: str = "", tenant_id: str = "", client_id: str = "", client_secret: str = ""
) -> dict[str, str]:
    """delta-rs's options for ADLS from the same credentials as `adls_storage_options`.

    A connection string gives the account and its key or SAS, and its Blob endpoint when it names
    one (Azurite's); a service principal its three values; without either, delta-rs asks the
    machine's managed identity.
    """
    if connection_string.strip():
        fields = dict(
            item.split("=", 1) for item in connection_string.strip().strip(";").split(";") if "=" in item
        )
        options = {"account_name": fields.get("AccountName", "")}
        if "AccountKey" in fields:
            options["account_key"] = fields["AccountKey"]
        if "SharedAccessSignature" in fields:
            options["sas_token"] = fields["SharedAccessSignature"]
        if endpoint := fields.get("BlobEndpoint"):
            options["endpoint"] = endpoint.rstrip("/")
            if endpoint.startswith("http://"):
                options["allow_http"] = "true"
        return options
    principal = {"tenant_id": tenant_id.strip(), "client_id": client_id.strip(), "client_secret": client_secret.strip()}
    return principal if all(principal.values()) else {}


def _on_adls(location: str) -> bool:
    return "://" in location and location.split("://", 1)[0] in ADLS_PROTOCOLS


class LakeFiles:
    """A lake opened outside Spark (the dashboard, the HTTP service, the conversion): its filesystem and its tables.

    `credentials` are ADLS's, by adlfs's option names; an entry point resolves them from its environment
    once (`adls_credentials`), with the location (`lake_location`). Without any, an `abfss://` lake is
    reached as the machine's managed identity or `az login`.
    """

    def __init__(self, location: str, credentials: Mapping[str, str] | None = None):
        self.location = location
        credentials = dict(credentials or {})
        options, self.delta_options = {}, {}
        if _on_adls(location):
            if importlib.util.find_spec("adlfs") is None:
                raise LakeUnreadable(f"Reading the lake at {location} needs fsspec's ADLS filesystem: pip install adlfs.")
            options, self.delta_options = adls_storage_options(**credentials), delta_storage_options(**credentials)
        try:
            self.fs, root = fsspec.core.url_to_fs(location, **options)
        except ValueError as error:  # "Protocol not known"
            raise LakeUnreadable(f"The lake at {location} cannot be read: {error}.") from error
        self.root = root.rstrip("/")

    def path(self, *parts: str) -> str:
        """`parts` of the lake in the filesystem's path form."""
        return join(self.root, *parts)

    def table(self, *parts: str) -> Table:
        """The table at `parts` of the lake (e.g. "tables", "movies")."""
        uri = join(self.location, *parts) if "://" in self.location else Path(self.location, *parts).as_uri()
        return Table(uri, self.delta_options, fs=self.fs, path=self.path(*parts))
