"""The whole graph materialized with the databricks deployment: every Spark step a run on the workspace stand-in (a
Unity Catalog workspace without DBFS, a service principal signed in with OAuth M2M), the instance on PostgreSQL, the
lake a local URI standing in for ADLS; outputs equal the local run's."""

import tempfile
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter, execute_job
from dagster._core.definitions.reconstruct import ReconstructableRepository

from movierec_dagster.deployment import databricks_tracking
from movierec_dagster.model import registry
from movierec_dagster.resources import Lake
from movierec_dagster.resources.databricks import CLUSTER_LIBRARIES
from movierec_dagster.resources.volume_launcher import STAGING_FOLDER
from tests.databricks.workspace import Workspace
from tests.instance.conftest import postgres_server  # noqa: F401 (the fixture)
from tests.instance.test_postgres_instance import _home as azure_dagster_home
from tests.pipeline import graph_outputs, run_graph

pytestmark = pytest.mark.filterwarnings("ignore::dagster.SupersessionWarning")

SECRETS = {"lake-client-secret": "sp-s3cret-value", "eventhub-listen-connection-string": "Endpoint=sb://x/;SharedAccessKey=hub-s3cret"}
ORCHESTRATOR_SECRETS = {
    "AZURE_CLIENT_SECRET": "orchestrator-sp-s3cret",
    "EVENTHUB_CONNECTION_STRING": "Endpoint=sb://y/;SharedAccessKey=k3y",
    "DATABRICKS_CLIENT_SECRET": "dose-orchestrator-oauth-s3cret",
}
# The orchestrator's service principal (its application id), and the volume the steps are staged on.
ORCHESTRATOR = "5f1c0de4-0rch-357r-a70r-000000000001"
VOLUME = "/Volumes/main/movierec/staging"
# A Spark step per run: the ETL's tables, the ingest, training_ratings, als_model, a day's scoring; the graph
# ingests and scores twice.
EXPECTED_RUNS = 7


def _databricks_environment(workspace: Workspace, work: Path, source: Path, cluster: str = "test-cluster") -> dict[str, str]:
    """The databricks deployment's variables for the stand-in: the lake a file:// URI, events in a shared folder."""
    return {
        "MOVIEREC_DEPLOYMENT": "databricks",
        "DATABRICKS_HOST": workspace.host,
        "DATABRICKS_CLIENT_ID": ORCHESTRATOR,
        "MOVIEREC_DATABRICKS_VOLUME": VOLUME,
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
        # The stand-in has no MLflow: the retrain on the "cluster" records in a store both sides reach.
        "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
        **ORCHESTRATOR_SECRETS,
    }


@pytest.mark.slow
def test_the_graph_on_databricks_equals_the_local_run(spark, graph_run, synthetic_zip, postgres_server, monkeypatch):  # noqa: F811
    expected = graph_outputs(graph_run.defs.resources["lake"], spark)
    with tempfile.TemporaryDirectory(prefix="movierec-databricks-") as work, Workspace(
        spark,
        service_principals={ORCHESTRATOR: ORCHESTRATOR_SECRETS["DATABRICKS_CLIENT_SECRET"]},
        clusters={"test-cluster": {"single_user_name": ORCHESTRATOR}},
        secrets={"movierec": SECRETS},
        cluster_env={"DATABRICKS_RUNTIME_VERSION": "17.3"},
        # The runtime's grpcio pin, which this environment has at another version; test_runtime_packages.py
        # resolves it against the runtime's package set.
        preinstalled=tuple(spec for spec in CLUSTER_LIBRARIES if spec.startswith("grpcio-health-checking==")),
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
        assert {run.creator for run in runs} == {ORCHESTRATOR}, "every run was submitted as the service principal"
        task = runs[0].payload["tasks"][0]
        assert task["existing_cluster_id"] == "test-cluster"
        assert task["spark_python_task"]["python_file"].startswith(f"{VOLUME}/{STAGING_FOLDER}/")
        assert [library["pypi"]["package"] for library in task["libraries"]] == list(CLUSTER_LIBRARIES)
        assert not [path for _, path in workspace.calls() if "/dbfs/" in path], "no DBFS call"
        assert workspace.volume_files() == [], "each step's staged files are removed when it ends"
        # Each step's process took its secrets from the scope, and no secret value reached the workspace.
        assert set(workspace.secret_reads) == {("movierec", key) for key in SECRETS}
        for value in [*SECRETS.values(), *ORCHESTRATOR_SECRETS.values(), workspace.token]:
            assert workspace.find_text(value) == [], f"a secret reached the workspace: {value}"
        assert workspace.find_text("lake-client-secret"), "the scope reference travels in config.pkl"
        assert workspace.unknown == []
        outputs = graph_outputs(Lake(root=lake_uri), spark)
        # The cluster's step recorded its retrain, and the champion alias follows the lake's pointer.
        tracking = databricks_tracking(environment)
        assert tracking.registered_model == "main.movierec.movierec"
        assert tracking.champion_version() == registry.read_champion(Lake(root=lake_uri))["version"]

    assert outputs == expected


def _materialize_the_etl(workspace: Workspace, synthetic_zip: Path, cluster: str, monkeypatch):
    with tempfile.TemporaryDirectory(prefix="movierec-databricks-") as work:
        environment = {
            **_databricks_environment(workspace, Path(work), synthetic_zip, cluster=cluster),
            "DATABRICKS_CLIENT_ID": "",
            "DATABRICKS_CLIENT_SECRET": "",
            "DATABRICKS_TOKEN": workspace.token,
        }
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        monkeypatch.chdir(work)
        # A working directory of its own: Dagster caches the last job it built per code pointer.
        repository = ReconstructableRepository.for_module("movierec_dagster.definitions", "defs", working_directory=work)
        job = repository.get_reconstructable_job("movielens_etl")
        with DagsterInstance.ephemeral() as instance:
            result = execute_job(job, instance, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
    assert failure.step_key == "movielens_tables"
    return failure.step_failure_data.user_failure_data.description


def test_an_unknown_cluster_fails_the_step_saying_why(spark, synthetic_zip, monkeypatch):
    with Workspace(spark) as workspace:
        description = _materialize_the_etl(workspace, synthetic_zip, "no-such-cluster", monkeypatch)
    assert "was not sent to Databricks" in description and "Cluster no-such-cluster does not exist" in description


def test_a_standard_access_cluster_is_refused_before_anything_is_submitted(spark, synthetic_zip, monkeypatch):
    with Workspace(spark, clusters={"shared": {"data_security_mode": "USER_ISOLATION"}}) as workspace:
        description = _materialize_the_etl(workspace, synthetic_zip, "shared", monkeypatch)
        calls = workspace.calls()
    assert "access mode is USER_ISOLATION" in description and "Dedicated" in description
    assert [path for _, path in calls] == ["/api/2.0/preview/scim/v2/Me", "/api/2.1/clusters/get"], "nothing submitted"
