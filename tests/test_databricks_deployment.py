"""The databricks deployment's configuration: every missing variable named at once, secrets only by scope reference."""

import re
from pathlib import Path

import pytest
from dagster import EnvVar

from movierec_dagster.deployment import SCOPE_SECRETS, MissingSettingsError, build_deployment
from movierec_dagster.resources import EventHubsSource
from movierec_dagster.resources.databricks import (
    RUNTIME_SPARK,
    ClusterRefusedError,
    DatabricksSpark,
    check_existing_cluster,
    ship_package_to_executors,
)
from movierec_dagster.resources.lake import AdlsLake

SECRETS = {"DATABRICKS_CLIENT_SECRET": "dose-oauth-secret", "AZURE_CLIENT_SECRET": "sp-secret", "EVENTHUB_CONNECTION_STRING": (
    "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=hub-secret"
)}
SETTINGS = {
    "MOVIEREC_DEPLOYMENT": "databricks",
    "DATABRICKS_HOST": "https://adb-1.2.azuredatabricks.net",
    "DATABRICKS_CLIENT_ID": "orchestrator-sp",
    "MOVIEREC_DATABRICKS_VOLUME": "/Volumes/main/movierec/staging",
    "MOVIEREC_LAKE": "abfss://lake@account.dfs.core.windows.net/movierec",
    "MOVIEREC_SECRET_SCOPE": "movierec",
    "EVENTHUB_NAMESPACE": "ns",
    "EVENTHUB_NAME": "ratings",
    "AZURE_TENANT_ID": "tenant",
    "AZURE_CLIENT_ID": "client",
    "MOVIEREC_DATABRICKS_NODE_TYPE": "Standard_D4ds_v5",
    **SECRETS,
}
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def environ(monkeypatch) -> dict[str, str]:
    for name, value in SETTINGS.items():
        monkeypatch.setenv(name, value)
    return dict(SETTINGS)


def test_every_missing_variable_is_named_with_its_purpose():
    with pytest.raises(MissingSettingsError) as raised:
        build_deployment("databricks", {})
    message = str(raised.value)
    for name in ("DATABRICKS_HOST", "MOVIEREC_DATABRICKS_VOLUME", "MOVIEREC_LAKE", "MOVIEREC_SECRET_SCOPE",
                 "EVENTHUB_NAMESPACE", "EVENTHUB_NAME", "DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET",
                 "MOVIEREC_DATABRICKS_CLUSTER_ID, MOVIEREC_DATABRICKS_NODE_TYPE or MOVIEREC_DATABRICKS_INSTANCE_POOL_ID"):
        assert re.search(rf"- {name}[ :(]", message), name


def test_a_dbfs_path_is_refused_as_the_staging_volume(environ):
    with pytest.raises(MissingSettingsError, match=r"write /Volumes/<catalog>/<schema>/<volume>"):
        build_deployment(environ={**environ, "MOVIEREC_DATABRICKS_VOLUME": "dbfs:/dagster_staging"})


def test_a_token_serves_instead_of_the_service_principal(environ):
    with_token = {**environ, "DATABRICKS_TOKEN": "dapi-token"}
    del with_token["DATABRICKS_CLIENT_SECRET"]
    spark = build_deployment(environ=with_token).resources["spark"]
    assert spark.databricks_token == EnvVar("DATABRICKS_TOKEN") and spark.client_secret == ""


def test_on_a_cluster_the_launcher_credentials_are_not_needed(environ):
    on_cluster = {**environ, "DATABRICKS_RUNTIME_VERSION": "17.3"}
    del on_cluster["DATABRICKS_CLIENT_SECRET"], on_cluster["DATABRICKS_CLIENT_ID"]
    assert isinstance(build_deployment(environ=on_cluster).resources["spark"], DatabricksSpark)
    del on_cluster["MOVIEREC_LAKE"]
    with pytest.raises(MissingSettingsError, match="MOVIEREC_LAKE") as raised:
        build_deployment(environ=on_cluster)
    assert "DATABRICKS_CLIENT_SECRET" not in str(raised.value)


def test_the_resources_for_databricks(environ):
    resources = build_deployment(environ=environ).resources
    spark, lake, source = resources["spark"], resources["lake"], resources["event_source"]
    assert isinstance(lake, AdlsLake) and lake.uri("tables") == SETTINGS["MOVIEREC_LAKE"] + "/tables"
    # Values from the environment stay EnvVars until Dagster builds the resource: the UI shows their names.
    assert isinstance(source, EventHubsSource) and source.eventhub == EnvVar("EVENTHUB_NAME")
    assert source.connection_string == EnvVar("EVENTHUB_CONNECTION_STRING") and lake.client_secret == EnvVar("AZURE_CLIENT_SECRET")
    assert spark.client_id == EnvVar("DATABRICKS_CLIENT_ID") and spark.client_secret == EnvVar("DATABRICKS_CLIENT_SECRET")
    assert spark.volume == "/Volumes/main/movierec/staging"
    cluster = spark.task_cluster(None, "orchestrator-sp")["new_cluster"]
    assert (cluster["node_type_id"], cluster["data_security_mode"], cluster["single_user_name"]) == (
        "Standard_D4ds_v5", "SINGLE_USER", "orchestrator-sp"
    )
    assert {library.split("==")[0] for library in spark.libraries} == {"dagster", "grpcio-health-checking", "fsspec", "adlfs"}
    host = "account.dfs.core.windows.net"
    conf = cluster["spark_conf"]
    assert conf[f"spark.hadoop.fs.azure.account.oauth2.client.secret.{host}"] == "{{secrets/movierec/lake-client-secret}}"
    assert conf[f"spark.hadoop.fs.azure.account.oauth2.client.id.{host}"] == "client"
    assert spark.secrets_to_env == SCOPE_SECRETS
    assert source.consumer_group == "$Default"


