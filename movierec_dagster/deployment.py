"""The one place that knows where movierec runs: it builds the resources and the executor.

- `local` (the default): local PySpark, a folder as the lake, rating events as files, SQLite for Dagster.
- `databricks`: each Spark step on an Azure Databricks cluster (dagster-databricks' step launcher),
  the lake on ADLS Gen2, rating events on Azure Event Hubs; the instance is infra/azure/dagster.yaml.
"""

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagster import EnvVar, ExecutorDefinition, in_process_executor

from movierec_dagster.home import LANDING_EVENTS, local_lake, movierec_home
from movierec_dagster.model.tracking import ModelTracking, default_tracking_uri
from movierec_dagster.resources.movielens_source import DEFAULT_SOURCE
from movierec_dagster.resources import EventHubsSource, LandingFolderSource, Lake, LocalLake, LocalSpark, MovieLensSource
from movierec_dagster.resources.databricks import DATABRICKS_RUNTIME, DatabricksSpark
from movierec_dagster.resources.lake import LANDING_ARCHIVE, AdlsLake
from movierec_dagster.tables import ADLS_CREDENTIALS

DEPLOYMENTS = ("local", "databricks")
# Keys in the secret scope, and the variables they become on a cluster.
SCOPE_SECRETS = {"AZURE_CLIENT_SECRET": "lake-client-secret", "EVENTHUB_CONNECTION_STRING": "eventhub-listen-connection-string"}


class UnknownDeploymentError(ValueError):
    pass


class MissingSettingsError(ValueError):
    """Variables a deployment needs are not set; the message lists each one and what it is for."""


@dataclass(frozen=True)
class Deployment:
    resources: dict[str, Any]
    executor: ExecutorDefinition


@dataclass(frozen=True)
class Setting:
    name: str
    purpose: str


DATABRICKS_SETTINGS = (
    Setting("DATABRICKS_HOST", "the workspace URL, https://adb-<workspace id>.<n>.azuredatabricks.net"),
    Setting("MOVIEREC_DATABRICKS_VOLUME", "the Unity Catalog volume steps are staged on, /Volumes/<catalog>/<schema>/<volume>"),
    Setting("MOVIEREC_LAKE", "the lake, abfss://<container>@<account>.dfs.core.windows.net/<prefix>"),
    Setting("MOVIEREC_SECRET_SCOPE", "the Databricks secret scope (Key Vault-backed) the clusters read secrets from"),
)
# Who the step launcher submits runs as: a service principal's OAuth M2M secret (the default), or a token.
DATABRICKS_CREDENTIALS = (
    "DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET (a service principal's OAuth secret; infra/azure/deploy.sh "
    "makes one), or DATABRICKS_TOKEN (a personal access token): who the step launcher submits runs as"
)
EVENT_HUB_SETTINGS = (
    Setting("EVENTHUB_NAMESPACE", "the Event Hubs namespace, <name> or <name>.servicebus.windows.net"),
    Setting("EVENTHUB_NAME", "the event hub the ratings arrive on"),
)
VOLUME_PATH = re.compile(r"/Volumes/[^/]+/[^/]+/[^/]+")
LANDING_FOLDER = "MOVIEREC_LANDING_FOLDER"  # instead of Event Hubs: event files in a folder both sides reach
CLUSTER_CHOICE = (
    "MOVIEREC_DATABRICKS_CLUSTER_ID, MOVIEREC_DATABRICKS_NODE_TYPE or MOVIEREC_DATABRICKS_INSTANCE_POOL_ID: an "
    "existing dedicated-access cluster's id, or the node type or instance pool of a new job cluster per step (with "
    f"MOVIEREC_DATABRICKS_WORKERS, default 1, and MOVIEREC_DATABRICKS_RUNTIME, default {DATABRICKS_RUNTIME})"
)
CLUSTER_SETTINGS = ("MOVIEREC_DATABRICKS_CLUSTER_ID", "MOVIEREC_DATABRICKS_NODE_TYPE", "MOVIEREC_DATABRICKS_INSTANCE_POOL_ID")


