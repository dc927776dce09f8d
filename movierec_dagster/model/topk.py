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

`most_popular_unseen` gives every user the k most-rated items they have not
rated, in the same partitions: it reads only the first k + (seen) positions of
the popularity order for each user, instead of scoring every item.
"""

from collections.abc import Callable, Iterator
from functools import partial

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

# Users scored per matrix product. On MovieLens-25M's 59k items at rank 30, the kernel alone (one core,
# numpy) scored 4,155 users/s in blocks of 64 against 3,122 in blocks of 256: the smaller block of scores
# is still in cache when the search for the top k reads it.
USERS_PER_BLOCK = 64
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


def _partition_arrays(batches: Iterator[pa.RecordBatch]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(user ids, their factors, seen users, seen items) of one partition's factor rows and seen rows."""
    users, features, seen_users, seen_items, rank = [], [], [], [], 0
    for batch in batches:
        is_factor_row = pc.is_valid(batch.column("features"))
        factor_rows, seen_rows = batch.filter(is_factor_row), batch.filter(pc.invert(is_factor_row))
        if factor_rows.num_rows:
            rank = len(factor_rows.column("features")[0])
        users.append(factor_rows.column("user_id").to_numpy(zero_copy_only=False))
        features.append(factor_rows.column("features").flatten().to_numpy(zero_copy_only=False))
        seen_users.append(seen_rows.column("user_id").to_numpy(zero_copy_only=False))
        seen_items.append(seen_rows.column("movie_id").to_numpy(zero_copy_only=False))
    if not users:
        empty = np.empty(0, dtype=np.int64)
        return empty, np.empty((0, 0), dtype=np.float32), empty, empty
    users = np.concatenate(users)
    user_matrix = np.concatenate(features).astype(np.float32).reshape(len(users), rank)
    return users, user_matrix, np.concatenate(seen_users), np.concatenate(seen_items).astype(np.int64)


def _score_partition(batches: Iterator[pa.RecordBatch], score_block: Callable) -> Iterator[pa.RecordBatch]:
    """Every user of one partition, in blocks: `score_block(user factors, seen rows, seen item ids)` gives each
    block's (rows, item ids, scores, ranks). A block's seen pairs are found by a search in the sorted pairs."""
    users, user_matrix, seen_users, seen_items = _partition_arrays(batches)
    order = np.argsort(users, kind="stable")
    users, user_matrix = users[order], user_matrix[order]
    # Each seen pair's row in the (sorted) user matrix; pairs of users without factors are dropped.
    seen_rows = np.searchsorted(users, seen_users)
    has_factors = seen_rows < len(users)
    has_factors[has_factors] = users[seen_rows[has_factors]] == seen_users[has_factors]
    seen_rows, seen_items = seen_rows[has_factors], seen_items[has_factors]
    by_row = np.argsort(seen_rows, kind="stable")
    seen_rows, seen_items = seen_rows[by_row], seen_items[by_row]
    for start in range(0, len(users), USERS_PER_BLOCK):
        stop = min(start + USERS_PER_BLOCK, len(users))
        first, last = np.searchsorted(seen_rows, [start, stop])
        rows, items, scores, ranks = score_block(
            user_matrix[start:stop], seen_rows[first:last] - start, seen_items[first:last]
        )
        yield pa.RecordBatch.from_arrays(
            [
                pa.array(users[start:stop][rows].astype(np.int32)),
                pa.array(items.astype(np.int32)),
                pa.array(ranks.astype(np.int32)),
                pa.array(scores.astype(np.float64)),
            ],
            schema=_OUTPUT_ARROW,
        )


def _by_user(users: DataFrame, seen: DataFrame) -> DataFrame:
    """`users` (user_id, features) and the `seen` pairs, unioned and partitioned by user: one shuffle.

    Each partition's scorer pairs a user's factors with the user's seen items with numpy (a sort of
    the partition's seen pairs), where a Spark groupBy with collect_list would sort them on the JVM
    and build an array per user, several times the cost at MovieLens-25M's size. A partition holds
    its users' factors and seen pairs: a few hundred MB at that size on two partitions.
    """
    seen_rows = seen.select(
        F.col("user_id").cast("int"), F.lit(None).cast("array<float>").alias("features"), F.col("movie_id").cast("int")
    )
    partitions = max(1, users.sparkSession.sparkContext.defaultParallelism)
    return users.select("user_id", "features", F.lit(None).cast("int").alias("movie_id")).unionByName(seen_rows).repartition(
        partitions, "user_id"
    )


