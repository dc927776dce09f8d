"""The Dagster code location: `defs`, built for the deployment named in MOVIEREC_DEPLOYMENT.

Each domain contributes its own `Definitions` (assets, checks, jobs, schedules,
sensors); this module only merges them and adds the deployment's resources.
The domains are imported as modules: Dagster allows one Definitions entry point
at module scope, and that is `defs`.
"""

import os
from collections.abc import Mapping
from typing import Any

from dagster import Definitions, definitions

from movierec_dagster.deployment import build_deployment
from movierec_dagster.model import definitions as model_domain
from movierec_dagster.movielens import definitions as movielens_domain
from movierec_dagster.recommendations import definitions as recommendations_domain
from movierec_dagster.stream import definitions as stream_domain


def build_definitions(
    deployment: str | None = None,
    environ: dict[str, str] | None = None,
    resources: Mapping[str, Any] | None = None,
) -> Definitions:
    """The code location for `deployment`, configured from `environ` (default: the process environment).

    `resources` replace the deployment's of the same keys.
    """
    environ = dict(os.environ if environ is None else environ)
    resolved = build_deployment(deployment, environ)
    return Definitions.merge(
        movielens_domain.defs,
        stream_domain.defs,
        model_domain.build_defs(environ),
        recommendations_domain.build_defs(environ),
        Definitions(resources={**resolved.resources, **(resources or {})}, executor=resolved.executor),
    )


@definitions
def defs() -> Definitions:
    """The code location as Dagster loads it: built then (not at import), from the environment of that moment.

    A step's process on a cluster loads it again, so it is built from the cluster's environment there.
    """
    return build_definitions()
