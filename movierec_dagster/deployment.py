"""The one place that knows where movierec runs: it builds the resources and the executor.

Only `local` exists so far: local PySpark, a folder as the lake, SQLite for Dagster.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagster import ExecutorDefinition, in_process_executor

from movierec_dagster.home import LANDING_EVENTS, local_lake
from movierec_dagster.movielens.archive import DEFAULT_SOURCE
from movierec_dagster.resources import LandingFolderSource, LocalLake, LocalSpark, MovieLensSource
from movierec_dagster.resources.lake import LANDING_ARCHIVE

DEPLOYMENTS = ("local",)


class UnknownDeploymentError(ValueError):
    pass


@dataclass(frozen=True)
class Deployment:
    resources: dict[str, Any]
    executor: ExecutorDefinition


def _movielens_location(environ: dict[str, str]) -> str:
    location = environ.get("MOVIELENS_SOURCE", "").strip() or DEFAULT_SOURCE
    if location.startswith(("http://", "https://")):
        return location
    return str(Path(location).expanduser().resolve())


def build_deployment(name: str | None = None, environ: dict[str, str] | None = None) -> Deployment:
    """Resources and executor for the deployment `name` (default: `MOVIEREC_DEPLOYMENT`, else local)."""
    environ = dict(os.environ if environ is None else environ)
    name = name or environ.get("MOVIEREC_DEPLOYMENT", "").strip() or "local"
    if name not in DEPLOYMENTS:
        raise UnknownDeploymentError(
            f"MOVIEREC_DEPLOYMENT={name!r} is not a deployment movierec knows; choose one of {', '.join(DEPLOYMENTS)}."
        )
    lake = LocalLake(root=str(local_lake(environ)))
    return Deployment(
        resources={
            "spark": LocalSpark(master=environ.get("MOVIEREC_SPARK_MASTER", "local[*]")),
            "lake": lake,
            "movielens": MovieLensSource(location=_movielens_location(environ)),
            # The landing folder is this machine's: the source reads it as a plain path.
            "event_source": LandingFolderSource(
                folder=lake.fs_path(*LANDING_EVENTS), archive_folder=lake.fs_path(LANDING_ARCHIVE)
            ),
        },
        # One process for the whole run: every step shares one Spark session (one JVM).
        executor=in_process_executor,
    )
