"""EASE (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data"): plain numpy, scipy and PySpark, no Dagster.

The model is one items x items matrix B with a zero diagonal, the ridge regression of every
movie's input column on all the other columns:

    B = argmin ||X - X B||^2 + l2 ||B||^2  subject to diag(B) = 0
      = I - P diag(1 / diag(P)),   P = (X^T X + l2 I)^-1

where X holds one row a user and one column a movie: the input value of each rating
(`EaseParams.weighting`), 0 where the user has not rated the movie. A user's score of movie j is
x_u @ B[:, j], the model's reconstruction of the user's input value for j from their other
ratings. Under the default weighting ("rating": the rating / 5, 0 for a movie not rated) that is
the model's estimate of the user's rating of j divided by 5, where not rating it counts as 0: it is
high for a movie the user is likely both to watch and to rate well, on the 0-1 scale of the input
(a regression may leave it a little, above 1 or below 0). Under "binary" (1 for every rated movie)
it estimates whether the user rates j at all, the implicit ALS's reading. Either way the match
shown is the score clipped to 0-1. EASE's scores of unseen movies are modest: on ml-latest-small's
training split (default params) a user's best score was 0.09-0.51 (5th-95th percentile, median 0.30)
and their tenth 0.05-0.28 (median 0.18); none above 1.

`fit_ease` collects the ratings to the driver and solves in float32, the weights' own precision
(the gram matrix is summed as a sparse product in float64, then held in float32; the inverse by
Cholesky in place, which the l2 term keeps well conditioned: the weights agree with a float64
solve's to a few units in float32's last place, in half the time and memory; docs/model.md).
The catalog is limited by memory and time: the solve holds one float32 items x items matrix
(4 x items^2 bytes) and takes items^3 floating point work, so above `max_items` it refuses and the
pipeline ranks with ALS. `ease_top_k_unseen` scores every user in Spark: B is broadcast once and
blocks of users are scored inside `mapInArrow`, a sparse x dense product per block. A user's list
depends on their own ratings and B alone, so `EaseModel.score_user` gives the same list for one
user's ratings without Spark (fold-in: new ratings give new recommendations without a refit).
"""

import json
import os
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from scipy import sparse
from scipy.linalg import lapack
from threadpoolctl import threadpool_limits

from movierec_dagster.model.topk import OUTPUT_SCHEMA, USERS_PER_BLOCK, kth_largest, top_k_batch, true_positions
from movierec_dagster.names import EASE_ITEM_IDS, EASE_PARAMS, EASE_WEIGHTS, MAX_RATING

TOP_K = 10
# The largest catalog `fit_ease` takes by default: the solve holds 4 x items^2 bytes and does items^3 work, and B is
# held again in every Python worker that scores (docs/model.md has the figures by catalogue size).
MAX_ITEMS = 15_000
# Above this many items the Cholesky runs on one BLAS thread: the threaded Cholesky of the OpenBLAS in numpy's and
# scipy's wheels crashed the process with a segfault above it on two threads, and ran on one (the known class of
# OpenBLAS issues 1413 and 2821: threaded syrk inside potrf).
THREADED_SOLVE_UP_TO = 15_000
# Input weightings: how a rating becomes the value in X (see `input_values`).
BINARY = "binary"  # 1 for every rated movie
RATING = "rating"  # rating / 5: 0.1 for half a star to 1 for five stars
CENTERED = "centered"  # (rating - neutral) / (5 - neutral): negative below the neutral rating, 1 for five stars
WEIGHTINGS = (BINARY, RATING, CENTERED)
# Columns of the gram matrix made per sparse product: bounds the sparse intermediate to items x this many entries.
_GRAM_COLUMNS = 512
# Rows of P turned into float32 weights at a time.
_WEIGHT_ROWS = 256
_MODEL_FILES = (EASE_PARAMS, EASE_ITEM_IDS, EASE_WEIGHTS)


