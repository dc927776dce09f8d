"""Everything the stream domain adds to the code location."""

from dagster import Definitions

from movierec_dagster.stream.assets import rating_events
from movierec_dagster.stream.checks import stream_checks
from movierec_dagster.stream.sensors import ingest_rating_events_job, rating_events_sensor, retrain_sensor

# retrain_sensor targets the model domain's `retrain_model` job by name.
defs = Definitions(
    assets=[rating_events],
    asset_checks=stream_checks,
    jobs=[ingest_rating_events_job],
    sensors=[rating_events_sensor, retrain_sensor],
)
