"""What users' lists are worth, measured on ratings no part of the retrain saw: the models served, and the lists' order.

On ml-latest-small, for each outer seed: a fifth of the ratings is held out from everything (the
users' future), and the retrain's own work runs on the rest, as `als_model` does: its held-out split
(seed 42) for the evaluation, then the models it could serve. Each served list is every user's
top 10 unseen movies, and is scored by NDCG@10 against the outer held-out ratings (relevant: 4 or
more), beside:

- the models fitted on the evaluation's training split (what `als_model` saved before the refit
  came back), and the models fitted again on every rating (what it saves now);
- the refitted ranking model's ten movies put in the order of their predicted stars (so that the
  stars would follow the rank) instead of the ranking model's order.

    .venv/bin/python -m bench.served_lists [--seeds 7,8,9]
"""

import argparse
import statistics

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from bench.model_data import movielens_ratings, session
from movierec_dagster.model import training

INNER_SEED = 42  # als_model's own split


def served_ndcg(recommendations: DataFrame, future: DataFrame) -> float:
    return training.ranking_metrics(recommendations, future)["ndcg_at_10"]


def in_star_order(bundle: training.ModelBundle, recommendations: DataFrame) -> DataFrame:
    """The same ten movies a user, ranked by their predicted stars (ties: the ranking model's order)."""
    by_stars = Window.partitionBy("user_id").orderBy(F.col("predicted_rating").desc(), F.col("rank"))
    return training.predict_ratings(bundle, recommendations).withColumn("rank", F.row_number().over(by_stars))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="7,8,9", help="outer seeds: which fifth of the ratings is the future")
    args = parser.parse_args()
    ratings = movielens_ratings(session())
    params = training.ModelParams()
    print("| outer seed | split-fitted (before) | refitted (now) | refit gain | refitted, in star order |")
    print("|---|---|---|---|---|")
    figures = []
    for seed in [int(seed) for seed in args.seeds.split(",")]:
        known, future = (frame.cache() for frame in training.split(ratings, 0.2, seed))
        train, test = training.split(known, 0.2, INNER_SEED)
        _, refitted = training.evaluate_and_refit(train, test, known, params)
        split_fitted = training.fit_bundle(train, params)  # the ranking model the evaluation measured
        seen = known.select("user_id", "movie_id")
        before = served_ndcg(training.recommend_top_k(split_fitted, seen), future)
        now_lists = training.recommend_top_k(refitted, seen).cache()
        now = served_ndcg(now_lists, future)
        stars = served_ndcg(in_star_order(refitted, now_lists), future)
        figures.append((before, now, stars))
        print(f"| {seed} | {before:.4f} | {now:.4f} | {now / before - 1:+.1%} | {stars:.4f} |", flush=True)
        for frame in (now_lists, known, future):
            frame.unpersist()
        split_fitted.release()
        refitted.release()
    before, now, stars = (statistics.mean(column) for column in zip(*figures))
    print(f"| mean | {before:.4f} | {now:.4f} | {now / before - 1:+.1%} | {stars:.4f} |")


if __name__ == "__main__":
    main()
