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

    .venv/bin/python -m bench.served_lists [--seeds 7,8,9]
"""

import argparse
import statistics
import time
from dataclasses import replace

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from bench.model_data import movielens_ratings, session
from movierec_dagster.model import evaluation, training

INNER_SEED = 42  # als_model's own split


def served(recommendations: DataFrame, future: DataFrame) -> tuple[float, float]:
    figures = evaluation.ranking_metrics(recommendations, future)
    return figures["ndcg_at_10"], figures["precision_at_10"]


def in_star_order(bundle: training.ModelBundle, recommendations: DataFrame) -> DataFrame:
    """The same ten movies a user, ranked by their predicted stars (ties: the ranking model's order)."""
    by_stars = Window.partitionBy("user_id").orderBy(F.col("predicted_rating").desc(), F.col("rank"))
    return training.predict_ratings(bundle, recommendations).withColumn("rank", F.row_number().over(by_stars))


def retrain(known: DataFrame, params: training.ModelParams) -> tuple[str, training.ModelBundle, float]:
    """als_model's Spark work on `known`: the ranker's choice, the evaluation and the refit. (ranker, served bundle, s)"""
    started = time.perf_counter()
    train, test = evaluation.split(known, 0.2, INNER_SEED)
    params, _ = evaluation.choose_ranker(train, params)
    _, refitted = evaluation.evaluate_and_refit(train, test, known, params)
    return params.ranker, refitted, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="7,8,9", help="outer seeds: which fifth of the ratings is the future")
    args = parser.parse_args()
    ratings = movielens_ratings(session())
    default = training.ModelParams()
    print("| outer seed | default: ranker | NDCG@10 | P@10 | retrain | implicit ALS: NDCG@10 | P@10 | retrain "
          "| default, in star order: NDCG@10 |")
    print("|---|---|---|---|---|---|---|---|---|")
    figures = []
    for seed in [int(seed) for seed in args.seeds.split(",")]:
        known, future = (frame.cache() for frame in evaluation.split(ratings, 0.2, seed))
        ranker, chosen, chosen_seconds = retrain(known, default)
        _, als, als_seconds = retrain(known, replace(default, ranker=training.ALS_RANKER))
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


if __name__ == "__main__":
    main()
