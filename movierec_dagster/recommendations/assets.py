"""Daily recommendations: every user's top-10 unseen movies from the champion model."""

import time
from datetime import UTC, datetime

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    Config,
    DailyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from movierec_dagster.metadata import ROW_COUNT, table_metadata
from movierec_dagster.model import registry
from movierec_dagster.model.assets import TRAINING_RATINGS, merged_event_rows
from movierec_dagster.model.training import merge_ratings
from movierec_dagster.recommendations.scoring import POPULARITY, build_recommendations, popularity_for_everyone
from movierec_dagster.recommendations.checks import recommendation_sanity, recommendation_sanity_spec
from movierec_dagster.resources import Lake, SparkResource
from movierec_dagster.stream.ingest import EVENTS_TABLE

GROUP = "recommendations"
TABLE = "user_recommendations"
FIRST_DAY = "2024-01-01"


def daily_partitions(timezone: str) -> DailyPartitionsDefinition:
    """One partition per day in `timezone`, today's included (end_offset=1): the schedule scores today."""
    return DailyPartitionsDefinition(start_date=FIRST_DAY, timezone=timezone, end_offset=1)


def partition_subpath(partition_key: str) -> str:
    return f"date={partition_key}"


def _events_since_training(context: AssetExecutionContext, lake: Lake, spark: SparkSession) -> DataFrame | None:
    """rating_events, or None when training_ratings was built from all of them.

    rating_events only grows (a replayed batch rewrites the same rows), so as many rows
    as training_ratings merged means the same rows: no merge needed.
    """
    events = lake.table_version(EVENTS_TABLE)
    if events is None:
        return None
    if merged_event_rows(lake) == events.rows:
        context.log.info(f"{TRAINING_RATINGS} holds all {events.rows:,} rating events")
        return None
    context.log.info(f"Counting the rating events as seen, some of them newer than {TRAINING_RATINGS}")
    return lake.read_table(spark, EVENTS_TABLE, version=events)


class RecommendationConfig(Config):
    min_ratings: int = Field(
        default=5, description="Users with fewer ratings than this get the popularity fallback instead of the model."
    )


def build_user_recommendations(partitions_def: DailyPartitionsDefinition) -> AssetsDefinition:
    """The `user_recommendations` asset on `partitions_def` (its time zone is configuration)."""

    @asset(
        name=TABLE,
        group_name=GROUP,
        deps=["als_model", TRAINING_RATINGS, EVENTS_TABLE],
        partitions_def=partitions_def,
        kinds={"spark", "parquet"},
        check_specs=[recommendation_sanity_spec],
    )
    def user_recommendations(
        context: AssetExecutionContext, config: RecommendationConfig, spark: SparkResource, lake: Lake
    ) -> MaterializeResult:
        """One row per (user, rank 1-10) for the day: an unseen movie, its predicted stars, the model version, the source.

        "Seen" and "every user" include the ratings streamed since the last retrain: a movie
        rated a minute ago is not recommended, and a new user gets the popularity fallback.
        """
        started = time.perf_counter()
        session = spark.session()
        champion = registry.read_champion(lake)
        version = champion["version"] if champion else None
        if version is None:
            context.log.warning(
                f"No model has passed the gate yet: partition {context.partition_key} gives every user the popularity "
                "baseline (source 'popularity'). Retrain (job retrain_model) to get a champion."
            )
        else:
            context.log.info(f"Scoring partition {context.partition_key} with champion model {version}")
        ratings = lake.read_table(session, TRAINING_RATINGS)
        streamed = _events_since_training(context, lake, session)
        if streamed is not None:
            ratings = merge_ratings(ratings, streamed)
        ratings = ratings.select("user_id", "movie_id", "rating").cache()
        try:
            now = datetime.now(UTC)
            if version is None:
                recommendations = popularity_for_everyone(ratings, generated_at=now)
            else:
                bundle = registry.load_bundle(lake, session, version)
                recommendations = build_recommendations(
                    bundle, ratings, model_version=version, generated_at=now, min_ratings=config.min_ratings
                )
            subpath = partition_subpath(context.partition_key)
            location = lake.write_table(recommendations, TABLE, subpath=subpath)
            written = session.read.parquet(location)
            check = recommendation_sanity(written, ratings)
        finally:
            ratings.unpersist()
        fallback_users = written.where(F.col("source") == POPULARITY).select("user_id").distinct().count()
        metadata = table_metadata(
            written,
            model_version=version or "none (popularity baseline: no champion yet)",
            users=check.metadata["users_with_recommendations"],
            popularity_fallback_users=MetadataValue.int(fallback_users),
            location=MetadataValue.path(location),
            seconds=MetadataValue.float(round(time.perf_counter() - started, 2)),
        )
        context.log.info(
            f"{metadata[ROW_COUNT].value:,} recommendations for {metadata['users'].value:,} users "
            f"({fallback_users} on the popularity fallback)"
        )
        return MaterializeResult(metadata=metadata, check_results=[check])

    return user_recommendations
