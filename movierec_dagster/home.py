"""Where the local deployment keeps its state, in one place for the pipeline, the dashboard and the generator.

Plain Python with nothing to load (no Dagster, no Spark), so the dashboard and the generator start fast.
"""

from pathlib import Path

DEFAULT_HOME = ".movierec"
LAKE = "lake"
LANDING_EVENTS = ("landing", "rating_events")  # the local event source's folder, inside the lake


def movierec_home(environ: dict[str, str]) -> Path:
    """`$MOVIEREC_HOME` (blank counts as unset), else `./.movierec`, as an absolute path."""
    return Path(environ.get("MOVIEREC_HOME", "").strip() or DEFAULT_HOME).expanduser().resolve()


def local_lake(environ: dict[str, str]) -> Path:
    return movierec_home(environ) / LAKE


def local_landing_folder(environ: dict[str, str]) -> Path:
    return local_lake(environ).joinpath(*LANDING_EVENTS)