def test_the_ingest_reads_with_the_consumer_group_set_on_the_orchestrator_and_the_cluster(environ):
    environ = {**environ, "EVENTHUB_CONSUMER_GROUP": "dagster-sensor"}
    resources = build_deployment(environ=environ).resources
    assert resources["event_source"].consumer_group == "dagster-sensor"
    assert resources["spark"].env_variables["EVENTHUB_CONSUMER_GROUP"] == "dagster-sensor"


def test_no_secret_travels_in_plain_text_to_a_cluster(environ):
    spark = build_deployment(environ=environ).resources["spark"]
    setup = spark.remote_config()
    shipped = repr(spark.env_variables) + repr(spark.task_cluster(None, "sp")) + repr(vars(setup))
    assert setup.secrets == {name: ("movierec", key) for name, key in SCOPE_SECRETS.items()}
    for value in SECRETS.values():
        assert value not in shipped
    assert spark.env_variables["MOVIEREC_DEPLOYMENT"] == "databricks"
    assert spark.env_variables["MOVIEREC_LAKE"] == SETTINGS["MOVIEREC_LAKE"]


def test_a_new_job_cluster_comes_from_the_instance_pool(environ):
    pooled = {**environ, "MOVIEREC_DATABRICKS_INSTANCE_POOL_ID": "0101-pool"}
    del pooled["MOVIEREC_DATABRICKS_NODE_TYPE"]
    cluster = build_deployment(environ=pooled).resources["spark"].task_cluster(None, "sp")["new_cluster"]
    assert cluster["instance_pool_id"] == cluster["driver_instance_pool_id"] == "0101-pool"
    assert "node_type_id" not in cluster, "the pool decides the node type"


DEDICATED = {"cluster_id": "c1", "state": "RUNNING", "spark_version": "17.3.x-scala2.13",
             "data_security_mode": "SINGLE_USER", "single_user_name": "sp"}


@pytest.mark.parametrize("mode", ["SINGLE_USER", "DATA_SECURITY_MODE_DEDICATED"])
def test_a_dedicated_cluster_on_the_runtime_is_accepted(mode):
    check_existing_cluster({**DEDICATED, "data_security_mode": mode, "spark_version": "17.3.x-photon-scala2.13"}, "sp")


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"data_security_mode": "USER_ISOLATION"}, "access mode is USER_ISOLATION"),
        ({"data_security_mode": "DATA_SECURITY_MODE_STANDARD"}, "edit the cluster's access mode to Dedicated"),
        ({"data_security_mode": None}, "access mode is NONE"),
        ({"single_user_name": "someone@example.com"}, "dedicated to someone@example.com, but the runs run as sp"),
        ({"spark_version": "15.4.x-scala2.12"}, "runs 15.4.x-scala2.12, but the steps need Databricks Runtime 17.3.x"),
    ],
)
def test_a_cluster_that_cannot_run_the_steps_is_refused_saying_why(change, said):
    with pytest.raises(ClusterRefusedError, match=re.escape(said)):
        check_existing_cluster({**DEDICATED, **change}, "sp")


def test_the_runtime_spark_is_the_one_ci_tests_under():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(rf"^RUNTIME_PYSPARK := {re.escape(RUNTIME_SPARK)}$", makefile, re.MULTILINE)


def test_the_local_deployment_reads_none_of_it(tmp_path):
    resources = build_deployment(environ={"MOVIEREC_HOME": str(tmp_path), **SETTINGS, "MOVIEREC_DEPLOYMENT": "local"}).resources
    assert resources["lake"].uri().startswith("file://")
    assert type(resources["spark"]).__name__ == "LocalSpark"


def _zips_on_the_worker_path(_):
    import os
    import sys
    import zipfile

    for entry in sys.path:
        if entry.endswith(".zip") and os.path.isfile(entry):
            if "movierec_dagster/model/topk.py" in zipfile.ZipFile(entry).namelist():
                yield os.path.basename(entry)


def test_on_a_cluster_the_package_reaches_the_executors_once(spark):
    """The launcher unpacks the package on the driver only; the Python workers import the scorer from a zip."""
    name = ship_package_to_executors(spark)
    assert ship_package_to_executors(spark) == name  # a second step on the same cluster adds nothing
    on_workers = set(spark.sparkContext.parallelize(range(2), 2).mapPartitions(_zips_on_the_worker_path).collect())
    assert name in on_workers


def test_the_retrains_are_recorded_in_the_workspaces_mlflow_and_unity_catalog_by_default(environ):
    tracking = build_deployment(environ=environ).resources["model_tracking"]
    assert (tracking.tracking_uri, tracking.registry_uri) == ("databricks", "databricks-uc")
    # The registered model lives in the staging volume's catalog and schema.
    assert (tracking.registered_model, tracking.experiment) == ("main.movierec.movierec", "/Shared/movierec")
    named = build_deployment(
        environ={**environ, "MOVIEREC_MLFLOW_MODEL": "ml.models.recs", "MOVIEREC_MLFLOW_EXPERIMENT": "/Users/sp/recs"}
    ).resources["model_tracking"]
    assert (named.registered_model, named.experiment) == ("ml.models.recs", "/Users/sp/recs")
    # Another store (the tests' stand-in) brings its own registry, and travels to the clusters with the other settings.
    elsewhere = build_deployment(environ={**environ, "MLFLOW_TRACKING_URI": "sqlite:////tmp/mlflow.db"})
    assert elsewhere.resources["model_tracking"].registry_uri is None
    assert elsewhere.resources["spark"].env_variables["MLFLOW_TRACKING_URI"] == "sqlite:////tmp/mlflow.db"
