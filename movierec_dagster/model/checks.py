"""Checks on what the model trains on: one rating per (user, movie), every rating on the scale."""

from dagster import AssetCheckResult, asset_check
from pyspark.sql import functions as F

from movierec_dagster.model.assets import training_ratings
from movierec_dagster.movielens.transforms import invalid_rating_count
from movierec_dagster.resources import LocalLake, LocalSpark


@asset_check(asset=training_ratings, blocking=True, description="Exactly one rating per (user, movie): the latest.")
def one_rating_per_user_and_movie(spark: LocalSpark, lake: LocalLake) -> AssetCheckResult:
    table = lake.read_table(spark.session(), "training_ratings")
    duplicated = table.groupBy("user_id", "movie_id").count().where(F.col("count") > 1).count()
    return AssetCheckResult(passed=duplicated == 0, metadata={"duplicated_pairs": duplicated})


@asset_check(asset=training_ratings, blocking=True, description="Every rating is 0.5 to 5.0 in steps of 0.5.")
def training_rating_on_scale(spark: LocalSpark, lake: LocalLake) -> AssetCheckResult:
    invalid = invalid_rating_count(lake.read_table(spark.session(), "training_ratings"))
    return AssetCheckResult(passed=invalid == 0, metadata={"ratings_off_scale": invalid})


model_checks = [one_rating_per_user_and_movie, training_rating_on_scale]
