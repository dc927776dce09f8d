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

How they are measured, and the ranking model chosen, is `evaluation.py`.
"""

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from movierec_dagster.model import ease
from movierec_dagster.model.topk import most_popular_unseen, top_k_unseen
from movierec_dagster.names import BIASES_ONLY, MAX_RATING, MIN_RATING

TOP_K = 10
TRAINING_COLUMNS = ("user_id", "movie_id", "rating", "rated_at")
# What a bundle's star ratings are made of (model.json's `rating_model`).
BIASES_AND_RESIDUAL_ALS = "biases + residual ALS"
# The ranking model (ModelParams.ranker, model.json's `ranking_model`): chosen on a validation split, or set.
AUTO, ALS_RANKER, EASE_RANKER = "auto", "implicit ALS", "EASE"
RANKERS = (AUTO, ALS_RANKER, EASE_RANKER)


@dataclass(frozen=True)
class ModelParams:
    """Hyper-parameters of both models (defaults measured on ml-latest-small, see `bench.model quality`)."""

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
    raise ValueError(
        f"ranker {params.ranker!r}: choose one of {', '.join(RANKERS)} (evaluation.choose_ranker resolves {AUTO!r})"
    )


def fit_rating_model(ratings: DataFrame, biases: Biases, params: ModelParams) -> ALSModel:
    """Explicit ALS on what the biases leave unexplained."""
    residuals = bias_prediction(biases, ratings).select(
        "user_id", "movie_id", (F.col("rating") - F.col("baseline")).alias("residual")
    )
    return _als(params, params.rating_rank, params.rating_max_iter, params.rating_reg_param, "residual").fit(residuals)


@contextmanager
def cached(frame: DataFrame) -> Iterator[DataFrame]:
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
    """Fit the rating model (biases + ALS on residuals) and the ranking model `params.ranker` names (EASE or
    implicit ALS; `evaluation.choose_ranker` resolves AUTO).

    The ranking model fits in a second thread while the biases and the rating model fit
    here: Spark runs the two jobs side by side, which keeps the cores busy between stages.
    With `rating_rank` 0 no residual ALS is fitted: at scale it is the costliest fit
    (`bench.model training-breakdown`), and data whose ratings the biases explain gains nothing from it.
    """
    if params.rating_rank < 0:
        raise ValueError(f"rating_rank must be 0 (no residual ALS) or more, got {params.rating_rank}")
    with cached(ratings) as kept:
        ratings = kept.select("user_id", "movie_id", "rating")
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