# At most this much MovieLens archive (ml-latest-small's is 1 MB, 100k ratings; 1M ratings make 9 MB) and local
# Spark is tuned for small data: see LocalSpark.small_data.
SMALL_DATA_MAX_ARCHIVE_BYTES = 4 * 1024**2
SPARK_TUNINGS = {"small": True, "large": False}


def _movielens_location(environ: dict[str, str]) -> str:
    location = environ.get("MOVIELENS_SOURCE", "").strip() or DEFAULT_SOURCE
    if "://" in location:
        return location
    return str(Path(location).expanduser().resolve())


def build_deployment(name: str | None = None, environ: dict[str, str] | None = None) -> Deployment:
    """Resources and executor for the deployment `name` (default: `MOVIEREC_DEPLOYMENT`, else local)."""
    environ = dict(os.environ if environ is None else environ)
    name = name or environ.get("MOVIEREC_DEPLOYMENT", "").strip() or "local"
    if name not in DEPLOYMENTS:
        raise UnknownDeploymentError(
            f"MOVIEREC_DEPLOYMENT={name!r} is not a deployment movierec knows; choose one of {', '.join(DEPLOYMENTS)}."
        )
    resources = _databricks(environ) if name == "databricks" else _local(environ)
    # One process runs the whole plan: locally every step shares one Spark session (one JVM); on
    # Databricks the Spark steps each go to a cluster from here, one after another.
    return Deployment(resources=resources, executor=in_process_executor)


def small_data(environ: dict[str, str], movielens_location: str) -> bool:
    """Whether local Spark is tuned for small data: `MOVIEREC_SPARK_TUNING` (small or large), else by the data's size.

    Unset, it is small for ml-latest-small (the default source) and for a local archive of at most
    SMALL_DATA_MAX_ARCHIVE_BYTES, large for anything larger or elsewhere.
    """
    choice = _value(environ, "MOVIEREC_SPARK_TUNING").lower()
    if choice:
        if choice not in SPARK_TUNINGS:
            raise ValueError(f"MOVIEREC_SPARK_TUNING={choice!r}: choose one of {', '.join(SPARK_TUNINGS)}, or leave it unset.")
        return SPARK_TUNINGS[choice]
    if movielens_location == DEFAULT_SOURCE:
        return True
    archive = Path(movielens_location)
    return "://" not in movielens_location and archive.is_file() and archive.stat().st_size <= SMALL_DATA_MAX_ARCHIVE_BYTES


def _local(environ: dict[str, str]) -> dict[str, Any]:
    lake = LocalLake(root=str(local_lake(environ)))
    movielens = _movielens_location(environ)
    return {
        "model_tracking": ModelTracking(
            tracking_uri=_value(environ, "MLFLOW_TRACKING_URI") or default_tracking_uri(movierec_home(environ)),
            registry_uri=_value(environ, "MLFLOW_REGISTRY_URI") or None,
            artifact_location=lake.uri("mlflow"),
        ),
        "spark": LocalSpark(
            master=_value(environ, "MOVIEREC_SPARK_MASTER") or "local[*]",
            driver_memory=_value(environ, "MOVIEREC_SPARK_DRIVER_MEMORY") or "4g",
            small_data=small_data(environ, movielens),
        ),
        "lake": lake,
        "movielens": MovieLensSource(location=movielens),
        # The landing folder is this machine's: the source reads it as a plain path.
        "event_source": LandingFolderSource(
            folder=lake.fs_path(*LANDING_EVENTS), archive_folder=lake.fs_path(LANDING_ARCHIVE)
        ),
    }


def _value(environ: dict[str, str], name: str) -> str:
    return environ.get(name, "").strip()


