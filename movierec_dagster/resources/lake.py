"""The lake: where tables, models, raw downloads and stream state live, named by URI strings.

`Lake` is the contract that assets, checks, sensors and the registry ask for. Every
location is a URI string joined as a string (`file:///...` locally, `abfss://...` on
ADLS), and all file work goes through fsspec, the same way in a Spark step, a sensor
and the dashboard: fsspec speaks both schemes in plain Python (adlfs for `abfss://`),
with no JVM, which the orchestrator and the dashboard do not have. Tables are
committed through `movierec_dagster.tables` (snapshots and a commit log).
"""

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import fsspec
from dagster import ConfigurableResource
from pydantic import PrivateAttr
from pyspark.sql import DataFrame, SparkSession

from movierec_dagster.tables import (
    SNAPSHOT,
    WHOLE,
    Part,
    Table,
    TableVersion,
    adls_storage_options,
    join,
    new_snapshot_id,
    put_atomic,
)

# The lake's areas, re-exported for the pipeline's modules that reach the lake through this one.
from movierec_dagster.names import CHECKPOINTS, LANDING, LANDING_ARCHIVE, MODELS, QUARANTINE, RAW, TABLES  # noqa: F401



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

    def table(self, key: str, area: str = TABLES) -> Table:
        return Table(self.filesystem(), self.fs_path(area, key), self.uri(area, key))

    def table_uri(self, key: str, area: str = TABLES) -> str:
        return self.uri(area, key)

    def table_version(self, key: str, area: str = TABLES) -> TableVersion | None:
        """The committed version of a table (its parts, row counts and properties), or None before the first commit."""
        return self.table(key, area).current()

    def table_exists(self, key: str, area: str = TABLES) -> bool:
        return self.table_version(key, area) is not None

    def read_table(
        self, spark: SparkSession, key: str, area: str = TABLES, version: TableVersion | None = None
    ) -> DataFrame:
        """The committed table (or its `version`, as `table_version` returned it)."""
        table = self.table(key, area)
        version = version or table.current()
        if version is None:
            raise TableNotFoundError(
                f"Table '{key}' does not exist yet at {table.uri}: materialize the asset '{key}' first."
            )
        return spark.read.option("basePath", table.uri).parquet(*table.data_uris(version)).drop(SNAPSHOT)

    def read_table_if_exists(self, spark: SparkSession, key: str, area: str = TABLES) -> DataFrame | None:
        """The table, or None while nothing has committed it."""
        return self.read_table(spark, key, area) if self.table_exists(key, area) else None

    def write_table(
        self,
        df: DataFrame,
        key: str,
        *,
        area: str = TABLES,
        partition_by: Sequence[str] = (),
        subpath: str | None = None,
        rows: int | None = None,
        properties: dict[str, Any] | None = None,
    ) -> str:
        """Write `df` as Parquet into a new snapshot and commit it: as the whole table, or as the part `subpath`.

        A part (e.g. `date=2026-12-01`) replaces only itself. `rows`, when the caller knows it,
        is recorded with the part; `properties` are merged into the table's. Returns the
        snapshot's location.
        """
        table = self.table(key, area)
        snapshot, part = new_snapshot_id(), subpath or WHOLE
        location = table.snapshot_uri(snapshot, part)
        writer = df.write.mode("errorifexists")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.parquet(location)
        table.commit({part: Part(snapshot, rows)}, replace_all=subpath is None, properties=properties)
        return location

    def put_directory(self, local_dir: Path, key: str, area: str = RAW) -> str:
        """Upload a local folder as the new snapshot of `area/key`; returns the snapshot's location."""
        table = self.table(key, area)
        snapshot = new_snapshot_id()
        target = table.snapshot_path(snapshot)
        fs = self.filesystem()
        for folder, _, files in os.walk(local_dir):
            relative = os.path.relpath(folder, local_dir)
            destination = join(target, "" if relative == "." else relative)
            fs.makedirs(destination, exist_ok=True)
            for name in files:
                fs.put_file(os.path.join(folder, name), join(destination, name))
        table.commit({WHOLE: Part(snapshot)}, replace_all=True)
        return table.snapshot_uri(snapshot)

    def current_location(self, key: str, area: str) -> str:
        """Where the committed snapshot of a whole table (e.g. the raw CSVs) is."""
        table = self.table(key, area)
        version = table.current()
        if version is None or WHOLE not in version.parts:
            raise TableNotFoundError(f"Nothing is committed at {table.uri} yet: materialize the asset that writes it.")
        return table.snapshot_uri(version.parts[WHOLE].snapshot)

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
