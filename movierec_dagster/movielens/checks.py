"""Checks on the MovieLens tables: keys, the rating scale, referential integrity, row counts."""

from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetChecksDefinition, asset_check

from movierec_dagster.movielens import transforms
from movierec_dagster.movielens.assets import movies, ratings, raw_csv_uri
from movierec_dagster.resources import LocalLake, LocalSpark
from movierec_dagster.resources.lake import QUARANTINE

# table -> (source file, key columns)
TABLE_SOURCES = {
    "movies": ("movies.csv", ["movie_id"]),
    "ratings": ("ratings.csv", ["user_id", "movie_id"]),
    "tags": ("tags.csv", ["user_id", "movie_id"]),
    "links": ("links.csv", ["movie_id"]),
}
ORPHAN_SAMPLE = 10


def _keys_not_null(table: str, keys: list[str]) -> AssetChecksDefinition:
    @asset_check(asset=table, name="keys_not_null", blocking=True, description=f"No row has a null {' or '.join(keys)}.")
    def check(spark: LocalSpark, lake: LocalLake) -> AssetCheckResult:
        nulls = transforms.null_key_count(lake.read_table(spark.session(), table), keys)
        return AssetCheckResult(passed=nulls == 0, metadata={"rows_with_null_key": nulls})

    return check


def _row_count_matches_source(table: str, file_name: str) -> AssetChecksDefinition:
    @asset_check(
        asset=table,
        name="row_count_matches_source",
        blocking=True,
        description=f"Rows in the table plus rows quarantined equal the data rows of {file_name}.",
    )
    def check(spark: LocalSpark, lake: LocalLake) -> AssetCheckResult:
        session = spark.session()
        source_rows = transforms.count_source_rows(session, raw_csv_uri(lake, file_name))
        table_rows = lake.read_table(session, table).count()
        quarantined = lake.read_table(session, table, area=QUARANTINE).count()
        return AssetCheckResult(
            passed=table_rows + quarantined == source_rows,
            metadata={"source_rows": source_rows, "table_rows": table_rows, "quarantined_rows": quarantined},
        )

    return check


@asset_check(asset=ratings, blocking=True, description="Every rating is 0.5 to 5.0 in steps of 0.5.")
def rating_on_scale(spark: LocalSpark, lake: LocalLake) -> AssetCheckResult:
    invalid = transforms.invalid_rating_count(lake.read_table(spark.session(), "ratings"))
    return AssetCheckResult(passed=invalid == 0, metadata={"ratings_off_scale": invalid})


@asset_check(asset=ratings, additional_deps=[movies], description="Every rated movie exists in movies.")
def rated_movies_exist(context: AssetCheckExecutionContext, spark: LocalSpark, lake: LocalLake) -> AssetCheckResult:
    session = spark.session()
    orphans = transforms.orphan_movie_ids(lake.read_table(session, "ratings"), lake.read_table(session, "movies"))
    orphan_count = orphans.count()
    sample = []
    if orphan_count:
        sample = [row.movie_id for row in orphans.limit(ORPHAN_SAMPLE).collect()]
        context.log.warning(f"{orphan_count} rated movie ids are not in movies, e.g. {sample}")
    return AssetCheckResult(
        passed=orphan_count == 0, metadata={"unknown_movie_ids": orphan_count, "sample": str(sample)}
    )


movielens_checks = [
    rating_on_scale,
    rated_movies_exist,
    *(_keys_not_null(table, keys) for table, (_, keys) in TABLE_SOURCES.items()),
    *(_row_count_matches_source(table, file_name) for table, (file_name, _) in TABLE_SOURCES.items()),
]
