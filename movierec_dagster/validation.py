"""Validation every domain shares: the rating scale, reasons for rejecting a row, counts of bad rows. Plain PySpark."""

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from movierec_dagster.names import MAX_RATING, MIN_RATING, RATING_STEP  # noqa: F401 (the domains' rating scale)

REASON = "reject_reason"
RAW = "raw"


def first_failure(checks: list[tuple[Column, str]]) -> Column:
    """The reason of the first failing (condition, reason) pair, else null."""
    reason = F.lit(None).cast("string")
    for failed, message in reversed(checks):
        reason = F.when(failed, F.lit(message)).otherwise(reason)
    return reason


def rating_value_failure(rating: Column) -> Column:
    """Why a rating value is invalid (range 0.5-5.0 in steps of 0.5), or null when it is valid."""
    return first_failure(
        [
            (rating.isNull() | F.isnan(rating), "rating is not a number"),
            ((rating < MIN_RATING) | (rating > MAX_RATING), "rating is outside 0.5-5.0"),
            ((rating / RATING_STEP) != F.floor(rating / RATING_STEP), "rating is not a multiple of 0.5"),
        ]
    )


def invalid_rating_count(ratings: DataFrame) -> int:
    """Ratings outside 0.5-5.0 or off the 0.5 step."""
    return ratings.where(rating_value_failure(F.col("rating")).isNotNull()).count()


def null_key_count(df: DataFrame, keys: list[str]) -> int:
    condition = F.lit(False)
    for key in keys:
        condition = condition | F.col(key).isNull()
    return df.where(condition).count()
