"""Daily recommendations: every user's top-10 unseen movies from the champion model, made today.

The table keeps one part per day, `date=YYYY-MM-DD`, in the schedules' time zone. A
day's part is made on that day from the ratings known then and the champion of
then; there are no partitions to backfill, because a past day cannot be made again
as it was (its champion and ratings have moved on). Made again on the same day (a
new champion, say), today's part is replaced.
"""

import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from dagster import (
    AssetExecutionContext,
    AssetSelection,
    AssetsDefinition,
    AutomationCondition,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from movierec_dagster.metadata import ROW_COUNT, committed, data_version, table_metadata
from movierec_dagster.model import registry
from movierec_dagster.model.assets import CHAMPION, TRAINING_RATINGS, merged_event_rows
from movierec_dagster.model.schedules import ScheduleSettings
from movierec_dagster.model.training import merge_ratings
from movierec_dagster.recommendations.scoring import POPULARITY, build_recommendations, popularity_for_everyone
from movierec_dagster.recommendations.checks import recommendation_sanity, recommendation_sanity_spec
from movierec_dagster.resources import Lake, SparkResource
from movierec_dagster.names import DEFAULT_MIN_RATINGS
from movierec_dagster.names import EVENTS as EVENTS_TABLE
from movierec_dagster.names import RECOMMENDATIONS

GROUP = "recommendations"
TABLE = RECOMMENDATIONS


def local_day(timezone: str, now: datetime | None = None) -> str:
    """The current day in `timezone` (YYYY-MM-DD): the day a batch made `now` is for."""
    moment = now.astimezone(ZoneInfo(timezone)) if now else datetime.now(ZoneInfo(timezone))
    return moment.strftime("%Y-%m-%d")


def day_part(day: str) -> str:
    return f"date={day}"


def once_per_champion_and_day(settings: ScheduleSettings) -> AutomationCondition:
    """Make today's batch after the daily cron tick and after every new champion, once for each.

    It waits while training_ratings or the champion is being made (a retrain in progress),
    not for ingests; it needs training_ratings, but no champion (then every user gets the
    popularity baseline).
    """
    upstream_of_the_model = AssetSelection.assets(TRAINING_RATINGS, CHAMPION)
    due = AutomationCondition.cron_tick_passed(
        f"0 {settings.recommend_hour} * * *", settings.timezone
    ) | AutomationCondition.any_deps_updated().allow(AssetSelection.assets(CHAMPION))
    return (
        due.since_last_handled()
        & ~AutomationCondition.any_deps_missing().allow(AssetSelection.assets(TRAINING_RATINGS))
        & ~AutomationCondition.any_deps_in_progress().allow(upstream_of_the_model)
        & ~AutomationCondition.in_progress()
    ).with_label(f"once per champion and day ({settings.recommend_hour}:00 {settings.timezone})")


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
        default=DEFAULT_MIN_RATINGS, description="Users with fewer ratings than this get the popularity fallback instead of the model."
    )


def build_user_recommendations(settings: ScheduleSettings) -> AssetsDefinition:
    """The `user_recommendations` asset, its day and automation in the time zone and hour of `settings`."""

    @asset(
        name=TABLE,
        group_name=GROUP,
        deps=[CHAMPION, TRAINING_RATINGS, EVENTS_TABLE],
        kinds={"spark", "delta"},
        check_specs=[recommendation_sanity_spec],
        automation_condition=once_per_champion_and_day(settings),
    )
    def user_recommendations(
        context: AssetExecutionContext, config: RecommendationConfig, spark: SparkResource, lake: Lake
    ):
        """One row per (user, rank 1-10) for today: an unseen movie, its predicted stars, the model version, the source.

        "Seen" and "every user" include the ratings streamed since the last retrain: a movie
        rated a minute ago is not recommended, and a new user gets the popularity fallback.
        A batch that fails the sanity check is not written: readers keep the last sane one.
        """
        started = time.perf_counter()
        session = spark.session()
        now = datetime.now(UTC)
        day = local_day(settings.timezone, now)
        champion = registry.read_champion(lake)
        version = champion["version"] if champion else None
        if version is None:
            context.log.warning(
                f"No model has passed the gate yet: the batch of {day} gives every user the popularity "
                "baseline (source 'popularity'). Retrain (job retrain_model) to get a champion."
            )
        else:
            context.log.info(f"Scoring the batch of {day} with champion model {version}")
        ratings = lake.read_table(session, TRAINING_RATINGS)
        streamed = _events_since_training(context, lake, session)
        if streamed is not None:
            ratings = merge_ratings(ratings, streamed)
        ratings = ratings.select("user_id", "movie_id", "rating").cache()
        recommendations = None
        try:
            if version is None:
                recommendations = popularity_for_everyone(ratings, generated_at=now)
            else:
                bundle = registry.load_bundle(lake, session, version)
                recommendations = build_recommendations(
                    bundle, ratings, model_version=version, generated_at=now, min_ratings=config.min_ratings
                )
            recommendations = recommendations.cache()
            check = recommendation_sanity(recommendations, ratings)
            if not check.passed:
                yield check
                raise Failure(
                    f"The batch of {day} is not sane ({check.description}) and was not written: "
                    "the dashboard keeps the last sane batch.",
                    metadata=check.metadata,
                )
            written = lake.write_table(recommendations, TABLE, part=day_part(day))
            # The metadata from the cached batch just written: the same rows, without reading them back.
            fallback_users = recommendations.where(F.col("source") == POPULARITY).select("user_id").distinct().count()
            metadata = table_metadata(
                recommendations,
                model_version=version or "none (popularity baseline: no champion yet)",
                users=check.metadata["users_with_recommendations"],
                day=day,
                popularity_fallback_users=MetadataValue.int(fallback_users),
                location=MetadataValue.path(lake.table_uri(TABLE)),
                **committed(written),
                seconds=MetadataValue.float(round(time.perf_counter() - started, 2)),
            )
        finally:
            ratings.unpersist()
            if recommendations is not None:
                recommendations.unpersist()
        context.log.info(
            f"{metadata[ROW_COUNT].value:,} recommendations for {metadata['users'].value:,} users "
            f"({fallback_users} on the popularity fallback)"
        )
        yield MaterializeResult(metadata=metadata, check_results=[check], data_version=data_version(written))

    return user_recommendations
