"""Spark on Azure Databricks: every Spark step sent to a dedicated-access cluster, staged on a Unity Catalog volume.

`DatabricksSpark` is the Spark contract and a step launcher in one, so no asset names
a launcher: in the orchestrator it ships the step to a cluster (`VolumeStepLauncher`:
the Files API and the Jobs API, never DBFS); on the cluster, where the step's process
builds its resources again, it returns the cluster's own session.

Before anything is staged, the cluster is checked: an existing cluster must be dedicated
(single-user) access for the identity the runs run as, on the pinned runtime; a new job
cluster is requested that way. The steps use the SparkContext (`broadcast`, `addPyFile`,
`setCheckpointDir`), which standard (shared) access and serverless refuse.

The launcher ships a folder holding only the `movierec_dagster` package (never the repo
root with `.venv/` and `.git/`). Secrets reach the cluster only through the secret scope
(`secrets_to_env`); what travels in `env_variables` is staged in plain text and is never a secret.
"""

import hashlib
import importlib.metadata
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

from movierec_dagster.resources.cluster_setup import ClusterSetup
from movierec_dagster.resources.spark import SparkResource

# The step's process on the cluster builds this resource again, so the module imports only what the
# cluster has: the Databricks SDK and the launcher (dagster-databricks, dagster-pyspark) are the
# orchestrator's, imported where it launches.

# The one place that names the Databricks runtime the clusters run, and what comes with it. The pickled
# step context needs the same dagster packages on both sides and a compatible Python; the Spark code
# must run on the runtime's Spark (CI runs the Spark tests under it).
DATABRICKS_RUNTIME = "17.3.x-scala2.13"  # 17.3 LTS
RUNTIME_SPARK = "4.0.0"
RUNTIME_PYTHON = "3.12"
# Every package the cluster installs on top of the runtime (docs/databricks-runtime.md; a test resolves them
# against the runtime's package set). dagster at the orchestrator's version: the step context is pickled.
# grpcio-health-checking at the runtime's grpcio: dagster allows any below 1.82, and pip would take the
# newest, which brings protobuf 6, which the runtime's google-api-core refuses. The lake's filesystem layer.
CLUSTER_LIBRARIES = (
    f"dagster=={importlib.metadata.version('dagster')}",
    "grpcio-health-checking==1.67.0",
    "fsspec==2026.9.0",
    "adlfs==2026.8.0",
)
# Dedicated (single-user) access: older API answers say SINGLE_USER, newer ones DATA_SECURITY_MODE_DEDICATED.
DEDICATED_ACCESS = ("SINGLE_USER", "DATA_SECURITY_MODE_DEDICATED")
PACKAGE = Path(__file__).resolve().parents[1]
_FINISHED = {DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE}


class ClusterRefusedError(ValueError):
    """The configured cluster cannot run the steps; the message names what is wrong and the fix."""


def runtime_line(spark_version: str) -> str:
    """A runtime's release line, e.g. `17.3.x` for `17.3.x-scala2.13` and `17.3.x-photon-scala2.13`."""
    return spark_version.split("-", 1)[0]


