"""Convert a lake written before Delta Lake to Delta tables, in place: `python -m movierec_dagster.convert_lake [LAKE]`.

The earlier format kept each table as snapshot folders (`snapshot=<id>/`) and a log of numbered JSON
commits (`_log/`), the newest naming each part's snapshot. Each such table under `tables/` and
`quarantine/` is read as its newest commit names it (pyarrow, Hive parts from the folder names)
and written again as a Delta table in the same folder (`tables.write_arrow`); the old snapshots and log are
deleted only after the Delta table is committed, so a conversion stopped half-way is simply run
again. A raw download (`raw/<key>/`) keeps its committed folder, named by `_current.json`.

Run it once, with nothing else running on the lake. LAKE is a folder or a URI; by default
`$MOVIEREC_LAKE`, else the local deployment's lake. ADLS credentials come from the environment, as
for the dashboard.
"""

import json
import os
import sys
from collections.abc import Mapping

import fsspec
import pyarrow as pa
import pyarrow.dataset as ds

from movierec_dagster.names import CURRENT_FOLDER, QUARANTINE, RAW, TABLES
from movierec_dagster.tables import (
    DELTA_LOG,
    OLD_FORMAT_LOG,
    LakeFiles,
    Table,
    WHOLE,
    adls_credentials,
    arrow_filesystem,
    join,
    lake_location,
    write_arrow,
)

_SNAPSHOT = "snapshot"


def _newest_commit(fs: fsspec.AbstractFileSystem, folder: str) -> dict | None:
    log = join(folder, OLD_FORMAT_LOG)
    names = sorted(name for name in fs.ls(log, detail=False) if name.endswith(".json"))
    return json.loads(fs.cat_file(names[-1])) if names else None


def _old_rows(fs: fsspec.AbstractFileSystem, folder: str, commit: dict) -> tuple[pa.Table, list[str]]:
    """The rows the commit names, and the table's partition columns (a part's, or the folders inside a whole snapshot)."""
    parts = commit["parts"]
    folders = [join(folder, f"{_SNAPSHOT}={part['snapshot']}", name) for name, part in sorted(parts.items())]
    files = sorted(f for path in folders if fs.exists(path) for f in fs.find(path) if f.endswith(".parquet"))
    dataset = ds.dataset(
        files, filesystem=arrow_filesystem(fs), format="parquet", partitioning="hive", partition_base_dir=folder
    )
    rows = dataset.to_table()
    if _SNAPSHOT in rows.column_names:
        rows = rows.drop_columns([_SNAPSHOT])
    hive_columns = {piece.split("=", 1)[0] for f in files for piece in f.removeprefix(folder).split("/")[:-1] if "=" in piece}
    columns = sorted(hive_columns - {_SNAPSHOT})
    if WHOLE not in parts:  # a table written in parts: its part columns are text, as the pipeline writes them
        for column in columns:
            rows = rows.set_column(rows.column_names.index(column), column, rows.column(column).cast(pa.string()))
    return _delta_types(rows), columns


def _delta_types(rows: pa.Table) -> pa.Table:
    """Timestamps as Delta keeps them (microseconds, UTC): Spark wrote the old files' as INT96, read as nanoseconds."""
    fields = [
        pa.field(f.name, pa.timestamp("us", tz="UTC")) if pa.types.is_timestamp(f.type) else f for f in rows.schema
    ]
    return rows.cast(pa.schema(fields), safe=False)


def convert_table(files: LakeFiles, area: str, name: str) -> int | None:
    """Convert one table; the rows it holds, or None when it is not in the old format."""
    fs, folder = files.fs, files.path(area, name)
    if not fs.exists(join(folder, OLD_FORMAT_LOG)):
        return None
    opened = files.table(area, name)
    table = Table(opened.uri, opened.storage_options, fs=fs, path=folder, converting=True)
    commit = None if fs.exists(join(folder, DELTA_LOG)) else _newest_commit(fs, folder)
    if commit is not None:  # (a table whose old log names no commit holds nothing to keep)
        rows, columns = _old_rows(fs, folder, commit)
        write_arrow(table, rows, partition_by=columns)
    for entry in fs.ls(folder, detail=False):
        base = entry.rstrip("/").rsplit("/", 1)[-1]
        if base == OLD_FORMAT_LOG or base.startswith(f"{_SNAPSHOT}="):
            fs.rm(entry, recursive=True)
    current = table.current()
    return current.rows if current else 0


def convert_raw(fs: fsspec.AbstractFileSystem, root: str, name: str) -> bool:
    """Name a raw download's committed snapshot with `_current.json`, as the pipeline now does."""
    folder = join(root, RAW, name)
    if not fs.exists(join(folder, OLD_FORMAT_LOG)):
        return False
    commit = _newest_commit(fs, folder)
    if commit and WHOLE in commit["parts"]:
        fs.pipe_file(join(folder, CURRENT_FOLDER), json.dumps({"folder": f"{_SNAPSHOT}={commit['parts'][WHOLE]['snapshot']}"}).encode())
    fs.rm(join(folder, OLD_FORMAT_LOG), recursive=True)
    return True


def _names(fs: fsspec.AbstractFileSystem, folder: str) -> list[str]:
    try:
        return sorted(entry.rstrip("/").rsplit("/", 1)[-1] for entry in fs.ls(folder, detail=False))
    except FileNotFoundError:
        return []


def convert_lake(location: str, credentials: Mapping[str, str] | None = None, log=print) -> dict[str, int]:
    """Convert every old-format table of the lake at `location` (ADLS `credentials` by adlfs's option names);
    the rows of each table converted, by `area/name`."""
    files = LakeFiles(location, credentials)
    fs, root = files.fs, files.root
    converted = {}
    for area in (TABLES, QUARANTINE):
        for name in _names(fs, join(root, area)):
            rows = convert_table(files, area, name)
            if rows is not None:
                converted[f"{area}/{name}"] = rows
                log(f"{area}/{name}: {rows:,} rows, now a Delta table")
    for name in _names(fs, join(root, RAW)):
        if convert_raw(fs, root, name):
            log(f"{RAW}/{name}: its current folder named in {CURRENT_FOLDER}")
    return converted


def main(argv: list[str]) -> int:
    location = argv[0] if argv else lake_location()
    print(f"Converting the lake at {location} to Delta tables")
    converted = convert_lake(location, adls_credentials(os.environ))
    print(f"{len(converted)} table(s) converted" if converted else "Nothing to convert: every table is a Delta table.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
