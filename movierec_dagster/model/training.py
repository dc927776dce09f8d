"""The model: plain PySpark functions, no Dagster.

Two Spark ML models, each built for its job:

- the *ranking* model chooses each user's movies: implicit-feedback ALS, where a
  rating is a confidence that the user cares about the movie (ratings below
  `neutral_rating` count as evidence against);
- the *rating* model predicts the star rating shown beside each movie: a global
  mean plus regularised user and movie biases, plus explicit ALS on the residuals
  when that beats the biases alone on the held-out split.

`evaluate` measures both honestly on a held-out split, beside a user+movie bias
baseline (for RMSE/MAE) and most-popular (for ranking); `evaluate_and_refit` also
fits both again on all ratings, and those are the models a retrain saves.
"""

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from itertools import product

from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from movierec_dagster.validation import MAX_RATING, MIN_RATING
from movierec_dagster.model.topk import most_popular_unseen, top_k_unseen

RELEVANT_RATING = 4.0
TOP_K = 10
TRAINING_COLUMNS = ("user_id", "movie_id", "rating", "rated_at")
# What a bundle's star ratings are made of (model.json's `rating_model`).
BIASES_AND_RESIDUAL_ALS = "biases + residual ALS"
BIASES_ONLY = "biases"


@dataclass(frozen=True)
class ModelParams:
    """Hyper-parameters of both models (defaults measured on ml-latest-small, see bench/model_quality.py)."""

    rating_rank: int = 50  # 0: no residual ALS, the star ratings are the biases (`fit_bundle`)
    rating_reg_param: float = 0.1
    rating_max_iter: int = 5
    user_bias_reg: float = 15.0
    item_bias_reg: float = 10.0
    bias_iterations: int = 3
    ranking_rank: int = 30
    ranking_reg_param: float = 0.1
    ranking_max_iter: int = 8
    alpha: float = 1.0
    neutral_rating: float = 3.0
    seed: int = 42
    # ALS user and item blocks. The factors depend on the blocking, so als_model's config picks it from the
    # data (`blocks_for`), not the machine's core count, to keep results reproducible.
    num_blocks: int = 1

    def as_dict(self) -> dict:
        return asdict(self)


# `blocks_for`: one ALS block per this many ratings, up to Spark ML's own default of 10 blocks.
RATINGS_PER_BLOCK = 2_500_000
MAX_BLOCKS = 10


def blocks_for(ratings: int) -> int:
    """ALS user and item blocks for this many training ratings: 1 below 2.5M, then one more per 2.5M, at most 10.

    One block is one task per ALS stage: fastest on small data, where the rating and the ranking
    fits run side by side, but one core per fit at scale (at 5M ratings on 2 cores, 2 or 10 blocks
    took 0.7-0.9x the time of one; docs/benchmarks.md), and on a cluster more blocks give more cores work.
    """
    return min(MAX_BLOCKS, max(1, math.ceil(ratings / RATINGS_PER_BLOCK)))


@dataclass
class Biases:
    global_mean: float
    user_bias: DataFrame  # user_id, user_bias
    item_bias: DataFrame  # movie_id, item_bias


@dataclass
class ModelBundle:
    """The fitted models: biases + residual ALS (rating), implicit ALS (ranking).

    `rating_model` is None when the residual ALS did not beat the biases alone on the
    held-out split: the star ratings are then the biases.
    """

    biases: Biases
    rating_model: ALSModel | None
    ranking_model: ALSModel

    @property
    def rating_model_kind(self) -> str:
        return BIASES_ONLY if self.rating_model is None else BIASES_AND_RESIDUAL_ALS

    def release(self) -> None:
        """Drop the biases from Spark's cache (`fit_biases` caches them) once the bundle is done with."""
        self.biases.user_bias.unpersist()
        self.biases.item_bias.unpersist()


@dataclass
class Evaluation:
    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]
    test_rows: int
    evaluated_users: int
    residual_als: dict[str, float] | None  # the residual ALS's held-out RMSE and MAE, kept or not; None: not fitted


