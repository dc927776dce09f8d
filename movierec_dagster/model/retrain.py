"""One retrain's steps as plain functions, which the `als_model` asset wires together: train (fit, evaluate and
refit), judge the champion on the same held-out split, describe the candidate, and register it in the lake.

`log` is the asset's logger (Dagster's `context.log` is a `logging.Logger`).
"""

import logging
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any

from dagster import Config
from pydantic import Field
from pyspark.sql import DataFrame, SparkSession

from movierec_dagster.model import evaluation, gate, registry, training
from movierec_dagster.model.card import data_profile, model_card
from movierec_dagster.model.checks import TRAINING_RATINGS
from movierec_dagster.resources import Lake
from movierec_dagster.resources.lake import CHECKPOINTS
from movierec_dagster.tables import TableVersion

STREAMED_ROWS = "streamed_rows"  # rating_events rows merged into training_ratings (a property of its commit)
_DEFAULTS = training.ModelParams()


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



@dataclass
class Trained:
    """What `train` fitted and measured: the models to save, and the evidence to judge them by."""

    trained_on: TableVersion  # the training_ratings commit learned from
    training_rows: int
    streamed_rows: int  # the rating_events rows in it: the retrain sensor counts new ratings from here
    profile: dict[str, Any]
    params: training.ModelParams
    grid: list[dict]
    ranker_choice: dict | None
    measured: evaluation.Evaluation
    bundle: training.ModelBundle  # fitted on all ratings; the caller releases it
    champion: dict | None  # the champion judged on this held-out split (see champion_on_this_data)


def train(session: SparkSession, lake: Lake, config: AlsModelConfig, log: logging.Logger) -> Trained:
    """Choose the parameters on the training split, evaluate them on the held-out split, fit the models to save on
    all ratings beside it, and judge the champion's parameters on the same split."""
    session.sparkContext.setCheckpointDir(lake.uri(CHECKPOINTS, "als"))
    trained_on = lake.table_version(TRAINING_RATINGS)
    table = lake.read_table(session, TRAINING_RATINGS, version=trained_on)
    ratings = table.select("user_id", "movie_id", "rating").cache()
    streamed_rows = int(lake.table(TRAINING_RATINGS).properties(trained_on).get(STREAMED_ROWS, 0))
    try:
        training_rows = ratings.count()
        if training_rows == 0:
            raise ValueError("training_ratings is empty: materialize ratings (movielens_etl) first.")
        profile = data_profile(table)
        train_split, test = evaluation.split(ratings, config.test_fraction, config.seed)
        params, grid = config.params(training_rows), []
        if config.searching():
            log.info("Grid search on a validation split of the training split")
            params, grid = evaluation.grid_search(
                train_split,
                params,
                ranks=config.search_ranks,
                reg_params=config.search_reg_params,
                alphas=config.search_alphas,
                validation_fraction=config.validation_fraction,
            )
            for point in grid:
                log.info(f"grid point {point}")
        params, ranker_choice = evaluation.choose_ranker(train_split, params)
        if ranker_choice:
            log.info(f"Ranking model: {ranker_choice['chosen']} ({ranker_choice['why']}: {ranker_choice})")
        log.info(
            f"Evaluating on a held-out {config.test_fraction:.0%} split (seed {config.seed}) and, beside it, "
            f"fitting the models to save on all {training_rows:,} ratings, with {params}"
        )
        measured, bundle = evaluation.evaluate_and_refit(train_split, test, ratings, params)
        log.info(f"Held-out metrics {measured.metrics}; baselines {measured.baselines}")
        if measured.residual_als is None:
            log.info("rating_rank is 0: no residual ALS was fitted, the star ratings are the biases.")
        elif bundle.rating_model is None:
            log.info(
                f"The residual ALS (held-out RMSE {measured.residual_als['rmse']:.5f}) does not beat the biases alone "
                f"({measured.baselines['bias']['rmse']:.5f}): the star ratings are the biases."
            )
        champion = champion_on_this_data(log, lake, train_split, test, params, measured)
    finally:
        ratings.unpersist()
    return Trained(
        trained_on, training_rows, streamed_rows, profile, params, grid, ranker_choice, measured, bundle, champion
    )


def champion_on_this_data(
    log: logging.Logger,
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
        log.warning(
            f"Champion {pointer['version']} has no parameters this version can fit: judged by its stored metrics."
        )
        return {"version": pointer["version"], "params": stored.get("params"), "metrics": stored["metrics"]}
    if champion_params == params:
        metrics = candidate.metrics
    else:
        log.info(f"Fitting champion {pointer['version']}'s parameters on this training split to judge it here")
        measured, bundle = evaluation.evaluate(train, test, champion_params)
        bundle.release()
        metrics = measured.metrics
    log.info(f"Champion {pointer['version']} on this held-out data: {metrics}")
    return {"version": pointer["version"], "params": champion_params.as_dict(), "metrics": metrics}


def describe(trained: Trained, config: AlsModelConfig, now: datetime) -> dict[str, Any]:
    """The candidate's model.json, as a new version trained `now`: what it learned from, how it was measured, and
    what was fitted."""
    measured, bundle = trained.measured, trained.bundle
    return {
        "version": registry.new_version(now),
        "trained_at": registry.utc_iso(now),
        "training_rows": trained.training_rows,
        STREAMED_ROWS: trained.streamed_rows,
        "training_data_version": trained.trained_on.version,
        "test_rows": measured.test_rows,
        "evaluated_users": measured.evaluated_users,
        "params": trained.params.as_dict(),
        "metrics": measured.metrics,
        "baselines": measured.baselines,
        # What the metrics were measured on: this training data's held-out split.
        "evaluated_on": {
            "training_rows": trained.training_rows,
            STREAMED_ROWS: trained.streamed_rows,
            "test_rows": measured.test_rows,
            "test_fraction": config.test_fraction,
            "split_seed": config.seed,
        },
        "champion_on_this_data": trained.champion,
        # The saved models' own training data: the metrics above judged their parameters on the split, and
        # the models were then fitted again on every rating, the held-out ones included.
        "fitted_on": "all ratings",
        "fitted_rows": trained.training_rows,
        "global_mean": bundle.biases.global_mean,
        # The residual ALS is kept only when it beats the biases alone on the held-out split.
        "rating_model": bundle.rating_model_kind,
        "residual_als": measured.residual_als,
        "ranking_model": bundle.ranking_model_kind,
        "ranker_choice": trained.ranker_choice,
        "beyond_accuracy": measured.beyond_accuracy,
        "grid": trained.grid,
    }


def judge(info: dict[str, Any], champion: dict | None, config: AlsModelConfig) -> gate.GateDecision:
    """The gate's decision on the candidate described by `info`, recorded in it."""
    decision = gate.decide(info, champion, rmse_tolerance=config.rmse_tolerance, ndcg_tolerance=config.ndcg_tolerance)
    info["gate"] = {"passed": decision.passed, "reasons": list(decision.reasons), "summary": decision.summary}
    return decision


def register(lake: Lake, trained: Trained, info: dict[str, Any]) -> dict[str, Any]:
    """Save the candidate's models and its model.json (with its card) as a new version in the lake; the card."""
    registry.save_bundle(lake, info["version"], trained.bundle)
    card = model_card(info, trained.profile)
    info["card"] = {key: value for key, value in card.items() if key != "markdown"}
    registry.write_model_info(lake, info)
    return card