def check_existing_cluster(cluster: dict[str, Any], identity: str, runtime: str = DATABRICKS_RUNTIME) -> None:
    """Refuse a cluster (as `clusters/get` answers) that cannot run the steps as `identity`, saying why and the fix."""
    name = f"cluster {cluster.get('cluster_id')} ({cluster.get('cluster_name', '')})"
    problems = []
    mode = cluster.get("data_security_mode") or "NONE"
    if mode not in DEDICATED_ACCESS:
        problems.append(
            f"its access mode is {mode}, but the steps use the SparkContext (broadcast, addPyFile, setCheckpointDir), "
            "which only dedicated (single user) access allows: edit the cluster's access mode to Dedicated"
        )
    elif cluster.get("single_user_name") and cluster["single_user_name"] != identity:
        problems.append(
            f"it is dedicated to {cluster['single_user_name']}, but the runs run as {identity}: dedicate it to "
            f"{identity}, or use another cluster"
        )
    version = cluster.get("spark_version", "")
    if runtime_line(version) != runtime_line(runtime):
        problems.append(
            f"it runs {version or 'an unknown runtime'}, but the steps need Databricks Runtime {runtime_line(runtime)} "
            f"({runtime}: Spark {RUNTIME_SPARK}, Python {RUNTIME_PYTHON}, which the pickled step context needs): "
            "change its runtime, or use a new job cluster"
        )
    if cluster.get("state") in ("ERROR", "UNKNOWN"):
        problems.append(f"its state is {cluster['state']}: {cluster.get('state_message', '')}")
    if problems:
        raise ClusterRefusedError(f"Databricks {name} cannot run movierec's steps: " + "; ".join(problems) + ".")


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
    """Runs each Spark step as one Databricks run, on an existing dedicated cluster or a new dedicated job cluster."""

    databricks_host: str = Field(description="The workspace URL (DATABRICKS_HOST).")
    client_id: str = Field(default="", description="A service principal's OAuth client id (DATABRICKS_CLIENT_ID).")
    client_secret: str = Field(default="", description="Its OAuth secret (DATABRICKS_CLIENT_SECRET); the orchestrator's only.")
    databricks_token: str = Field(
        default="", description="A personal access token instead (DATABRICKS_TOKEN); the orchestrator's only."
    )
    volume: str = Field(description="The Unity Catalog volume steps are staged on, /Volumes/<catalog>/<schema>/<volume>.")
    existing_cluster_id: str = Field(default="", description="Run on this cluster; empty: a new job cluster per step.")
    instance_pool_id: str = Field(default="", description="A new job cluster's instance pool (its node type with it).")
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
        default={}, description="Settings the step's process reads on the cluster (staged in plain text: no secrets)."
    )
    libraries: list[str] = Field(default=list(CLUSTER_LIBRARIES), description="PyPI packages the steps need.")
    poll_interval_sec: float = 5.0
    max_completion_wait_time_seconds: int = 6 * 3600

    def get_or_start(self) -> SparkSession:
        """On the cluster: its session, which the runtime started, with this package on the executors."""
        session = SparkSession.builder.getOrCreate()
        ship_package_to_executors(session)
        return session

    def workspace_client(self) -> Any:
        """The orchestrator's client: OAuth M2M with the service principal's secret, else the token."""
        from databricks.sdk import WorkspaceClient

        if self.client_id and self.client_secret:
            return WorkspaceClient(
                host=self.databricks_host, client_id=self.client_id, client_secret=self.client_secret, auth_type="oauth-m2m"
            )
        if self.databricks_token:
            return WorkspaceClient(host=self.databricks_host, token=self.databricks_token, auth_type="pat")
        raise ClusterRefusedError(
            "No Databricks credentials: set DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET (a service principal's "
            "OAuth secret), or DATABRICKS_TOKEN."
        )

    def task_cluster(self, client: Any, identity: str) -> dict[str, Any]:
        """The task's cluster: the existing one once it is checked, else a new dedicated job cluster for `identity`."""
        from databricks.sdk.errors import DatabricksError

        if self.existing_cluster_id:
            try:
                cluster = client.api_client.do("GET", "/api/2.1/clusters/get", query={"cluster_id": self.existing_cluster_id})
            except DatabricksError as error:
                raise ClusterRefusedError(
                    f"MOVIEREC_DATABRICKS_CLUSTER_ID={self.existing_cluster_id}: {error} (is the id right, and may "
                    f"{identity} attach to it?)"
                ) from error
            check_existing_cluster(cluster, identity, self.spark_version)
            return {"existing_cluster_id": self.existing_cluster_id}
        cluster = {
            "spark_version": self.spark_version,
            "num_workers": self.num_workers,
            "data_security_mode": "SINGLE_USER",
            "single_user_name": identity,
            "spark_conf": dict(self.spark_conf),
            "custom_tags": {"project": "movierec"},
        }
        if self.instance_pool_id:
            cluster.update(instance_pool_id=self.instance_pool_id, driver_instance_pool_id=self.instance_pool_id)
        else:
            cluster["node_type_id"] = self.node_type_id
        return {"new_cluster": cluster}

    def remote_config(self) -> ClusterSetup:
        """What the step's process sets up on the cluster: plain settings, and secrets by scope reference only."""
        secrets = {name: (self.secret_scope, key) for name, key in self.secrets_to_env.items()}
        return ClusterSetup(env_variables=self.env_variables, secrets=secrets)

    def launch_step(self, step_context: Any) -> Iterator[DagsterEvent]:
        from databricks.sdk.errors import DatabricksError

        from movierec_dagster.resources.volume_launcher import VolumeStepLauncher

        key = step_context.step.key
        try:
            client = self.workspace_client()
            identity = client.current_user.me().user_name
            cluster = self.task_cluster(client, identity)
        except (ClusterRefusedError, DatabricksError) as error:
            raise Failure(description=f"Step {key} was not sent to Databricks: {error}", allow_retries=False) from error
        step_context.log.info(f"Step {key} runs on Databricks as {identity}: {cluster}")
        with tempfile.TemporaryDirectory(prefix="movierec-package-") as package_root:
            shutil.copytree(
                PACKAGE, Path(package_root, PACKAGE.name), ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
            launcher = VolumeStepLauncher(
                client=client,
                volume=self.volume,
                cluster=cluster,
                libraries=tuple(self.libraries),
                remote_config=self.remote_config(),
                package_root=package_root,
                poll_interval_sec=self.poll_interval_sec,
                max_wait_seconds=self.max_completion_wait_time_seconds,
            )
            finished = False
            try:
                for event in launcher.launch_step(step_context):
                    finished = finished or event.event_type in _FINISHED
                    yield event
            except Exception as error:
                raise Failure(
                    description=f"The Databricks run of step {key} failed: {error}", allow_retries=True
                ) from error
            if not finished:
                raise Failure(
                    description=(
                        f"Step {key} ended on Databricks without reporting success or failure: its process crashed "
                        "before Dagster started there, usually an import or unpickling error because the cluster's "
                        f"Python or packages differ from the orchestrator's (runtime {self.spark_version}, Python "
                        f"{RUNTIME_PYTHON} expected). The step's stdout and stderr are in the log above."
                    )
                )
