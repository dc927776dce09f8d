"""Top-10 scoring: our factor-matrix scorer (excludes seen movies) against Spark's recommendForAllUsers(10).

    .venv/bin/python -m bench.scoring                 # 50,000 users x 20,000 movies, rank 10, and ml-latest-small
    .venv/bin/python -m bench.scoring --users 5000    # smaller synthetic problem
    .venv/bin/python -m bench.scoring --rounds 5      # more alternating rounds (default 3)
    .venv/bin/python -m bench.scoring --ml25m-shape   # MovieLens-25M's shape only: 162,541 x 59,047, rank 30, 25M seen
    .venv/bin/python -m bench.scoring --ml25m-trained # the same shape, the ranking model trained on the synthetic 25M
    .venv/bin/python -m bench.scoring --ml25m-trained --spark-first  # recommendForAllUsers first in each round
    .venv/bin/python -m bench.scoring --ml25m-trained --ours-only    # our scorer alone, e.g. two commits alternated

The synthetic factors come from one ALS iteration on random ratings (about 20 per
user), so both scorers work on a real ALSModel of the stated size. At MovieLens-25M's
shape, `--ml25m-shape` makes random factors (no long tail: every user scores every
slab, the scorer's worst case), builds the model around them and draws seen pairs
with a long tail of popularity; `--ml25m-trained` fits the ranking model on the
synthetic MovieLens-25M zip (`movierec-generate dataset`'s shape, made once in
/tmp/rating-floor; the fit, about 6 minutes, is saved there too) and excludes its
25M ratings. Beside the scorers, numpy's own matrix product of the same size says
what the multiply-adds of scoring every item cost on this machine.
"""

import argparse
import os
import time

# One BLAS thread, as in Spark's Python workers (one task a core): the product's own cost below is per core.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from bench.model_data import SYNTHETIC_CACHE, movielens_ratings, session, synthetic_archive
from movierec_dagster.model import training
from movierec_dagster.model.topk import USERS_PER_BLOCK, top_k_unseen

ML25M_USERS, ML25M_MOVIES, ML25M_RATINGS, ML25M_RANK = 162_541, 59_047, 25_000_095, 30


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


def random_factors(spark, count: int, rank: int, seed: int) -> DataFrame:
    """id 1..count with `rank` standard normal features each, cached."""
    features = F.array(*[F.randn(seed * 1000 + i) for i in range(rank)]).cast("array<float>")
    frame = spark.range(1, count + 1).select(F.col("id").cast("int").alias("id"), features.alias("features")).cache()
    frame.count()
    return frame


def matrix_product_seconds(users: int, movies: int, rank: int, workers: int) -> float:
    """What numpy's float32 product of users x rank by rank x movies takes here, in blocks as the scorer makes them,
    spread over `workers` cores (measured on one block per core's share of users, so it runs in seconds)."""
    rng = np.random.default_rng(0)
    items = rng.standard_normal((movies, rank)).astype(np.float32)
    block = rng.standard_normal((USERS_PER_BLOCK, rank)).astype(np.float32)
    blocks, started = 0, time.perf_counter()
    while time.perf_counter() - started < 5:
        block @ items.T
        blocks += 1
    per_block = (time.perf_counter() - started) / blocks
    return per_block * users / USERS_PER_BLOCK / workers


def model_around(spark, users: DataFrame, items: DataFrame, rank: int) -> ALSModel:
    """An ALSModel whose factors are these frames, so that `recommendForAllUsers` reads them as they are partitioned."""
    java_model = spark._jvm.org.apache.spark.ml.recommendation.ALSModel("bench", rank, users._jdf, items._jdf)
    return ALSModel(java_model.setUserCol("user_id").setItemCol("movie_id"))


def ml25m_scene(spark) -> tuple[DataFrame, DataFrame, ALSModel, DataFrame]:
    """(user factors, item factors, an ALSModel around them, seen pairs), all at MovieLens-25M's shape, cached."""
    users = random_factors(spark, ML25M_USERS, ML25M_RANK, seed=1)
    items = random_factors(spark, ML25M_MOVIES, ML25M_RANK, seed=2)
    model = model_around(spark, users, items, ML25M_RANK)
    # A long tail: movie = movies * u^3 for a uniform u, so the first movies are seen by many users.
    seen = (
        spark.range(ML25M_RATINGS)
        .select(
            (F.col("id") % ML25M_USERS + 1).cast("int").alias("user_id"),
            (F.pow(F.rand(3), 3) * ML25M_MOVIES + 1).cast("int").alias("movie_id"),
        )
        .dropDuplicates()
        .cache()
    )
    return users, items, model, seen


