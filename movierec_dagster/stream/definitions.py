"""Everything the stream domain adds to the code location."""

from dagster import Definitions

from movierec_dagster.stream.assets import rating_events
from movierec_dagster.stream.sensors import ingest_rating_events_job, rating_events_sensor

defs = Definitions(assets=[rating_events], jobs=[ingest_rating_events_job], sensors=[rating_events_sensor])
