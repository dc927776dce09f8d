"""Checks on the MovieLens tables, evaluated in the step that makes them: keys, rating scale, movies rated, row counts."""

from collections.abc import Mapping
from typing import Any

from dagster import AssetCheckResult, AssetCheckSpec
from pyspark.sql import DataFrame

from movierec_dagster.checks import not_null, not_null_spec, rating_on_scale, rating_on_scale_spec
from movierec_dagster.movielens import transforms

KEYS_NOT_NULL = "keys_not_null"
ROW_COUNT_MATCHES_SOURCE = "row_count_matches_source"
RATED_MOVIES_EXIST = "rated_movies_exist"
ORPHAN_SAMPLE = 10


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


def table_checks(
    warnings: list[str],
    key: str,
    keys: list[str],
    table: DataFrame,
    *,
    source_rows: int,
    table_rows: int,
    quarantined_rows: int,
    movies: DataFrame | None,
) -> list[AssetCheckResult]:
    """The checks of table `key`; `movies` is the movies table, which ratings are checked against. Warnings go to `warnings`."""
    results = [
        not_null(key, KEYS_NOT_NULL, table, keys),
        AssetCheckResult(
            asset_key=key,
            check_name=ROW_COUNT_MATCHES_SOURCE,
            passed=table_rows + quarantined_rows == source_rows,
            metadata={"source_rows": source_rows, "table_rows": table_rows, "quarantined_rows": quarantined_rows},
        ),
    ]
    if key == "ratings":
        results.append(rating_on_scale(key, table))
        results.append(rated_movies_exist(warnings, table, movies))
    return results


def rated_movies_exist(warnings: list[str], ratings: DataFrame, movies: DataFrame) -> AssetCheckResult:
    orphans = transforms.orphan_movie_ids(ratings, movies)
    orphan_count = orphans.count()
    sample = []
    if orphan_count:
        sample = [row.movie_id for row in orphans.limit(ORPHAN_SAMPLE).collect()]
        warnings.append(f"{orphan_count} rated movie ids are not in movies, e.g. {sample}")
    return AssetCheckResult(
        asset_key="ratings",
        check_name=RATED_MOVIES_EXIST,
        passed=orphan_count == 0,
        metadata={"unknown_movie_ids": orphan_count, "sample": str(sample)},
    )
