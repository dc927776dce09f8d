"""The Dagster code location: `defs`, built for the deployment named in MOVIEREC_DEPLOYMENT.

Each domain contributes its own `Definitions` (assets, checks, jobs, schedules,
sensors); this module only merges them and adds the deployment's resources.
"""

from dagster import Definitions

from movierec_dagster.deployment import build_deployment
from movierec_dagster.model.definitions import defs as model_defs
from movierec_dagster.movielens.definitions import defs as movielens_defs
from movierec_dagster.recommendations.definitions import defs as recommendations_defs
from movierec_dagster.stream.definitions import defs as stream_defs

DOMAINS = (movielens_defs, stream_defs, model_defs, recommendations_defs)


def build_definitions(deployment: str | None = None, environ: dict[str, str] | None = None) -> Definitions:
    resolved = build_deployment(deployment, environ)
    return Definitions.merge(*DOMAINS, Definitions(resources=resolved.resources, executor=resolved.executor))


defs = build_definitions()
