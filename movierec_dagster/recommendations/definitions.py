"""Everything the recommendations domain adds to the code location."""

import os

from dagster import Definitions

from movierec_dagster.model.schedules import ScheduleSettings
from movierec_dagster.recommendations.assets import build_user_recommendations, daily_partitions
from movierec_dagster.recommendations.schedules import daily_recommendations, score_recommendations_job
from movierec_dagster.recommendations.sensors import recommendations_after_retrain


def build_defs(environ: dict[str, str] | None = None) -> Definitions:
    """The recommendations domain; partitions, schedule and sensor use the time zone and hour set in `environ`."""
    settings = ScheduleSettings.from_environ(dict(os.environ if environ is None else environ))
    partitions_def = daily_partitions(settings.timezone)
    user_recommendations = build_user_recommendations(partitions_def)
    job = score_recommendations_job(user_recommendations, partitions_def)
    return Definitions(
        assets=[user_recommendations],
        jobs=[job],
        schedules=[daily_recommendations(job, settings)],
        sensors=[recommendations_after_retrain(job, settings)],
    )

