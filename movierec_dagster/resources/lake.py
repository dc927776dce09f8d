"""The lake: where tables, models, raw downloads and stream state live.

Every write goes to a staging folder first and is then swapped into place, so a
reader (or a run that is killed half-way) sees the old version or the new one,
never a half-written one.
"""

import json
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource
from pyspark.sql import DataFrame, SparkSession

TABLES = "tables"
QUARANTINE = "quarantine"
RAW = "raw"
MODELS = "models"
CHECKPOINTS = "checkpoints"
LANDING = "landing"
LANDING_ARCHIVE = "landing_archive"
STAGING = "_staging"


class LocalLake(ConfigurableResource):
    """A folder on this machine laid out as the lake (`$MOVIEREC_HOME/lake`)."""

    root: str

    def path(self, *parts: str) -> Path:
        return Path(self.root).joinpath(*parts)

    def uri(self, *parts: str) -> str:
        """The location Spark reads and writes for `parts`."""
        return str(self.path(*parts))

    def table_uri(self, key: str, area: str = TABLES) -> str:
        return self.uri(area, key)

    def table_exists(self, key: str, area: str = TABLES) -> bool:
        self._restore_interrupted_swap(self.path(area, key))
        return self.path(area, key).is_dir()

    def read_table(self, spark: SparkSession, key: str, area: str = TABLES) -> DataFrame:
        if not self.table_exists(key, area):
            raise FileNotFoundError(
                f"Table '{key}' does not exist yet at {self.table_uri(key, area)}: "
                f"materialize the asset '{key}' first."
            )
        return spark.read.parquet(self.table_uri(key, area))

    def read_table_if_exists(self, spark: SparkSession, key: str, area: str = TABLES) -> DataFrame | None:
        """The table, or None while nothing has written it."""
        return self.read_table(spark, key, area) if self.table_exists(key, area) else None

    def write_table(
        self,
        df: DataFrame,
        key: str,
        *,
        area: str = TABLES,
        partition_by: Sequence[str] = (),
        subpath: str | None = None,
    ) -> str:
        """Write `df` as Parquet at `area/key[/subpath]`, replacing what was there atomically."""
        final = self.path(area, key, subpath) if subpath else self.path(area, key)
        staging = self._new_staging(final)
        writer = df.write.mode("errorifexists")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.parquet(str(staging))
        self._swap(staging, final)
        return str(final)

    def put_directory(self, local_dir: Path, *parts: str) -> str:
        """Copy a local folder into the lake at `parts`, replacing what was there atomically."""
        final = self.path(*parts)
        staging = self._new_staging(final)
        shutil.copytree(local_dir, staging)
        self._swap(staging, final)
        return str(final)

    def delete(self, *parts: str) -> None:
        """Remove a file or folder from the lake; nothing happens when it is not there."""
        target = self.path(*parts)
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()

    def write_json(self, value: Any, *parts: str) -> None:
        target = self.path(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
        temporary.write_text(json.dumps(value, indent=2, sort_keys=True, default=str))
        os.replace(temporary, target)

    def read_json(self, *parts: str) -> Any | None:
        target = self.path(*parts)
        if not target.exists():
            return None
        return json.loads(target.read_text())

    def _staging_name(self, final: Path) -> str:
        relative = final.relative_to(self.root)
        return "__".join(relative.parts)

    def _new_staging(self, final: Path) -> Path:
        staging_dir = self.path(STAGING)
        staging_dir.mkdir(parents=True, exist_ok=True)
        self._restore_interrupted_swap(final)
        return staging_dir / f"{self._staging_name(final)}-{uuid.uuid4().hex}"

    def _swap(self, staging: Path, final: Path) -> None:
        final.parent.mkdir(parents=True, exist_ok=True)
        retired = staging.with_name(staging.name + ".retired")
        if final.exists():
            os.rename(final, retired)
        os.rename(staging, final)
        shutil.rmtree(retired, ignore_errors=True)

    def _restore_interrupted_swap(self, final: Path) -> None:
        """Put back the previous version if a run died between the two renames of a swap."""
        if final.exists():
            return
        staging_dir = self.path(STAGING)
        if not staging_dir.is_dir():
            return
        for retired in staging_dir.glob(f"{self._staging_name(final)}-*.retired"):
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(retired, final)
            return
