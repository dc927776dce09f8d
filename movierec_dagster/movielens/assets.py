"""MovieLens ETL: the archive, then its four typed tables in one step, each checked as it is made."""

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import fsspec
from dagster import (
    AssetExecutionContext,
    AssetSpec,
    Failure,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
    asset,
    multi_asset,
)
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from movierec_dagster.metadata import PREVIEW_ROWS, ROW_COUNT, committed, data_version, markdown_table
from movierec_dagster.movielens import archive, checks, transforms
from movierec_dagster.names import LINKS, MOVIES, RATINGS, TAGS
from movierec_dagster.resources import Lake, MovieLensSource, SparkResource
from movierec_dagster.resources.lake import QUARANTINE, RAW
from movierec_dagster.tables import join

GROUP = "movielens"
ARCHIVE_KEY = "movielens"  # the raw CSVs' folder: lake/raw/movielens/


@dataclass(frozen=True)
class SourceTable:
    """A table made from one MovieLens CSV."""

    file_name: str
    columns: tuple[str, ...]
    parse: Callable[[DataFrame], DataFrame]
    keys: tuple[str, ...]
    description: str
    partition_by: tuple[str, ...] = ()


SOURCE_TABLES = {
    MOVIES: SourceTable(
        "movies.csv", transforms.MOVIES_COLUMNS, transforms.parse_movies, ("movie_id",),
        "One row per movie: movie_id, title, release year (parsed from the title), genres; from movies.csv.",
    ),
    RATINGS: SourceTable(
        "ratings.csv", transforms.RATINGS_COLUMNS, transforms.parse_ratings, ("user_id", "movie_id"),
        "One row per historical rating: user_id, movie_id, rating, rated_at, year; from ratings.csv, stored by year.",
        partition_by=("year",),
    ),
    TAGS: SourceTable(
        "tags.csv", transforms.TAGS_COLUMNS, transforms.parse_tags, ("user_id", "movie_id"),
        "One row per tag a user put on a movie: user_id, movie_id, tag, tagged_at; from tags.csv.",
    ),
    LINKS: SourceTable(
        "links.csv", transforms.LINKS_COLUMNS, transforms.parse_links, ("movie_id",),
        "One row per movie's external ids: movie_id, imdb_id, tmdb_id; from links.csv.",
    ),
}


def raw_csv_uri(lake: Lake, file_name: str) -> str:
    return join(lake.current_location(ARCHIVE_KEY, RAW), file_name)


@asset(group_name=GROUP, kinds={"python"})
def movielens_archive(context: AssetExecutionContext, lake: Lake, movielens: MovieLensSource) -> MaterializeResult:
    """The MovieLens CSVs, fetched from MOVIELENS_SOURCE and unpacked under lake/raw/movielens/."""
    context.log.info(f"Fetching MovieLens from {movielens.location}")
    with tempfile.TemporaryDirectory() as folder:
        try:
            unpacked = archive.unpack(movielens.location, Path(folder))
        except archive.MovieLensSourceError as error:
            raise Failure(description=str(error)) from error
        destination = lake.put_directory(unpacked.folder, ARCHIVE_KEY, RAW)
    context.log.info(f"Unpacked {', '.join(unpacked.files)} into {destination}")
    return MaterializeResult(
        metadata={
            "source": unpacked.source,
            "sha256": unpacked.sha256 or "(folder source: no archive checksum)",
            "md5": unpacked.md5 or "(folder source: no archive checksum)",
            "location": MetadataValue.path(destination),
            "files": MetadataValue.md(
                "\n".join(f"- `{name}`: {size:,} bytes" for name, size in unpacked.files.items())
            ),
        }
    )


@dataclass
class LoadedTable:
    """One table's materialization, and what its load has to say in the run's log."""

    result: MaterializeResult
    info: list[str]
    warnings: list[str]


