"""The model: plain PySpark functions, no Dagster.

Two models, each built for its job:

- the *ranking* model chooses each user's movies: EASE (`ease.py`, an item-to-item
  model solved in closed form) where the catalogue is small enough for its items x
  items matrix and it beats ALS on a validation split, else implicit-feedback ALS,
  where a rating is a confidence that the user cares about the movie (ratings below
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

from movierec_dagster.model import ease
from movierec_dagster.model.topk import most_popular_unseen, top_k_unseen
from movierec_dagster.names import MAX_RATING, MIN_RATING

RELEVANT_RATING = 4.0
TOP_K = 10
TRAINING_COLUMNS = ("user_id", "movie_id", "rating", "rated_at")
# What a bundle's star ratings are made of (model.json's `rating_model`).
BIASES_AND_RESIDUAL_ALS = "biases + residual ALS"
BIASES_ONLY = "biases"
# The ranking model (ModelParams.ranker, model.json's `ranking_model`): chosen on a validation split, or set.
AUTO, ALS_RANKER, EASE_RANKER = "auto", "implicit ALS", "EASE"
RANKERS = (AUTO, ALS_RANKER, EASE_RANKER)
# The share of the training split `choose_ranker` holds out to choose between the ranking models.
RANKER_VALIDATION_FRACTION = 0.2


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
    # The ranking model: AUTO chooses between EASE and implicit ALS on a validation split (`choose_ranker`).
    ranker: str = AUTO
    ease_l2: float = ease.EaseParams().l2
    ease_weighting: str = ease.EaseParams().weighting
    # EASE inverts an items x items matrix: above this many movies ALS ranks them.
    ease_max_items: int = ease.EaseParams().max_items

    def as_dict(self) -> dict:
        return asdict(self)

    def ease_params(self) -> ease.EaseParams:
        return ease.EaseParams(
            l2=self.ease_l2, weighting=self.ease_weighting, neutral_rating=self.neutral_rating, max_items=self.ease_max_items
        )


# `blocks_for`: one ALS block per this many ratings, up to Spark ML's own default of 10 blocks.
RATINGS_PER_BLOCK = 2_500_000
MAX_BLOCKS = 10


def blocks_for(ratings: int) -> int:
    """ALS user and item blocks for this many training ratings: 1 below 2.5M, then one more per 2.5M, at most 10.

    One block is one task per ALS stage: fastest on small data, where the rating and the ranking
    fits run side by side, but one core per fit at scale (docs/performance.md, "ALS blocks"), and on
    a cluster more blocks give more cores work.
    """
    return min(MAX_BLOCKS, max(1, math.ceil(ratings / RATINGS_PER_BLOCK)))


@dataclass
class Biases:
    global_mean: float
    user_bias: DataFrame  # user_id, user_bias
    item_bias: DataFrame  # movie_id, item_bias


@dataclass
class ModelBundle:
    """The fitted models: biases + residual ALS (rating), EASE or implicit ALS (ranking).

    `rating_model` is None when the residual ALS did not beat the biases alone on the
    held-out split: the star ratings are then the biases.
    """

    biases: Biases
    rating_model: ALSModel | None
    ranking_model: ALSModel | ease.EaseModel

    @property
    def rating_model_kind(self) -> str:
        return BIASES_ONLY if self.rating_model is None else BIASES_AND_RESIDUAL_ALS

    @property
    def ranking_model_kind(self) -> str:
        return EASE_RANKER if isinstance(self.ranking_model, ease.EaseModel) else ALS_RANKER

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
    # Beyond accuracy, of the lists of the users with held-out ratings: "model" and "most_popular" -> `beyond_accuracy`.
    beyond_accuracy: dict[str, dict[str, float]]


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


def fit_ranker(ratings: DataFrame, params: ModelParams) -> ALSModel | ease.EaseModel:
    """The ranking model `params.ranker` names (EASE or implicit ALS; AUTO must be resolved by `choose_ranker` first)."""
    if params.ranker == EASE_RANKER:
        return ease.fit_ease(ratings, params.ease_params())
    if params.ranker == ALS_RANKER:
        return fit_ranking_model(ratings, params)
    raise ValueError(f"ranker {params.ranker!r}: choose one of {', '.join(RANKERS)} (resolve {AUTO!r} with choose_ranker)")


def choose_ranker(train: DataFrame, params: ModelParams, k: int = TOP_K) -> tuple[ModelParams, dict]:
    """`params` with `ranker` AUTO resolved, and the figures the choice was made on.

    EASE is a candidate when the catalogue has at most `ease_max_items` movies. Both are fitted
    on 80% of `train` and judged by NDCG@k on the rest (a validation split, seed + 1, as
    `grid_search` carves): the held-out test split that the gate and the reported metrics use is
    never looked at, so the choice cannot flatter them. The ALS fit runs in Spark while EASE
    solves on the driver, side by side.
    """
    if params.ranker != AUTO:
        return params, {}
    movies = train.select("movie_id").distinct().count()
    if movies > params.ease_max_items:
        return replace(params, ranker=ALS_RANKER), {
            "chosen": ALS_RANKER, "why": f"{movies:,} movies exceed ease_max_items ({params.ease_max_items:,})"
        }
    fit, validation = split(train, RANKER_VALIDATION_FRACTION, params.seed + 1)
    figures = {}
    with _cached(fit), _cached(validation):
        if validation.where(F.col("rating") >= RELEVANT_RATING).isEmpty():
            return replace(params, ranker=ALS_RANKER), {
                "chosen": ALS_RANKER, "why": f"no validation rating of {RELEVANT_RATING} or more to choose on"
            }
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ranker-als") as pool:
            als = pool.submit(fit_ranking_model, fit, params)
            candidates = {EASE_RANKER: ease.fit_ease(fit, params.ease_params()), ALS_RANKER: als.result()}
        for name, model in candidates.items():
            lists = ranking_lists(model, fit, k)
            figures[name] = ranking_metrics(lists, validation, k)[f"ndcg_at_{k}"]
    chosen = max(figures, key=lambda name: (figures[name], name == ALS_RANKER))
    return replace(params, ranker=chosen), {
        "chosen": chosen, "why": "the higher validation NDCG@10", "validation_ndcg_at_10": figures
    }


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
    """Fit the rating model (biases + ALS on residuals) and the ranking model (EASE or implicit ALS; with `ranker`
    AUTO, `choose_ranker` chooses on a validation split of `ratings`).

    The ranking model fits in a second thread while the biases and the rating model fit
    here: Spark runs the two jobs side by side, which keeps the cores busy between stages.
    With `rating_rank` 0 no residual ALS is fitted: at scale it is the costliest fit
    (`bench.training_breakdown`), and data whose ratings the biases explain gains nothing from it.
    """
    if params.rating_rank < 0:
        raise ValueError(f"rating_rank must be 0 (no residual ALS) or more, got {params.rating_rank}")
    with _cached(ratings) as cached:
        ratings = cached.select("user_id", "movie_id", "rating")
        params, _ = choose_ranker(ratings, params)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ranking") as pool:
            ranking = pool.submit(fit_ranker, ratings, params)
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


def beyond_accuracy(lists: DataFrame, train: DataFrame) -> dict[str, float]:
    """What a set of top-k lists shows of the catalogue, beside how accurate it is.

    `catalog_coverage`: the share of the movies in `train` that appear in at least one list;
    `mean_popularity`: the average, over every listed movie, of the share of `train`'s users who
    rated it (most-popular lists score high, a long tail low).
    """
    raters = train.groupBy("movie_id").agg(F.count("*").alias("_raters"))
    totals = train.agg(F.count_distinct("movie_id").alias("movies"), F.count_distinct("user_id").alias("users")).first()
    listed = lists.select("movie_id").join(raters, "movie_id", "left")
    row = listed.agg(F.count_distinct("movie_id").alias("listed"), F.avg(F.coalesce("_raters", F.lit(0))).alias("raters")).first()
    return {
        "catalog_coverage": (row["listed"] or 0) / totals["movies"] if totals["movies"] else 0.0,
        "mean_popularity": (row["raters"] or 0.0) / totals["users"] if totals["users"] else 0.0,
    }


def ranking_lists(model: ALSModel | ease.EaseModel, ratings: DataFrame, k: int = TOP_K, users: DataFrame | None = None) -> DataFrame:
    """user_id, movie_id, rank, score: `model`'s top-k movies of each user (of `users`, by default all it can score)
    that the user did not rate in `ratings` (user_id, movie_id, rating).

    ALS scores the users it has factors for; EASE every user with a rating of a movie it knows, from those ratings.
    """
    if isinstance(model, ease.EaseModel):
        return ease.ease_top_k_unseen(model, ratings, users, k)
    user_factors = model.userFactors
    if users is not None:
        user_factors = user_factors.join(users.select(F.col("user_id").alias("id")), "id", "left_semi")
    return top_k_unseen(user_factors, model.itemFactors, ratings.select("user_id", "movie_id"), k)


def recommend_top_k(bundle: ModelBundle, ratings: DataFrame, k: int = TOP_K) -> DataFrame:
    """user_id, movie_id, rank, score: the ranking model's top-k movies of every user it can score, unrated in `ratings`."""
    return ranking_lists(bundle.ranking_model, ratings, k)


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
        test_users = test.select("user_id").distinct()
        with _cached(recommend_top_k(bundle, train, k)) as lists, _cached(most_popular_top_k(train, test_users, k)) as popular_lists:
            ranking = ranking_metrics(lists, test, k)
            popular = ranking_metrics(popular_lists, test, k)
            # Both on the same users' lists: those with a held-out rating.
            beyond = {
                "model": beyond_accuracy(lists.join(test_users, "user_id", "left_semi"), train),
                "most_popular": beyond_accuracy(popular_lists, train),
            }
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
            beyond_accuracy=beyond,
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
    params, _ = choose_ranker(train, params, k)
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
            # The grid is ALS's: with the ranker left to choose, its points rank with ALS.
            params = replace(
                base, rating_rank=rank, ranking_rank=rank, rating_reg_param=reg_param, ranking_reg_param=reg_param,
                alpha=alpha, ranker=ALS_RANKER if base.ranker == AUTO else base.ranker,
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
