"""Spark on Azure Databricks: every Spark step sent to a cluster by dagster-databricks' step launcher.

`DatabricksSpark` is the Spark contract and a step launcher in one, so no asset names
a launcher: in the orchestrator it ships the step to a cluster; on the cluster, where
the step's process builds its resources again, it returns the cluster's own session.

The launcher zips the folder it is given for every step, so it gets a folder holding
only the `movierec_dagster` package (never the repo root with `.venv/` and `.git/`).
Secrets reach the cluster only through the secret scope (`secrets_to_env`); what
travels in `env_variables` lands in plain text on DBFS and is never a secret.
"""

import hashlib
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dagster import DagsterEvent, DagsterEventType, Failure
from dagster._core.definitions.step_launcher import StepLauncher
from pydantic import Field
from pyspark import SparkFiles
from pyspark.sql import SparkSession

from movierec_dagster.resources.spark import SparkResource

# The one place that names the Databricks runtime the clusters run, and what comes with it. The pickled
# step context needs the same dagster packages on both sides (the launcher installs ours, pinned) and a
# compatible Python; the Spark code must run on the runtime's Spark (CI runs the Spark tests under it).
DATABRICKS_RUNTIME = "17.3.x-scala2.13"  # 17.3 LTS
RUNTIME_SPARK = "4.0.0"
RUNTIME_PYTHON = "3.12"
# What the steps need on a cluster besides the runtime and the launcher's own pins (dagster,
# dagster-databricks, dagster-pyspark, databricks-sdk): the lake's filesystem layer. The runtime's
# pyspark satisfies dagster-pyspark's `pyspark>=3,<5`, so pip leaves it in place.
CLUSTER_LIBRARIES = ("fsspec==2026.9.0", "adlfs==2026.8.0")
PACKAGE = Path(__file__).resolve().parents[1]
_FINISHED = {DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE}


def ship_package_to_executors(session: SparkSession) -> str:
    """Add this package to the executors' Python path, as a zip named by its content; returns the name.

    The launcher unpacks the package on the driver only, but the executors' Python workers
    import it too: cloudpickle refers to the scorer's functions (mapInArrow) by their module.
    A zip already added to this SparkContext (an existing cluster's, by an earlier step) is not
    added again; a changed package has another name, and Spark puts the newest first on the path.
    """
    modules = {Path(PACKAGE.name, path.relative_to(PACKAGE)).as_posix(): path for path in sorted(PACKAGE.rglob("*.py"))}
    digest = hashlib.sha256()
    for member, path in modules.items():
        digest.update(member.encode() + b"\0" + path.read_bytes())
    name = f"{PACKAGE.name}-{digest.hexdigest()[:16]}.zip"
    if Path(SparkFiles.getRootDirectory(), name).exists():
        return name
    # Kept for the process: Spark's file server serves the executors from this path.
    archive = Path(tempfile.mkdtemp(prefix="movierec-executors-"), name)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        for member, path in modules.items():
            bundle.write(path, member)
    session.sparkContext.addPyFile(str(archive))
    return name


class DatabricksSpark(SparkResource, StepLauncher):
    """Runs each Spark step as one Databricks run, on an existing cluster or a new job cluster."""

    databricks_host: str = Field(description="The workspace URL (DATABRICKS_HOST).")
    databricks_token: str = Field(description="A token of the workspace (DATABRICKS_TOKEN); the orchestrator's only.")
    existing_cluster_id: str = Field(default="", description="Run on this cluster; empty: a new job cluster per step.")
    spark_version: str = DATABRICKS_RUNTIME
    node_type_id: str = "Standard_D4ds_v5"
    num_workers: int = 1
    spark_conf: dict[str, str] = Field(
        default={}, description="A new job cluster's Spark settings; secrets only as {{secrets/<scope>/<key>}}."
    )
    secret_scope: str = Field(description="The Databricks secret scope (Key Vault-backed) the cluster reads secrets from.")
    secrets_to_env: dict[str, str] = Field(
        default={}, description="Environment variable on the cluster -> key in the secret scope."
    )
    env_variables: dict[str, str] = Field(
        default={}, description="Settings the step's process reads on the cluster (plain text on DBFS: no secrets)."
    )
    libraries: list[str] = Field(default=list(CLUSTER_LIBRARIES), description="PyPI packages the steps need.")
    poll_interval_sec: float = 5.0
    max_completion_wait_time_seconds: int = 6 * 3600
    staging_prefix: str = "/dagster_staging"

    def get_or_start(self) -> SparkSession:
        """On the cluster: its session, which the runtime started, with this package on the executors."""
        session = SparkSession.builder.getOrCreate()
        ship_package_to_executors(session)
        return session

    def run_config(self) -> dict[str, Any]:
        """The launcher's `run_config`: the cluster and the libraries."""
        if self.existing_cluster_id:
            cluster: dict[str, Any] = {"existing": self.existing_cluster_id}
        else:
            cluster = {
                "new": {
                    "spark_version": self.spark_version,
                    "nodes": {"node_types": {"node_type_id": self.node_type_id}},
                    "size": {"num_workers": self.num_workers},
                    "spark_conf": dict(self.spark_conf),
                }
            }
        return {
            "cluster": cluster,
            "libraries": [{"pypi": {"package": package}} for package in self.libraries],
            "install_default_libraries": True,
        }

    def launcher(self, package_root: str) -> Any:
        from dagster_databricks import DatabricksPySparkStepLauncher

        return DatabricksPySparkStepLauncher(
            run_config=self.run_config(),
            permissions={},
            databricks_host=self.databricks_host,
            databricks_token=self.databricks_token,
            secrets_to_env_variables=[
                {"name": name, "key": key, "scope": self.secret_scope} for name, key in sorted(self.secrets_to_env.items())
            ],
            env_variables=dict(self.env_variables),
            staging_prefix=self.staging_prefix,
            wait_for_logs=False,
            max_completion_wait_time_seconds=self.max_completion_wait_time_seconds,
            poll_interval_sec=self.poll_interval_sec,
            local_dagster_job_package_path=package_root,
        )

    def launch_step(self, step_context: Any) -> Iterator[DagsterEvent]:
        with tempfile.TemporaryDirectory(prefix="movierec-package-") as package_root:
            shutil.copytree(
                PACKAGE, Path(package_root, PACKAGE.name), ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
            finished = False
            try:
                for event in self.launcher(package_root).launch_step(step_context):
                    finished = finished or event.event_type in _FINISHED
                    yield event
            except Exception as error:
                raise Failure(
                    description=f"The Databricks run of step {step_context.step.key} failed: {error}",
                    allow_retries=True,
                ) from error
            if not finished:
                raise Failure(
                    description=(
                        f"Step {step_context.step.key} ended on Databricks without reporting success or failure: its "
                        "process crashed before Dagster started there, usually an import or unpickling error because "
                        f"the cluster's Python or packages differ from the orchestrator's (runtime {self.spark_version}, "
                        f"Python {RUNTIME_PYTHON} expected). The step's stdout and stderr are in the log above."
                    )
                )
