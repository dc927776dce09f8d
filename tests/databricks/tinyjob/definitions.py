"""Assets that run on "Databricks" through movierec's volume step launcher: one computes with Spark, one fails, one waits."""

import hashlib
import os
import time
from pathlib import Path

from dagster import ConfigurableResource, Definitions, MaterializeResult, asset, define_asset_job
from dagster._core.definitions.step_launcher import StepLauncher
from pyspark.sql import SparkSession


class VolumeLauncher(ConfigurableResource, StepLauncher):
    """The launcher of `movierec_dagster.resources.volume_launcher` on an existing cluster; `package_root` holds
    tinyjob and movierec_dagster (whose `ClusterSetup` the step's process unpickles).

    On the cluster the step's process builds this resource again but never launches: what it imports to
    launch is imported only here, in the orchestrator (the stand-in's driver does not see the project).
    """

    host: str
    token: str
    volume: str
    cluster_id: str
    package_root: str
    secret_scope: str = "s"
    secrets_to_env: dict[str, str] = {"MY_SECRET": "k"}
    env_variables: dict[str, str] = {}
    libraries: list[str] = []
    max_wait_seconds: float = 120.0

    def launch_step(self, step_context):
        from databricks.sdk import WorkspaceClient

        from movierec_dagster.resources.cluster_setup import ClusterSetup
        from movierec_dagster.resources.volume_launcher import VolumeStepLauncher

        secrets = {name: (self.secret_scope, key) for name, key in self.secrets_to_env.items()}
        launcher = VolumeStepLauncher(
            client=WorkspaceClient(host=self.host, token=self.token, auth_type="pat"),
            volume=self.volume,
            cluster={"existing_cluster_id": self.cluster_id},
            libraries=tuple(self.libraries),
            remote_config=ClusterSetup(env_variables=self.env_variables, secrets=secrets),
            package_root=self.package_root,
            poll_interval_sec=0.1,
            max_wait_seconds=self.max_wait_seconds,
        )
        yield from launcher.launch_step(step_context)


@asset(required_resource_keys={"pyspark_step_launcher"})
def sum_of_squares() -> MaterializeResult:
    """1² + ... + 10² by Spark, and what the step saw: its secret's hash (never the value), environment, code."""
    secret = os.environ["MY_SECRET"]
    total = SparkSession.builder.getOrCreate().range(1, 11).selectExpr("sum(id * id) AS total").first().total
    return MaterializeResult(
        metadata={
            "sum_of_squares": total,
            "secret_sha256": hashlib.sha256(secret.encode()).hexdigest(),
            "saw_orchestrator_env": "ORCHESTRATOR_ONLY" in os.environ,
            "code_file": __file__,
        }
    )


@asset(required_resource_keys={"pyspark_step_launcher"})
def broken() -> None:
    """Fails on the cluster."""
    raise ValueError("broken on purpose: table `nowhere` not found")


@asset(required_resource_keys={"pyspark_step_launcher"})
def slow() -> None:
    """Waits for a file named in MOVIEREC_TINYJOB_GO, in short sleeps, then leaves a file beside it: a run to cancel."""
    go = Path(os.environ["MOVIEREC_TINYJOB_GO"])
    while not go.exists():
        time.sleep(0.05)
    go.with_name("finished").touch()


defs = Definitions(
    assets=[sum_of_squares, broken, slow],
    jobs=[
        define_asset_job("squares_job", [sum_of_squares]),
        define_asset_job("broken_job", [broken]),
        define_asset_job("slow_job", [slow]),
    ],
    resources={"pyspark_step_launcher": VolumeLauncher.configure_at_launch()},
)
