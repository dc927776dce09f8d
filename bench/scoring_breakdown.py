"""Where `top_k_unseen`'s time goes at MovieLens-25M's shape (the scenes `bench.scoring` builds).

    .venv/bin/python -m bench.scoring_breakdown [--rounds 2]   # random factors (--ml25m-shape's scene)
    .venv/bin/python -m bench.scoring_breakdown --trained      # the ranking model of the synthetic 25M

In Spark, each to a `noop` sink: the shuffle that brings every user's factors and seen
movies together (the seen movies grouped by user in each partition first, in Python),
the same plus their trip to the Python workers through Arrow, and
the whole scorer. Then, in numpy on one core, blocks of users with their seen movies:
the product of every item alone, and `top_k_block` (the product in slabs, with seen
movies masked, the group maxima taken and the slabs out of reach skipped, the
candidate search, the sort).
"""

import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one BLAS thread, as a Spark task has

import numpy as np

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from bench.model_data import session
from bench.scoring import ml25m_scene, timed, trained_scene
from movierec_dagster.model import topk

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--trained", action="store_true", help="the ranking model of the synthetic MovieLens-25M")
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
