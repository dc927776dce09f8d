"""Two assets that run on "Databricks" through dagster-databricks' step launcher: one computes with Spark, one fails."""

import hashlib
import os

from dagster import Definitions, MaterializeResult, asset, define_asset_job
from dagster_databricks import databricks_pyspark_step_launcher
from pyspark.sql import SparkSession


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


defs = Definitions(
    assets=[sum_of_squares, broken],
    jobs=[define_asset_job("squares_job", [sum_of_squares]), define_asset_job("broken_job", [broken])],
    resources={"pyspark_step_launcher": databricks_pyspark_step_launcher},
)
