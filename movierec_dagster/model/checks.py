"""Checks on what the model trains on, evaluated in training_ratings' step: one rating per (user, movie), ratings on the scale."""

from dagster import AssetCheckResult, AssetCheckSpec
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from movierec_dagster.checks import rating_on_scale, rating_on_scale_spec
from movierec_dagster.names import TRAINING_RATINGS

ONE_RATING_PER_USER_AND_MOVIE = "one_rating_per_user_and_movie"

training_ratings_check_specs = [
    AssetCheckSpec(
        ONE_RATING_PER_USER_AND_MOVIE,
        asset=TRAINING_RATINGS,
        blocking=True,
        description="Exactly one rating per (user, movie): the latest.",
    ),
    rating_on_scale_spec(TRAINING_RATINGS),
]


def training_ratings_checks(table: DataFrame) -> list[AssetCheckResult]:
    duplicated = table.groupBy("user_id", "movie_id").count().where(F.col("count") > 1).count()
    return [
        AssetCheckResult(
            asset_key=TRAINING_RATINGS,
            check_name=ONE_RATING_PER_USER_AND_MOVIE,
            passed=duplicated == 0,
            metadata={"duplicated_pairs": duplicated},
        ),
        rating_on_scale(TRAINING_RATINGS, table),
    ]
