"""The lake: where tables, models, raw downloads and stream state live, named by URI strings.

`Lake` is the contract that assets, checks, sensors and the registry ask for. Every
location is a URI string joined as a string (`file:///...` locally, `abfss://...` on
ADLS), and all file work goes through fsspec, the same way in a Spark step, a sensor
and the dashboard: fsspec speaks both schemes in plain Python (adlfs for `abfss://`),
with no JVM, which the orchestrator and the dashboard do not have. Tables are Delta
tables: Spark writes their Parquet files and `movierec_dagster.tables` commits them with delta-rs.
"""

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from dagster import ConfigurableResource
from pydantic import PrivateAttr
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema
from pyspark.sql.types import StructType

from movierec_dagster.tables import (
    WHOLE,
    WRITE_ID,
    DataFile,
    Replace,
    Table,
    TableVersion,
    adls_storage_options,
    arrow_filesystem,
    delta_storage_options,
    join,
    new_write_folder,
    put_atomic,
)

# The lake's areas, re-exported for the pipeline's modules that reach the lake through this one.
from movierec_dagster.names import CHECKPOINTS, CURRENT_FOLDER, LANDING, LANDING_ARCHIVE, MODELS, QUARANTINE, RAW, TABLES  # noqa: F401



class TableNotFoundError(FileNotFoundError):
    """A table nothing has committed yet; the message names the asset to materialize."""


class Lake(ConfigurableResource):
    """The lake under `root`, a URI (or, for a lake on this machine, a folder)."""

    root: str

    _filesystem: Any = PrivateAttr(default=None)

    def storage_options(self) -> dict[str, Any]:
        """fsspec options for `root`'s scheme (credentials, account): none for a local or in-memory lake."""
        return {}

    def root_uri(self) -> str:
        return self.root.rstrip("/")

    def filesystem(self) -> fsspec.AbstractFileSystem:
        if self._filesystem is None:
            self._filesystem, _ = fsspec.core.url_to_fs(self.root_uri(), **self.storage_options())
        return self._filesystem

    def uri(self, *parts: str) -> str:
        """The location Spark (and DuckDB) read and write for `parts`."""
        return join(self.root_uri(), *parts)

    def fs_path(self, *parts: str) -> str:
        """`parts` in the filesystem's own path form (no scheme)."""
        return self.filesystem()._strip_protocol(self.uri(*parts))

    # Tables

    def delta_options(self) -> dict[str, str]:
        """delta-rs's options for `root` (credentials, account): none for a lake on this machine."""
        return {}

    def table(self, key: str, area: str = TABLES) -> Table:
        return Table(self.uri(area, key), self.delta_options(), fs=self.filesystem(), path=self.fs_path(area, key))

    def table_uri(self, key: str, area: str = TABLES) -> str:
        return self.uri(area, key)

    def table_version(self, key: str, area: str = TABLES) -> TableVersion | None:
        """The committed version of a table (its files, parts and rows), or None before the first commit."""
        return self.table(key, area).current()

    def table_exists(self, key: str, area: str = TABLES) -> bool:
        return self.table_version(key, area) is not None

    def read_table(
        self, spark: SparkSession, key: str, area: str = TABLES, version: TableVersion | None = None
    ) -> DataFrame:
        """The committed table (or its `version`, as `table_version` returned it): Spark reads that version's files only."""
        table = self.table(key, area)
        version = version or table.current()
        if version is None:
            raise TableNotFoundError(
                f"Table '{key}' does not exist yet at {table.uri}: materialize the asset '{key}' first."
            )
        schema = from_arrow_schema(version.schema, prefer_timestamp_ntz=False)
        files = table.file_uris(version)
        if not files:
            return spark.createDataFrame([], schema)
        return spark.read.schema(schema).option("basePath", table.uri).parquet(*files).drop(WRITE_ID)

    def read_table_if_exists(self, spark: SparkSession, key: str, area: str = TABLES) -> DataFrame | None:
        """The table, or None while nothing has committed it."""
        version = self.table_version(key, area)
        return None if version is None else self.read_table(spark, key, area, version)

    def write_table(
        self,
        df: DataFrame,
        key: str,
        *,
        area: str = TABLES,
        partition_by: Sequence[str] = (),
        part: str | None = None,
        properties: dict[str, Any] | None = None,
        transaction: tuple[str, int] | None = None,
        replace: Replace | None = None,
    ) -> TableVersion | None:
        """Write `df` as Parquet with Spark and commit it with delta-rs: as the whole table, or as its part `part`.

        A part (e.g. `date=2026-12-01`, its column not in `df`) replaces only itself. `properties`
        are recorded with the commit (`Table.properties`). With `transaction` (app id, number), a
        part that app already committed is not committed again (None is returned). `replace`
        overrides what the commit replaces ("nothing": it adds its parts). Returns the version
        committed.
        """
        table = self.table(key, area)
        folder = join(new_write_folder(), part or "")
        location = join(table.uri, folder)
        spark = df.sparkSession
        # Delta's timestamps are microseconds; Spark's default Parquet timestamp (INT96) is not.
        spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        writer = df.write.mode("errorifexists")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.parquet(location)
        files = self._written_files(spark.read.schema(df.schema).parquet(location).inputFiles(), table, folder, part)
        return table.commit_write(
            files,
            _arrow_schema(df.schema),
            part=part or WHOLE,
            partition_by=partition_by,
            replace=replace,
            properties=properties,
            transaction=transaction,
        )

    def _written_files(self, uris: list[str], table: Table, folder: str, part: str | None) -> list[DataFile]:
        """The files Spark committed into `folder` of `table`, with their sizes and rows (from the Parquet footers).

        `uris` is Spark's own listing of the folder, which honours its commit protocol: a file a failed
        task left behind is not in it (on Databricks, files without their `_committed` marker).
        """
        write_id = folder.split("/", 1)[0]
        fs, filesystem = self.filesystem(), arrow_filesystem(self.filesystem())
        files = []
        for uri in sorted(uris):
            relative = uri[uri.index(f"/{write_id}/") + 1 :]  # as the Delta log names it: URI-encoded
            plain = unquote(relative)
            path = join(table.path, plain)
            rows = pq.ParquetFile(path, filesystem=filesystem).metadata.num_rows
            inside = plain.removeprefix(folder).strip("/")
            file_part = part or "/".join(inside.split("/")[:-1])
            files.append(DataFile(path=relative, part=file_part, rows=rows, size=fs.size(path)))
        return files

    def put_directory(self, local_dir: Path, key: str, area: str = RAW) -> str:
        """Upload a local folder (e.g. a download's files) as the new current folder of `area/key`; returns its location.

        Not a table: a folder of files, named by `_current.json` once whole. The folder before it stays
        for a reader still reading it; older ones are deleted.
        """
        folder = new_write_folder()
        fs = self.filesystem()
        for directory, _, files in os.walk(local_dir):
            relative = os.path.relpath(directory, local_dir)
            destination = self.fs_path(area, key, folder, "" if relative == "." else relative)
            fs.makedirs(destination, exist_ok=True)
            for name in files:
                fs.put_file(os.path.join(directory, name), join(destination, name))
        previous = (self.read_json(area, key, CURRENT_FOLDER) or {}).get("folder")
        self.write_json({"folder": folder}, area, key, CURRENT_FOLDER)
        for name in self.list_names(area, key):
            if name not in (folder, previous, CURRENT_FOLDER):
                self.delete(area, key, name)
        return self.uri(area, key, folder)

    def current_location(self, key: str, area: str) -> str:
        """Where the current folder of `area/key` (`put_directory`) is."""
        current = self.read_json(area, key, CURRENT_FOLDER)
        if current is None:
            raise TableNotFoundError(
                f"Nothing is stored at {self.uri(area, key)} yet: materialize the asset that writes it."
            )
        return self.uri(area, key, current["folder"])

    # Files

    def write_json(self, value: Any, *parts: str) -> None:
        put_atomic(self.filesystem(), self.fs_path(*parts), json.dumps(value, indent=2, sort_keys=True, default=str).encode())

    def read_json(self, *parts: str) -> Any | None:
        try:
            return json.loads(self.filesystem().cat_file(self.fs_path(*parts)))
        except FileNotFoundError:
            return None

    def exists(self, *parts: str) -> bool:
        return self.filesystem().exists(self.fs_path(*parts))

    def list_names(self, *parts: str) -> list[str]:
        """The names of what is directly inside the folder `parts` (empty when it does not exist)."""
        try:
            entries = self.filesystem().ls(self.fs_path(*parts), detail=False)
        except FileNotFoundError:
            return []
        return sorted(os.path.basename(entry.rstrip("/")) for entry in entries)

    def glob(self, *parts: str) -> list[str]:
        """Paths (relative to the root, `/`-separated) matching the pattern `parts` (fsspec's glob: `*`, `**`)."""
        root = self.fs_path().rstrip("/") + "/"
        return sorted(path.removeprefix(root) for path in self.filesystem().glob(self.fs_path(*parts)))

    def delete(self, *parts: str) -> None:
        """Remove a file or folder from the lake; nothing happens when it is not there."""
        path = self.fs_path(*parts)
        if self.filesystem().exists(path):
            self.filesystem().rm(path, recursive=True)