def _factor_block(user_matrix: np.ndarray, seen_rows: np.ndarray, seen_items: np.ndarray, broadcast_items, k: int):
    item_ids, item_matrix = broadcast_items.value
    rows, columns, scores, ranks = top_k_block(user_matrix @ item_matrix.T, item_ids, seen_rows, seen_items, k)
    return rows, item_ids[columns], scores, ranks


def top_k_unseen(user_factors: DataFrame, item_factors: DataFrame, seen: DataFrame, k: int) -> DataFrame:
    """user_id, movie_id, rank (1..k), score: each user's k best items by factor dot product, none seen.

    `user_factors` and `item_factors` are shaped like `ALSModel.userFactors` (id, features);
    `seen` has (user_id, movie_id). Users without factors get no rows.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    broadcast_items = user_factors.sparkSession.sparkContext.broadcast(_item_matrix(item_factors))
    users = user_factors.select(
        F.col("id").cast("int").alias("user_id"), F.col("features").cast("array<float>").alias("features")
    )
    score_block = partial(_factor_block, broadcast_items=broadcast_items, k=k)
    return _by_user(users, seen).mapInArrow(partial(_score_partition, score_block=score_block), OUTPUT_SCHEMA)


def popularity_order(ratings: DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(item ids from the most rated down, ties to the smaller id; their numbers of ratings; the positions that
    sort the ids ascending, which find an item's place in the order by a binary search)."""
    counts = ratings.groupBy(F.col("movie_id").cast("int").alias("id")).count().toPandas()
    counts = counts.sort_values(["count", "id"], ascending=[False, True])
    popular_ids = counts["id"].to_numpy(dtype=np.int64)
    return popular_ids, counts["count"].to_numpy(dtype=np.float64), np.argsort(popular_ids, kind="stable")


def most_popular_block(
    n_rows: int,
    seen_rows: np.ndarray,
    seen_ids: np.ndarray,
    order: tuple[np.ndarray, np.ndarray, np.ndarray],
    k: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The k first items of the popularity `order` (as `popularity_order` gives it) that each row has not seen:
    (row, item id, count, rank from 1).

    A row needs at most k + (its seen items) positions of the order, so only that prefix is read.
    """
    popular_ids, popular_counts, by_id = order
    columns = np.searchsorted(popular_ids, seen_ids, sorter=by_id)
    known = columns < len(popular_ids)
    known[known] = popular_ids[by_id[columns[known]]] == seen_ids[known]
    positions, rows = by_id[columns[known]], seen_rows[known]
    per_row = np.bincount(rows, minlength=n_rows) if n_rows else np.zeros(0, dtype=np.int64)
    prefix = min(len(popular_ids), k + (int(per_row.max()) if len(per_row) else 0))
    unseen = np.ones((n_rows, prefix), dtype=bool)
    inside = positions < prefix
    unseen[rows[inside], positions[inside]] = False
    ranks = np.cumsum(unseen, axis=1)
    chosen_rows, chosen = np.nonzero(unseen & (ranks <= k))
    return chosen_rows, popular_ids[chosen], popular_counts[chosen], ranks[chosen_rows, chosen]


def _popular_block(user_matrix: np.ndarray, seen_rows: np.ndarray, seen_items: np.ndarray, broadcast_order, k: int):
    return most_popular_block(len(user_matrix), seen_rows, seen_items, broadcast_order.value, k)


def most_popular_unseen(ratings: DataFrame, users: DataFrame, k: int) -> DataFrame:
    """user_id, movie_id, rank (1..k), score (its number of ratings): the k most-rated items of `ratings` each user
    in `users` (column user_id) has not rated there; ties fall to the smaller movie id."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    broadcast_order = ratings.sparkSession.sparkContext.broadcast(popularity_order(ratings))
    user_rows = users.select(F.col("user_id").cast("int"), F.array().cast("array<float>").alias("features"))
    score_block = partial(_popular_block, broadcast_order=broadcast_order, k=k)
    seen = ratings.select("user_id", "movie_id")
    return _by_user(user_rows, seen).mapInArrow(partial(_score_partition, score_block=score_block), OUTPUT_SCHEMA)


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
