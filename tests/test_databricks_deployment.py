"""The databricks deployment's configuration: every missing variable named at once, secrets only by scope reference."""

import re
from pathlib import Path

import pytest
from dagster import EnvVar

from movierec_dagster.deployment import SCOPE_SECRETS, MissingSettingsError, build_deployment
from movierec_dagster.resources import EventHubsSource
from movierec_dagster.resources.databricks import RUNTIME_SPARK, DatabricksSpark, ship_package_to_executors
from movierec_dagster.resources.lake import AdlsLake

SECRETS = {"DATABRICKS_TOKEN": "dapi-secret-token", "AZURE_CLIENT_SECRET": "sp-secret", "EVENTHUB_CONNECTION_STRING": (
    "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=hub-secret"
)}
SETTINGS = {
    "MOVIEREC_DEPLOYMENT": "databricks",
    "DATABRICKS_HOST": "https://adb-1.2.azuredatabricks.net",
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
    for name in ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "MOVIEREC_LAKE", "MOVIEREC_SECRET_SCOPE", "EVENTHUB_NAMESPACE",
                 "EVENTHUB_NAME", "MOVIEREC_DATABRICKS_CLUSTER_ID or MOVIEREC_DATABRICKS_NODE_TYPE"):
        assert re.search(rf"- {name}: \w", message), name


def test_on_a_cluster_the_launcher_token_is_not_needed(environ):
    on_cluster = {**environ, "DATABRICKS_RUNTIME_VERSION": "17.3"}
    del on_cluster["DATABRICKS_TOKEN"]
    assert isinstance(build_deployment(environ=on_cluster).resources["spark"], DatabricksSpark)
    del on_cluster["MOVIEREC_LAKE"]
    with pytest.raises(MissingSettingsError, match="MOVIEREC_LAKE") as raised:
        build_deployment(environ=on_cluster)
    assert "DATABRICKS_TOKEN" not in str(raised.value)


def test_the_resources_for_databricks(environ):
    resources = build_deployment(environ=environ).resources
    spark, lake, source = resources["spark"], resources["lake"], resources["event_source"]
    assert isinstance(lake, AdlsLake) and lake.uri("tables") == SETTINGS["MOVIEREC_LAKE"] + "/tables"
    # Values from the environment stay EnvVars until Dagster builds the resource: the UI shows their names.
    assert isinstance(source, EventHubsSource) and source.eventhub == EnvVar("EVENTHUB_NAME")
    assert source.connection_string == EnvVar("EVENTHUB_CONNECTION_STRING") and lake.client_secret == EnvVar("AZURE_CLIENT_SECRET")
    config = spark.run_config()
    assert config["cluster"]["new"]["nodes"] == {"node_types": {"node_type_id": "Standard_D4ds_v5"}}
    assert {lib["pypi"]["package"].split("==")[0] for lib in config["libraries"]} == {"fsspec", "adlfs"}
    host = "account.dfs.core.windows.net"
    conf = config["cluster"]["new"]["spark_conf"]
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
    shipped = repr(spark.env_variables) + repr(spark.run_config())
    for value in SECRETS.values():
        assert value not in shipped
    assert spark.env_variables["MOVIEREC_DEPLOYMENT"] == "databricks"
    assert spark.env_variables["MOVIEREC_LAKE"] == SETTINGS["MOVIEREC_LAKE"]


def test_an_existing_cluster_is_used_as_it_is(environ, monkeypatch):
    monkeypatch.setenv("MOVIEREC_DATABRICKS_CLUSTER_ID", "0101-abc")
    spark = build_deployment(environ={**environ, "MOVIEREC_DATABRICKS_CLUSTER_ID": "0101-abc"}).resources["spark"]
    assert spark.run_config()["cluster"] == {"existing": "0101-abc"}


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