def _arrow_schema(schema: StructType) -> pa.Schema:
    """`schema` in Arrow's types, timestamps in UTC as Delta keeps them.

    pyspark 4.3 asks for the time zone; 4.0, the Databricks runtime's, has no such argument and gives UTC.
    """
    try:
        return to_arrow_schema(schema, timezone="UTC")
    except TypeError:
        return to_arrow_schema(schema)


class LocalLake(Lake):
    """A folder on this machine laid out as the lake (`$MOVIEREC_HOME/lake`); `root` is a path or a `file://` URI."""

    def root_uri(self) -> str:
        if "://" in self.root:
            return self.root.rstrip("/")
        return Path(self.root).expanduser().resolve().as_uri()


class AdlsLake(Lake):
    """The lake on ADLS Gen2: `root` is `abfss://<container>@<account>.dfs.core.windows.net/<prefix>`.

    Credentials, as the readers without Dagster take them from the environment (`tables.ADLS_CREDENTIALS`):
    a connection string (`connection_string`: an account key, or a SAS; it may name the Blob endpoint,
    as Azurite's does in the tests), else a service principal (`tenant_id`, `client_id`,
    `client_secret`), else DefaultAzureCredential (a managed identity, `az login`). Give secrets as
    `EnvVar`s. On a cluster the client secret comes from the secret scope into the environment; Spark
    itself reads the lake with the cluster's own settings (see docs/databricks.md).
    """

    connection_string: str = ""
    tenant_id: str = ""
    client_id: str = ""
    client_secret: str = ""

    def storage_options(self) -> dict[str, Any]:
        return adls_storage_options(self.connection_string, self.tenant_id, self.client_id, self.client_secret)

    def delta_options(self) -> dict[str, str]:
        return delta_storage_options(self.connection_string, self.tenant_id, self.client_id, self.client_secret)