def trained_scene(spark) -> tuple[DataFrame, DataFrame, ALSModel, DataFrame]:
    """(user factors, item factors, the ranking model, seen pairs) of the synthetic MovieLens-25M, cached.

    A saved model's factors are one Parquet file of one row group each: read back, they come in
    two partitions of which one holds every row, and `recommendForAllUsers` (one task per
    partition of the users) would run on one core. They are spread evenly over the cores first.
    """
    archive = synthetic_archive(SYNTHETIC_CACHE, ML25M_RATINGS, seed=1)
    ratings = movielens_ratings(spark, archive)
    saved = SYNTHETIC_CACHE / f"{archive.stem}-ranking-model"
    if not saved.exists():
        print(f"fitting the ranking model on {archive} (saved to {saved})", flush=True)
        training.fit_ranking_model(ratings, training.ModelParams()).save(str(saved))
    saved_model = ALSModel.load(str(saved))
    cores = spark.sparkContext.defaultParallelism
    users, items = (frame.repartition(cores).cache() for frame in (saved_model.userFactors, saved_model.itemFactors))
    users.count(), items.count()
    return users, items, model_around(spark, users, items, saved_model.rank), ratings.select("user_id", "movie_id")


def ml25m_shape(spark, rounds: int, trained: bool, spark_first: bool, ours_only: bool) -> None:
    """Both scorers (or ours alone) on MovieLens-25M's shape, and the multiply-adds' own cost beside them.

    Round 1's first scorer pays what the process's first scoring pays (the JVM warming up to its
    plan, for ours also the Python workers' start), so a scorer's first call is measured in a
    process where it runs first."""
    users, items, model, seen = trained_scene(spark) if trained else ml25m_scene(spark)
    scene = "the ranking model of the synthetic MovieLens-25M" if trained else "MovieLens-25M shape, random factors"
    n_users, n_movies, rank = users.count(), items.count(), model.rank
    print(f"{scene}: {n_users:,} users x {n_movies:,} movies, rank {rank}, {seen.count():,} seen pairs")
    workers = spark.sparkContext.defaultParallelism
    product = matrix_product_seconds(n_users, n_movies, rank, workers)
    macs = n_users * n_movies * rank
    print(f"   numpy's float32 product alone, {macs / 1e9:.0f} G multiply-adds on {workers} cores: {product:.1f} s")
    for round_ in range(1, rounds + 1):
        load = os.getloadavg()[0]
        spark_label = f"round {round_}: recommendForAllUsers(10) (seen movies included)"
        if spark_first and not ours_only:
            spark_seconds = timed(spark_label, model.recommendForAllUsers(10))
        ours = timed(f"round {round_}: top_k_unseen(10) (seen movies excluded)", top_k_unseen(users, items, seen, 10))
        if ours_only:
            print(f"   ours {ours / product:.1f}x the product of every item alone; load {load:.1f}")
            continue
        if not spark_first:
            spark_seconds = timed(spark_label, model.recommendForAllUsers(10))
        print(f"   speed-up {spark_seconds / ours:.1f}x; ours {ours / product:.1f}x the product of every item alone; load {load:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--movies", type=int, default=20_000)
    parser.add_argument("--rank", type=int, default=10)
    parser.add_argument("--per-user", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ml25m-shape", action="store_true", help="only MovieLens-25M's shape, random factors")
    parser.add_argument("--ml25m-trained", action="store_true", help="only the ranking model of the synthetic 25M")
    parser.add_argument("--spark-first", action="store_true", help="at 25M's shape, recommendForAllUsers first in each round")
    parser.add_argument("--ours-only", action="store_true", help="at 25M's shape, our scorer alone (to compare versions of it)")
    args = parser.parse_args()
    spark = session()
    if args.ml25m_shape or args.ml25m_trained:
        ml25m_shape(spark, args.rounds, trained=args.ml25m_trained, spark_first=args.spark_first, ours_only=args.ours_only)
        return

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
    bundle = training.fit_bundle(movielens, training.ModelParams(ranker=training.ALS_RANKER))
    print(f"ml-latest-small: {movielens.count():,} ratings, ranking model rank {bundle.ranking_model.rank}")
    compare(bundle.ranking_model, movielens.select("user_id", "movie_id"), args.rounds)


if __name__ == "__main__":
    main()
