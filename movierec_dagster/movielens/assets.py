"""MovieLens ETL: the archive, then one typed table per CSV."""

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset
from pyspark.sql import DataFrame

from movierec_dagster.metadata import ROW_COUNT, table_metadata
from movierec_dagster.movielens import archive, transforms
from movierec_dagster.resources import LocalLake, LocalSpark, MovieLensSource
from movierec_dagster.resources.lake import QUARANTINE, RAW

GROUP = "movielens"
RAW_FOLDER = (RAW, "movielens")


def raw_csv_uri(lake: LocalLake, file_name: str) -> str:
    return lake.uri(*RAW_FOLDER, file_name)


@asset(group_name=GROUP, kinds={"python"})
def movielens_archive(context: AssetExecutionContext, lake: LocalLake, movielens: MovieLensSource) -> MaterializeResult:
    """The MovieLens CSVs, fetched from MOVIELENS_SOURCE and unpacked under lake/raw/movielens/."""
    context.log.info(f"Fetching MovieLens from {movielens.location}")
    with tempfile.TemporaryDirectory() as folder:
        try:
            unpacked = archive.unpack(movielens.location, Path(folder))
        except archive.MovieLensSourceError as error:
            raise Failure(description=str(error)) from error
        destination = lake.put_directory(unpacked.folder, *RAW_FOLDER)
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


def load_table(
    context: AssetExecutionContext,
    spark: LocalSpark,
    lake: LocalLake,
    *,
    file_name: str,
    columns: tuple[str, ...],
    parse: Callable[[DataFrame], DataFrame],
    partition_by: tuple[str, ...] = (),
) -> MaterializeResult:
    """Parse one MovieLens CSV into the asset's table; malformed rows go to the quarantine."""
    key = context.asset_key.to_user_string()
    started = time.perf_counter()
    session = spark.session()
    try:
        raw = transforms.read_csv(session, raw_csv_uri(lake, file_name), columns)
    except transforms.MovieLensFormatError as error:
        raise Failure(description=str(error)) from error
    parsed = parse(raw).cache()
    try:
        valid, rejected = transforms.split_valid(parsed)
        lake.write_table(valid, key, partition_by=partition_by)
        lake.write_table(rejected, key, area=QUARANTINE)
    finally:
        parsed.unpersist()
    table = lake.read_table(session, key)
    quarantined = lake.read_table(session, key, area=QUARANTINE)
    rejected_count = quarantined.count()
    if rejected_count:
        reasons = {row[transforms.REASON]: row["count"] for row in quarantined.groupBy(transforms.REASON).count().collect()}
        context.log.warning(f"{file_name}: {rejected_count} malformed rows quarantined: {reasons}")
    metadata = table_metadata(
        table,
        rejected_rows=MetadataValue.int(rejected_count),
        rejected_location=MetadataValue.path(lake.table_uri(key, area=QUARANTINE)),
        source_file=file_name,
        location=MetadataValue.path(lake.table_uri(key)),
        seconds=MetadataValue.float(round(time.perf_counter() - started, 2)),
    )
    context.log.info(f"{key}: {metadata[ROW_COUNT].value:,} rows, {rejected_count} rejected")
    return MaterializeResult(metadata=metadata)


@asset(group_name=GROUP, deps=[movielens_archive], kinds={"spark", "parquet"})
def movies(context: AssetExecutionContext, spark: LocalSpark, lake: LocalLake) -> MaterializeResult:
    """One row per movie: movie_id, title, release year (parsed from the title), genres; from movies.csv."""
    return load_table(
        context, spark, lake, file_name="movies.csv", columns=transforms.MOVIES_COLUMNS, parse=transforms.parse_movies
    )


@asset(group_name=GROUP, deps=[movielens_archive], kinds={"spark", "parquet"})
def ratings(context: AssetExecutionContext, spark: LocalSpark, lake: LocalLake) -> MaterializeResult:
    """One row per historical rating: user_id, movie_id, rating, rated_at, year; from ratings.csv, stored by year."""
    return load_table(
        context,
        spark,
        lake,
        file_name="ratings.csv",
        columns=transforms.RATINGS_COLUMNS,
        parse=transforms.parse_ratings,
        partition_by=("year",),
    )


@asset(group_name=GROUP, deps=[movielens_archive], kinds={"spark", "parquet"})
def tags(context: AssetExecutionContext, spark: LocalSpark, lake: LocalLake) -> MaterializeResult:
    """One row per tag a user put on a movie: user_id, movie_id, tag, tagged_at; from tags.csv."""
    return load_table(
        context, spark, lake, file_name="tags.csv", columns=transforms.TAGS_COLUMNS, parse=transforms.parse_tags
    )


@asset(group_name=GROUP, deps=[movielens_archive], kinds={"spark", "parquet"})
def links(context: AssetExecutionContext, spark: LocalSpark, lake: LocalLake) -> MaterializeResult:
    """One row per movie's external ids: movie_id, imdb_id, tmdb_id; from links.csv."""
    return load_table(
        context, spark, lake, file_name="links.csv", columns=transforms.LINKS_COLUMNS, parse=transforms.parse_links
    )