@dataclass(frozen=True)
class EaseParams:
    """EASE's hyper-parameters (defaults chosen on a validation split of ml-latest-small, `bench.model ease-quality`).

    `l2` is lambda, on the scale of the squared input values: a movie's diagonal entry of X^T X is the sum
    of its ratings' squared input values (its number of ratings under "binary"; under "rating", 0.64 for
    a four-star rating), so l2 = 100 weighs like 100 five-star ratings.
    """

    l2: float = 100.0
    weighting: str = RATING
    neutral_rating: float = 3.0  # "centered" only: the rating that counts 0
    # The largest catalog `fit_ease` takes: the solve holds 4 x items^2 bytes; above it ALS ranks the movies.
    max_items: int = MAX_ITEMS

    def __post_init__(self) -> None:
        if not self.l2 > 0:
            raise ValueError(f"l2 must be positive, got {self.l2}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {', '.join(WEIGHTINGS)}, got {self.weighting!r}")
        if self.weighting == CENTERED and not self.neutral_rating < MAX_RATING:
            raise ValueError(f"neutral_rating must be below {MAX_RATING}, got {self.neutral_rating}")
        if self.max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {self.max_items}")

    def as_dict(self) -> dict:
        return asdict(self)


def input_values(ratings: np.ndarray, params: EaseParams) -> np.ndarray:
    """The value in X of each rating under `params.weighting`, float32 (the same in the fit and in scoring)."""
    ratings = np.asarray(ratings, dtype=np.float32)
    if params.weighting == BINARY:
        return np.ones_like(ratings)
    if params.weighting == RATING:
        return ratings / np.float32(MAX_RATING)
    return (ratings - np.float32(params.neutral_rating)) / np.float32(MAX_RATING - params.neutral_rating)


@dataclass(frozen=True, eq=False)
class EaseModel:
    """A fitted EASE: the movies (ascending ids) and B (float32, items x items, zero diagonal; row and column i are
    movie `item_ids[i]`)."""

    item_ids: np.ndarray  # (items,) int32, ascending
    weights: np.ndarray  # (items, items) float32
    params: EaseParams

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def columns(self, movie_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions in `movie_ids` of the movies the model knows, their columns in B)."""
        movie_ids = np.asarray(movie_ids, dtype=np.int64)
        columns = np.searchsorted(self.item_ids, movie_ids)
        known = columns < self.n_items
        known[known] = self.item_ids[columns[known]] == movie_ids[known]
        return np.flatnonzero(known), columns[known]

    def score_user(
        self, movie_ids: Iterable[int], ratings: Iterable[float], k: int = TOP_K, exclude: Iterable[int] = ()
    ) -> list[tuple[int, float]]:
        """One user's top k (movie id, score), best first, from their ratings alone: `ratings[i]` is their rating of
        `movie_ids[i]`. The rated movies and those in `exclude` are never recommended.

        The list is the one `ease_top_k_unseen` gives the user for the same ratings. A user none of whose
        ratings is of a movie the model knows (or whose every input value is 0) gets an empty list, as there.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        movie_ids = np.asarray(list(movie_ids), dtype=np.int64)
        values = input_values(np.asarray(list(ratings), dtype=np.float32), self.params)
        if len(movie_ids) != len(values):
            raise ValueError(f"{len(movie_ids)} movie ids but {len(values)} ratings")
        excluded = np.asarray(list(exclude), dtype=np.int64)
        rows, ids, scores, _ = _score_block(
            self, np.zeros(len(movie_ids), dtype=np.int64), movie_ids, values, 1, k,
            np.zeros(len(excluded), dtype=np.int64), excluded,
        )
        return [(int(movie), float(score)) for movie, score in zip(ids, scores)]

    def similar(self, movie_id: int, k: int) -> list[tuple[int, float]] | None:
        """The `k` movies a rating of `movie_id` raises most (movie id, weight), best first; None when the model does
        not know the movie.

        The list EASE gives a user whose one rating is five stars for it (an input value of 1): its row of B, which is
        the movie's own answer to "people who rated this also rate", itself excluded.
        """
        if not len(self.columns(np.array([movie_id]))[1]):
            return None
        return self.score_user([movie_id], [MAX_RATING], k)

    def movies(self, spark: SparkSession) -> DataFrame:
        """movie_id (int) of every movie the model knows: the users with a rating of one of them get a list."""
        return spark.createDataFrame(pd.DataFrame({"movie_id": self.item_ids.astype(np.int32)}), "movie_id int")

    def save(self, where: Any, location: str | None = None) -> None:
        """Write the model into a folder: `save(lake, uri)` (the lake resource, or anything with `filesystem()`, and a
        URI under it, as `lake.uri(...)` gives; the lake's filesystem carries its credentials), `save(fs, path)` (an
        fsspec filesystem and a path of it) or `save(uri_or_local_path)`.

        Three files: item_ids.npy, weights.npy (numpy's format) and params.json, written last.
        """
        fs, folder = _folder(where, location)
        fs.makedirs(folder, exist_ok=True)
        params, item_ids, weights = (f"{folder}/{name}" for name in _MODEL_FILES)
        with fs.open(item_ids, "wb") as file:
            np.save(file, self.item_ids)
        with fs.open(weights, "wb") as file:
            np.save(file, self.weights)
        fs.pipe_file(params, json.dumps(self.params.as_dict(), sort_keys=True).encode())

    @classmethod
    def load(cls, where: Any, location: str | None = None) -> "EaseModel":
        """The model `save` wrote (the same forms: `load(lake, uri)`, `load(fs, path)`, `load(uri_or_local_path)`)."""
        fs, folder = _folder(where, location)
        params, item_ids, weights = (f"{folder}/{name}" for name in _MODEL_FILES)
        if not fs.exists(params):
            raise FileNotFoundError(f"No EASE model at {location or where}: {params} is missing (was it saved?)")
        with fs.open(item_ids, "rb") as file:
            ids = np.load(file)
        with fs.open(weights, "rb") as file:
            matrix = np.load(file)
        return cls(ids.astype(np.int32, copy=False), matrix, EaseParams(**json.loads(fs.cat_file(params))))


