"""Checks on the MovieLens tables, evaluated in the step that makes them: keys, rating scale, movies rated, row counts.

The counts behind the checks are aggregates over the rows as they are written (`written_metrics`,
observed on the write itself), so a check costs no second read of the data; only rated-movies-exist
reads the committed ratings' movie ids back, to join them with movies.
"""

from collections.abc import Mapping
from typing import Any

from dagster import AssetCheckResult, AssetCheckSpec
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from movierec_dagster.checks import RATING_ON_SCALE, not_null_spec, rating_on_scale_spec
from movierec_dagster.movielens import transforms
from movierec_dagster.validation import rating_value_failure

KEYS_NOT_NULL = "keys_not_null"
ROW_COUNT_MATCHES_SOURCE = "row_count_matches_source"
RATED_MOVIES_EXIST = "rated_movies_exist"
ORPHAN_SAMPLE = 10
# The names of the aggregates `written_metrics` computes.
ROWS, ROWS_WITH_NULL, RATINGS_OFF_SCALE = "rows", "rows_with_null", "ratings_off_scale"


def check_specs(tables: Mapping[str, Any]) -> list[AssetCheckSpec]:
    """Every table's key and row-count checks; the rating scale and rated movies on ratings."""
    specs = []
    for key, table in tables.items():
        specs.append(not_null_spec(key, KEYS_NOT_NULL, list(table.keys)))
        specs.append(
            AssetCheckSpec(
                ROW_COUNT_MATCHES_SOURCE,
                asset=key,
                blocking=True,
                description=f"Rows in the table plus rows quarantined equal the data rows of {table.file_name}.",
            )
        )
    specs.append(rating_on_scale_spec("ratings"))
    specs.append(AssetCheckSpec(RATED_MOVIES_EXIST, asset="ratings", description="Every rated movie exists in movies."))
    return specs


def written_metrics(key: str, keys: list[str]) -> list[Column]:
    """Aggregates over a table's rows, for `DataFrame.observe` on its write: rows, rows with a null key, ratings off the scale."""
    null_key = F.lit(False)
    for column in keys:
        null_key = null_key | F.col(column).isNull()
    metrics = [F.count(F.lit(1)).alias(ROWS), F.count_if(null_key).alias(ROWS_WITH_NULL)]
    if key == "ratings":
        metrics.append(F.count_if(rating_value_failure(F.col("rating")).isNotNull()).alias(RATINGS_OFF_SCALE))
    return metrics


def table_checks(
    warnings: list[str],
    key: str,
    written: Mapping[str, int],
    *,
    source_rows: int,
    quarantined_rows: int,
    table: DataFrame,
    movies: DataFrame | None,
) -> list[AssetCheckResult]:
    """The checks of table `key` from its `written` metrics; ratings (`table`) are checked against `movies`.

    Warnings go to `warnings`.
    """
    table_rows = written[ROWS]
    results = [
        AssetCheckResult(
            asset_key=key,
            check_name=KEYS_NOT_NULL,
            passed=written[ROWS_WITH_NULL] == 0,
            metadata={"rows_with_null": written[ROWS_WITH_NULL]},
        ),
        AssetCheckResult(
            asset_key=key,
            check_name=ROW_COUNT_MATCHES_SOURCE,
            passed=table_rows + quarantined_rows == source_rows,
            metadata={"source_rows": source_rows, "table_rows": table_rows, "quarantined_rows": quarantined_rows},
        ),
    ]
    if key == "ratings":
        off_scale = written[RATINGS_OFF_SCALE]
        results.append(
            AssetCheckResult(
                asset_key=key, check_name=RATING_ON_SCALE, passed=off_scale == 0, metadata={"ratings_off_scale": off_scale}
            )
        )
        results.append(rated_movies_exist(warnings, table, movies))
    return results


def rated_movies_exist(warnings: list[str], ratings: DataFrame, movies: DataFrame) -> AssetCheckResult:
    """Rated movie ids missing from movies: their number and the smallest few, in one Spark job."""
    orphans = transforms.orphan_movie_ids(ratings, movies)
    found = orphans.agg(
        F.count(F.lit(1)).alias("count"),
        F.slice(F.sort_array(F.collect_list("movie_id")), 1, ORPHAN_SAMPLE).alias("sample"),
    ).first()
    orphan_count, sample = found["count"], list(found["sample"])
    if orphan_count:
        warnings.append(f"{orphan_count} rated movie ids are not in movies, e.g. {sample}")
    return AssetCheckResult(
        asset_key="ratings",
        check_name=RATED_MOVIES_EXIST,
        passed=orphan_count == 0,
        metadata={"unknown_movie_ids": orphan_count, "sample": str(sample)},
    )
