"""The whole graph materialized with the databricks deployment: every Spark step a run on the workspace stand-in,
the instance on PostgreSQL, the lake a local URI standing in for ADLS; outputs equal the local run's."""

import tempfile
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter, execute_job
from dagster._core.definitions.reconstruct import ReconstructableRepository

from movierec_dagster.resources import Lake
from movierec_dagster.resources.databricks import CLUSTER_LIBRARIES
from tests.databricks.workspace import Workspace
from tests.instance.conftest import postgres_server  # noqa: F401 (the fixture)
from tests.instance.test_postgres_instance import _home as azure_dagster_home
from tests.pipeline import graph_outputs, run_graph

pytestmark = pytest.mark.filterwarnings("ignore::dagster.SupersessionWarning")

SECRETS = {"lake-client-secret": "sp-s3cret-value", "eventhub-listen-connection-string": "Endpoint=sb://x/;SharedAccessKey=hub-s3cret"}
ORCHESTRATOR_SECRETS = {"AZURE_CLIENT_SECRET": "orchestrator-sp-s3cret", "EVENTHUB_CONNECTION_STRING": "Endpoint=sb://y/;SharedAccessKey=k3y"}
# A Spark step per run: the ETL's tables, the ingest, training_ratings, als_model, a day's scoring; the graph
# ingests and scores twice.
EXPECTED_RUNS = 7


def _databricks_environment(workspace: Workspace, work: Path, source: Path, cluster: str = "test-cluster") -> dict[str, str]:
    """The databricks deployment's variables for the stand-in: the lake a file:// URI, events in a shared folder."""
    return {
        "MOVIEREC_DEPLOYMENT": "databricks",
        "DATABRICKS_HOST": workspace.host,
        "DATABRICKS_TOKEN": workspace.token,
        "MOVIEREC_DATABRICKS_CLUSTER_ID": cluster,
        "MOVIEREC_LAKE": (work / "lake").as_uri(),
        "MOVIEREC_SECRET_SCOPE": "movierec",
        "AZURE_TENANT_ID": "tenant",
        "AZURE_CLIENT_ID": "client",
        "MOVIELENS_SOURCE": str(source),
        # No Event Hub here: rating events as files in a folder the orchestrator and the "cluster" share.
        "MOVIEREC_LANDING_FOLDER": str(work / "landing"),
        "AZURE_STORAGE_ACCOUNT": "unused",
        "MOVIEREC_COMPUTE_LOG_CONTAINER": "unused",
        **ORCHESTRATOR_SECRETS,
    }


@pytest.mark.slow
def test_the_graph_on_databricks_equals_the_local_run(spark, graph_run, synthetic_zip, postgres_server, monkeypatch):  # noqa: F811
    expected = graph_outputs(graph_run.defs.resources["lake"], spark)
    with tempfile.TemporaryDirectory(prefix="movierec-databricks-") as work, Workspace(
        spark, secrets={"movierec": SECRETS}, cluster_env={"DATABRICKS_RUNTIME_VERSION": "17.3"}
    ) as workspace:
        work = Path(work)
        lake_uri, landing = (work / "lake").as_uri(), work / "landing"
        environment = {**_databricks_environment(workspace, work, synthetic_zip), **postgres_server.dagster_env()}
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        # The step's process puts the working directory first on its path: not the repo's copy of the package.
        monkeypatch.chdir(work)
        repository = ReconstructableRepository.for_module("movierec_dagster.definitions", "defs")
        home = azure_dagster_home(work, local_compute_logs=True, socket_dir=postgres_server.socket_dir)

        run_ids = []
        with DagsterInstance.from_config(str(home)) as instance:

            def run_on_databricks(name, run_config=None):
                result = execute_job(repository.get_reconstructable_job(name), instance, run_config=run_config)
                assert result.success, name
                run_ids.append(result.run_id)

            run_graph(run_on_databricks, landing, graph_run.new_user)

            # The instance is PostgreSQL: a new instance on the same database lists every run.
            with DagsterInstance.from_config(str(home)) as again:
                records = again.get_run_records(RunsFilter(run_ids=run_ids))
                assert {r.dagster_run.run_id for r in records if r.dagster_run.status == DagsterRunStatus.SUCCESS} == set(run_ids)

        runs = list(workspace.runs.values())
        assert len(runs) == EXPECTED_RUNS and {run.result_state for run in runs} == {"SUCCESS"}
        task = runs[0].payload["tasks"][0]
        assert task["existing_cluster_id"] == "test-cluster" and "spark_python_task" in task
        packages = {library["pypi"]["package"] for library in task["libraries"]}
        assert {*CLUSTER_LIBRARIES, "dagster==1.13.27", "dagster-databricks==0.29.27"} <= packages
        # Each step's process took its secrets from the scope, and no secret value reached the workspace.
        assert set(workspace.secret_reads) == {("movierec", key) for key in SECRETS}
        for value in [*SECRETS.values(), *ORCHESTRATOR_SECRETS.values(), workspace.token]:
            assert workspace.find_text(value) == [], f"a secret reached the workspace: {value}"
        assert workspace.find_text("lake-client-secret"), "the scope reference travels in config.pkl"
        assert workspace.unknown == []
        outputs = graph_outputs(Lake(root=lake_uri), spark)

    assert outputs == expected


def test_a_failed_databricks_run_fails_the_step_saying_why(spark, synthetic_zip, monkeypatch):
    with tempfile.TemporaryDirectory(prefix="movierec-databricks-") as work, Workspace(spark) as workspace:
        for name, value in _databricks_environment(workspace, Path(work), synthetic_zip, cluster="no-such-cluster").items():
            monkeypatch.setenv(name, value)
        monkeypatch.chdir(work)
        job = ReconstructableRepository.for_module("movierec_dagster.definitions", "defs").get_reconstructable_job(
            "movielens_etl"
        )
        with DagsterInstance.ephemeral() as instance:
            result = execute_job(job, instance, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
    description = failure.step_failure_data.user_failure_data.description
    assert failure.step_key == "movielens_tables"
    assert "The Databricks run of step movielens_tables failed" in description and "no-such-cluster" in description
