"""How the models are measured, and the ranking model chosen: plain PySpark functions, no Dagster.

`evaluate` fits the models (`training.py`) on a training split and measures them honestly on the
held-out split, beside a user+movie bias baseline (for RMSE/MAE) and most-popular (for ranking);
`evaluate_and_refit` also fits them again on all ratings, and those are the models a retrain saves.
`choose_ranker` picks EASE or implicit ALS on a validation split carved from the training split,
and `grid_search` ALS's parameters the same way.
"""

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from itertools import product

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from movierec_dagster.model import ease
from movierec_dagster.model.training import (
    ALS_RANKER,
    AUTO,
    EASE_RANKER,
    TOP_K,
    ModelBundle,
    ModelParams,
    cached,
    clip_rating,
    fit_bundle,
    fit_ranking_model,
    most_popular_top_k,
    predict_ratings,
    ranking_lists,
    recommend_top_k,
)

RELEVANT_RATING = 4.0
# The share of the training split `choose_ranker` holds out to choose between the ranking models.
RANKER_VALIDATION_FRACTION = 0.2


@dataclass
class Evaluation:
    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]
    test_rows: int
    evaluated_users: int
    residual_als: dict[str, float] | None  # the residual ALS's held-out RMSE and MAE, kept or not; None: not fitted
    # Beyond accuracy, of the lists of the users with held-out ratings: "model" and "most_popular" -> `beyond_accuracy`.
    beyond_accuracy: dict[str, dict[str, float]]


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
    with cached(fit), cached(validation):
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
    params, _ = choose_ranker(train, params, k)
    with cached(train), cached(test):
        bundle = fit_bundle(train, params)
        # One pass over the test split for both: the predictions keep the bias baseline beside them.
        with cached(predict_ratings(bundle, test, keep_baseline=True)) as predictions:
            # rating_rank 0: no residual ALS was fitted.
            residual_als = None if bundle.rating_model is None else rating_errors(predictions, "predicted_rating")
            bias_errors = rating_errors(predictions.withColumn("baseline", clip_rating(F.col("baseline"))), "baseline")
        errors = residual_als
        if residual_als is None or not residual_als["rmse"] < bias_errors["rmse"]:
            bundle, errors = replace(bundle, rating_model=None), bias_errors
        test_users = test.select("user_id").distinct()
        with cached(recommend_top_k(bundle, train, k)) as lists, cached(most_popular_top_k(train, test_users, k)) as popular_lists:
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
    with cached(fit), cached(validation):
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
