"""Checks every domain evaluates in its asset's step: the rating scale, and columns that are never null.

A table that does not exist yet (None) has nothing wrong in it.
"""

from dagster import AssetCheckResult, AssetCheckSpec
from pyspark.sql import DataFrame

from movierec_dagster.validation import invalid_rating_count, null_key_count

RATING_ON_SCALE = "rating_on_scale"


def rating_on_scale_spec(asset: str) -> AssetCheckSpec:
    return AssetCheckSpec(
        RATING_ON_SCALE, asset=asset, blocking=True, description=f"Every rating in {asset} is 0.5 to 5.0 in steps of 0.5."
    )


def rating_on_scale(asset: str, table: DataFrame | None) -> AssetCheckResult:
    invalid = 0 if table is None else invalid_rating_count(table)
    return AssetCheckResult(
        asset_key=asset, check_name=RATING_ON_SCALE, passed=invalid == 0, metadata={"ratings_off_scale": invalid}
    )


def not_null_spec(asset: str, name: str, columns: list[str]) -> AssetCheckSpec:
    return AssetCheckSpec(name, asset=asset, blocking=True, description=f"No row has a null {' or '.join(columns)}.")


def not_null(asset: str, name: str, table: DataFrame | None, columns: list[str]) -> AssetCheckResult:
    nulls = 0 if table is None else null_key_count(table, columns)
    return AssetCheckResult(asset_key=asset, check_name=name, passed=nulls == 0, metadata={"rows_with_null": nulls})
