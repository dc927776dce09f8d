"""Top-k scoring on factor matrices: plain PySpark and numpy, no Dagster.

`top_k_unseen` gives every user the k items with the highest dot product of
user and item factors, never an item the user has seen. Spark's
`recommendForAllUsers` cannot exclude seen items (filtering afterwards loses
results), so this scorer broadcasts the item factors once and scores blocks of
users on the executors inside `mapInArrow`: a matrix product in slabs of items,
longest factors first, each slab's group maxima taken while its scores are in
cache (they bound the k-th best score), then an exact sort of the few
candidates. A user stops at the first slab whose longest factor cannot reach
their k-th best score: most of a trained model's long tail is never multiplied.

Ties are broken by the smaller item id, exactly as the brute-force reference
in the tests does, so the two give the same top-k.

`most_popular_unseen` gives every user the k most-rated items they have not
rated, in the same partitions: it reads only the first k + (seen) positions of
the popularity order for each user, instead of scoring every item.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

# Users scored per matrix product: a small block's scores are still in cache when the search for the top k
# reads them (larger blocks were slower at MovieLens-25M's shape).
USERS_PER_BLOCK = 64
# Slabs the items are cut into (see `ItemSlabs`), so also the items in a group: at MovieLens-25M's size a slab's
# scores for a block of users stay in the L2 cache, which beats a product followed by a second pass over them.
SLABS = 64
# Slabs every user scores before the bound on their k-th best score decides which of the others they need
# (`slabs_to_score`): on a trained model most users then score a small share of the items; one, two or four
# probe slabs took about the same time.
PROBE_SLABS = 2
# Relative slack on |user| x |item| for float32's rounding of the product (it grows with the rank).
BOUND_MARGIN = 1e-4
# Up to this k, `kth_largest` strikes out each row's largest value k - 1 times instead of partitioning the row.
_STRIKE_OUT_UP_TO = 24
OUTPUT_SCHEMA = "user_id int, movie_id int, rank int, score double"
_OUTPUT_ARROW = pa.schema(
    [("user_id", pa.int32()), ("movie_id", pa.int32()), ("rank", pa.int32()), ("score", pa.float64())]
)


@dataclass(frozen=True)
class ItemSlabs:
    """The item factors as `top_k_block` reads them: the items, longest factors first, cut into `slabs` of `width`.

    Slab t holds items t * width ... (t + 1) * width - 1 of that order (zeros past the last item),
    transposed for the product; item group c is column c of every slab. Each slab's scores for a
    block of users fit in the L2 cache, so the running maximum of every group is taken while they
    are there, instead of reading the whole block of scores again after the product. No item of
    slab t scores more than |user| x `slab_norms[t]` (Cauchy-Schwarz), which lets a user stop
    before the slabs of short factors once their k-th best score is out of those slabs' reach.
    """

    ids: np.ndarray  # item ids, in the slabs' order
    slabs: np.ndarray  # (slabs, rank, width) float32
    column_of: np.ndarray  # item id -> its column (position in `ids`); -1 where there is no such item
    slab_norms: np.ndarray  # (slabs,) float64: the longest item factor in each slab, non-increasing

    @classmethod
    def of(cls, ids: np.ndarray, matrix: np.ndarray, slabs: int = SLABS) -> "ItemSlabs":
        """From item ids and their factors (one row each), in any order."""
        n_items, rank = matrix.shape
        norms = np.linalg.norm(matrix.astype(np.float64), axis=1)
        order = np.lexsort((ids, -norms))
        ids, matrix, norms = ids[order], matrix[order], norms[order]
        width = max(1, -(-n_items // slabs))
        padded = np.zeros((slabs * width, rank), dtype=np.float32)
        padded[:n_items] = matrix
        column_of = np.full(int(ids.max()) + 1 if n_items else 0, -1, dtype=np.int32)
        column_of[ids] = np.arange(n_items, dtype=np.int32)
        slab_norms = np.zeros(slabs)
        firsts = np.arange(0, n_items, width)
        slab_norms[: len(firsts)] = norms[firsts]
        transposed = np.ascontiguousarray(padded.reshape(slabs, width, rank).transpose(0, 2, 1))
        return cls(ids, transposed, column_of, slab_norms)

    @property
    def width(self) -> int:
        return self.slabs.shape[2]

    def columns(self, item_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions in `item_ids` of the ids that are items, their columns)."""
        inside = np.flatnonzero((item_ids >= 0) & (item_ids < len(self.column_of)))
        columns = self.column_of[item_ids[inside]]
        known = columns >= 0
        return inside[known], columns[known].astype(np.int64)