def merge_ratings(history: DataFrame, events: DataFrame | None) -> DataFrame:
    """user_id, movie_id, rating, rated_at: the latest rating of each (user, movie).

    A streamed event wins over a historical rating given at the same instant; among
    events, the later `ingested_at` wins.
    """
    frames = history.select(
        *TRAINING_COLUMNS, F.lit(0).alias("_source"), F.lit(None).cast("timestamp").alias("_ingested_at")
    )
    if events is not None:
        frames = frames.unionByName(
            events.select(*TRAINING_COLUMNS, F.lit(1).alias("_source"), F.col("ingested_at").alias("_ingested_at"))
        )
    latest_first = Window.partitionBy("user_id", "movie_id").orderBy(
        F.col("rated_at").desc(), F.col("_source").desc(), F.col("_ingested_at").desc_nulls_last()
    )
    return (
        frames.withColumn("_order", F.row_number().over(latest_first))
        .where(F.col("_order") == 1)
        .select(*TRAINING_COLUMNS)
    )


def split(ratings: DataFrame, test_fraction: float, seed: int) -> tuple[DataFrame, DataFrame]:
    """A fixed random (train, test) split of the ratings."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    # A hash of (user, movie, seed) instead of randomSplit: the same rows land in the
    # same side however the data is partitioned or recomputed.
    draw = (F.abs(F.xxhash64("user_id", "movie_id", F.lit(seed))) % 1_000_000) / 1_000_000.0
    rows = ratings.select("user_id", "movie_id", "rating", draw.alias("_draw"))
    test = rows.where(F.col("_draw") < test_fraction).drop("_draw")
    train = rows.where(F.col("_draw") >= test_fraction).drop("_draw")
    return train, test


def fit_biases(ratings: DataFrame, user_reg: float, item_reg: float, iterations: int) -> Biases:
    """Global mean plus regularised user and movie biases, by alternating least squares."""
    global_mean = ratings.agg(F.avg("rating")).first()[0]
    if global_mean is None:
        raise ValueError("cannot fit a model on no ratings")
    user_bias = ratings.select("user_id").distinct().withColumn("user_bias", F.lit(0.0))
    item_bias = None
    for _ in range(max(1, iterations)):
        item_bias = (
            ratings.join(user_bias, "user_id")
            .groupBy("movie_id")
            .agg((F.sum(F.col("rating") - global_mean - F.col("user_bias")) / (item_reg + F.count("*"))).alias("item_bias"))
        )
        user_bias = (
            ratings.join(item_bias, "movie_id")
            .groupBy("user_id")
            .agg((F.sum(F.col("rating") - global_mean - F.col("item_bias")) / (user_reg + F.count("*"))).alias("user_bias"))
        )
    return Biases(float(global_mean), user_bias.cache(), item_bias.cache())


def bias_prediction(biases: Biases, pairs: DataFrame) -> DataFrame:
    """`pairs` plus `baseline`: global mean + user bias + movie bias (unknown ones count 0)."""
    return (
        pairs.join(biases.user_bias, "user_id", "left")
        .join(biases.item_bias, "movie_id", "left")
        .withColumn(
            "baseline",
            F.lit(biases.global_mean) + F.coalesce(F.col("user_bias"), F.lit(0.0)) + F.coalesce(F.col("item_bias"), F.lit(0.0)),
        )
        .drop("user_bias", "item_bias")
    )


def clip_rating(column: F.Column) -> F.Column:
    return F.least(F.greatest(column, F.lit(MIN_RATING)), F.lit(MAX_RATING))


def _als(params: ModelParams, rank: int, max_iter: int, reg_param: float, rating_col: str, **extra) -> ALS:
    if params.num_blocks < 1:
        raise ValueError(f"num_blocks must be at least 1, got {params.num_blocks}")
    return ALS(
        rank=rank,
        maxIter=max_iter,
        regParam=reg_param,
        userCol="user_id",
        itemCol="movie_id",
        ratingCol=rating_col,
        seed=params.seed,
        coldStartStrategy="nan",
        numUserBlocks=params.num_blocks,
        numItemBlocks=params.num_blocks,
        **extra,
    )


def fit_ranking_model(ratings: DataFrame, params: ModelParams) -> ALSModel:
    """Implicit ALS where `rating - neutral_rating` is the confidence (negative: evidence against)."""
    confidence = ratings.select("user_id", "movie_id", (F.col("rating") - params.neutral_rating).alias("confidence"))
    als = _als(
        params, params.ranking_rank, params.ranking_max_iter, params.ranking_reg_param, "confidence",
        implicitPrefs=True, alpha=params.alpha,
    )
    return als.fit(confidence)


def fit_rating_model(ratings: DataFrame, biases: Biases, params: ModelParams) -> ALSModel:
    """Explicit ALS on what the biases leave unexplained."""
    residuals = bias_prediction(biases, ratings).select(
        "user_id", "movie_id", (F.col("rating") - F.col("baseline")).alias("residual")
    )
    return _als(params, params.rating_rank, params.rating_max_iter, params.rating_reg_param, "residual").fit(residuals)


@contextmanager
def _cached(frame: DataFrame) -> Iterator[DataFrame]:
    """`frame` cached for the block, as it is read several times; a frame its caller cached is left to the caller."""
    if frame.is_cached:
        yield frame
        return
    frame.cache()
    try:
        yield frame
    finally:
        frame.unpersist()


def fit_bundle(ratings: DataFrame, params: ModelParams) -> ModelBundle:
    """Fit the rating model (biases + ALS on residuals) and the ranking model (implicit ALS).

    The ranking model fits in a second thread while the biases and the rating model fit
    here: Spark runs the two jobs side by side, which keeps the cores busy between stages.
    With `rating_rank` 0 no residual ALS is fitted: at scale it is the costliest fit (at 5M
    ratings 64 s of rank 50 against 15 s for the biases, docs/benchmarks.md), and data whose
    ratings the biases explain gains nothing from it.
    """
    if params.rating_rank < 0:
        raise ValueError(f"rating_rank must be 0 (no residual ALS) or more, got {params.rating_rank}")
    with _cached(ratings) as cached:
        ratings = cached.select("user_id", "movie_id", "rating")
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ranking-als") as pool:
            ranking = pool.submit(fit_ranking_model, ratings, params)
            biases = fit_biases(ratings, params.user_bias_reg, params.item_bias_reg, params.bias_iterations)
            rating_model = fit_rating_model(ratings, biases, params) if params.rating_rank else None
            ranking_model = ranking.result()
    return ModelBundle(biases, rating_model, ranking_model)


def predict_ratings(bundle: ModelBundle, pairs: DataFrame, keep_baseline: bool = False) -> DataFrame:
    """`pairs` (user_id, movie_id, ...) plus `predicted_rating`, clipped to 0.5-5.0 (and `baseline`, if asked).

    A user or movie the models never saw gets the parts that are known (at worst the global mean).
    """
    with_baseline = bias_prediction(bundle.biases, pairs)
    if bundle.rating_model is None:
        predicted = with_baseline.withColumn("predicted_rating", clip_rating(F.col("baseline")))
        return predicted if keep_baseline else predicted.drop("baseline")
    residual = bundle.rating_model.transform(with_baseline).withColumnRenamed("prediction", "_residual")
    residual_value = F.when(F.isnan("_residual"), 0.0).otherwise(F.coalesce(F.col("_residual"), F.lit(0.0)))
    predicted = residual.withColumn("predicted_rating", clip_rating(F.col("baseline") + residual_value)).drop("_residual")
    return predicted if keep_baseline else predicted.drop("baseline")


def rating_errors(predictions: DataFrame, prediction: str) -> dict[str, float]:
    """RMSE and MAE of column `prediction` against `rating`."""
    row = predictions.agg(
        F.sqrt(F.avg((F.col(prediction) - F.col("rating")) ** 2)).alias("rmse"),
        F.avg(F.abs(F.col(prediction) - F.col("rating"))).alias("mae"),
    ).first()
    if row["rmse"] is None:
        raise ValueError("no ratings to evaluate on: the test split is empty")
    return {"rmse": float(row["rmse"]), "mae": float(row["mae"])}


def ideal_dcg(relevant: int, k: int) -> float:
    return sum(1.0 / math.log2(position + 1) for position in range(1, min(relevant, k) + 1))


def ranking_metrics(
    recommendations: DataFrame, test: DataFrame, k: int = TOP_K, relevant_rating: float = RELEVANT_RATING
) -> dict[str, float]:
    """precision@k, recall@k, NDCG@k (binary relevance), averaged over users with a relevant test rating.

    `recommendations`: user_id, movie_id, rank (1 = best); `test`: user_id, movie_id, rating.
    A movie is relevant when its held-out rating is at least `relevant_rating`; a user
    without recommendations counts with zero hits.
    """
    relevant = test.where(F.col("rating") >= relevant_rating).select("user_id", "movie_id")
    per_user_relevant = relevant.groupBy("user_id").agg(F.count("*").alias("relevant"))
    hits = (
        recommendations.where(F.col("rank") <= k)
        .join(relevant, ["user_id", "movie_id"])
        .groupBy("user_id")
        .agg(F.count("*").alias("hits"), F.sum(1.0 / F.log2(F.col("rank") + 1.0)).alias("dcg"))
    )
    ideal = F.element_at(F.array(*[F.lit(ideal_dcg(n, k)) for n in range(1, k + 1)]), F.least(F.col("relevant"), F.lit(k)).cast("int"))
    per_user = per_user_relevant.join(hits, "user_id", "left").fillna(0, subset=["hits", "dcg"]).select(
        (F.col("hits") / k).alias("precision"),
        (F.col("hits") / F.col("relevant")).alias("recall"),
        (F.col("dcg") / ideal).alias("ndcg"),
    )
    row = per_user.agg(F.avg("precision"), F.avg("recall"), F.avg("ndcg"), F.count("*")).first()
    if not row[3]:
        raise ValueError(f"no user has a held-out rating of {relevant_rating} or more: cannot measure ranking")
    return {
        f"precision_at_{k}": float(row[0]),
        f"recall_at_{k}": float(row[1]),
        f"ndcg_at_{k}": float(row[2]),
        "evaluated_users": int(row[3]),
    }


def recommend_top_k(bundle: ModelBundle, seen: DataFrame, k: int = TOP_K) -> DataFrame:
    """user_id, movie_id, rank, score: the ranking model's top-k unseen movies of every user it knows."""
    return top_k_unseen(bundle.ranking_model.userFactors, bundle.ranking_model.itemFactors, seen, k)