def load_table(session: SparkSession, lake: Lake, key: str, movies: Callable[[], DataFrame | None]) -> LoadedTable:
    """Parse one MovieLens CSV into its table, malformed rows to the quarantine, and check the result.

    One read of the CSV in the usual case: the valid rows are written, and every count the
    metadata and the checks need is observed on that write (the rows parsed, rejected and
    written; null keys; ratings off the scale). Only when rows were rejected is the CSV read a
    second time, for the quarantine. `movies` gives the committed movies table, which ratings
    are checked against. Runs in a worker thread, so it collects its log lines for the step's
    thread to log.
    """
    info, warnings = [], []
    source = SOURCE_TABLES[key]
    started = time.perf_counter()
    source_uri = raw_csv_uri(lake, source.file_name)
    try:
        raw = transforms.read_csv(session, source_uri, source.columns, first_line=_first_line(lake, source_uri))
    except transforms.MovieLensFormatError as error:
        raise Failure(description=str(error)) from error
    parsed_rows, written_rows = Observation(f"{key}_parsed"), Observation(f"{key}_written")
    parsed = source.parse(raw).observe(
        parsed_rows, F.count(F.lit(1)).alias("rows"), F.count(transforms.REASON).alias("rejected")
    )
    valid, _ = transforms.split_valid(parsed)
    version = lake.write_table(
        valid.observe(written_rows, *checks.written_metrics(key, list(source.keys))), key, partition_by=source.partition_by
    )
    source_rows, written = parsed_rows.get["rows"], written_rows.get
    _, rejected = transforms.split_valid(source.parse(raw))
    if parsed_rows.get["rejected"]:
        quarantined_rows = Observation(f"{key}_quarantined")
        lake.write_table(rejected.observe(quarantined_rows, F.count(F.lit(1)).alias("rows")), key, area=QUARANTINE)
        rejected_count = quarantined_rows.get["rows"]
        quarantined = lake.read_table(session, key, area=QUARANTINE)
        reasons = {row[transforms.REASON]: row["count"] for row in quarantined.groupBy(transforms.REASON).count().collect()}
        warnings.append(f"{source.file_name}: {rejected_count} malformed rows quarantined: {reasons}")
    else:  # an empty quarantine, committed without reading the CSV again
        lake.write_table(rejected.limit(0), key, area=QUARANTINE)
        rejected_count = 0
    table = lake.read_table(session, key, version=version)
    metadata = {
        ROW_COUNT: MetadataValue.int(written[checks.ROWS]),
        "dagster/column_schema": column_schema(table),
        "preview": MetadataValue.md(markdown_table([row.asDict() for row in table.limit(PREVIEW_ROWS).collect()])),
        "rejected_rows": MetadataValue.int(rejected_count),
        "rejected_location": MetadataValue.path(lake.table_uri(key, area=QUARANTINE)),
        "source_file": source.file_name,
        "location": MetadataValue.path(lake.table_uri(key)),
        **committed(version),
    }
    results = checks.table_checks(
        warnings,
        key,
        written,
        source_rows=source_rows,
        quarantined_rows=rejected_count,
        table=table,
        movies=movies() if key == "ratings" else None,
    )
    metadata["seconds"] = MetadataValue.float(round(time.perf_counter() - started, 2))
    info.append(f"{key}: {written[checks.ROWS]:,} rows, {rejected_count} rejected")
    result = MaterializeResult(asset_key=key, metadata=metadata, check_results=results, data_version=data_version(version))
    return LoadedTable(result, info, warnings)


def _first_line(lake: Lake, uri: str) -> str:
    """The first line of a raw CSV ("" when the file is empty), read without Spark."""
    with fsspec.open(uri, "rb", **lake.storage_options()) as handle:
        line = handle.readline()
    return line.decode("utf-8", errors="replace").rstrip("\r\n")


def column_schema(table: DataFrame) -> TableSchema:
    """The table's columns and types, as the Dagster UI shows them."""
    return TableSchema(columns=[TableColumn(name=f.name, type=f.dataType.simpleString()) for f in table.schema.fields])


@multi_asset(
    specs=[
        AssetSpec(key, group_name=GROUP, deps=[movielens_archive], kinds={"spark", "delta"}, description=table.description)
        for key, table in SOURCE_TABLES.items()
    ],
    check_specs=checks.check_specs(SOURCE_TABLES),
)
def movielens_tables(context: AssetExecutionContext, spark: SparkResource, lake: Lake) -> Iterator[MaterializeResult]:
    """The four MovieLens tables, one unit of work, loaded side by side; ratings checked against movies once it is in.

    The tables are small and their Spark jobs short, so one table's jobs fill the gaps
    (planning, commits, the driver's bookkeeping) between another's: about a third faster
    than one after the other on two cores.
    """
    session = spark.session()
    with ThreadPoolExecutor(max_workers=len(SOURCE_TABLES), thread_name_prefix="movielens") as pool:
        movies_loaded = pool.submit(load_table, session, lake, "movies", lambda: None)

        def committed_movies() -> DataFrame:
            movies_loaded.result()
            return lake.read_table(session, "movies")

        loads = {"movies": movies_loaded} | {
            key: pool.submit(load_table, session, lake, key, committed_movies) for key in SOURCE_TABLES if key != "movies"
        }
        for key in SOURCE_TABLES:
            loaded = loads[key].result()
            for line in loaded.info:
                context.log.info(line)
            for line in loaded.warnings:
                context.log.warning(line)
            yield loaded.result
