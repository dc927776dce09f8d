"""The model domain: training ratings, then the candidate models, fitted and evaluated, and the champion among them.

The retrain's steps are plain functions in `retrain`; `als_model` wires them and reports their results to Dagster.
"""

import time
from datetime import UTC, datetime

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetObservation,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    asset,
    multi_asset,
)
from pyspark.sql import functions as F

from movierec_dagster.metadata import ROW_COUNT, committed, data_version, markdown_table, table_metadata
from movierec_dagster.model import gate, registry, retrain, training
from movierec_dagster.model.checks import TRAINING_RATINGS, training_ratings_check_specs, training_ratings_checks
from movierec_dagster.model.comparison import comparison_markdown
from movierec_dagster.model.retrain import STREAMED_ROWS, AlsModelConfig
from movierec_dagster.model.tracking import ModelTracking, TrackingError
from movierec_dagster.names import EVENTS as EVENTS_TABLE
from movierec_dagster.resources import Lake, SparkResource

GROUP = "model"
MODEL_GATE = "model_gate"
MODEL_RECORD = "mlflow_record"
CANDIDATE = "als_model"  # every trained model, promoted or not
CHAMPION = "champion_model"  # the model in use: materialized only when a candidate passes the gate
# One training (and promotion) at a time, across runs: the nightly schedule and retrain_sensor may both ask.
TRAINING_POOL = "model_training"


@asset(
    group_name=GROUP,
    deps=["ratings", EVENTS_TABLE],
    kinds={"spark", "delta"},
    check_specs=training_ratings_check_specs,
)
def training_ratings(context: AssetExecutionContext, spark: SparkResource, lake: Lake) -> MaterializeResult:
    """One row per (user, movie): the latest rating, from the MovieLens history plus streamed rating events."""
    started = time.perf_counter()
    session = spark.session()
    history = lake.read_table(session, "ratings")
    events_version = lake.table_version(EVENTS_TABLE)
    events = lake.read_table(session, EVENTS_TABLE, version=events_version) if events_version else None
    if events is None:
        context.log.info("No rating_events table yet: training on the history alone.")
    # The rating_events rows merged, kept with the table: the model records them, and the retrain
    # sensor and scoring count what streamed in since.
    event_rows = events_version.rows if events_version else 0
    version = lake.write_table(
        training.merge_ratings(history, events), TRAINING_RATINGS, properties={STREAMED_ROWS: event_rows}
    )
    table = lake.read_table(session, TRAINING_RATINGS, version=version)
    history_rows = history.count()
    distinct = table.agg(
        F.count_distinct("user_id").alias("users"), F.count_distinct("movie_id").alias("movies")
    ).first()
    metadata = table_metadata(
        table,
        history_rows=MetadataValue.int(history_rows),
        **{STREAMED_ROWS: MetadataValue.int(event_rows)},
        users=MetadataValue.int(distinct["users"]),
        movies=MetadataValue.int(distinct["movies"]),
        location=MetadataValue.path(lake.table_uri(TRAINING_RATINGS)),
        seconds=MetadataValue.float(round(time.perf_counter() - started, 2)),
        **committed(version),
    )
    context.log.info(
        f"training_ratings: {metadata[ROW_COUNT].value:,} rows from {history_rows:,} historical "
        f"and {event_rows:,} streamed ratings"
    )
    return MaterializeResult(
        metadata=metadata, check_results=training_ratings_checks(table), data_version=data_version(version)
    )


def merged_event_rows(lake: Lake) -> int | None:
    """How many rating_events rows the committed training_ratings merged; None before it exists."""
    table = lake.table(TRAINING_RATINGS)
    version = table.current()
    return None if version is None else int(table.properties(version).get(STREAMED_ROWS, 0))