def _folder(where: Any, location: str | None) -> tuple[fsspec.AbstractFileSystem, str]:
    """(filesystem, folder path in its form) of `save`'s and `load`'s arguments."""
    if isinstance(where, str | os.PathLike):
        if location is not None:
            raise TypeError("give a URI or path alone, or a filesystem (or lake) and a location")
        fs, path = fsspec.core.url_to_fs(os.fspath(where))
    else:
        if location is None:
            raise TypeError("a filesystem or lake needs the location too: save(lake, uri) or save(fs, path)")
        fs = where.filesystem() if hasattr(where, "filesystem") else where
        path = fs._strip_protocol(location)  # a URI under the filesystem, or already its path
    return fs, path.rstrip("/")


def fit_ease(ratings: DataFrame, params: EaseParams) -> EaseModel:
    """EASE fitted on `ratings` (user_id, movie_id, rating; one rating a pair, as `training.merge_ratings` gives).

    Counts the movies first and refuses a catalog above `params.max_items` before collecting anything.
    """
    pairs = ratings.select(F.col("user_id").cast("int"), F.col("movie_id").cast("int"), F.col("rating").cast("float"))
    n_items = pairs.agg(F.countDistinct("movie_id")).first()[0]
    if not n_items:
        raise ValueError("cannot fit EASE on no ratings")
    if n_items > params.max_items:
        raise ValueError(
            f"EASE needs an items x items matrix: {n_items:,} movies exceed max_items {params.max_items:,} "
            f"(about {4 * n_items**2 / 1e9:.1f} GB to solve); ALS ranks them"
        )
    table = pairs.toArrow()
    users = table.column("user_id").to_numpy()
    movies = table.column("movie_id").to_numpy()
    values = input_values(table.column("rating").to_numpy(), params)
    del table
    return fit_ease_arrays(users, movies, values, params)


def fit_ease_arrays(users: np.ndarray, movies: np.ndarray, values: np.ndarray, params: EaseParams) -> EaseModel:
    """EASE from flat arrays (one entry a rating: user id, movie id, input value as `input_values` gives)."""
    item_ids, columns = np.unique(np.asarray(movies, dtype=np.int64), return_inverse=True)
    _, rows = np.unique(np.asarray(users, dtype=np.int64), return_inverse=True)
    weights = ease_weights(gram_matrix(rows, columns, np.asarray(values, dtype=np.float64), len(item_ids)), params.l2)
    return EaseModel(item_ids.astype(np.int32), weights, params)


