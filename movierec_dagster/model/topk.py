"""Top-k scoring on factor matrices: plain PySpark and numpy, no Dagster.

`top_k_unseen` gives every user the k items with the highest dot product of
user and item factors, never an item the user has seen. Spark's
`recommendForAllUsers` cannot exclude seen items (filtering afterwards loses
results), so this scorer broadcasts the item factors once and scores blocks of
users on the executors inside `mapInArrow`: a matrix product, then a search for
each user's candidates that reads the scores once (chunk maxima bound the k-th
best score) and an exact sort of the few candidates.

Ties are broken by the smaller item id, exactly as the brute-force reference
(`brute_force_top_k`) does, so the two give the same top-k.
"""

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

USERS_PER_BLOCK = 256
# Items per chunk in the search for each user's candidates (see `_candidates`).
CHUNK = 128
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
    scores: np.ndarray, item_ids: np.ndarray, seen_rows: np.ndarray, seen_ids: np.ndarray, k: int, chunk: int = CHUNK
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
    rows, columns = _candidates(scores, k, chunk)
    values = scores[rows, columns]
    order = np.lexsort((columns, -values, rows))
    rows, columns, values = rows[order], columns[order], values[order]
    ranks = np.arange(len(rows)) - np.searchsorted(rows, rows, side="left") + 1
    keep = (ranks <= k) & np.isfinite(values)
    return rows[keep], columns[keep], values[keep], ranks[keep]


def _candidates(scores: np.ndarray, k: int, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of every score at least a lower bound of its row's k-th best: a superset of the top-k, ties included.

    The items fall in chunks of `chunk` columns; the k-th best of the chunk maxima is such a
    bound (the k best chunks each hold a score at least that high), and only the chunks whose
    maximum reaches it can hold candidates. That reads the scores once, instead of a partial
    sort of every row. With fewer than k whole chunks, the bound is the exact k-th best score.
    """
    n_rows, n_items = scores.shape
    n_chunks = n_items // chunk
    if n_chunks < k:
        kth = np.partition(scores, n_items - k, axis=1)[:, n_items - k]
        return np.nonzero(scores >= kth[:, None])
    whole = n_chunks * chunk
    maxima = np.maximum.reduceat(scores[:, :whole], np.arange(0, whole, chunk), axis=1)
    bound = np.partition(maxima, n_chunks - k, axis=1)[:, n_chunks - k]
    chunk_rows, chunk_numbers = np.nonzero(maxima >= bound[:, None])
    in_chunks = chunk_numbers[:, None] * chunk + np.arange(chunk)
    hits, offsets = np.nonzero(scores[chunk_rows[:, None], in_chunks] >= bound[chunk_rows][:, None])
    rows, columns = chunk_rows[hits], in_chunks[hits, offsets]
    if whole < n_items:  # the items after the last whole chunk are checked one by one
        tail_rows, tail_columns = np.nonzero(scores[:, whole:] >= bound[:, None])
        rows = np.concatenate([rows, tail_rows])
        columns = np.concatenate([columns, tail_columns + whole])
    return rows, columns


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
    # One shuffle brings each user's factors and seen movies together: the factor rows and the
    # seen rows, unioned, are partitioned by user, and the grouping reuses that partitioning
    # (a groupBy of the seen movies, then a join, then a repartition would shuffle three times).
    factor_rows = user_factors.select(
        F.col("id").cast("int").alias("user_id"),
        F.col("features").cast("array<float>").alias("features"),
        F.lit(None).cast("int").alias("movie_id"),
    )
    seen_rows = seen.select(
        F.col("user_id").cast("int"), F.lit(None).cast("array<float>").alias("features"), F.col("movie_id").cast("int")
    )
    partitions = max(1, spark.sparkContext.defaultParallelism)
    users = (
        factor_rows.unionByName(seen_rows)
        .repartition(partitions, "user_id")
        .groupBy("user_id")
        .agg(F.first("features", ignorenulls=True).alias("features"), F.collect_list("movie_id").alias("seen"))
        .where(F.col("features").isNotNull())
    )
    return users.mapInArrow(lambda batches: _score_batches(batches, broadcast_items, k), OUTPUT_SCHEMA)


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