def _env_or_blank(environ: dict[str, str], name: str) -> Any:
    """EnvVar(name) when it is set (the UI shows the name, never the value), else blank."""
    return EnvVar(name) if _value(environ, name) else ""


def check_databricks_settings(environ: dict[str, str]) -> None:
    """Fail with one message naming every missing or malformed variable and what it is for."""
    on_cluster = bool(_value(environ, "DATABRICKS_RUNTIME_VERSION"))
    settings = DATABRICKS_SETTINGS if _value(environ, LANDING_FOLDER) else DATABRICKS_SETTINGS + EVENT_HUB_SETTINGS
    missing = [f"{setting.name}: {setting.purpose}" for setting in settings if not _value(environ, setting.name)]
    oauth = _value(environ, "DATABRICKS_CLIENT_ID") and _value(environ, "DATABRICKS_CLIENT_SECRET")
    if not (on_cluster or oauth or _value(environ, "DATABRICKS_TOKEN")):
        missing.append(DATABRICKS_CREDENTIALS)
    if not any(_value(environ, name) for name in CLUSTER_SETTINGS):
        missing.append(CLUSTER_CHOICE)
    volume = _value(environ, "MOVIEREC_DATABRICKS_VOLUME")
    if volume and not VOLUME_PATH.fullmatch(volume.rstrip("/")):
        missing.append(
            f"MOVIEREC_DATABRICKS_VOLUME={volume!r} is not a volume's path: write /Volumes/<catalog>/<schema>/<volume> "
            "(DBFS paths do not work on a workspace without DBFS root)"
        )
    if missing:
        raise MissingSettingsError(
            "MOVIEREC_DEPLOYMENT=databricks needs these environment variables (see .env.example and the README's "
            "'Run on Azure Databricks'):\n" + "\n".join(f"  - {line}" for line in missing)
        )


def cluster_environment(environ: dict[str, str]) -> dict[str, str]:
    """What the step's process on a cluster needs to build the same resources: every movierec setting that is no secret."""
    names = {
        "DATABRICKS_HOST", "MOVIELENS_SOURCE", "EVENTHUB_NAMESPACE", "EVENTHUB_NAME", "EVENTHUB_CONSUMER_GROUP",
        "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI",
    }
    shared = {name: value for name, value in environ.items() if name in names or name.startswith("MOVIEREC_")}
    return {name: value for name, value in sorted(shared.items()) if value.strip() and name not in SCOPE_SECRETS}


def _adls_spark_conf(lake_root: str, environ: dict[str, str], scope: str) -> dict[str, str]:
    """A new job cluster's settings for Spark to read the lake with the service principal; the secret by reference."""
    tenant, client = _value(environ, "AZURE_TENANT_ID"), _value(environ, "AZURE_CLIENT_ID")
    if not (lake_root.startswith("abfss://") and tenant and client):
        return {}
    host = lake_root.removeprefix("abfss://").split("/", 1)[0].split("@", 1)[-1]
    return {
        f"spark.hadoop.fs.azure.account.auth.type.{host}": "OAuth",
        f"spark.hadoop.fs.azure.account.oauth.provider.type.{host}": (
            "org.apache.hadoop.fs.azurebfs.oauth2.ClientCredsTokenProvider"
        ),
        f"spark.hadoop.fs.azure.account.oauth2.client.id.{host}": client,
        f"spark.hadoop.fs.azure.account.oauth2.client.secret.{host}": "{{secrets/" + scope + "/lake-client-secret}}",
        f"spark.hadoop.fs.azure.account.oauth2.client.endpoint.{host}": f"https://login.microsoftonline.com/{tenant}/oauth2/token",
    }


