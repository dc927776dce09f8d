"""The models: their quality on ml-latest-small, the lists a retrain serves, and what a retrain costs, part by part.

    .venv/bin/python -m bench.model <subcommand> [options]     (--help after a subcommand for its options)

Subcommands:
    quality             the models on ml-latest-small's fixed 80/20 split (seed 42) beside the bias and
                        most-popular baselines; --grid, --timing
    ease-quality        EASE against implicit ALS and most popular on the same split, its settings chosen on a
                        validation split; --blend, --rerank, --synthetic, --catalog (the fit's time and memory)
    served-lists        the lists a retrain serves, scored on ratings no part of the retrain saw
    rating-floor        how much a rating model can learn beyond the biases on the synthetic data
    refit-cost          what the refit on all ratings costs a retrain (`evaluate` against `evaluate_and_refit`)
    gate-cost           what the gate's fair comparison costs a retrain (the als_model step, through Dagster)
    retrain-parts       the retrain's Spark work on ml-latest-small, part by part, with EASE and with implicit ALS
    training-breakdown  where a retrain's time goes at scale, on a synthetic zip; --evaluate-blocks (ALS blocks)

The subcommands on ml-latest-small measure on `quality`'s split (`evaluation.split(ratings, 0.2, 42)`, als_model's
own), except served-lists, which first holds out a fifth of the ratings by other seeds.
"""

import argparse
import gc
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from functools import partial
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from bench.common import (
    SYNTHETIC_CACHE,
    add_source,
    family_parser,
    movielens_ratings,
    session,
    subcommand,
    synthetic_archive,
)
from generator.dataset import _Model, default_movies, default_users
from generator.tastes import Population, Tastes
from movierec_dagster.model import ease, evaluation, training
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
from movierec_dagster.model.topk import most_popular_unseen, top_k_unseen

# ---- shared by the subcommands ----

QUALITY_SEED = 42  # the fixed split of ml-latest-small: 80/20, seed 42 (als_model's own seed)
VALIDATION_SEED = 43  # the validation split carved out of the training side


def cached_split(ratings: DataFrame, seed: int = QUALITY_SEED) -> tuple[DataFrame, DataFrame]:
    """(train, test): `evaluation.split(ratings, 0.2, seed)`, both cached (lazily: counted by the caller, if at all)."""
    train, test = evaluation.split(ratings, 0.2, seed)
    return train.cache(), test.cache()


def timed(label: str, work, *, indent: str = "", width: int = 44):
    """work(), its seconds printed after the label."""
    started = time.perf_counter()
    result = work()
    print(f"{indent}{label:<{width}} {time.perf_counter() - started:6.1f} s", flush=True)
    return result


def add_synthetic_options(command: argparse.ArgumentParser, ratings: int) -> None:
    """--ratings, --seed and --data: the synthetic zip (`synthetic_ratings`) a subcommand measures on."""
    command.add_argument("--ratings", type=int, default=ratings)
    command.add_argument("--seed", type=int, default=1)
    command.add_argument("--data", type=Path, default=SYNTHETIC_CACHE)


def synthetic_ratings(args: argparse.Namespace):
    """(Spark session, the ratings of the synthetic zip of `--ratings` and `--seed`, made once in `--data`)."""
    archive = synthetic_archive(args.data, args.ratings, args.seed)
    spark = session()
    return spark, movielens_ratings(spark, archive)


# ---- quality: the models on ml-latest-small's fixed split ----


def row(name: str, figures: dict[str, float], seconds: float | None = None) -> str:
    cells = [f"{figures.get(m, float('nan')):.4f}" if m in figures else "-" for m in ("rmse", "mae", "precision_at_10", "recall_at_10", "ndcg_at_10")]
    return f"| {name} | " + " | ".join(cells) + (f" | {seconds:.0f} s |" if seconds is not None else " | |")


