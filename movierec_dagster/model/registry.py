"""The model registry in the lake: every fitted version kept, and a champion pointer.

Layout under `lake/models/als/`:

    <version>/ranking/        implicit ALS (Spark ML persistence)
    <version>/rating/         explicit ALS on the bias residuals (Spark ML persistence)
    <version>/user_bias/      Parquet: user_id, user_bias
    <version>/item_bias/      Parquet: movie_id, item_bias
    <version>/model.json      version, trained_at, training_rows, params, metrics, baselines, global_mean
    versions.json             {"versions": [...]}: complete versions, oldest first
    champion.json             {"version", "trained_at", "promoted_at"}: the model in use

A version counts only once its model.json is written (last), and every JSON file
is replaced atomically, so a reader never sees a half-saved model or pointer.
Plain functions of the lake: the stream's retrain sensor reads through
`read_champion` and `read_model_info`; the dashboard, which loads no Spark, reads
versions.json, model.json and champion.json with DuckDB.
"""

import uuid
from datetime import UTC, datetime
from typing import Any

from pyspark.ml.recommendation import ALSModel
from pyspark.sql import SparkSession

from movierec_dagster.model.training import Biases, ModelBundle
from movierec_dagster.resources.lake import MODELS, LocalLake

MODEL_NAME = "als"
MODEL_INFO = "model.json"
CHAMPION = "champion.json"
VERSIONS = "versions.json"


def version_uri(lake: LocalLake, version: str, *parts: str) -> str:
    return lake.uri(MODELS, MODEL_NAME, version, *parts)


def new_version(now: datetime) -> str:
    """A version name that sorts by training time: 20250101T220000Z-1a2b3c."""
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def utc_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def save_bundle(lake: LocalLake, version: str, bundle: ModelBundle) -> None:
    """Persist the fitted models of `version` (Spark ML persistence + Parquet biases)."""
    bundle.ranking_model.write().overwrite().save(version_uri(lake, version, "ranking"))
    bundle.rating_model.write().overwrite().save(version_uri(lake, version, "rating"))
    lake.write_table(bundle.biases.user_bias, MODEL_NAME, area=MODELS, subpath=f"{version}/user_bias")
    lake.write_table(bundle.biases.item_bias, MODEL_NAME, area=MODELS, subpath=f"{version}/item_bias")


def load_bundle(lake: LocalLake, spark: SparkSession, version: str) -> ModelBundle:
    info = read_model_info(lake, version)
    if info is None:
        raise FileNotFoundError(f"Model version {version} is not in the registry ({version_uri(lake, version)}).")
    biases = Biases(
        global_mean=float(info["global_mean"]),
        user_bias=spark.read.parquet(version_uri(lake, version, "user_bias")),
        item_bias=spark.read.parquet(version_uri(lake, version, "item_bias")),
    )
    return ModelBundle(
        biases=biases,
        rating_model=ALSModel.load(version_uri(lake, version, "rating")),
        ranking_model=ALSModel.load(version_uri(lake, version, "ranking")),
    )


def write_model_info(lake: LocalLake, info: dict[str, Any]) -> None:
    """Write `<version>/model.json` (which completes the version) and add it to versions.json."""
    version = info["version"]
    lake.write_json(info, MODELS, MODEL_NAME, version, MODEL_INFO)
    versions = [v for v in list_versions(lake) if v != version] + [version]
    lake.write_json({"versions": versions}, MODELS, MODEL_NAME, VERSIONS)


def read_model_info(lake: LocalLake, version: str) -> dict[str, Any] | None:
    return lake.read_json(MODELS, MODEL_NAME, version, MODEL_INFO)


def list_versions(lake: LocalLake) -> list[str]:
    """Complete model versions, oldest first."""
    index = lake.read_json(MODELS, MODEL_NAME, VERSIONS)
    return list(index["versions"]) if index else []


def read_champion(lake: LocalLake) -> dict[str, Any] | None:
    """The champion pointer {"version", "trained_at", "promoted_at"}, or None before the first promotion."""
    return lake.read_json(MODELS, MODEL_NAME, CHAMPION)


def promote(lake: LocalLake, info: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Make the version described by `info` the champion (one atomic write)."""
    pointer = {"version": info["version"], "trained_at": info["trained_at"], "promoted_at": utc_iso(now)}
    lake.write_json(pointer, MODELS, MODEL_NAME, CHAMPION)
    return pointer


def prune(lake: LocalLake, keep: int) -> list[str]:
    """Delete all but the newest `keep` versions (never the champion); `keep` 0 keeps everything.

    Returns the deleted versions. The version list is rewritten first, so a prune
    killed half-way leaves only unlisted folders behind.
    """
    if keep <= 0:
        return []
    versions = list_versions(lake)
    champion = (read_champion(lake) or {}).get("version")
    doomed = [v for v in versions[:-keep] if v != champion]
    if not doomed:
        return []
    lake.write_json({"versions": [v for v in versions if v not in doomed]}, MODELS, MODEL_NAME, VERSIONS)
    for version in doomed:
        lake.delete(MODELS, MODEL_NAME, version)
    return doomed