def record_in_mlflow(
    context: AssetExecutionContext, tracking: ModelTracking, lake: Lake, info: dict, card: dict, passed: bool
) -> AssetCheckResult:
    """The retrain as an MLflow run and a version of the registered model, with the aliases moved as the gate decided.

    The lake's champion pointer, already written, is what the readers follow; the alias is kept in
    step with it. An unreachable store is a warning, not a failed retrain: the model and the
    decision are in the lake, and the next retrain sets the alias again.
    """
    if not tracking.enabled:
        return AssetCheckResult(
            asset_key=CANDIDATE, check_name=MODEL_RECORD, passed=True, description="MLflow recording is turned off."
        )
    try:
        tracking.align_champion((registry.read_champion(lake) or {}).get("version") if not passed else None)
        record = tracking.record_retrain(
            info,
            card,
            model_uri=registry.version_uri(lake, info["version"]),
            training_data_version=info["training_data_version"],
            passed=passed,
        )
    except TrackingError as error:
        context.log.warning(f"The retrain is not recorded in MLflow: {error}")
        return AssetCheckResult(
            asset_key=CANDIDATE, check_name=MODEL_RECORD, passed=False, severity=AssetCheckSeverity.WARN,
            description=str(error),
        )
    context.log.info(f"Recorded in MLflow: run {record['run_id']}, model version {record['model_version']}")
    metadata = {"run_id": record["run_id"], "model_version": str(record["model_version"])}
    if record.get("run_url"):
        metadata["run_url"] = MetadataValue.url(record["run_url"])
    return AssetCheckResult(
        asset_key=CANDIDATE, check_name=MODEL_RECORD, passed=True, metadata=metadata,
        description=f"MLflow run {record['run_id']}; {tracking.registered_model} version {record['model_version']}",
    )


def _summary(info: dict, decision: gate.GateDecision) -> str:
    text = f"### Model {info['version']}\n\n{comparison_markdown(info)}\n\n**Gate:** {decision.summary}\n"
    if info["grid"]:
        shown = [
            {key: (f"{value:.4f}" if isinstance(value, float) else value) for key, value in point.items()}
            for point in info["grid"]
        ]
        text += f"\n### Grid search (validation split)\n\n{markdown_table(shown)}\n"
    return text


def candidate_result(lake: Lake, info: dict, decision: gate.GateDecision, card: dict, seconds: float) -> MaterializeResult:
    """The candidate's materialization: where it is, its held-out metrics beside the baselines, and its card."""
    metrics, baselines, beyond = info["metrics"], info["baselines"], info["beyond_accuracy"]
    return MaterializeResult(
        asset_key=CANDIDATE,
        metadata={
            "version": info["version"],
            "promoted": decision.passed,
            "location": MetadataValue.path(registry.version_uri(lake, info["version"])),
            "training_rows": MetadataValue.int(info["training_rows"]),
            "fitted_on": info["fitted_on"],
            "fitted_rows": MetadataValue.int(info["fitted_rows"]),
            "rating_model": info["rating_model"],
            **{name: MetadataValue.float(value) for name, value in metrics.items()},
            "bias_rmse": MetadataValue.float(baselines["bias"]["rmse"]),
            "bias_mae": MetadataValue.float(baselines["bias"]["mae"]),
            **{f"most_popular_{name}": MetadataValue.float(value) for name, value in baselines["most_popular"].items()},
            "training_data_version": MetadataValue.int(info["training_data_version"]),
            "ranking_model": info["ranking_model"],
            # Beyond accuracy, plotted over materializations beside the metrics.
            "catalog_coverage": MetadataValue.float(beyond["model"]["catalog_coverage"]),
            "mean_popularity": MetadataValue.float(beyond["model"]["mean_popularity"]),
            "most_popular_catalog_coverage": MetadataValue.float(beyond["most_popular"]["catalog_coverage"]),
            "most_popular_mean_popularity": MetadataValue.float(beyond["most_popular"]["mean_popularity"]),
            "params": MetadataValue.json(info["params"]),
            "summary": MetadataValue.md(_summary(info, decision)),
            "model_card": MetadataValue.md(card["markdown"]),
            "seconds": MetadataValue.float(round(seconds, 2)),
        },
    )


def gate_result(info: dict, champion: dict | None, decision: gate.GateDecision) -> AssetCheckResult:
    """The gate's decision as a check on the candidate: a rejection is a warning, the champion stays."""
    metadata = {
        "candidate": info["version"],
        "champion_before": champion["version"] if champion else "none",
        "rmse": info["metrics"]["rmse"],
        "ndcg_at_10": info["metrics"]["ndcg_at_10"],
        "reasons": "; ".join(decision.reasons) or "none",
    }
    if champion:
        metadata["champion_rmse_on_this_data"] = champion["metrics"]["rmse"]
        metadata["champion_ndcg_at_10_on_this_data"] = champion["metrics"]["ndcg_at_10"]
    return AssetCheckResult(
        asset_key=CANDIDATE,
        check_name=MODEL_GATE,
        passed=decision.passed,
        severity=AssetCheckSeverity.WARN,
        description=decision.summary,
        metadata=metadata,
    )