def quality(args: argparse.Namespace) -> None:
    """Model quality on ml-latest-small: fixed 80/20 split (seed 42), defaults beside both baselines, and a grid.

        .venv/bin/python -m bench.model quality            # the defaults
        .venv/bin/python -m bench.model quality --grid     # plus rank x regParam x alpha on the same split
        .venv/bin/python -m bench.model quality --timing 2 # plus the retrain's work (evaluate + refit), timed, 2 rounds

    --timing alternates the defaults with the earlier, heavier setting (both models rank 50,
    15 iterations, 2 ALS blocks, evaluation then refit), so both see the same machine load.
    """
    spark = session()
    ratings = movielens_ratings(spark)
    train, test = cached_split(ratings)
    print(f"ml-latest-small: {ratings.count():,} ratings; train {train.count():,}, test {test.count():,} (seed 42)\n")
    print("| model | RMSE | MAE | P@10 | R@10 | NDCG@10 | fit+eval |")
    print("|---|---|---|---|---|---|---|")
    params = training.ModelParams()
    started = time.perf_counter()
    measured, _ = evaluation.evaluate(train, test, params)
    seconds = time.perf_counter() - started
    print(row("ours, defaults", measured.metrics, seconds))
    print(row("user+movie bias", measured.baselines["bias"]))
    print(row("most popular", measured.baselines["most_popular"]), flush=True)
    if args.grid:
        for rank, reg_param, alpha in product((20, 50, 100), (0.05, 0.1, 0.2), (0.3, 1.0, 3.0)):
            point = replace(params, rating_rank=rank, ranking_rank=rank, rating_reg_param=reg_param,
                            ranking_reg_param=reg_param, alpha=alpha)
            started = time.perf_counter()
            measured, _ = evaluation.evaluate(train, test, point)
            print(row(f"rank {rank}, reg {reg_param}, alpha {alpha}", measured.metrics, time.perf_counter() - started), flush=True)
    print(f"\ndefaults: {params}")
    if args.timing:
        time_retrain(ratings, params, args.timing)


def time_retrain(ratings, params: training.ModelParams, rounds: int) -> None:
    """The als_model asset's Spark work on ml-latest-small: the held-out evaluation and the refit on all ratings."""
    heavy = replace(
        params, rating_rank=50, rating_max_iter=15, ranking_rank=50, ranking_max_iter=15, num_blocks=2, ranker=training.ALS_RANKER
    )

    def sequential():
        train, test = evaluation.split(ratings, 0.2, seed=QUALITY_SEED)
        evaluation.evaluate(train, test, heavy)
        training.fit_bundle(ratings, heavy)

    def side_by_side():
        train, test = evaluation.split(ratings, 0.2, seed=QUALITY_SEED)
        evaluation.evaluate_and_refit(train, test, ratings, params)

    print("\nevaluate + refit on all ratings (the retrain's Spark work):")
    for round_ in range(1, rounds + 1):
        for label, work in (("rank 50, 15 iterations, 2 blocks, evaluation then refit", sequential),
                            ("defaults, evaluation and refit side by side", side_by_side)):
            started = time.perf_counter()
            work()
            print(f"   round {round_}: {label:<56} {time.perf_counter() - started:6.1f} s", flush=True)


# ---- ease-quality: EASE against implicit ALS, settings chosen on a validation split ----

# The validation grid: lambda is on the scale of the squared input values (binary 1, rating / 5 at most 1).
GRID = [
    *(EaseParams(l2=l2, weighting=BINARY) for l2 in (100.0, 200.0, 400.0)),
    *(EaseParams(l2=l2, weighting=RATING) for l2 in (50.0, 100.0, 200.0)),
    *(EaseParams(l2=l2, weighting=CENTERED) for l2 in (50.0, 100.0, 200.0)),
]
BLEND_WEIGHTS = (0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
RERANK_WEIGHTS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.4)
METRICS = ("ndcg_at_10", "precision_at_10", "recall_at_10")