def _databricks(environ: dict[str, str]) -> dict[str, Any]:
    check_databricks_settings(environ)
    lake_root, scope = _value(environ, "MOVIEREC_LAKE"), _value(environ, "MOVIEREC_SECRET_SCOPE")
    if lake_root.startswith("abfss://"):
        lake: Lake = AdlsLake(
            root=lake_root, **{option: _env_or_blank(environ, name) for option, name in ADLS_CREDENTIALS.items()}
        )
    else:  # another fsspec URI that the cluster and the orchestrator share (docs/databricks.md; the tests' stand-in)
        lake = Lake(root=lake_root)
    workers = _value(environ, "MOVIEREC_DATABRICKS_WORKERS") or "1"
    if not workers.isdigit():
        raise MissingSettingsError(f"MOVIEREC_DATABRICKS_WORKERS={workers!r} must be a whole number of workers.")
    spark = DatabricksSpark(
        databricks_host=EnvVar("DATABRICKS_HOST"),
        client_id=_env_or_blank(environ, "DATABRICKS_CLIENT_ID"),
        client_secret=_env_or_blank(environ, "DATABRICKS_CLIENT_SECRET"),
        databricks_token=_env_or_blank(environ, "DATABRICKS_TOKEN"),
        volume=_value(environ, "MOVIEREC_DATABRICKS_VOLUME").rstrip("/"),
        existing_cluster_id=_value(environ, "MOVIEREC_DATABRICKS_CLUSTER_ID"),
        instance_pool_id=_value(environ, "MOVIEREC_DATABRICKS_INSTANCE_POOL_ID"),
        spark_version=_value(environ, "MOVIEREC_DATABRICKS_RUNTIME") or DATABRICKS_RUNTIME,
        node_type_id=_value(environ, "MOVIEREC_DATABRICKS_NODE_TYPE") or "Standard_D4ds_v5",
        num_workers=int(workers),
        spark_conf=_adls_spark_conf(lake_root, environ, scope),
        secret_scope=scope,
        secrets_to_env=SCOPE_SECRETS,
        env_variables=cluster_environment({**environ, "MOVIEREC_DEPLOYMENT": "databricks"}),
    )
    if _value(environ, LANDING_FOLDER):
        # Event files in a folder the orchestrator and the clusters both reach (docs/databricks.md; the tests' stand-in).
        event_source: Any = LandingFolderSource(folder=_value(environ, LANDING_FOLDER))
    else:
        event_source = EventHubsSource(
            namespace=EnvVar("EVENTHUB_NAMESPACE"),
            eventhub=EnvVar("EVENTHUB_NAME"),
            connection_string=_env_or_blank(environ, "EVENTHUB_CONNECTION_STRING"),
            consumer_group=_value(environ, "EVENTHUB_CONSUMER_GROUP") or "$Default",
        )
    return {
        "spark": spark,
        "lake": lake,
        "movielens": MovieLensSource(location=_movielens_location(environ)),
        "event_source": event_source,
        "model_tracking": databricks_tracking(environ),
    }


def databricks_tracking(environ: dict[str, str]) -> ModelTracking:
    """The workspace's MLflow and the Unity Catalog registry, the model in the staging volume's catalog and schema.

    MLFLOW_TRACKING_URI and MLFLOW_REGISTRY_URI override both (the tests' workspace stand-in has no MLflow);
    MOVIEREC_MLFLOW_MODEL and MOVIEREC_MLFLOW_EXPERIMENT the names.
    """
    tracking_uri = _value(environ, "MLFLOW_TRACKING_URI") or "databricks"
    catalog, schema = _value(environ, "MOVIEREC_DATABRICKS_VOLUME").split("/")[2:4]
    return ModelTracking(
        tracking_uri=tracking_uri,
        registry_uri=_value(environ, "MLFLOW_REGISTRY_URI") or ("databricks-uc" if tracking_uri == "databricks" else None),
        registered_model=_value(environ, "MOVIEREC_MLFLOW_MODEL") or f"{catalog}.{schema}.movierec",
        experiment=_value(environ, "MOVIEREC_MLFLOW_EXPERIMENT") or "/Shared/movierec",
    )
