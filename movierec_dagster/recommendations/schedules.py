"""The scoring job and its daily schedule."""

from datetime import datetime
from zoneinfo import ZoneInfo

from dagster import (
    AssetsDefinition,
    DailyPartitionsDefinition,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    define_asset_job,
    schedule,
)

from movierec_dagster.model.schedules import ScheduleSettings


def today_partition(timezone: str, now: datetime | None = None) -> str:
    """The partition key of the current day in `timezone`."""
    moment = now.astimezone(ZoneInfo(timezone)) if now else datetime.now(ZoneInfo(timezone))
    return moment.strftime("%Y-%m-%d")


def score_recommendations_job(
    user_recommendations: AssetsDefinition, partitions_def: DailyPartitionsDefinition
):
    return define_asset_job(
        "score_recommendations",
        selection=[user_recommendations],
        partitions_def=partitions_def,
        description="Score every user's top-10 unseen movies with the champion model, for one day's partition.",
    )


def daily_recommendations(job, settings: ScheduleSettings) -> ScheduleDefinition:
    @schedule(
        name="daily_recommendations",
        job=job,
        cron_schedule=f"0 {settings.recommend_hour} * * *",
        execution_timezone=settings.timezone,
        description=f"Score the day's recommendations at {settings.recommend_hour}:00 {settings.timezone}.",
    )
    def _daily_recommendations(context: ScheduleEvaluationContext) -> RunRequest:
        partition = today_partition(settings.timezone, context.scheduled_execution_time)
        return RunRequest(run_key=f"daily-{partition}", partition_key=partition)

    return _daily_recommendations
