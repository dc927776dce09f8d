"""Top-10 scoring: our factor-matrix scorer (excludes seen movies) against Spark's recommendForAllUsers(10).

    .venv/bin/python -m bench.scoring                 # 50,000 users x 20,000 movies, rank 10, and ml-latest-small
    .venv/bin/python -m bench.scoring --users 5000    # smaller synthetic problem
    .venv/bin/python -m bench.scoring --rounds 5      # more alternating rounds (default 3)

The synthetic factors come from one ALS iteration on random ratings (about 20 per
user), so both scorers work on a real ALSModel of the stated size.
"""

import argparse
import time

from pyspark.ml.recommendation import ALS
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from bench.model_data import movielens_ratings, session
from movierec_dagster.model import training
from movierec_dagster.model.topk import top_k_unseen


def timed(label: str, frame: DataFrame) -> float:
    started = time.perf_counter()
    frame.write.format("noop").mode("overwrite").save()
    seconds = time.perf_counter() - started
    print(f"   {label:<48} {seconds:6.1f} s", flush=True)
    return seconds


def compare(model, seen: DataFrame, rounds: int) -> None:
    """Both scorers, alternating, `rounds` times (in the benchmark's first comparison, round 1 pays their start-up)."""
    for round_ in range(1, rounds + 1):
        print(f"  round {round_}")
        spark_seconds = timed("recommendForAllUsers(10) (seen movies included)", model.recommendForAllUsers(10))
        ours = top_k_unseen(model.userFactors, model.itemFactors, seen, 10)
        ours_seconds = timed("top_k_unseen(10) (seen movies excluded)", ours)
        print(f"   speed-up {spark_seconds / ours_seconds:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--movies", type=int, default=20_000)
    parser.add_argument("--rank", type=int, default=10)
    parser.add_argument("--per-user", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    spark = session()

    ratings = (
        spark.range(args.users * args.per_user)
        .select(
            (F.col("id") % args.users + 1).cast("int").alias("user_id"),
            (F.abs(F.xxhash64("id")) % args.movies + 1).cast("int").alias("movie_id"),
            (F.abs(F.xxhash64("id", F.lit(1))) % 10 / 2 + 0.5).alias("rating"),
        )
        .dropDuplicates(["user_id", "movie_id"])
        .cache()
    )
    print(f"synthetic: {args.users:,} users x {args.movies:,} movies, rank {args.rank}, {ratings.count():,} seen pairs")
    model = ALS(rank=args.rank, maxIter=1, userCol="user_id", itemCol="movie_id", seed=1).fit(ratings)
    model.userFactors.cache().count()
    model.itemFactors.cache().count()
    compare(model, ratings.select("user_id", "movie_id"), args.rounds)

    movielens = movielens_ratings(spark)
    bundle = training.fit_bundle(movielens, training.ModelParams())
    print(f"ml-latest-small: {movielens.count():,} ratings, ranking model rank {bundle.ranking_model.rank}")
    compare(bundle.ranking_model, movielens.select("user_id", "movie_id"), args.rounds)


if __name__ == "__main__":
    main()
