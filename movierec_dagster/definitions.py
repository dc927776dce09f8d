"""The Dagster code location: `defs`, built for the deployment named in MOVIEREC_DEPLOYMENT.

Each domain contributes its own `Definitions` (assets, checks, jobs, schedules,
sensors); this module only merges them and adds the deployment's resources.
The domains are imported as modules: Dagster allows one Definitions entry point
at module scope, and that is `defs`.
"""

import os
import warnings
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from dagster import AssetSpec, BetaWarning, Definitions, FreshnessPolicy, PreviewWarning, definitions, with_source_code_references

from movierec_dagster.alerts import build_run_failure_alert
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
    domains = Definitions.merge(
        movielens_domain.defs,
        stream_domain.build_defs(environ),
        model_domain.build_defs(environ),
        recommendations_domain.build_defs(environ),
    )
    alert = build_run_failure_alert(
        environ.get("MOVIEREC_ALERT_WEBHOOK_URL", "").strip(), environ.get("MOVIEREC_DAGSTER_URL", "").strip()
    )
    # Code references and spec mapping are beta and preview in the pinned Dagster (exact pins: no surprise in a
    # patch release); their warnings would print at every load of the code location.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (BetaWarning, PreviewWarning))
        return Definitions(
            assets=with_source_code_references(list(domains.assets or [])),
            asset_checks=domains.asset_checks,
            jobs=domains.jobs,
            schedules=domains.schedules,
            sensors=[*(domains.sensors or []), alert],
            resources={**resolved.resources, **(resources or {})},
            executor=resolved.executor,
        ).map_asset_specs(func=_operational)


# Who answers for the assets, and how old a table may grow before Dagster flags it: the daily batch and the
# nightly candidate are made once a day (22:00 by default), so past a day and a couple of hours one was missed.
OWNERS = ["team:movierec"]
DAILY = FreshnessPolicy.time_window(warn_window=timedelta(hours=25), fail_window=timedelta(hours=48))
FRESHNESS = {"user_recommendations": DAILY, "als_model": DAILY}


def _operational(spec: AssetSpec) -> AssetSpec:
    freshness = FRESHNESS.get(spec.key.to_user_string())
    return spec.replace_attributes(owners=OWNERS, **({"freshness_policy": freshness} if freshness else {}))


@definitions
def defs() -> Definitions:
    """The code location as Dagster loads it: built then (not at import), from the environment of that moment.

    A step's process on a cluster loads it again, so it is built from the cluster's environment there.
    """
    return build_definitions()
