"""Everything the recommendations domain adds to the code location."""

import os

from dagster import Definitions

from movierec_dagster.model.schedules import ScheduleSettings
from movierec_dagster.recommendations.assets import build_user_recommendations
from movierec_dagster.recommendations.automation import recommendations_automation, score_recommendations_job


def build_defs(environ: dict[str, str] | None = None) -> Definitions:
    """The recommendations domain; its day and automation use the time zone and hour set in `environ`."""
    settings = ScheduleSettings.from_environ(dict(os.environ if environ is None else environ))
    user_recommendations = build_user_recommendations(settings)
    return Definitions(
        assets=[user_recommendations],
        jobs=[score_recommendations_job(user_recommendations)],
        sensors=[recommendations_automation(user_recommendations)],
    )
