"""The model domain: training ratings, then the candidate ALS models, fitted and evaluated, and the champion among them."""

import time
from dataclasses import fields, replace
from datetime import UTC, datetime

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetObservation,
    AssetSpec,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
    multi_asset,
)
from pydantic import Field
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from movierec_dagster.metadata import ROW_COUNT, committed, data_version, markdown_table, table_metadata
from movierec_dagster.model import evaluation, gate, registry, training
from movierec_dagster.model.card import data_profile, model_card
from movierec_dagster.model.checks import TRAINING_RATINGS, training_ratings_check_specs, training_ratings_checks
from movierec_dagster.model.comparison import comparison_markdown
from movierec_dagster.model.tracking import ModelTracking, TrackingError
from movierec_dagster.resources import Lake, SparkResource
from movierec_dagster.resources.lake import CHECKPOINTS
from movierec_dagster.names import EVENTS as EVENTS_TABLE

GROUP = "model"
STREAMED_ROWS = "streamed_rows"  # rating_events rows merged into training_ratings (a property of its commit)
MODEL_GATE = "model_gate"
MODEL_RECORD = "mlflow_record"
CANDIDATE = "als_model"  # every trained model, promoted or not
CHAMPION = "champion_model"  # the model in use: materialized only when a candidate passes the gate
# One training (and promotion) at a time, across runs: the nightly schedule and retrain_sensor may both ask.
TRAINING_POOL = "model_training"
_DEFAULTS = training.ModelParams()


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


def champion_on_this_data(
    context: AssetExecutionContext,
    lake: Lake,
    train: DataFrame,
    test: DataFrame,
    params: training.ModelParams,
    candidate: evaluation.Evaluation,
) -> dict | None:
    """The champion judged on the candidate's held-out data: its parameters fitted on the candidate's training split.

    The champion's stored metrics were measured on the data of its day: against them, a fair
    candidate is locked out when the data grows harder, and a worse one let in when it grows
    easier. With the candidate's own parameters the champion's model here would be the
    candidate's, so its evaluation stands for both and no second fit is needed.
    Returns {"version", "params", "metrics"}, or None before the first champion.
    """
    pointer = registry.read_champion(lake)
    if pointer is None:
        return None
    stored = registry.read_model_info(lake, pointer["version"]) or {}
    try:
        # Models saved before the ranker was chosen ranked with implicit ALS.
        champion_params = training.ModelParams(**{"ranker": training.ALS_RANKER, **stored["params"]})
    except (KeyError, TypeError):
        context.log.warning(
            f"Champion {pointer['version']} has no parameters this version can fit: judged by its stored metrics."
        )
        return {"version": pointer["version"], "params": stored.get("params"), "metrics": stored["metrics"]}
    if champion_params == params:
        metrics = candidate.metrics
    else:
        context.log.info(f"Fitting champion {pointer['version']}'s parameters on this training split to judge it here")
        measured, bundle = evaluation.evaluate(train, test, champion_params)
        bundle.release()
        metrics = measured.metrics
    context.log.info(f"Champion {pointer['version']} on this held-out data: {metrics}")
    return {"version": pointer["version"], "params": champion_params.as_dict(), "metrics": metrics}


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


class AlsModelConfig(Config):
    """Hyper-parameters (defaults measured on ml-latest-small), evaluation, gate and retention settings."""

    rating_rank: int = Field(
        default=_DEFAULTS.rating_rank,
        description="Rank of the ALS on the biases' residuals; 0 fits none (the star ratings are the biases).",
    )
    rating_reg_param: float = _DEFAULTS.rating_reg_param
    rating_max_iter: int = _DEFAULTS.rating_max_iter
    user_bias_reg: float = _DEFAULTS.user_bias_reg
    item_bias_reg: float = _DEFAULTS.item_bias_reg
    bias_iterations: int = _DEFAULTS.bias_iterations
    ranking_rank: int = _DEFAULTS.ranking_rank
    ranking_reg_param: float = _DEFAULTS.ranking_reg_param
    ranking_max_iter: int = _DEFAULTS.ranking_max_iter
    alpha: float = Field(default=_DEFAULTS.alpha, description="Implicit ALS confidence scale.")
    neutral_rating: float = Field(
        default=_DEFAULTS.neutral_rating, description="Ratings below this count as evidence against a movie."
    )
    seed: int = _DEFAULTS.seed
    ranker: str = Field(
        default=_DEFAULTS.ranker,
        description=(
            f"The ranking model: {training.AUTO!r} (EASE or implicit ALS, whichever ranks a validation split carved "
            f"from the training split better; ALS alone above ease_max_items movies), {training.EASE_RANKER!r} or "
            f"{training.ALS_RANKER!r}."
        ),
    )
    ease_l2: float = Field(default=_DEFAULTS.ease_l2, description="EASE's L2 regularisation (lambda).")
    ease_weighting: str = Field(
        default=_DEFAULTS.ease_weighting, description="How EASE reads a rating: rating (stars / 5), binary or centered."
    )
    ease_max_items: int = Field(
        default=_DEFAULTS.ease_max_items,
        description="EASE inverts a movies x movies matrix on the driver: above this many movies ALS ranks them.",
    )
    num_blocks: int = Field(
        default=0,
        description=(
            "ALS user and item blocks; 0 (the default): by the training ratings' count, 1 below 2.5M and one more "
            "per 2.5M, at most 10. The factors depend on it."
        ),
    )
    test_fraction: float = Field(default=0.2, description="Held-out share of ratings for the evaluation.")
    rmse_tolerance: float = Field(default=0.01, description="Gate: how much higher than the champion's RMSE may be.")
    ndcg_tolerance: float = Field(default=0.01, description="Gate: how much lower than the champion's NDCG@10 may be.")
    keep_versions: int = Field(
        default=10,
        description=(
            "Keep the newest N model versions, and the champion however old; 0 keeps all. An EASE version holds its "
            "movies x movies weights (4 bytes each)."
        ),
    )
    search_ranks: list[int] = Field(default=[], description="Grid search: ranks to try (empty: no search on rank).")
    search_reg_params: list[float] = Field(default=[], description="Grid search: regParam values to try.")
    search_alphas: list[float] = Field(default=[], description="Grid search: alpha values to try.")
    validation_fraction: float = Field(default=0.2, description="Grid search: share of the training split held out.")

    def params(self, training_rows: int) -> training.ModelParams:
        """The hyper-parameters, with `num_blocks` 0 resolved for this many training ratings."""
        if self.num_blocks < 0:
            raise ValueError(f"num_blocks must be 0 (by the training ratings' count) or more, got {self.num_blocks}")
        params = training.ModelParams(**{f.name: getattr(self, f.name) for f in fields(training.ModelParams)})
        return replace(params, num_blocks=self.num_blocks or training.blocks_for(training_rows))

    def searching(self) -> bool:
        return bool(self.search_ranks or self.search_reg_params or self.search_alphas)


