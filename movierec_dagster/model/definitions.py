"""Everything the model domain adds to the code location."""

import os

from dagster import Definitions

from movierec_dagster.model.assets import als_model, training_ratings
from movierec_dagster.model.schedules import ScheduleSettings, nightly_retrain, retrain_model
from movierec_dagster.model.sensors import build_retrain_sensor, retrain_threshold


def build_defs(environ: dict[str, str] | None = None) -> Definitions:
    """The model domain, its schedule and retrain threshold set from `environ` (default: the process environment)."""
    environ = dict(os.environ if environ is None else environ)
    settings = ScheduleSettings.from_environ(environ)
    return Definitions(
        assets=[training_ratings, als_model],
        jobs=[retrain_model],
        schedules=[nightly_retrain(settings)],
        sensors=[build_retrain_sensor(retrain_threshold(environ))],
    )
