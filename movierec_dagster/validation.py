"""Validation every domain shares: the rating scale, reasons for rejecting a row, counts of bad rows. Plain PySpark."""

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from movierec_dagster.event_rules import RATING_NOT_A_NUMBER, RATING_OFF_STEP, RATING_OUT_OF_RANGE
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
    """Why a rating value is invalid (range 0.5-5.0 in steps of 0.5), or null when it is valid.

    The messages are event_rules' (whose `rating_failure` is this check without Spark).
    """
    return first_failure(
        [
            (rating.isNull() | F.isnan(rating), RATING_NOT_A_NUMBER),
            ((rating < MIN_RATING) | (rating > MAX_RATING), RATING_OUT_OF_RANGE),
            ((rating / RATING_STEP) != F.floor(rating / RATING_STEP), RATING_OFF_STEP),
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