def most_popular_top_k(train: DataFrame, users: DataFrame, k: int = TOP_K, seen: DataFrame | None = None) -> DataFrame:
    """user_id, movie_id, rank, score: the k most-rated movies each user has not rated (in `seen`, by default `train`)."""
    return most_popular_unseen(train, users, k, seen)


def evaluate(train: DataFrame, test: DataFrame, params: ModelParams, k: int = TOP_K) -> tuple[Evaluation, ModelBundle]:
    """Fit on `train`, measure on `test`; the same split for the baselines. Returns the evaluation and the fitted bundle.

    The residual ALS is dropped from the bundle when its RMSE on `test` does not beat the
    biases alone: the rating model is then the bias baseline, and its metrics are the
    baseline's. On data whose ratings the biases explain (the synthetic data at 1M, issue
    13), a rating model no better than its baseline would otherwise keep a good ranking
    model out of the gate. The choice is made on the split the metrics are reported on:
    one choice between two models, on every held-out rating. With `rating_rank` 0 there is
    no residual ALS to choose (`Evaluation.residual_als` is None).
    """
    with _cached(train), _cached(test):
        bundle = fit_bundle(train, params)
        # One pass over the test split for both: the predictions keep the bias baseline beside them.
        with _cached(predict_ratings(bundle, test, keep_baseline=True)) as predictions:
            # rating_rank 0: no residual ALS was fitted.
            residual_als = None if bundle.rating_model is None else rating_errors(predictions, "predicted_rating")
            bias_errors = rating_errors(predictions.withColumn("baseline", clip_rating(F.col("baseline"))), "baseline")
        errors = residual_als
        if residual_als is None or not residual_als["rmse"] < bias_errors["rmse"]:
            bundle, errors = replace(bundle, rating_model=None), bias_errors
        seen = train.select("user_id", "movie_id")
        ranking = ranking_metrics(recommend_top_k(bundle, seen, k), test, k)
        test_users = test.select("user_id").distinct()
        popular = ranking_metrics(most_popular_top_k(train, test_users, k), test, k)
        test_rows = test.count()
    evaluated_users = ranking.pop("evaluated_users")
    popular.pop("evaluated_users")
    return (
        Evaluation(
            metrics={**errors, **ranking},
            baselines={"bias": bias_errors, "most_popular": popular},
            test_rows=test_rows,
            evaluated_users=evaluated_users,
            residual_als=residual_als,
        ),
        bundle,
    )


