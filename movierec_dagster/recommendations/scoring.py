"""Top-k scoring on factor matrices: plain PySpark and numpy, no Dagster.

`top_k_unseen` gives every user the k items with the highest dot product of
user and item factors, never an item the user has seen. Spark's
`recommendForAllUsers` cannot exclude seen items (filtering afterwards loses
results), so this scorer broadcasts the item factors once and scores blocks of
users on the executors with a matrix product and a partial sort
(`numpy.partition`) inside `mapInArrow`.

Ties are broken by the smaller item id, exactly as the brute-force reference
(`brute_force_top_k`) does, so the two give the same top-k.
"""

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

USERS_PER_BLOCK = 256
OUTPUT_SCHEMA = "user_id int, movie_id int, rank int, score double"
_OUTPUT_ARROW = pa.schema(
    [("user_id", pa.int32()), ("movie_id", pa.int32()), ("rank", pa.int32()), ("score", pa.float64())]
)


def _item_matrix(item_factors: DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(item ids sorted ascending, their factors as a float32 matrix)."""
    items = item_factors.select(F.col("id").cast("int").alias("id"), "features").toPandas().sort_values("id")
    if items.empty:
        return np.empty(0, dtype=np.int64), np.empty((0, 0), dtype=np.float32)
    ids = items["id"].to_numpy(dtype=np.int64)
    matrix = np.stack([np.asarray(f, dtype=np.float32) for f in items["features"]])
    return ids, matrix


def top_k_block(
    scores: np.ndarray, item_ids: np.ndarray, seen_rows: np.ndarray, seen_ids: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Top-k unseen items of each row of `scores` (users x items, items ordered by ascending id).

    `seen_rows[j]` is the row of the j-th seen item `seen_ids[j]` (ids the item matrix does
    not have are ignored); `scores` is overwritten there. Returns flat arrays (row, item
    column, score, rank from 1) ordered by row, then score descending, then item id; a row
    with fewer than k unseen items yields only those.
    """
    n_rows, n_items = scores.shape
    k = min(k, n_items)
    if n_rows == 0 or k == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, np.empty(0, dtype=scores.dtype), empty
    if len(seen_ids):
        columns = np.searchsorted(item_ids, seen_ids)
        known = columns < n_items
        known[known] = item_ids[columns[known]] == seen_ids[known]
        scores[seen_rows[known], columns[known]] = -np.inf
    # The k-th best score of each row; every item scoring at least that is a candidate
    # (more than k only when items tie with the k-th), then an exact sort of the candidates.
    kth = np.partition(scores, n_items - k, axis=1)[:, n_items - k]
    rows, columns = np.nonzero(scores >= kth[:, None])
    values = scores[rows, columns]
    order = np.lexsort((columns, -values, rows))
    rows, columns, values = rows[order], columns[order], values[order]
    ranks = np.arange(len(rows)) - np.searchsorted(rows, rows, side="left") + 1
    keep = (ranks <= k) & np.isfinite(values)
    return rows[keep], columns[keep], values[keep], ranks[keep]


def _score_batches(
    batches: Iterator[pa.RecordBatch], broadcast_items, k: int
) -> Iterator[pa.RecordBatch]:
    item_ids, item_matrix = broadcast_items.value
    rank = item_matrix.shape[1]
    for batch in batches:
        for start in range(0, batch.num_rows, USERS_PER_BLOCK):
            block = batch.slice(start, USERS_PER_BLOCK)
            users = block.column("user_id").to_numpy(zero_copy_only=False)
            features = block.column("features").flatten().to_numpy(zero_copy_only=False)
            user_matrix = features.astype(np.float32).reshape(len(users), rank)
            seen = block.column("seen")
            lengths = seen.value_lengths().fill_null(0).to_numpy(zero_copy_only=False)
            seen_ids = seen.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
            seen_rows = np.repeat(np.arange(len(users)), lengths)
            rows, columns, scores, ranks = top_k_block(
                user_matrix @ item_matrix.T, item_ids, seen_rows, seen_ids, k
            )
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array(users[rows].astype(np.int32)),
                    pa.array(item_ids[columns].astype(np.int32)),
                    pa.array(ranks.astype(np.int32)),
                    pa.array(scores.astype(np.float64)),
                ],
                schema=_OUTPUT_ARROW,
            )


def top_k_unseen(user_factors: DataFrame, item_factors: DataFrame, seen: DataFrame, k: int) -> DataFrame:
    """user_id, movie_id, rank (1..k), score: each user's k best items by factor dot product, none seen.

    `user_factors` and `item_factors` are shaped like `ALSModel.userFactors` (id, features);
    `seen` has (user_id, movie_id). Users without factors get no rows.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    spark = user_factors.sparkSession
    item_ids, item_matrix = _item_matrix(item_factors)
    broadcast_items = spark.sparkContext.broadcast((item_ids, item_matrix))
    seen_lists = seen.groupBy("user_id").agg(F.collect_list(F.col("movie_id").cast("int")).alias("seen"))
    users = user_factors.select(
        F.col("id").cast("int").alias("user_id"), F.col("features").cast("array<float>").alias("features")
    ).join(seen_lists, "user_id", "left")
    partitions = max(1, spark.sparkContext.defaultParallelism)
    return users.repartition(partitions, "user_id").mapInArrow(
        lambda batches: _score_batches(batches, broadcast_items, k), OUTPUT_SCHEMA
    )


def popularity_factors(ratings: DataFrame, users: DataFrame) -> tuple[DataFrame, DataFrame]:
    """Factors that make `top_k_unseen` recommend the most-rated items: (user factors, item factors).

    Every user in `users` (column user_id) gets the factor [1]; every item the factor
    [number of ratings], so ties fall to the smaller movie id.
    """
    item_factors = ratings.groupBy(F.col("movie_id").alias("id")).agg(
        F.array(F.count(F.lit(1)).cast("float")).alias("features")
    )
    user_factors = users.select(F.col("user_id").alias("id"), F.array(F.lit(1.0).cast("float")).alias("features"))
    return user_factors, item_factors


def brute_force_top_k(
    user_factors: dict[int, list[float]], item_factors: dict[int, list[float]], seen: dict[int, set[int]], k: int
) -> dict[int, list[int]]:
    """The reference: score every item for every user, drop seen ones, sort by (score desc, id asc)."""
    result = {}
    for user, u in user_factors.items():
        scored = [
            (-float(np.dot(np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64))), item)
            for item, v in item_factors.items()
            if item not in seen.get(user, set())
        ]
        result[user] = [item for _, item in sorted(scored)[:k]]
    return result
