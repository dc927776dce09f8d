"""EASE against our implicit ALS and most popular on bench.model_quality's split of ml-latest-small (issue 30).

    .venv/bin/python -m bench.ease_quality                 # validation grid, then the chosen settings on the test split
    .venv/bin/python -m bench.ease_quality --quick         # the chosen defaults only (no grid)
    .venv/bin/python -m bench.ease_quality --catalog 15000,20000   # also the fit's time and memory on random catalogs
    .venv/bin/python -m bench.ease_quality --synthetic 100000      # also on ml-100k-shaped synthetic data
    .venv/bin/python -m bench.ease_quality --quick --rerank        # also EASE re-ranked by the predicted stars

Method: the split is bench.model_quality's (80/20, seed 42). Every setting (lambda, weighting, the blend's weight) is
chosen on a validation split carved out of the training side (`evaluation.split(train, 0.2, seed=43)`): fitted on the
other 80% of it, measured there. Only the chosen setting is then fitted on the whole training side and measured on
the test split; the grid's test column is printed for the record, after the choice, and chose nothing.

Peak memory is the driver process's resident high-water mark during the fit (VmHWM, reset before it through
/proc/self/clear_refs), minus the resident size before it: what the fit added to the Python process. ALS fits in the
JVM, which that does not see.
"""

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from bench.model_data import movielens_ratings, session, synthetic_archive
from movierec_dagster.model import evaluation, training
from movierec_dagster.model.topk import most_popular_unseen, top_k_unseen
from movierec_dagster.model.ease import (
    BINARY,
    CENTERED,
    RATING,
    EaseParams,
    ease_top_k_unseen,
    fit_ease,
    fit_ease_arrays,
    input_values,
)

