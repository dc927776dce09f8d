"""The model registry in the lake: every fitted version kept, and a champion pointer.

Layout under `lake/models/als/`:

    <version>/ranking/        implicit ALS (Spark ML persistence), when it is the ranking model
    <version>/ease/           EASE (ease.EaseModel.save), when it is the ranking model
    <version>/rating/         explicit ALS on the bias residuals (Spark ML persistence), absent
                              when the biases alone were the better rating model
    <version>/user_bias/      Parquet: user_id, user_bias
    <version>/item_bias/      Parquet: movie_id, item_bias
    <version>/model.json      version, trained_at, training_rows, params, metrics, baselines, global_mean,
                              rating_model (what the star ratings are made of), ranking_model, card
    champion.json             {"version", "trained_at", "promoted_at"}: the model in use (the asset champion_model)

A version exists once its model.json is written (last), so the versions are the
folders holding one: there is no shared index that two trainings could both
rewrite, and neither can drop the other's version. Every JSON file is replaced
atomically, so a reader never sees a half-saved model or pointer. Plain functions
of the lake: the retrain sensor reads through `read_champion` and
`read_model_info`; the dashboard, which loads no Spark, lists the model.json files
and reads them and champion.json through the same filesystem layer.
"""

import uuid
from datetime import UTC, datetime
from typing import Any

from pyspark.ml.recommendation import ALSModel
from pyspark.sql import SparkSession

from movierec_dagster.model import ease
from movierec_dagster.model.training import ALS_RANKER, BIASES_AND_RESIDUAL_ALS, BIASES_ONLY, EASE_RANKER, Biases, ModelBundle
from movierec_dagster.names import CHAMPION, MODEL_INFO, MODEL_NAME, MODELS
from movierec_dagster.resources.lake import Lake



def version_uri(lake: Lake, version: str, *parts: str) -> str:
    return lake.uri(MODELS, MODEL_NAME, version, *parts)


def new_version(now: datetime) -> str:
    """A version name that sorts by training time: 20250101T220000Z-1a2b3c."""
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def utc_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def save_bundle(lake: Lake, version: str, bundle: ModelBundle) -> None:
    """Persist the fitted models of `version` (Spark ML persistence + Parquet biases)."""
    if bundle.ranking_model_kind == EASE_RANKER:
        bundle.ranking_model.save(lake, version_uri(lake, version, "ease"))
    else:
        bundle.ranking_model.write().overwrite().save(version_uri(lake, version, "ranking"))
    if bundle.rating_model is not None:
        bundle.rating_model.write().overwrite().save(version_uri(lake, version, "rating"))
    # A version's folder is written once, before its model.json: no table commit needed.
    bundle.biases.user_bias.write.parquet(version_uri(lake, version, "user_bias"))
    bundle.biases.item_bias.write.parquet(version_uri(lake, version, "item_bias"))


def load_bundle(lake: Lake, spark: SparkSession, version: str) -> ModelBundle:
    info = read_model_info(lake, version)
    if info is None:
        raise FileNotFoundError(f"Model version {version} is not in the registry ({version_uri(lake, version)}).")
    biases = Biases(
        global_mean=float(info["global_mean"]),
        user_bias=spark.read.parquet(version_uri(lake, version, "user_bias")),
        item_bias=spark.read.parquet(version_uri(lake, version, "item_bias")),
    )
    # Versions saved before the residual ALS could be dropped have no `rating_model`: they all kept it.
    biases_only = info.get("rating_model", BIASES_AND_RESIDUAL_ALS) == BIASES_ONLY
    # Versions saved before EASE ranked with implicit ALS.
    if info.get("ranking_model", ALS_RANKER) == EASE_RANKER:
        ranking_model = ease.EaseModel.load(lake, version_uri(lake, version, "ease"))
    else:
        ranking_model = ALSModel.load(version_uri(lake, version, "ranking"))
    return ModelBundle(
        biases=biases,
        rating_model=None if biases_only else ALSModel.load(version_uri(lake, version, "rating")),
        ranking_model=ranking_model,
    )


def write_model_info(lake: Lake, info: dict[str, Any]) -> None:
    """Write `<version>/model.json`, which completes the version."""
    lake.write_json(info, MODELS, MODEL_NAME, info["version"], MODEL_INFO)


def read_model_info(lake: Lake, version: str) -> dict[str, Any] | None:
    return lake.read_json(MODELS, MODEL_NAME, version, MODEL_INFO)


def list_versions(lake: Lake) -> list[str]:
    """Complete model versions (those with a model.json), oldest first: version names sort by training time."""
    return sorted(path.split("/")[-2] for path in lake.glob(MODELS, MODEL_NAME, "*", MODEL_INFO))


def read_champion(lake: Lake) -> dict[str, Any] | None:
    """The champion pointer {"version", "trained_at", "promoted_at"}, or None before the first promotion."""
    return lake.read_json(MODELS, MODEL_NAME, CHAMPION)


def promote(lake: Lake, info: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Make the version described by `info` the champion (one atomic write)."""
    pointer = {"version": info["version"], "trained_at": info["trained_at"], "promoted_at": utc_iso(now)}
    lake.write_json(pointer, MODELS, MODEL_NAME, CHAMPION)
    return pointer


def prune(lake: Lake, keep: int) -> list[str]:
    """Delete all but the newest `keep` versions (never the champion); `keep` 0 keeps everything.

    Returns the deleted versions. Each version's model.json goes first, so a prune
    killed half-way leaves only folders that are not listed.
    """
    if keep <= 0:
        return []
    versions = list_versions(lake)
    champion = (read_champion(lake) or {}).get("version")
    doomed = [v for v in versions[:-keep] if v != champion]
    if not doomed:
        return []
    for version in doomed:
        lake.delete(MODELS, MODEL_NAME, version, MODEL_INFO)
        lake.delete(MODELS, MODEL_NAME, version)
    return doomed