def promote_or_keep(
    context: AssetExecutionContext, lake: Lake, info: dict, champion: dict | None, decision: gate.GateDecision
) -> MaterializeResult | AssetObservation:
    """Promote a candidate that passed (the champion materializes); otherwise observe that the champion stays."""
    if decision.passed:
        pointer = registry.promote(lake, info, datetime.now(UTC))
        context.log.info(decision.summary + " It is now the champion.")
        return MaterializeResult(
            asset_key=CHAMPION,
            metadata={
                "version": info["version"],
                "promoted_at": pointer["promoted_at"],
                "replaced": champion["version"] if champion else "none",
                **{name: MetadataValue.float(value) for name, value in info["metrics"].items()},
                "location": MetadataValue.path(registry.version_uri(lake, info["version"])),
            },
        )
    kept = champion["version"] if champion else "none (users get the popularity baseline)"
    context.log.warning(decision.summary + f" The champion stays: {kept}.")
    return AssetObservation(
        asset_key=CHAMPION, metadata={"kept": kept, "rejected": info["version"], "reasons": "; ".join(decision.reasons)}
    )


@multi_asset(
    name=CANDIDATE,
    group_name=GROUP,
    pool=TRAINING_POOL,
    specs=[
        AssetSpec(
            CANDIDATE,
            deps=[training_ratings],
            kinds={"spark", "sparkml"},
            description=(
                "The candidate: a ranking model (EASE or implicit ALS) and a star-rating model (biases, plus ALS on their "
                "residuals when that beats the biases on the held-out split), evaluated on a held-out split, "
                "fitted again on all ratings and saved under lake/models/als/<version>/ on every retrain, "
                "promoted or not."
            ),
        ),
        AssetSpec(
            CHAMPION,
            deps=[CANDIDATE],
            skippable=True,
            kinds={"sparkml"},
            description=(
                "The model in use (lake/models/als/champion.json): materialized only when a candidate passes the "
                "gate; recommendations follow it."
            ),
        ),
    ],
    check_specs=[
        AssetCheckSpec(
            MODEL_GATE,
            asset=CANDIDATE,
            description=(
                "May the candidate become the champion? RMSE must be no worse than the bias baseline, NDCG@10 must beat "
                "most-popular, "
                "and neither may be worse than the champion's on the same held-out data by more than the tolerance. "
                "A rejection is a warning, not a failed run: the champion stays."
            ),
        ),
        AssetCheckSpec(
            MODEL_RECORD,
            asset=CANDIDATE,
            description=(
                "Is the retrain recorded in MLflow (run, registered version, aliases)? A failure is a warning: the model "
                "is saved and the gate's decision applied in the lake all the same; the next retrain re-aligns the alias."
            ),
        ),
    ],
)
def als_model(
    context: AssetExecutionContext, config: AlsModelConfig, spark: SparkResource, lake: Lake, model_tracking: ModelTracking
):
    """Evaluate a candidate on a held-out split, judge it against the champion on the same split, save the models
    fitted again on all ratings, and promote them if the candidate passes.

    One step: the candidate and the decision about it cannot be separated by another
    training, and the pool `model_training` lets one such step run at a time.
    """
    started = time.perf_counter()
    trained = retrain.train(spark.session(), lake, config, context.log)
    try:
        info = retrain.describe(trained, config, datetime.now(UTC))
        decision = retrain.judge(info, trained.champion, config)
        card = retrain.register(lake, trained, info)
    finally:
        trained.bundle.release()
    yield candidate_result(lake, info, decision, card, time.perf_counter() - started)
    yield gate_result(info, trained.champion, decision)
    yield promote_or_keep(context, lake, info, trained.champion, decision)
    yield record_in_mlflow(context, model_tracking, lake, info, card, decision.passed)
    pruned = registry.prune(lake, config.keep_versions)
    if pruned:
        context.log.info(f"Pruned old model versions {pruned}")