def gram_matrix(rows: np.ndarray, columns: np.ndarray, values: np.ndarray, n_items: int) -> np.ndarray:
    """X^T X as a dense float32 matrix, X sparse (rows: users, columns: items), summed in float64 a slice of columns
    at a time."""
    x = sparse.csr_matrix((values, (rows, columns)), shape=(int(rows.max()) + 1 if len(rows) else 0, n_items))
    x_t, x_c = x.T.tocsr(), x.tocsc()
    gram = np.empty((n_items, n_items), dtype=np.float32)
    for start in range(0, n_items, _GRAM_COLUMNS):
        stop = min(start + _GRAM_COLUMNS, n_items)
        gram[:, start:stop] = (x_t @ x_c[:, start:stop]).toarray()
    return gram


def ease_weights(gram: np.ndarray, l2: float) -> np.ndarray:
    """B = I - P diag(1 / diag(P)), P = (gram + l2 I)^-1, float32. `gram` (float32, C order) is consumed: the solve and
    B are made in its memory, so the peak is the gram matrix itself (4 x items^2 bytes)."""
    n = len(gram)
    gram[np.diag_indices(n)] += l2
    # The transpose is the same symmetric matrix in Fortran order, which LAPACK works on in place.
    with threadpool_limits(limits=1, user_api="blas") if n > THREADED_SOLVE_UP_TO else nullcontext():
        factor, info = lapack.spotrf(gram.T, lower=1, clean=0, overwrite_a=1)
        if info != 0:
            raise ValueError(f"X^T X + l2 I is not positive definite (LAPACK spotrf info {info}): is l2 positive?")
        inverse, info = lapack.spotri(factor, lower=1, overwrite_c=1)
    if info != 0:
        raise ValueError(f"the inverse of X^T X + l2 I failed (LAPACK spotri info {info})")
    if not np.shares_memory(inverse, gram):  # a LAPACK wrapper that copied: take its result
        gram = np.ascontiguousarray(inverse.T)
    del factor, inverse
    # The Fortran lower triangle is the C upper one: mirror it into the lower one, a block of rows at a time.
    for start in range(0, n, _WEIGHT_ROWS):
        stop = min(start + _WEIGHT_ROWS, n)
        gram[start:stop, :start] = gram[:start, start:stop].T
        block = gram[start:stop, start:stop]
        lower = np.tril_indices(stop - start, -1)
        block[lower] = block.T[lower]
    scale = -1.0 / np.diag(gram)
    for start in range(0, n, _WEIGHT_ROWS):
        stop = min(start + _WEIGHT_ROWS, n)
        gram[start:stop] *= scale[None, :]
        gram[np.arange(start, stop), np.arange(start, stop)] = 0.0
    return gram