def slabs_to_score(user_norms: np.ndarray, slab_norms: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """How many of the first slabs each user must score: the slabs where some item could reach `lower`,
    a lower bound of the user's k-th best unseen score. `slab_norms` is non-increasing, so they come first.

    A slab is skipped only when |user| x its longest factor, widened by `BOUND_MARGIN` for float32's
    rounding of the products, is below `lower`: its items score below the k-th best, ties included.
    """
    reach = user_norms[:, None] * slab_norms[None, :] * (1 + BOUND_MARGIN)
    return np.count_nonzero(reach >= lower[:, None], axis=1)


def _item_matrix(item_factors: DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(item ids, their factors as a float32 matrix)."""
    items = item_factors.select(F.col("id").cast("int").alias("id"), "features").toPandas()
    if items.empty:
        return np.empty(0, dtype=np.int64), np.empty((0, 0), dtype=np.float32)
    ids = items["id"].to_numpy(dtype=np.int64)
    matrix = np.stack([np.asarray(f, dtype=np.float32) for f in items["features"]])
    return ids, matrix


def _group_by(keys: np.ndarray, groups: int) -> tuple[np.ndarray, np.ndarray]:
    """(the positions that sort `keys`, each in 0..groups - 1, stably; where each group starts in that order, and
    the end). numpy's stable sort of 16-bit keys is a radix sort: linear, several times faster than a comparison sort."""
    keys = keys.astype(np.uint16 if groups <= 1 << 16 else np.int64)
    order = np.argsort(keys, kind="stable")
    return order, np.searchsorted(keys[order], np.arange(groups + 1))


def kth_largest(values: np.ndarray, k: int) -> np.ndarray:
    """Each row's k-th largest value, repeats counted as a sort counts them.

    For a small k, each row's largest value is struck out k - 1 times and the largest left is read: on a block's
    64 x 923 group maxima, 76 us at k = 10 against 262 us for `np.partition`, and about as long at k = 32.
    """
    if k > _STRIKE_OUT_UP_TO:
        return np.partition(values, values.shape[1] - k, axis=1)[:, values.shape[1] - k]
    left, rows = values.copy(), np.arange(len(values))
    for _ in range(k - 1):
        left[rows, left.argmax(axis=1)] = -np.inf
    return left.max(axis=1)


def true_positions(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of a 2-d mask's true entries, in row order: `np.nonzero`'s result at about a ninth of its time
    on a block's group maxima."""
    return np.divmod(np.flatnonzero(mask), mask.shape[1])


def top_k_block(
    user_matrix: np.ndarray, items: ItemSlabs, seen_rows: np.ndarray, seen_ids: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Top-k unseen items of each user (row of `user_matrix`) by the dot product of their factors.

    `seen_rows[j]` is the row of the j-th seen item `seen_ids[j]` (ids that are not items are
    ignored). Returns flat arrays (row, item id, score, rank from 1) ordered by row, then score
    descending, then item id; a row with fewer than k unseen items yields only those.

    The product is made slab by slab; seen items are masked and each group's running maximum
    taken while the slab's scores are in cache. The k-th best of the group maxima bounds each
    row's k-th best score from below (the k best groups each hold a score at least that high).
    After the first `PROBE_SLABS` slabs that bound tells each row which slabs of shorter factors
    can still matter (`slabs_to_score`); rows are reordered by that number so each later slab
    multiplies a prefix of the rows. At the end only the groups whose maximum reaches the bound
    can hold the top k: their scores are the candidates, ties included, sorted exactly. With
    fewer groups than k, the bound is the exact k-th best score and every slab is scored.
    """
    n_rows, n_items = len(user_matrix), len(items.ids)
    k = min(k, n_items)
    if n_rows == 0 or k == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, np.empty(0, dtype=np.float32), empty
    n_slabs, width = len(items.slabs), items.width
    positions, seen_columns = items.columns(seen_ids)
    by_slab, edges = _group_by(seen_columns // width, n_slabs)
    seen_rows, seen_offsets = seen_rows[positions[by_slab]], seen_columns[by_slab] % width
    scores = np.empty((n_slabs, n_rows, width), dtype=np.float32)
    maxima = np.full((n_rows, width), -np.inf, dtype=np.float32)
    order = np.arange(n_rows)  # row i of the loop is row order[i] of `user_matrix`
    scored = np.full(n_rows, n_slabs)  # slabs scored per row of the loop, non-increasing
    active_rows = [n_rows] * n_slabs  # rows of the loop that score each slab: a prefix
    probe = PROBE_SLABS if width >= k else n_slabs
    for slab in range(n_slabs):
        if slab == probe:
            lower = kth_largest(maxima, k)
            needed = np.maximum(probe, slabs_to_score(np.linalg.norm(user_matrix, axis=1), items.slab_norms, lower))
            if needed.min() < n_slabs:
                order = np.argsort(-needed, kind="stable")
                user_matrix, maxima, scored = user_matrix[order], maxima[order], needed[order]
                scores[:probe] = scores[:probe, order]
                seen_rows = np.argsort(order)[seen_rows]
                active_rows = np.searchsorted(-scored, -np.arange(n_slabs), side="left").tolist()
        active = active_rows[slab]
        if active == 0:
            break
        block = scores[slab, :active]
        np.matmul(user_matrix[:active], items.slabs[slab], out=block)
        masked_rows, masked_offsets = seen_rows[edges[slab] : edges[slab + 1]], seen_offsets[edges[slab] : edges[slab + 1]]
        if active < n_rows:
            here = masked_rows < active
            masked_rows, masked_offsets = masked_rows[here], masked_offsets[here]
        block[masked_rows, masked_offsets] = -np.inf
        items_here = n_items - slab * width
        if items_here < width:  # the padding past the last item
            block[:, max(0, items_here):] = -np.inf
        np.maximum(maxima[:active], block, out=maxima[:active])
    if width >= k:
        bound = kth_largest(maxima, k)
    else:
        bound = kth_largest(scores.transpose(1, 0, 2).reshape(n_rows, n_slabs * width), k)
    group_rows, groups = true_positions(maxima >= bound[:, None])
    in_groups = scores[: scored[0], group_rows, groups].T  # (candidate groups, slabs any row scored)
    in_groups[np.arange(scored[0])[None, :] >= scored[group_rows][:, None]] = -np.inf  # slabs a row skipped
    hits, hit_slabs = true_positions((in_groups >= bound[group_rows][:, None]) & (in_groups > -np.inf))
    rows, values = order[group_rows[hits]], in_groups[hits, hit_slabs]
    ids = items.ids[hit_slabs * width + groups[hits]]
    by_rank = np.lexsort((ids, -values, rows))
    rows, ids, values = rows[by_rank], ids[by_rank], values[by_rank]
    ranks = np.arange(len(rows)) - np.searchsorted(rows, rows, side="left") + 1
    keep = ranks <= k
    return rows[keep], ids[keep], values[keep], ranks[keep]


def _partition_arrays(batches: Iterator[pa.RecordBatch]) -> tuple[np.ndarray, ...]:
    """One partition's factor rows and seen-movie rows: (user ids, their factors; and for every list of seen movies,
    its user and its length, then all the lists' movies one after another). A user's movies may come in several lists."""
    users, features, list_users, list_lengths, movies, rank = [], [], [], [], [], 0
    for batch in batches:
        is_factor_row = pc.is_valid(batch.column("features"))
        factor_rows, seen_rows = batch.filter(is_factor_row), batch.filter(pc.invert(is_factor_row))
        if factor_rows.num_rows:
            rank = len(factor_rows.column("features")[0])
        users.append(factor_rows.column("user_id").to_numpy(zero_copy_only=False))
        features.append(factor_rows.column("features").flatten().to_numpy(zero_copy_only=False))
        lengths, ids = _movies_of(seen_rows.column("movies"))
        list_users.append(seen_rows.column("user_id").to_numpy(zero_copy_only=False))
        list_lengths.append(lengths)
        movies.append(ids)
    if not users:
        empty = np.empty(0, dtype=np.int64)
        return empty, np.empty((0, 0), dtype=np.float32), empty, empty, empty
    users = np.concatenate(users)
    user_matrix = np.concatenate(features).astype(np.float32).reshape(len(users), rank)
    return users, user_matrix, np.concatenate(list_users), np.concatenate(list_lengths), np.concatenate(movies)


def _seen_in_row_order(
    users: np.ndarray, list_users: np.ndarray, list_lengths: np.ndarray, movies: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(each seen movie's row in `users`, sorted ascending; the movie ids in the same order), from lists of seen movies
    (`_partition_arrays`). Lists of users without factors are dropped.

    The rows are found and ordered per list, a few per user, and the movies are then gathered
    list after list: no search or sort over the seen pairs themselves.
    """
    rows = np.searchsorted(users, list_users)
    known = rows < len(users)
    known[known] = users[rows[known]] == list_users[known]
    firsts = np.cumsum(list_lengths) - list_lengths  # where each list starts in `movies`
    chosen = np.flatnonzero(known)[np.argsort(rows[known], kind="stable")]
    rows, firsts, lengths = rows[chosen], firsts[chosen], list_lengths[chosen]
    # Position j of list i's movies in the output is (i's start there) + j: each output position minus its list's start
    # in the output is j, so adding the list's start in `movies` gives where to read it.
    starts_out = np.cumsum(lengths) - lengths
    positions = np.arange(int(lengths.sum())) + np.repeat(firsts - starts_out, lengths)
    return np.repeat(rows, lengths), movies[positions]


def _score_partition(batches: Iterator[pa.RecordBatch], score_block: Callable) -> Iterator[pa.RecordBatch]:
    """Every user of one partition, in blocks: `score_block(user factors, seen rows, seen item ids)` gives each
    block's (rows, item ids, scores, ranks)."""
    users, user_matrix, list_users, list_lengths, movies = _partition_arrays(batches)
    order = np.argsort(users, kind="stable")
    users, user_matrix = users[order], user_matrix[order]
    seen_rows, seen_items = _seen_in_row_order(users, list_users, list_lengths, movies)
    block_starts = np.arange(0, len(users), USERS_PER_BLOCK)
    edges = np.searchsorted(seen_rows, np.r_[block_starts, len(users)])
    for block, start in enumerate(block_starts):
        stop = min(start + USERS_PER_BLOCK, len(users))
        first, last = edges[block], edges[block + 1]
        rows, items, scores, ranks = score_block(
            user_matrix[start:stop], seen_rows[first:last] - start, seen_items[first:last]
        )
        yield top_k_batch(users[start:stop][rows], items, ranks, scores)


def top_k_batch(users: np.ndarray, items: np.ndarray, ranks: np.ndarray, scores: np.ndarray) -> pa.RecordBatch:
    """Rows of OUTPUT_SCHEMA: user, item, rank and score of each listed item."""
    return pa.RecordBatch.from_arrays(
        [
            pa.array(users.astype(np.int32)),
            pa.array(items.astype(np.int32)),
            pa.array(ranks.astype(np.int32)),
            pa.array(scores.astype(np.float64)),
        ],
        schema=_OUTPUT_ARROW,
    )


_SEEN_ROWS = "user_id int, movies binary"
_SEEN_ARROW = pa.schema([("user_id", pa.int32()), ("movies", pa.binary())])
# Users a row batch of grouped seen movies holds.
_SEEN_USERS_PER_BATCH = 10_000


def _seen_by_user(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """One partition's (user_id, movie_id) pairs as one row per user: (user_id, the movies as bytes, `_as_bytes`).

    Grouped by user in Python before the shuffle, so the shuffle and the scorer's Arrow input carry
    a value a user instead of a row a pair, which made the scorer faster at MovieLens-25M's size.
    Arrow's hash aggregate builds the lists faster than numpy's sort by user; on one thread, as a
    Spark task has one core.
    """
    batches = list(batches)
    if not batches:
        return
    grouped = pa.Table.from_batches(batches).group_by("user_id", use_threads=False).aggregate([("movie_id", "list")])
    for batch in grouped.to_batches(max_chunksize=_SEEN_USERS_PER_BATCH):
        yield pa.RecordBatch.from_arrays([batch.column("user_id"), _as_bytes(batch.column("movie_id_list"))], schema=_SEEN_ARROW)


def _as_bytes(lists: pa.ListArray) -> pa.BinaryArray:
    """Each list of int32 as the bytes of its values, in this machine's byte order (`_movies_of` reads them back).

    Spark writes and reads a binary value whole, but an array element by element, which is slower
    for lists as long as a heavy rater's seen movies.
    """
    offsets = lists.offsets.to_numpy()
    values = np.ascontiguousarray(lists.flatten().to_numpy(zero_copy_only=False), dtype=np.int32)
    byte_offsets = ((offsets - offsets[0]) * 4).astype(np.int32)  # 4 bytes an int32
    return pa.BinaryArray.from_buffers(pa.binary(), len(lists), [None, pa.py_buffer(byte_offsets), pa.py_buffer(values)])


def _movies_of(lists: pa.BinaryArray) -> tuple[np.ndarray, np.ndarray]:
    """(each list's length, all the lists' movie ids one after another) of lists written by `_as_bytes`."""
    if len(lists) == 0:
        return np.empty(0, dtype=np.int32), np.empty(0, dtype=np.int32)
    _, offset_buffer, data = lists.buffers()
    offsets = np.frombuffer(offset_buffer, dtype=np.int32)[lists.offset : lists.offset + len(lists) + 1] // 4  # in int32s
    return np.diff(offsets), np.frombuffer(data, dtype=np.int32)[offsets[0] : offsets[-1]]


def _by_user(users: DataFrame, seen: DataFrame) -> DataFrame:
    """`users` (user_id, features) and the `seen` pairs, unioned and partitioned by user: one shuffle.

    The seen pairs are grouped by user within each partition first (`_seen_by_user`), and each
    partition's scorer pairs a user's factors with the user's lists of seen items with numpy (a
    binary search a list). A Spark groupBy with collect_list would sort them on the JVM and
    build the arrays there, several times the cost at MovieLens-25M's size. A partition holds its
    users' factors and seen movies: a few hundred MB at that size on two partitions.
    """
    seen_rows = seen.select(F.col("user_id").cast("int"), F.col("movie_id").cast("int")).mapInArrow(_seen_by_user, _SEEN_ROWS)
    partitions = max(1, users.sparkSession.sparkContext.defaultParallelism)
    return users.select("user_id", "features").unionByName(seen_rows, allowMissingColumns=True).repartition(partitions, "user_id")


def _factor_block(user_matrix: np.ndarray, seen_rows: np.ndarray, seen_items: np.ndarray, broadcast_items, k: int):
    return top_k_block(user_matrix, ItemSlabs(*broadcast_items.value), seen_rows, seen_items, k)


def top_k_unseen(user_factors: DataFrame, item_factors: DataFrame, seen: DataFrame, k: int) -> DataFrame:
    """user_id, movie_id, rank (1..k), score: each user's k best items by factor dot product, none seen.

    `user_factors` and `item_factors` are shaped like `ALSModel.userFactors` (id, features);
    `seen` has (user_id, movie_id). Users without factors get no rows.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    # A broadcast is pickled by plain pickle, which names a class by its module: the arrays alone need
    # nothing of this package to pickle or unpickle (a Databricks step imports it from a per-run copy).
    slabs = ItemSlabs.of(*_item_matrix(item_factors))
    broadcast_items = user_factors.sparkSession.sparkContext.broadcast(
        (slabs.ids, slabs.slabs, slabs.column_of, slabs.slab_norms)
    )
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
    chosen_rows, chosen = true_positions(unseen & (ranks <= k))
    return chosen_rows, popular_ids[chosen], popular_counts[chosen], ranks[chosen_rows, chosen]


def _popular_block(user_matrix: np.ndarray, seen_rows: np.ndarray, seen_items: np.ndarray, broadcast_order, k: int):
    return most_popular_block(len(user_matrix), seen_rows, seen_items, broadcast_order.value, k)


def most_popular_unseen(ratings: DataFrame, users: DataFrame, k: int, seen: DataFrame | None = None) -> DataFrame:
    """user_id, movie_id, rank (1..k), score (its number of ratings): the k most-rated items of `ratings` each user
    in `users` (column user_id) has not rated there; ties fall to the smaller movie id.

    `seen` (user_id, movie_id) is what is excluded, by default every pair of `ratings`. Every pair passed is grouped
    and shuffled, so a caller whose users are few of the raters passes only theirs.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    broadcast_order = ratings.sparkSession.sparkContext.broadcast(popularity_order(ratings))
    user_rows = users.select(F.col("user_id").cast("int"), F.array().cast("array<float>").alias("features"))
    score_block = partial(_popular_block, broadcast_order=broadcast_order, k=k)
    seen = (ratings if seen is None else seen).select("user_id", "movie_id")
    return _by_user(user_rows, seen).mapInArrow(partial(_score_partition, score_block=score_block), OUTPUT_SCHEMA)