def _status(field: str) -> int:
    """A field of /proc/self/status in bytes (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def time_and_peak(work):
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
    model, seconds, peak = time_and_peak(lambda: fit_ease(train, params))
    figures = evaluation.ranking_metrics(ease_top_k_unseen(model, train, test.select("user_id").distinct(), 10), test)
    return figures, seconds, peak


def als_metrics(params: training.ModelParams, train: DataFrame, test: DataFrame) -> tuple[dict, float, int]:
    """The ranking ALS alone (`training.fit_ranking_model`, what `evaluation.evaluate` ranks with), scored as the pipeline
    scores it."""
    model, seconds, peak = time_and_peak(lambda: training.fit_ranking_model(train, params))
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


def ease_run(spark, ratings: DataFrame, label: str, quick: bool, blend: bool) -> None:
    train, test = evaluation.split(ratings, 0.2, seed=QUALITY_SEED)
    fit, validation = evaluation.split(train, 0.2, seed=VALIDATION_SEED)
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
    train, test = cached_split(ratings)
    fit, validation = cached_split(train, VALIDATION_SEED)
    print("\n| re-ranked by stars, weight | validation NDCG@10 | P@10 |")
    print("|---|---|---|")
    on_validation = reranked_metrics(fit, validation, RERANK_WEIGHTS)
    for weight, figures in on_validation.items():
        print(f"| {weight} | {figures['ndcg_at_10']:.4f} | {figures['precision_at_10']:.4f} |")
    chosen = max(on_validation, key=lambda weight: on_validation[weight]["ndcg_at_10"])
    on_test = reranked_metrics(train, test, sorted({0.0, chosen}))
    for weight, figures in on_test.items():
        print(f"test, weight {weight}: NDCG@10 {figures['ndcg_at_10']:.4f}, P@10 {figures['precision_at_10']:.4f}")


def ease_quality(args: argparse.Namespace) -> None:
    """EASE against our implicit ALS and most popular on `quality`'s split of ml-latest-small (issue 30).

        .venv/bin/python -m bench.model ease-quality                 # validation grid, then the chosen settings on the test split
        .venv/bin/python -m bench.model ease-quality --quick         # the chosen defaults only (no grid)
        .venv/bin/python -m bench.model ease-quality --catalog 15000,20000   # also the fit's time and memory on random catalogs
        .venv/bin/python -m bench.model ease-quality --synthetic 100000      # also on ml-100k-shaped synthetic data
        .venv/bin/python -m bench.model ease-quality --quick --rerank        # also EASE re-ranked by the predicted stars

    Method: the split is `quality`'s (80/20, seed 42). Every setting (lambda, weighting, the blend's weight) is
    chosen on a validation split carved out of the training side (`evaluation.split(train, 0.2, seed=43)`): fitted on the
    other 80% of it, measured there. Only the chosen setting is then fitted on the whole training side and measured on
    the test split; the grid's test column is printed for the record, after the choice, and chose nothing.

    Peak memory is the driver process's resident high-water mark during the fit (VmHWM, reset before it through
    /proc/self/clear_refs), minus the resident size before it: what the fit added to the Python process. ALS fits in the
    JVM, which that does not see.
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
    spark = session()
    if not args.skip_movielens:
        ease_run(spark, movielens_ratings(spark), "ml-latest-small", args.quick, args.blend)
        if args.rerank:
            rerank(movielens_ratings(spark))
    if args.synthetic:
        archive = synthetic_archive(SYNTHETIC_CACHE, args.synthetic, seed=1)
        ease_run(spark, movielens_ratings(spark, archive), f"synthetic {args.synthetic:,} (generator, seed 1)", args.quick, args.blend)
    if args.catalog:
        print("\n| random catalog | fit (gram + solve) | peak added | B (float32) |")
        print("|---|---|---|---|")
        for n_items in (int(n) for n in args.catalog.split(",")):
            catalog_cost(n_items)


# ---- served-lists: the lists a retrain serves, on ratings it never saw ----

INNER_SEED = 42  # als_model's own split


def served(recommendations: DataFrame, future: DataFrame) -> tuple[float, float]:
    figures = evaluation.ranking_metrics(recommendations, future)
    return figures["ndcg_at_10"], figures["precision_at_10"]