def _score_block(
    model: EaseModel,
    rows: np.ndarray,
    movie_ids: np.ndarray,
    values: np.ndarray,
    n_rows: int,
    k: int,
    excluded_rows: np.ndarray | None = None,
    excluded_ids: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Top-k unseen movies of `n_rows` users from their ratings (`rows[j]` rated `movie_ids[j]`, input value
    `values[j]`): flat arrays (row, movie id, score, rank from 1) ordered by row, score descending, movie id.

    A user's score row is the sum of their rated movies' rows of B weighted by the input values, added in the order
    of the movies' columns: a row's floats do not depend on the other rows of the block. Rated movies and the
    `excluded` pairs are masked; ties fall to the smaller movie id (the smaller column). Rows with no known rated
    movie of non-zero value get nothing.
    """
    empty = np.empty(0, dtype=np.int64)
    positions, columns = model.columns(movie_ids)
    rows, values = rows[positions], np.asarray(values, dtype=np.float32)[positions]
    order = np.lexsort((columns, rows))
    rows, columns, values = rows[order], columns[order], values[order]
    indptr = np.searchsorted(rows, np.arange(n_rows + 1))
    x = sparse.csr_matrix((values, columns, indptr), shape=(n_rows, model.n_items))
    has_input = np.bincount(rows[values != 0], minlength=n_rows) > 0
    k = min(k, model.n_items)
    if not has_input.any() or k == 0:
        return empty, empty, np.empty(0, dtype=np.float32), empty
    scores = np.asarray(x @ model.weights, dtype=np.float32)
    scores[rows, columns] = -np.inf
    if excluded_ids is not None and len(excluded_ids):
        places, excluded_columns = model.columns(excluded_ids)
        scores[excluded_rows[places], excluded_columns] = -np.inf
    scores[~has_input] = -np.inf
    bound = kth_largest(scores, k)
    chosen_rows, chosen = true_positions((scores >= bound[:, None]) & (scores > -np.inf))
    chosen_scores = scores[chosen_rows, chosen]
    by_rank = np.lexsort((chosen, -chosen_scores, chosen_rows))
    chosen_rows, chosen, chosen_scores = chosen_rows[by_rank], chosen[by_rank], chosen_scores[by_rank]
    ranks = np.arange(len(chosen_rows)) - np.searchsorted(chosen_rows, chosen_rows, side="left") + 1
    keep = ranks <= k
    return chosen_rows[keep], model.item_ids[chosen[keep]].astype(np.int64), chosen_scores[keep], ranks[keep]


def _score_partition(batches: Iterator[pa.RecordBatch], broadcast_model, k: int) -> Iterator[pa.RecordBatch]:
    """One partition's ratings (user_id, movie_id, rating; each user's all in this partition) as every user's top k."""
    batches = list(batches)
    if not batches:
        return
    table = pa.Table.from_batches(batches)
    if table.num_rows == 0:
        return
    item_ids, weights, params = broadcast_model.value
    model = EaseModel(item_ids, weights, EaseParams(**params))
    users, user_rows = np.unique(table.column("user_id").to_numpy(), return_inverse=True)
    movies = table.column("movie_id").to_numpy().astype(np.int64)
    values = input_values(table.column("rating").to_numpy(), model.params)
    del table, batches
    by_user = np.argsort(user_rows, kind="stable")
    user_rows, movies, values = user_rows[by_user], movies[by_user], values[by_user]
    edges = np.searchsorted(user_rows, np.arange(0, len(users) + USERS_PER_BLOCK, USERS_PER_BLOCK).clip(max=len(users)))
    for block, start in enumerate(range(0, len(users), USERS_PER_BLOCK)):
        stop = min(start + USERS_PER_BLOCK, len(users))
        first, last = edges[block], edges[block + 1]
        rows, ids, scores, ranks = _score_block(
            model, user_rows[first:last] - start, movies[first:last], values[first:last], stop - start, k
        )
        if len(rows):
            yield top_k_batch(users[start:stop][rows], ids, ranks, scores)


def ease_top_k_unseen(model: EaseModel, ratings: DataFrame, users: DataFrame | None = None, k: int = TOP_K) -> DataFrame:
    """user_id, movie_id, rank (1..k), score: each user's k best movies by EASE among those they have not rated.

    `ratings` (user_id, movie_id, rating) are both each user's input and what is excluded; `users` (user_id), when
    given, limits the lists to those users. A user with no rating of a movie the model knows (or whose every input
    value is 0) gets no rows. Ties fall to the smaller movie id. B is broadcast once (4 x items^2 bytes in each
    Python worker) and each partition scores blocks of `USERS_PER_BLOCK` users.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    pairs = ratings.select(F.col("user_id").cast("int"), F.col("movie_id").cast("int"), F.col("rating").cast("float"))
    if users is not None:
        pairs = pairs.join(users.select(F.col("user_id").cast("int")).distinct(), "user_id", "left_semi")
    spark = ratings.sparkSession
    # Plain arrays and a dict: unpickling the broadcast needs nothing of this package.
    broadcast_model = spark.sparkContext.broadcast((model.item_ids, model.weights, model.params.as_dict()))
    partitions = max(1, spark.sparkContext.defaultParallelism)
    return pairs.repartition(partitions, "user_id").mapInArrow(
        partial(_score_partition, broadcast_model=broadcast_model, k=k), OUTPUT_SCHEMA
    )

