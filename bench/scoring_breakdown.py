"""Where `top_k_unseen`'s time goes at MovieLens-25M's shape (the scene `bench.scoring --ml25m-shape` builds).

    .venv/bin/python -m bench.scoring_breakdown [--rounds 2]

In Spark, each to a `noop` sink: the shuffle that brings every user's factors and seen
movies together, the same plus their trip to the Python workers through Arrow, and
the whole scorer. Then, in numpy on one core, one block of users: the product alone,
and `top_k_block` (the product in slabs with seen movies masked and the group maxima
taken, the candidate search, the sort).
"""

import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one BLAS thread, as a Spark task has

import numpy as np

from pyspark.sql import functions as F

from bench.model_data import session
from bench.scoring import ML25M_MOVIES, ML25M_RANK, ML25M_USERS, ml25m_scene, timed
from movierec_dagster.model import topk


def _drain(batches):
    for _ in batches:
        pass
    yield from ()


def per_block_milliseconds(seen_per_user: int, repeats: int = 40) -> tuple[float, float]:
    """(the product alone, `top_k_block` with its product) for one block of users, in ms on one core."""
    rng = np.random.default_rng(0)
    items = rng.standard_normal((ML25M_MOVIES, ML25M_RANK)).astype(np.float32)
    item_ids = np.arange(1, ML25M_MOVIES + 1)
    block = rng.standard_normal((topk.USERS_PER_BLOCK, ML25M_RANK)).astype(np.float32)
    seen_rows = np.repeat(np.arange(topk.USERS_PER_BLOCK), seen_per_user)
    seen_ids = (rng.random(len(seen_rows)) ** 3 * ML25M_MOVIES + 1).astype(np.int64)

    def milliseconds(work) -> float:
        work()
        started = time.perf_counter()
        for _ in range(repeats):
            work()
        return (time.perf_counter() - started) / repeats * 1e3

    product = milliseconds(lambda: block @ items.T)
    slabs = topk.ItemSlabs.of(item_ids, items)
    whole = milliseconds(lambda: topk.top_k_block(block, slabs, seen_rows, seen_ids, 10))
    return product, whole


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    spark = session()
    users, items, _, seen = ml25m_scene(spark)
    pairs = seen.count()
    print(f"MovieLens-25M shape: {ML25M_USERS:,} users x {ML25M_MOVIES:,} movies, rank {ML25M_RANK}, {pairs:,} seen pairs")
    factors = users.select(F.col("id").cast("int").alias("user_id"), F.col("features").cast("array<float>").alias("features"))
    for round_ in range(1, args.rounds + 1):
        print(f"  round {round_}")
        timed("shuffle of factors and seen pairs", topk._by_user(factors, seen))
        timed("the same, and Arrow to the Python workers", topk._by_user(factors, seen).mapInArrow(_drain, topk.OUTPUT_SCHEMA))
        timed("the whole scorer, top_k_unseen(10)", topk.top_k_unseen(users, items, seen, 10))
    product, whole = per_block_milliseconds(round(pairs / ML25M_USERS))
    blocks = -(-ML25M_USERS // topk.USERS_PER_BLOCK)
    print(f"   one block of {topk.USERS_PER_BLOCK} users, one core: product {product:.1f} ms, with top_k_block {whole:.1f} ms")
    print(f"   {blocks:,} blocks on {spark.sparkContext.defaultParallelism} cores: {whole * blocks / 1e3 / spark.sparkContext.defaultParallelism:.1f} s of numpy")


if __name__ == "__main__":
    main()