def _summary(info: dict, decision: gate.GateDecision, grid: list[dict]) -> str:
    text = f"### Model {info['version']}\n\n{comparison_markdown(info)}\n\n**Gate:** {decision.summary}\n"
    if grid:
        shown = [{key: (f"{value:.4f}" if isinstance(value, float) else value) for key, value in point.items()} for point in grid]
        text += f"\n### Grid search (validation split)\n\n{markdown_table(shown)}\n"
    return text


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
                "The candidate: a ranking model (implicit ALS) and a star-rating model (biases, plus ALS on their "
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
    session = spark.session()
    session.sparkContext.setCheckpointDir(lake.uri(CHECKPOINTS, "als"))
    trained_on = lake.table_version(TRAINING_RATINGS)
    table = lake.read_table(session, TRAINING_RATINGS, version=trained_on)
    ratings = table.select("user_id", "movie_id", "rating").cache()
    # The rating_events rows in this training data: the retrain sensor counts new ratings from here.
    streamed_rows = int(lake.table(TRAINING_RATINGS).properties(trained_on).get(STREAMED_ROWS, 0))
    try:
        training_rows = ratings.count()
        if training_rows == 0:
            raise ValueError("training_ratings is empty: materialize ratings (movielens_etl) first.")
        profile = data_profile(table)
        train, test = evaluation.split(ratings, config.test_fraction, config.seed)
        params, grid = config.params(training_rows), []
        if config.searching():
            context.log.info("Grid search on a validation split of the training split")
            params, grid = evaluation.grid_search(
                train,
                params,
                ranks=config.search_ranks,
                reg_params=config.search_reg_params,
                alphas=config.search_alphas,
                validation_fraction=config.validation_fraction,
            )
            for point in grid:
                context.log.info(f"grid point {point}")
        params, ranker_choice = evaluation.choose_ranker(train, params)
        if ranker_choice:
            context.log.info(f"Ranking model: {ranker_choice['chosen']} ({ranker_choice['why']}: {ranker_choice})")
        context.log.info(
            f"Evaluating on a held-out {config.test_fraction:.0%} split (seed {config.seed}) and, beside it, "
            f"fitting the models to save on all {training_rows:,} ratings, with {params}"
        )
        measured, bundle = evaluation.evaluate_and_refit(train, test, ratings, params)
        context.log.info(f"Held-out metrics {measured.metrics}; baselines {measured.baselines}")
        if measured.residual_als is None:
            context.log.info("rating_rank is 0: no residual ALS was fitted, the star ratings are the biases.")
        elif bundle.rating_model is None:
            context.log.info(
                f"The residual ALS (held-out RMSE {measured.residual_als['rmse']:.5f}) does not beat the biases alone "
                f"({measured.baselines['bias']['rmse']:.5f}): the star ratings are the biases."
            )
        champion = champion_on_this_data(context, lake, train, test, params, measured)
    finally:
        ratings.unpersist()
    now = datetime.now(UTC)
    version = registry.new_version(now)
    try:
        registry.save_bundle(lake, version, bundle)
    finally:
        bundle.release()
    info = {
        "version": version,
        "trained_at": registry.utc_iso(now),
        "training_rows": training_rows,
        STREAMED_ROWS: streamed_rows,
        # The training_ratings commit learned from.
        "training_data_version": trained_on.version,
        "test_rows": measured.test_rows,
        "evaluated_users": measured.evaluated_users,
        "params": params.as_dict(),
        "metrics": measured.metrics,
        "baselines": measured.baselines,
        # What the metrics were measured on: this training data's held-out split.
        "evaluated_on": {
            "training_rows": training_rows,
            STREAMED_ROWS: streamed_rows,
            "test_rows": measured.test_rows,
            "test_fraction": config.test_fraction,
            "split_seed": config.seed,
        },
        "champion_on_this_data": champion,
        # The saved models' own training data: the metrics above judged their parameters on the split, and
        # the models were then fitted again on every rating, the held-out ones included.
        "fitted_on": "all ratings",
        "fitted_rows": training_rows,
        "global_mean": bundle.biases.global_mean,
        # The residual ALS is kept only when it beats the biases alone on the held-out split.
        "rating_model": bundle.rating_model_kind,
        "residual_als": measured.residual_als,
        "ranking_model": bundle.ranking_model_kind,
        "ranker_choice": ranker_choice,
        "beyond_accuracy": measured.beyond_accuracy,
        "grid": grid,
    }
    decision = gate.decide(info, champion, rmse_tolerance=config.rmse_tolerance, ndcg_tolerance=config.ndcg_tolerance)
    info["gate"] = {"passed": decision.passed, "reasons": list(decision.reasons), "summary": decision.summary}
    card = model_card(info, profile)
    info["card"] = {key: value for key, value in card.items() if key != "markdown"}
    registry.write_model_info(lake, info)
    metrics, baselines = measured.metrics, measured.baselines
    beyond = measured.beyond_accuracy
    yield MaterializeResult(
        asset_key=CANDIDATE,
        metadata={
            "version": version,
            "promoted": decision.passed,
            "location": MetadataValue.path(registry.version_uri(lake, version)),
            "training_rows": MetadataValue.int(training_rows),
            "fitted_on": info["fitted_on"],
            "fitted_rows": MetadataValue.int(info["fitted_rows"]),
            "rating_model": info["rating_model"],
            **{name: MetadataValue.float(value) for name, value in metrics.items()},
            "bias_rmse": MetadataValue.float(baselines["bias"]["rmse"]),
            "bias_mae": MetadataValue.float(baselines["bias"]["mae"]),
            **{f"most_popular_{name}": MetadataValue.float(value) for name, value in baselines["most_popular"].items()},
            "training_data_version": MetadataValue.int(trained_on.version),
            "ranking_model": info["ranking_model"],
            # Beyond accuracy, plotted over materializations beside the metrics.
            "catalog_coverage": MetadataValue.float(beyond["model"]["catalog_coverage"]),
            "mean_popularity": MetadataValue.float(beyond["model"]["mean_popularity"]),
            "most_popular_catalog_coverage": MetadataValue.float(beyond["most_popular"]["catalog_coverage"]),
            "most_popular_mean_popularity": MetadataValue.float(beyond["most_popular"]["mean_popularity"]),
            "params": MetadataValue.json(params.as_dict()),
            "summary": MetadataValue.md(_summary(info, decision, grid)),
            "model_card": MetadataValue.md(card["markdown"]),
            "seconds": MetadataValue.float(round(time.perf_counter() - started, 2)),
        },
    )
    gate_metadata = {
        "candidate": version,
        "champion_before": champion["version"] if champion else "none",
        "rmse": metrics["rmse"],
        "ndcg_at_10": metrics["ndcg_at_10"],
        "reasons": "; ".join(decision.reasons) or "none",
    }
    if champion:
        gate_metadata["champion_rmse_on_this_data"] = champion["metrics"]["rmse"]
        gate_metadata["champion_ndcg_at_10_on_this_data"] = champion["metrics"]["ndcg_at_10"]
    yield AssetCheckResult(
        asset_key=CANDIDATE,
        check_name=MODEL_GATE,
        passed=decision.passed,
        severity=AssetCheckSeverity.WARN,
        description=decision.summary,
        metadata=gate_metadata,
    )
    if decision.passed:
        pointer = registry.promote(lake, info, datetime.now(UTC))
        context.log.info(decision.summary + " It is now the champion.")
        yield MaterializeResult(
            asset_key=CHAMPION,
            metadata={
                "version": version,
                "promoted_at": pointer["promoted_at"],
                "replaced": champion["version"] if champion else "none",
                **{name: MetadataValue.float(value) for name, value in metrics.items()},
                "location": MetadataValue.path(registry.version_uri(lake, version)),
            },
        )
    else:
        kept = champion["version"] if champion else "none (users get the popularity baseline)"
        context.log.warning(decision.summary + f" The champion stays: {kept}.")
        yield AssetObservation(
            asset_key=CHAMPION,
            metadata={"kept": kept, "rejected": version, "reasons": "; ".join(decision.reasons)},
        )
    yield record_in_mlflow(context, model_tracking, lake, info, card, decision.passed)
    pruned = registry.prune(lake, config.keep_versions)
    if pruned:
        context.log.info(f"Pruned old model versions {pruned}")