def evaluate_and_refit(
    train: DataFrame, test: DataFrame, ratings: DataFrame, params: ModelParams, k: int = TOP_K
) -> tuple[Evaluation, ModelBundle]:
    """`evaluate(train, test)`, and beside it (in a second thread, as concurrent Spark jobs) the refit on all `ratings`.

    Returns the evaluation and the bundle fitted on all ratings: the one that is saved and served.
    The evaluation judges the parameters; the refit then learns from the held-out ratings too,
    which users' lists would otherwise miss. Its residual ALS is dropped when the evaluated
    one's was.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="refit") as pool:
        refit = pool.submit(fit_bundle, ratings, params)
        evaluation, evaluated = evaluate(train, test, params, k)
        evaluated.release()
        refitted = refit.result()
        if evaluated.rating_model is None:
            refitted = replace(refitted, rating_model=None)
        return evaluation, refitted


def grid_search(
    train: DataFrame,
    base: ModelParams,
    *,
    ranks: list[int],
    reg_params: list[float],
    alphas: list[float],
    validation_fraction: float,
    k: int = TOP_K,
) -> tuple[ModelParams, list[dict[str, float]]]:
    """Evaluate every (rank, regParam, alpha) on a validation split carved out of `train`.

    Returns the chosen parameters (the rating model's from the point with the lowest
    RMSE, the ranking model's from the point with the highest NDCG@k: the two models
    are independent) and every point's figures. Empty lists keep `base`'s value.
    """
    fit, validation = split(train, validation_fraction, base.seed + 1)
    points = []
    grid = product(ranks or [base.ranking_rank], reg_params or [base.ranking_reg_param], alphas or [base.alpha])
    with _cached(fit), _cached(validation):
        for rank, reg_param, alpha in grid:
            params = replace(
                base, rating_rank=rank, ranking_rank=rank, rating_reg_param=reg_param, ranking_reg_param=reg_param,
                alpha=alpha,
            )
            evaluation, bundle = evaluate(fit, validation, params, k)
            bundle.release()
            points.append({"rank": rank, "reg_param": reg_param, "alpha": alpha, **evaluation.metrics})
    best_rating = min(points, key=lambda point: point["rmse"])
    best_ranking = max(points, key=lambda point: point[f"ndcg_at_{k}"])
    chosen = replace(
        base,
        rating_rank=int(best_rating["rank"]),
        rating_reg_param=best_rating["reg_param"],
        ranking_rank=int(best_ranking["rank"]),
        ranking_reg_param=best_ranking["reg_param"],
        alpha=best_ranking["alpha"],
    )
    return chosen, points