def in_star_order(bundle: training.ModelBundle, recommendations: DataFrame) -> DataFrame:
    """The same ten movies a user, ranked by their predicted stars (ties: the ranking model's order)."""
    by_stars = Window.partitionBy("user_id").orderBy(F.col("predicted_rating").desc(), F.col("rank"))
    return training.predict_ratings(bundle, recommendations).withColumn("rank", F.row_number().over(by_stars))


def retrain_on(known: DataFrame, params: training.ModelParams) -> tuple[str, training.ModelBundle, float]:
    """als_model's Spark work on `known`: the ranker's choice, the evaluation and the refit. (ranker, served bundle, s)"""
    started = time.perf_counter()
    train, test = evaluation.split(known, 0.2, INNER_SEED)
    params, _ = evaluation.choose_ranker(train, params)
    _, refitted = evaluation.evaluate_and_refit(train, test, known, params)
    return params.ranker, refitted, time.perf_counter() - started


def served_lists(args: argparse.Namespace) -> None:
    """What users' lists are worth, measured on ratings no part of the retrain saw: the ranking model served, and the order.

    On ml-latest-small, for each outer seed: a fifth of the ratings is held out from everything (the
    users' future), and the retrain's own work runs on the rest, as `als_model` does: its held-out split
    (seed 42) for the evaluation, the ranking model chosen on a validation split of the training side,
    then the models fitted again on every rating, which are served. Each served list is every user's top
    10 unseen movies, scored by NDCG@10 and P@10 against the outer held-out ratings (relevant: 4 or
    more), for:

    - the retrain as it runs by default (`ranker` "auto": EASE or implicit ALS, whichever ranks the
      validation split better);
    - the retrain with implicit ALS as the ranking model (what it served before EASE);
    - the default's ten movies put in the order of their predicted stars (so that the stars would follow
      the rank) instead of the ranking model's order.

        .venv/bin/python -m bench.model served-lists [--seeds 7,8,9]
    """
    ratings = movielens_ratings(session())
    default = training.ModelParams()
    print("| outer seed | default: ranker | NDCG@10 | P@10 | retrain | implicit ALS: NDCG@10 | P@10 | retrain "
          "| default, in star order: NDCG@10 |")
    print("|---|---|---|---|---|---|---|---|---|")
    figures = []
    for seed in [int(seed) for seed in args.seeds.split(",")]:
        known, future = cached_split(ratings, seed)
        ranker, chosen, chosen_seconds = retrain_on(known, default)
        _, als, als_seconds = retrain_on(known, replace(default, ranker=training.ALS_RANKER))
        chosen_lists = training.recommend_top_k(chosen, known).cache()
        now, now_precision = served(chosen_lists, future)
        before, before_precision = served(training.recommend_top_k(als, known), future)
        stars, _ = served(in_star_order(chosen, chosen_lists), future)
        figures.append((now, now_precision, before, before_precision, stars))
        print(f"| {seed} | {ranker} | {now:.4f} | {now_precision:.4f} | {chosen_seconds:.0f} s | {before:.4f} | "
              f"{before_precision:.4f} | {als_seconds:.0f} s | {stars:.4f} |", flush=True)
        for frame in (chosen_lists, known, future):
            frame.unpersist()
        chosen.release()
        als.release()
    now, now_precision, before, before_precision, stars = (statistics.mean(column) for column in zip(*figures))
    print(f"| mean | | {now:.4f} | {now_precision:.4f} | | {before:.4f} | {before_precision:.4f} | | {stars:.4f} |")
    print(f"\nthe default against implicit ALS: NDCG@10 {now / before - 1:+.1%}, P@10 {now_precision / before_precision - 1:+.1%}")


# ---- rating-floor: what a rating model can learn beyond the biases ----


