"""The scorer: our top-10 scorer (`top_k_unseen`, seen movies excluded) against Spark's recommendForAllUsers(10), and
where its time goes.

    .venv/bin/python -m bench.scoring <subcommand> [options]     (--help after a subcommand for its options)

Subcommands:
    compare    both scorers, alternated: on a synthetic problem and ml-latest-small, or at MovieLens-25M's shape
               (--ml25m-shape: random factors; --ml25m-trained: the ranking model of the synthetic 25M)
    breakdown  where `top_k_unseen`'s time goes at MovieLens-25M's shape: the shuffle, Arrow, numpy per block

Both build MovieLens-25M's scenes with the same code (`ml25m_scene`, `trained_scene`) and time a frame the same way
(`timed`: written to a `noop` sink). Numpy runs on one BLAS thread, as in Spark's Python workers (one task a core).
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

from bench.common import SYNTHETIC_CACHE, family_parser, movielens_ratings, session, subcommand, synthetic_archive
from movierec_dagster.model import topk, training
from movierec_dagster.model.topk import USERS_PER_BLOCK, top_k_unseen

# ---- shared by both subcommands: a timed frame, and MovieLens-25M's scenes ----

ML25M_USERS, ML25M_MOVIES, ML25M_RATINGS, ML25M_RANK = 162_541, 59_047, 25_000_095, 30


def timed(label: str, frame: DataFrame) -> float:
    started = time.perf_counter()
    frame.write.format("noop").mode("overwrite").save()
    seconds = time.perf_counter() - started
    print(f"   {label:<48} {seconds:6.1f} s", flush=True)
    return seconds


def random_factors(spark, count: int, rank: int, seed: int) -> DataFrame:
    """id 1..count with `rank` standard normal features each, cached."""
    features = F.array(*[F.randn(seed * 1000 + i) for i in range(rank)]).cast("array<float>")
    frame = spark.range(1, count + 1).select(F.col("id").cast("int").alias("id"), features.alias("features")).cache()
    frame.count()
    return frame


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


# ---- compare: our scorer against recommendForAllUsers(10) ----


def compare_rounds(model, seen: DataFrame, rounds: int) -> None:
    """Both scorers, alternating, `rounds` times (in the benchmark's first comparison, round 1 pays their start-up)."""
    for round_ in range(1, rounds + 1):
        print(f"  round {round_}")
        spark_seconds = timed("recommendForAllUsers(10) (seen movies included)", model.recommendForAllUsers(10))
        ours = top_k_unseen(model.userFactors, model.itemFactors, seen, 10)
        ours_seconds = timed("top_k_unseen(10) (seen movies excluded)", ours)
        print(f"   speed-up {spark_seconds / ours_seconds:.1f}x")


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


def compare(args: argparse.Namespace) -> None:
    """Top-10 scoring: our factor-matrix scorer (excludes seen movies) against Spark's recommendForAllUsers(10).

        .venv/bin/python -m bench.scoring compare                 # 50,000 users x 20,000 movies, rank 10, and ml-latest-small
        .venv/bin/python -m bench.scoring compare --users 5000    # smaller synthetic problem
        .venv/bin/python -m bench.scoring compare --rounds 5      # more alternating rounds (default 3)
        .venv/bin/python -m bench.scoring compare --ml25m-shape   # MovieLens-25M's shape only: 162,541 x 59,047, rank 30, 25M seen
        .venv/bin/python -m bench.scoring compare --ml25m-trained # the same shape, the ranking model trained on the synthetic 25M
        .venv/bin/python -m bench.scoring compare --ml25m-trained --spark-first  # recommendForAllUsers first in each round
        .venv/bin/python -m bench.scoring compare --ml25m-trained --ours-only    # our scorer alone, e.g. two commits alternated

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
    compare_rounds(model, ratings.select("user_id", "movie_id"), args.rounds)

    movielens = movielens_ratings(spark)
    bundle = training.fit_bundle(movielens, training.ModelParams(ranker=training.ALS_RANKER))
    print(f"ml-latest-small: {movielens.count():,} ratings, ranking model rank {bundle.ranking_model.rank}")
    compare_rounds(bundle.ranking_model, movielens.select("user_id", "movie_id"), args.rounds)


# ---- breakdown: where top_k_unseen's time goes ----

SAMPLE_BLOCKS = 20


def _drain(batches):
    for _ in batches:
        pass
    yield from ()


def sample_blocks(users: DataFrame, seen: DataFrame) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The first `SAMPLE_BLOCKS` blocks of users by id: (their factors, seen rows, seen item ids) each."""
    first = users.orderBy("id").limit(SAMPLE_BLOCKS * topk.USERS_PER_BLOCK).toPandas()
    ids = first["id"].to_numpy(dtype=np.int64)
    matrix = np.stack([np.asarray(f, dtype=np.float32) for f in first["features"]])
    pairs = seen.where(F.col("user_id").between(int(ids[0]), int(ids[-1]))).toPandas()
    rows = np.searchsorted(ids, pairs["user_id"].to_numpy(dtype=np.int64))
    known = (rows < len(ids)) & (ids[np.minimum(rows, len(ids) - 1)] == pairs["user_id"].to_numpy())
    rows, items = rows[known], pairs["movie_id"].to_numpy(dtype=np.int64)[known]
    blocks = []
    for start in range(0, len(ids), topk.USERS_PER_BLOCK):
        here = (rows >= start) & (rows < start + topk.USERS_PER_BLOCK)
        blocks.append((matrix[start : start + topk.USERS_PER_BLOCK], rows[here] - start, items[here]))
    return blocks


def per_block_milliseconds(blocks, item_factors: DataFrame, repeats: int = 5) -> tuple[float, float]:
    """(the product of every item alone, `top_k_block` with its product) per block of users, in ms on one core."""
    item_ids, matrix = topk._item_matrix(item_factors)
    slabs = topk.ItemSlabs.of(item_ids, matrix)

    def milliseconds(work) -> float:
        for block in blocks:
            work(*block)
        started = time.perf_counter()
        for _ in range(repeats):
            for block in blocks:
                work(*block)
        return (time.perf_counter() - started) / repeats / len(blocks) * 1e3

    product = milliseconds(lambda users, _rows, _ids: users @ matrix.T)
    whole = milliseconds(lambda users, rows, ids: topk.top_k_block(users, slabs, rows, ids, 10))
    return product, whole


def breakdown(args: argparse.Namespace) -> None:
    """Where `top_k_unseen`'s time goes at MovieLens-25M's shape (the scenes `compare` builds).

        .venv/bin/python -m bench.scoring breakdown [--rounds 2]   # random factors (compare --ml25m-shape's scene)
        .venv/bin/python -m bench.scoring breakdown --trained      # the ranking model of the synthetic 25M

    In Spark, each to a `noop` sink: the shuffle that brings every user's factors and seen
    movies together (the seen movies grouped by user in each partition first, in Python),
    the same plus their trip to the Python workers through Arrow, and
    the whole scorer. Then, in numpy on one core, blocks of users with their seen movies:
    the product of every item alone, and `top_k_block` (the product in slabs, with seen
    movies masked, the group maxima taken and the slabs out of reach skipped, the
    candidate search, the sort).
    """
    spark = session()
    users, items, _, seen = trained_scene(spark) if args.trained else ml25m_scene(spark)
    n_users, pairs = users.count(), seen.count()
    print(f"{n_users:,} users x {items.count():,} movies, {pairs:,} seen pairs")
    factors = users.select(F.col("id").cast("int").alias("user_id"), F.col("features").cast("array<float>").alias("features"))
    for round_ in range(1, args.rounds + 1):
        print(f"  round {round_}")
        timed("seen movies grouped, and the shuffle", topk._by_user(factors, seen))
        timed("the same, and Arrow to the Python workers", topk._by_user(factors, seen).mapInArrow(_drain, topk.OUTPUT_SCHEMA))
        timed("the whole scorer, top_k_unseen(10)", topk.top_k_unseen(users, items, seen, 10))
    product, whole = per_block_milliseconds(sample_blocks(users, seen), items)
    blocks = -(-n_users // topk.USERS_PER_BLOCK)
    workers = spark.sparkContext.defaultParallelism
    print(f"   a block of {topk.USERS_PER_BLOCK} users, one core: every item's product {product:.2f} ms, top_k_block {whole:.2f} ms")
    print(f"   {blocks:,} blocks on {workers} cores: {whole * blocks / 1e3 / workers:.1f} s of numpy")


# ---- the command line ----


def build_parser() -> argparse.ArgumentParser:
    parser, commands = family_parser("python -m bench.scoring", __doc__)

    command = subcommand(commands, "compare", compare)
    command.add_argument("--users", type=int, default=50_000)
    command.add_argument("--movies", type=int, default=20_000)
    command.add_argument("--rank", type=int, default=10)
    command.add_argument("--per-user", type=int, default=20)
    command.add_argument("--rounds", type=int, default=3)
    command.add_argument("--ml25m-shape", action="store_true", help="only MovieLens-25M's shape, random factors")
    command.add_argument("--ml25m-trained", action="store_true", help="only the ranking model of the synthetic 25M")
    command.add_argument("--spark-first", action="store_true", help="at 25M's shape, recommendForAllUsers first in each round")
    command.add_argument("--ours-only", action="store_true", help="at 25M's shape, our scorer alone (to compare versions of it)")

    command = subcommand(commands, "breakdown", breakdown)
    command.add_argument("--rounds", type=int, default=2)
    command.add_argument("--trained", action="store_true", help="the ranking model of the synthetic MovieLens-25M")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.benchmark(args)


if __name__ == "__main__":
    main()