# The validation grid: lambda is on the scale of the squared input values (binary 1, rating / 5 at most 1).
GRID = [
    *(EaseParams(l2=l2, weighting=BINARY) for l2 in (100.0, 200.0, 400.0)),
    *(EaseParams(l2=l2, weighting=RATING) for l2 in (50.0, 100.0, 200.0)),
    *(EaseParams(l2=l2, weighting=CENTERED) for l2 in (50.0, 100.0, 200.0)),
]
BLEND_WEIGHTS = (0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
METRICS = ("ndcg_at_10", "precision_at_10", "recall_at_10")


def _status(field: str) -> int:
    """A field of /proc/self/status in bytes (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def measured(work):
    """(work's result, seconds, bytes the process's peak resident size rose above its size before)."""
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident size
    except OSError:
        pass
    before = _status("VmRSS")
    started = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - started
    return result, seconds, max(0, _status("VmHWM") - before)


def cells(figures: dict[str, float]) -> str:
    return " | ".join(f"{figures[m]:.4f}" for m in METRICS)


def ease_metrics(params: EaseParams, train: DataFrame, test: DataFrame) -> tuple[dict, float, int]:
    model, seconds, peak = measured(lambda: fit_ease(train, params))
    figures = evaluation.ranking_metrics(ease_top_k_unseen(model, train, test.select("user_id").distinct(), 10), test)
    return figures, seconds, peak


def als_metrics(params: training.ModelParams, train: DataFrame, test: DataFrame) -> tuple[dict, float, int]:
    """The ranking ALS alone (`training.fit_ranking_model`, what `evaluation.evaluate` ranks with), scored as the pipeline
    scores it."""
    model, seconds, peak = measured(lambda: training.fit_ranking_model(train, params))
    users = model.userFactors.join(test.select(F.col("user_id").alias("id")).distinct(), "id", "left_semi")
    lists = top_k_unseen(users, model.itemFactors, train.select("user_id", "movie_id"), 10)
    return evaluation.ranking_metrics(lists, test), seconds, peak


def arrays(frame: DataFrame) -> pd.DataFrame:
    return frame.select("user_id", "movie_id", "rating").toPandas()


def score_matrices(train: DataFrame, ease_params: EaseParams, als_params: training.ModelParams):
    """(users, items, seen mask, EASE scores, ALS scores) of every user of `train` over every movie, in numpy: the
    blend's inputs. Fits both models on `train`."""
    pairs = arrays(train)
    users, rows = np.unique(pairs["user_id"], return_inverse=True)
    items, columns = np.unique(pairs["movie_id"], return_inverse=True)
    values = input_values(pairs["rating"].to_numpy(), ease_params)
    model = fit_ease_arrays(pairs["user_id"].to_numpy(), pairs["movie_id"].to_numpy(), values, ease_params)
    x = np.zeros((len(users), len(items)), dtype=np.float32)
    x[rows, columns] = values
    ease_scores = x @ model.weights
    ranking = training.fit_ranking_model(train, als_params)
    user_factors = ranking.userFactors.toPandas().set_index("id")
    item_factors = ranking.itemFactors.toPandas().set_index("id")
    u = np.stack([np.asarray(user_factors["features"].get(user, np.zeros(als_params.ranking_rank))) for user in users])
    v = np.stack([np.asarray(item_factors["features"].get(item, np.zeros(als_params.ranking_rank))) for item in items])
    seen = np.zeros((len(users), len(items)), dtype=bool)
    seen[rows, columns] = True
    return users, items, seen, ease_scores.astype(np.float64), (u @ v.T).astype(np.float64)


def standardised(scores: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Each user's scores of unseen movies as z-scores over those movies (seen ones -inf)."""
    masked = np.where(seen, np.nan, scores)
    z = (masked - np.nanmean(masked, axis=1, keepdims=True)) / np.nanstd(masked, axis=1, keepdims=True)
    return np.where(seen, -np.inf, z)


def top10_frame(spark, users, items, scores: np.ndarray) -> DataFrame:
    """user_id, movie_id, rank of each row's 10 best columns, ties to the smaller movie id (items are ascending)."""
    order = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    frame = pd.DataFrame(
        {
            "user_id": np.repeat(users, 10).astype("int32"),
            "movie_id": items[order].reshape(-1).astype("int32"),
            "rank": np.tile(np.arange(1, 11), len(users)).astype("int32"),
        }
    )
    return spark.createDataFrame(frame)


def blend_metrics(spark, matrices, weight: float, test: DataFrame, kind: str) -> dict:
    """The top 10 by w x EASE + (1 - w) x ALS: of each user's z-scores ("z") or of the raw scores ("raw")."""
    users, items, seen, ease_scores, als_scores = matrices
    if kind == "z":
        blended = weight * standardised(ease_scores, seen) + (1 - weight) * standardised(als_scores, seen)
    else:
        blended = weight * ease_scores + (1 - weight) * als_scores
    return evaluation.ranking_metrics(top10_frame(spark, users, items, np.where(seen, -np.inf, blended)), test)


def catalog_cost(n_items: int) -> None:
    """Fit time and memory of EASE on a random catalog of `n_items` movies, in a fresh process (its peak is the fit's)."""
    code = (
        "import numpy as np, time, resource\n"
        "from movierec_dagster.model.ease import EaseParams, fit_ease_arrays\n"
        f"n = {n_items}\n"
        "rng = np.random.default_rng(0)\n"
        "users = rng.integers(0, 5000, 40 * n); movies = rng.zipf(1.3, 40 * n) % n; movies[:n] = np.arange(n)\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "t = time.perf_counter(); model = fit_ease_arrays(users, movies, np.ones(len(users), np.float32), EaseParams())\n"
        "s = time.perf_counter() - t\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(f'| {n:,} | {s:.1f} s | {(peak - base) / 2**20:.2f} GB | {model.weights.nbytes / 2**30:.2f} GB |')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    print(result.stdout.strip() or f"| {n_items:,} | failed: {result.stderr.strip()[-300:]} | | |", flush=True)


def run(spark, ratings: DataFrame, label: str, quick: bool, blend: bool) -> None:
    train, test = evaluation.split(ratings, 0.2, seed=42)
    fit, validation = evaluation.split(train, 0.2, seed=43)
    for frame in (train, test, fit, validation):
        frame.cache().count()
    n_items = train.select("movie_id").distinct().count()
    print(f"\n## {label}: {ratings.count():,} ratings, {n_items:,} movies in the training split; "
          f"train {train.count():,} / test {test.count():,}; validation: fit {fit.count():,} / validation {validation.count():,}\n")

    als_params = training.ModelParams()
    val_als, _, _ = als_metrics(als_params, fit, validation)
    test_als, als_seconds, _ = als_metrics(als_params, train, test)
    val_popular = evaluation.ranking_metrics(most_popular_unseen(fit, validation.select("user_id").distinct(), 10), validation)
    test_popular = evaluation.ranking_metrics(most_popular_unseen(train, test.select("user_id").distinct(), 10), test)

    print("| model | validation NDCG@10 | P@10 | R@10 | test NDCG@10 | P@10 | R@10 | fit s | fit peak (driver) |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| most popular | {cells(val_popular)} | {cells(test_popular)} | | |")
    print(f"| implicit ALS, defaults (rank {als_params.ranking_rank}) | {cells(val_als)} | {cells(test_als)} "
          f"| {als_seconds:.1f} | (in the JVM) |", flush=True)

    grid = [EaseParams()] if quick else GRID
    chosen, best = EaseParams(), -1.0
    for params in grid:
        figures, _, _ = ease_metrics(params, fit, validation)
        if figures["ndcg_at_10"] > best:
            chosen, best = params, figures["ndcg_at_10"]
        test_figures, seconds, peak = ease_metrics(params, train, test)
        print(f"| EASE {params.weighting}, l2 {params.l2:g} | {cells(figures)} | {cells(test_figures)} "
              f"| {seconds:.1f} | {peak / 2**30:.2f} GB |", flush=True)
    print(f"\nchosen on validation: {chosen}")

    if blend:
        matrices = score_matrices(fit, chosen, als_params)
        test_matrices = score_matrices(train, chosen, als_params)
        for kind, formula in (("z", "w x z(EASE) + (1 - w) x z(ALS), z-scores over each user's unseen movies"),
                              ("raw", "w x EASE score + (1 - w) x ALS score")):
            points = {weight: blend_metrics(spark, matrices, weight, validation, kind) for weight in BLEND_WEIGHTS}
            weight = max(points, key=lambda w: points[w]["ndcg_at_10"])
            print(f"\n| blend: {formula} | validation NDCG@10 | P@10 | R@10 | test NDCG@10 | P@10 | R@10 |")
            print("|---|---|---|---|---|---|---|")
            for w, figures in points.items():
                test_figures = blend_metrics(spark, test_matrices, w, test, kind)
                mark = " (chosen)" if w == weight else ""
                print(f"| w = {w:g}{mark} | {cells(figures)} | {cells(test_figures)} |", flush=True)
    for frame in (train, test, fit, validation):
        frame.unpersist()


RERANK_WEIGHTS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.4)


def reranked_metrics(train: DataFrame, test: DataFrame, weights, candidates: int = 50) -> dict[float, dict]:
    """EASE's top `candidates` a user, re-ranked by score + weight x the rating model's predicted stars / 5."""
    model = fit_ease(train, EaseParams())
    rating_only = replace(training.ModelParams(), ranker=training.ALS_RANKER, ranking_rank=2, ranking_max_iter=1)
    bundle = training.fit_bundle(train, rating_only)  # the ranking ALS is not used: only the stars
    predicted = training.predict_ratings(bundle, ease_top_k_unseen(model, train, None, candidates)).cache()
    by_blend = Window.partitionBy("user_id").orderBy(F.col("_blend").desc(), F.col("movie_id"))
    figures = {}
    for weight in weights:
        lists = (
            predicted.withColumn("_blend", F.col("score") + weight * F.col("predicted_rating") / 5.0)
            .withColumn("rank", F.row_number().over(by_blend))
            .where(F.col("rank") <= 10)
        )
        figures[weight] = evaluation.ranking_metrics(lists, test)
    predicted.unpersist()
    bundle.release()
    return figures


def rerank(ratings: DataFrame) -> None:
    """The re-ranking's weight chosen on the validation split, then measured on the test split."""
    train, test = (frame.cache() for frame in evaluation.split(ratings, 0.2, seed=42))
    fit, validation = (frame.cache() for frame in evaluation.split(train, 0.2, seed=43))
    print("\n| re-ranked by stars, weight | validation NDCG@10 | P@10 |")
    print("|---|---|---|")
    on_validation = reranked_metrics(fit, validation, RERANK_WEIGHTS)
    for weight, figures in on_validation.items():
        print(f"| {weight} | {figures['ndcg_at_10']:.4f} | {figures['precision_at_10']:.4f} |")
    chosen = max(on_validation, key=lambda weight: on_validation[weight]["ndcg_at_10"])
    on_test = reranked_metrics(train, test, sorted({0.0, chosen}))
    for weight, figures in on_test.items():
        print(f"test, weight {weight}: NDCG@10 {figures['ndcg_at_10']:.4f}, P@10 {figures['precision_at_10']:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="the defaults only, no grid")
    parser.add_argument("--blend", action="store_true", help="also blend EASE and ALS scores (z-scores per user)")
    parser.add_argument("--catalog", default="", metavar="N,N", help="also time the fit on random catalogs of N movies")
    parser.add_argument("--synthetic", type=int, default=0, metavar="RATINGS", help="also on synthetic data of this size")
    parser.add_argument("--rerank", action="store_true", help="also re-rank EASE's top 50 by the predicted stars")
    parser.add_argument("--skip-movielens", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
    spark = session()
    if not args.skip_movielens:
        run(spark, movielens_ratings(spark), "ml-latest-small", args.quick, args.blend)
        if args.rerank:
            rerank(movielens_ratings(spark))
    if args.synthetic:
        archive = synthetic_archive(Path(tempfile.gettempdir()) / "rating-floor", args.synthetic, seed=1)
        run(spark, movielens_ratings(spark, archive), f"synthetic {args.synthetic:,} (generator, seed 1)", args.quick, args.blend)
    if args.catalog:
        print("\n| random catalog | fit (gram + solve) | peak added | B (float32) |")
        print("|---|---|---|---|")
        for n_items in (int(n) for n in args.catalog.split(",")):
            catalog_cost(n_items)


if __name__ == "__main__":
    main()