def _planted_values(users: int, movies: int, seed: int, user: np.ndarray, movie: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(expected rating, genre affinity) of each (user, movie), from the tastes `write_dataset` drew with `seed`."""
    tastes = Tastes.planted(Population(tuple(range(1, users + 1)), tuple(range(1, movies + 1)), 0, 0), random.Random(seed))
    model = _Model(tastes, users, movies)
    u, m = user - 1, movie - 1
    affinity = (model.user_taste[u[:, None], model.movie_genres[m]] * model.genre_mask[m]).sum(axis=1) / model.genre_count[m]
    return model.global_mean + model.user_bias[u] + model.movie_bias[m] + affinity, affinity


def _rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.clip(predicted, 0.5, 5.0) - actual) ** 2)))


def rating_floor(args: argparse.Namespace) -> None:
    """What a rating model can learn from the synthetic data beyond the biases, and what the residual ALS learns.

    The generator's ratings are a planted expected value plus Gaussian noise, rounded.
    Rebuilt from the same seed, the planted values give two floors on the held-out
    RMSE: an oracle that knows every expected value, and one that knows the true
    biases and each user's mean genre affinity (what user and movie biases can
    capture). The gap between them is all a model of tastes could add. Then, with
    `--grid`, the residual ALS (`training.fit_rating_model`) is fitted for each
    rank:regParam:iterations on the training split and measured against the bias
    baseline on the held-out 20%; `--noise-free` replaces each rating by its planted
    expected value, to tell the model's capacity from the noise.

        .venv/bin/python -m bench.model rating-floor --ratings 1000000 --grid 50:0.1:5,10:0.1:5,20:0.3:10
    """
    users, movies = default_users(args.ratings), default_movies(args.ratings)
    spark, ratings = synthetic_ratings(args)
    frame = ratings.toPandas()
    expected, affinity = _planted_values(
        users, movies, args.seed, frame["user_id"].to_numpy(), frame["movie_id"].to_numpy()
    )
    actual = frame["rating"].to_numpy()
    mean_affinity = pd.Series(affinity).groupby(frame["user_id"].to_numpy()).transform("mean").to_numpy()
    print(f"{len(frame):,} ratings of {users:,} users and {movies:,} movies (seed {args.seed}); rating std {actual.std():.3f}")
    print(f"oracle (planted expected values):                 RMSE {_rmse(expected, actual):.4f}")
    print(f"true biases + each user's mean affinity:          RMSE {_rmse(expected - affinity + mean_affinity, actual):.4f}")
    print(f"genre affinity: std within a user {np.sqrt(np.mean((affinity - mean_affinity) ** 2)):.3f}, overall {affinity.std():.3f}")
    if not args.grid:
        return
    if args.noise_free:
        frame["rating"] = expected
        ratings = spark.createDataFrame(frame).repartition(2).cache()
    train, test = cached_split(ratings)
    base = training.ModelParams()
    biases = training.fit_biases(train, base.user_bias_reg, base.item_bias_reg, base.bias_iterations)
    for point in args.grid.split(","):
        rank, reg_param, iterations = point.split(":")
        params = replace(base, rating_rank=int(rank), rating_reg_param=float(reg_param), rating_max_iter=int(iterations))
        started = time.perf_counter()
        bundle = training.ModelBundle(biases, training.fit_rating_model(train, biases, params), ranking_model=None)
        predictions = training.predict_ratings(bundle, test, keep_baseline=True).cache()
        als = evaluation.rating_errors(predictions, "predicted_rating")["rmse"]
        bias = evaluation.rating_errors(predictions.withColumn("baseline", training.clip_rating(F.col("baseline"))), "baseline")["rmse"]
        predictions.unpersist()
        print(
            f"residual ALS rank {rank} regParam {reg_param} {iterations} iterations: RMSE {als:.5f}, "
            f"biases {bias:.5f}, difference {als - bias:+.5f} ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )


# ---- refit-cost: `evaluate` alone against `evaluate_and_refit` ----


def refit_cost(args: argparse.Namespace) -> None:
    """What the refit on all ratings costs a retrain: `evaluate` alone against `evaluate_and_refit`, alternated.

    The als_model step's Spark work on ml-latest-small in one process (a first round warms
    the JVM up and is not counted): `evaluate_and_refit` is what every retrain does (the
    evaluation on the held-out split, and beside it both models fitted again on all ratings,
    the ones saved and served); `evaluate` alone is the same without the refit.

        .venv/bin/python -m bench.model refit-cost [--rounds 3]
    """
    ratings = movielens_ratings(session())
    params = training.ModelParams()
    train, test = evaluation.split(ratings, 0.2, seed=params.seed)
    work = {
        "evaluate alone": lambda: evaluation.evaluate(train, test, params)[1],
        "evaluate_and_refit (the retrain)": lambda: evaluation.evaluate_and_refit(train, test, ratings, params)[1],
    }
    times = {label: [] for label in work}
    for round_ in range(args.rounds + 1):
        for label, run in work.items():
            load = os.getloadavg()[0]
            started = time.perf_counter()
            run().release()
            seconds = time.perf_counter() - started
            if round_:
                times[label].append(seconds)
            print(f"round {round_}{' (warm-up)' if not round_ else ''}: {label:<44} {seconds:5.1f} s  load {load:.1f}", flush=True)
    medians = {label: statistics.median(values) for label, values in times.items()}
    alone, refit = medians.values()
    print(f"\nmedians: evaluate alone {alone:.1f} s, evaluate_and_refit {refit:.1f} s ({refit / alone:.2f}x)")


# ---- gate-cost: the als_model step with and without judging the champion again ----

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def gate_cost(args: argparse.Namespace) -> None:
    """What the fair gate costs a retrain on ml-latest-small: the als_model step with and without judging the champion again.

    When the champion's parameters are the candidate's, the candidate's own evaluation stands
    for the champion's on the same data: no extra fit. When they differ (a changed config, a
    grid search), the champion's parameters are fitted once more on the candidate's training
    split. This trains a champion, then alternates retrains with the same parameters and with
    another `ranking_reg_param`, each after a retrain that restores the champion's parameters
    (judged on unchanged data, both pass), and reports the als_model step's time.

        .venv/bin/python -m bench.model gate-cost [--rounds 2] [--source PATH]
    """
    from dagster import DagsterInstance

    from movierec_dagster.definitions import build_definitions
    from movierec_dagster.model import registry

    with tempfile.TemporaryDirectory() as folder, DagsterInstance.ephemeral() as instance:
        defs = build_definitions("local", {"MOVIEREC_HOME": str(Path(folder)), "MOVIELENS_SOURCE": args.source})
        lake = defs.resources["lake"]
        assert defs.resolve_job_def("movielens_etl").execute_in_process(instance=instance, run_config=QUIET).success

        def retrain(**config) -> float:
            run_config = {**QUIET, "ops": {"als_model": {"config": config}}}
            result = defs.resolve_job_def("retrain_model").execute_in_process(instance=instance, run_config=run_config)
            assert result.success
            stats = [s for s in instance.get_run_step_stats(result.run_id) if s.step_key == "als_model"]
            return stats[0].end_time - stats[0].start_time

        retrain()  # the champion, and the JVM warmed up
        seconds: dict[str, list[float]] = {"same parameters (no extra fit)": [], "other parameters (champion fitted again)": []}
        for _ in range(args.rounds):
            seconds["same parameters (no extra fit)"].append(retrain())
            seconds["other parameters (champion fitted again)"].append(retrain(ranking_reg_param=0.12))
            retrain()  # the default parameters back as the champion's
        print(f"champion {registry.read_champion(lake)['version']}; als_model step, {args.rounds} rounds alternated:")
        for name, values in seconds.items():
            print(f"  {name:<42} median {statistics.median(values):5.1f} s   {', '.join(f'{v:.1f}' for v in values)}")


# ---- retrain-parts: the retrain's Spark work on ml-latest-small, part by part ----


def retrain_parts(args: argparse.Namespace) -> None:
    """The retrain's Spark work on ml-latest-small, part by part, with EASE as the ranking model and with implicit ALS.

        .venv/bin/python -m bench.model retrain-parts

    One process, one session: an EASE fit and its scoring of every user (twice: the second without the
    first's warm-up), the ranker's choice, then `evaluate_and_refit` with each ranking model, as
    `als_model` runs them on `quality`'s split.
    """
    ratings = movielens_ratings(session())
    params = training.ModelParams()
    train, test = cached_split(ratings)
    train.count(), test.count()
    model = timed("EASE fit on the training split", lambda: ease.fit_ease(train, params.ease_params()))
    for round_ in (1, 2):
        timed(f"EASE scoring of every user ({round_})", lambda: ease.ease_top_k_unseen(model, train).count())
    chosen, figures = timed("the ranker's choice", lambda: evaluation.choose_ranker(train, params))
    print(f"   {figures}")
    for ranked in (chosen, replace(params, ranker=training.ALS_RANKER)):
        timed(f"evaluate_and_refit, {ranked.ranker}", partial(evaluation.evaluate_and_refit, train, test, ratings, ranked))


# ---- training-breakdown: where a retrain's time goes at scale ----


def time_each_part(train, test, params: training.ModelParams, residual_ranks: str) -> None:
    step = partial(timed, indent="   ", width=52)

    def fit_biases():
        biases = training.fit_biases(train, params.user_bias_reg, params.item_bias_reg, params.bias_iterations)
        biases.user_bias.count(), biases.item_bias.count()  # they are lazy until read
        return biases

    biases = step(f"biases, {params.bias_iterations} iterations", fit_biases)
    for rank in [int(rank) for rank in residual_ranks.split(",")]:
        rating_model = step(
            f"residual ALS, rank {rank}, {params.rating_max_iter} iterations",
            lambda rank=rank: training.fit_rating_model(train, biases, replace(params, rating_rank=rank)),
        )
    ranking_model = step(
        f"ranking ALS, rank {params.ranking_rank}, {params.ranking_max_iter} iterations",
        lambda: training.fit_ranking_model(train, params),
    )
    bundle = training.ModelBundle(biases, rating_model, ranking_model)
    step(
        "held-out RMSE (the last residual ALS)",
        lambda: evaluation.rating_errors(training.predict_ratings(bundle, test), "predicted_rating"),
    )
    seen = train.select("user_id", "movie_id")
    step(
        "ranking model's top 10 for every user, and the metrics",
        lambda: evaluation.ranking_metrics(training.recommend_top_k(bundle, seen), test),
    )
    test_users = test.select("user_id").distinct()
    step(
        "most-popular top 10 for every test user, and the metrics",
        lambda: evaluation.ranking_metrics(training.most_popular_top_k(train, test_users), test),
    )
    bundle.release()


def training_breakdown(args: argparse.Namespace) -> None:
    """Where a retrain's time goes at scale: each part of `evaluation.evaluate`, one after another, on a synthetic zip.

    `fit_bundle` runs the ranking model beside the biases and the rating model; here each
    part runs alone, so their seconds add up to more than the retrain's and say what each
    costs: the biases, the residual ALS (the default rank 50, and a cheaper rank 10 beside
    it; `--residual-ranks 10,50` swaps their order), the ranking model, and the evaluation's
    scoring (every test user's top 10 from the ranking model and from most-popular, and the
    metrics). `--evaluate-rounds N` then times the whole `evaluation.evaluate` with the defaults
    and with `rating_rank` 0 (no residual ALS), alternated; with `--evaluate-blocks 1,2,10`, with
    the defaults at each of these ALS block counts instead (`--skip-parts`: only these rounds).

        .venv/bin/python -m bench.model training-breakdown --ratings 5000000
        .venv/bin/python -m bench.model training-breakdown --ratings 5000000 --evaluate-rounds 2
        .venv/bin/python -m bench.model training-breakdown --ratings 5000000 --skip-parts --evaluate-rounds 2 --evaluate-blocks 1,2,10
    """
    spark, ratings = synthetic_ratings(args)
    params = training.ModelParams(num_blocks=args.num_blocks)
    train, test = cached_split(ratings, params.seed)
    print(
        f"{train.count():,} training and {test.count():,} held-out ratings, {spark.sparkContext.defaultParallelism} cores, "
        f"ALS in {params.num_blocks} block(s)"
    )
    if not args.skip_parts:
        time_each_part(train, test, params, args.residual_ranks)
    if args.evaluate_blocks:
        variants = [(f"{blocks} block(s)", replace(params, num_blocks=int(blocks))) for blocks in args.evaluate_blocks.split(",")]
    else:
        variants = [("defaults", params), ("rating_rank 0", replace(params, rating_rank=0))]
    for round_ in range(1, args.evaluate_rounds + 1):
        for label, evaluated in variants:
            measured, fitted = timed(
                f"round {round_}: evaluation.evaluate, {label}", lambda evaluated=evaluated: evaluation.evaluate(train, test, evaluated),
                indent="   ", width=52,
            )
            fitted.release()
            metrics = measured.metrics
            print(
                f"      RMSE {metrics['rmse']:.5f}, NDCG@10 {metrics['ndcg_at_10']:.4f}, "
                f"rating model: {fitted.rating_model_kind}"
            )


# ---- the command line ----


def build_parser() -> argparse.ArgumentParser:
    parser, commands = family_parser("python -m bench.model", __doc__)

    command = subcommand(commands, "quality", quality)
    command.add_argument("--grid", action="store_true", help="also evaluate rank x regParam x alpha")
    command.add_argument("--timing", type=int, default=0, metavar="ROUNDS", help="also time evaluate + refit")

    command = subcommand(commands, "ease-quality", ease_quality)
    command.add_argument("--quick", action="store_true", help="the defaults only, no grid")
    command.add_argument("--blend", action="store_true", help="also blend EASE and ALS scores (z-scores per user)")
    command.add_argument("--catalog", default="", metavar="N,N", help="also time the fit on random catalogs of N movies")
    command.add_argument("--synthetic", type=int, default=0, metavar="RATINGS", help="also on synthetic data of this size")
    command.add_argument("--rerank", action="store_true", help="also re-rank EASE's top 50 by the predicted stars")
    command.add_argument("--skip-movielens", action="store_true")

    command = subcommand(commands, "served-lists", served_lists)
    command.add_argument("--seeds", default="7,8,9", help="outer seeds: which fifth of the ratings is the future")

    command = subcommand(commands, "rating-floor", rating_floor)
    add_synthetic_options(command, ratings=1_000_000)
    command.add_argument("--grid", default="", help="comma-separated rank:regParam:iterations of the residual ALS")
    command.add_argument("--noise-free", action="store_true", help="fit and measure on the planted expected values")

    command = subcommand(commands, "refit-cost", refit_cost)
    command.add_argument("--rounds", type=int, default=3)

    command = subcommand(commands, "gate-cost", gate_cost)
    command.add_argument("--rounds", type=int, default=2)
    add_source(command)

    subcommand(commands, "retrain-parts", retrain_parts)

    command = subcommand(commands, "training-breakdown", training_breakdown)
    add_synthetic_options(command, ratings=5_000_000)
    command.add_argument(
        "--evaluate-rounds", type=int, default=0, metavar="N",
        help="also time the whole `evaluation.evaluate` N times with the defaults and with rating_rank 0, alternated",
    )
    command.add_argument(
        "--residual-ranks", default="50,10", help="ranks of the residual ALS, fitted in this order (the last is evaluated)"
    )
    command.add_argument("--num-blocks", type=int, default=training.ModelParams().num_blocks, help="ALS user and item blocks")
    command.add_argument(
        "--evaluate-blocks", default="", metavar="LIST",
        help="the evaluate rounds compare these ALS block counts (with the defaults) instead of rating_rank 0",
    )
    command.add_argument("--skip-parts", action="store_true", help="only the evaluate rounds")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.benchmark(args)


if __name__ == "__main__":
    main()
