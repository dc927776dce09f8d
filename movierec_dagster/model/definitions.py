"""Everything the model domain adds to the code location."""

import os

from dagster import Definitions

from movierec_dagster.model.assets import als_model, training_ratings
from movierec_dagster.model.schedules import ScheduleSettings, nightly_retrain, retrain_model
from movierec_dagster.model.sensors import retrain_sensor


def build_defs(environ: dict[str, str] | None = None) -> Definitions:
    """The model domain, its schedule set from `environ` (default: the process environment)."""
    settings = ScheduleSettings.from_environ(dict(os.environ if environ is None else environ))
    return Definitions(
        assets=[training_ratings, als_model],
        jobs=[retrain_model],
        schedules=[nightly_retrain(settings)],
        sensors=[retrain_sensor],
    )
