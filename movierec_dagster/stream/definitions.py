"""Everything the stream domain adds to the code location."""

import os

from dagster import Definitions

from movierec_dagster.stream.assets import rating_events
from movierec_dagster.stream.sensors import build_rating_events_sensor, ingest_rating_events_job, retry_after_failure_seconds


def build_defs(environ: dict[str, str] | None = None) -> Definitions:
    """The stream domain, its sensor's pause after a failed ingest set from `environ` (default: the process environment)."""
    environ = dict(os.environ if environ is None else environ)
    return Definitions(
        assets=[rating_events],
        jobs=[ingest_rating_events_job],
        sensors=[build_rating_events_sensor(retry_after_failure_seconds(environ))],
    )
