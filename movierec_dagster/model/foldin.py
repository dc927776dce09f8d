"""Fold-in: one user's recommendations and predicted stars from their ratings, with the champion's item side fixed.

No Spark and no refit: a user whose ratings changed after the daily batch, or whom the model has
never seen, is scored the way the training would score them, from the model's saved item side.

- Implicit ALS: the user's factor vector is the solution of the same regularised, weighted least
  squares Spark's ALS solves for each user in every iteration (`ImplicitAls.user_vector`), for that
  user alone: rank x rank, from the item factors' Gram matrix plus one term per rating. The batch
  scored the user's factors from the training's last iteration, solved against the item factors of
  the iteration before, so a fold-in list of an unchanged user agrees with the batch's closely, not
  bit for bit (docs/model.md measures the agreement).
- EASE: a user's scores are their input values times B (`EaseModel.score_user`), the rule the batch
  itself applies: for an unchanged user the same list.
- Stars: the global mean plus the movie's bias plus the user's bias, solved as the training's last
  step solves it (the mean of the user's residuals, shrunk by `user_bias_reg`), plus, when the
  champion has one, the residual ALS's user vector solved the same way as explicit ALS solves it.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack

from movierec_dagster.names import MAX_RATING, MIN_RATING

# top_k's sample: this many sampled movies per place asked for, so that about as many movies per place pass its floor.
SAMPLE_PER_PLACE = 64
# RowLookup keeps a table indexed by id while it has at most this many slots per id (plus the minimum below).
DENSE_LOOKUP_SLOTS_PER_ID = 8
DENSE_LOOKUP_MIN_SLOTS = 1 << 20


def _solve(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """x of gram @ x = rhs, gram symmetric positive (semi)definite: by Cholesky (LAPACK's posv, without the checks
    numpy.linalg makes at every call, a large part of so small a solve), least squares if gram is singular."""
    _, solution, info = lapack.dposv(gram, rhs)
    return solution if info == 0 else np.linalg.lstsq(gram, rhs, rcond=None)[0]


class RowLookup:
    """The row of each id in an array of distinct ids: a table indexed by id where the ids are dense enough (movie ids
    are), else a binary search over them sorted. A request looks up its few movies among every movie of a model."""

    def __init__(self, ids: np.ndarray):
        ids = np.asarray(ids, dtype=np.int64)
        self._table = self._sorted = self._order = None
        if len(ids) and ids.min() >= 0 and ids.max() < DENSE_LOOKUP_SLOTS_PER_ID * len(ids) + DENSE_LOOKUP_MIN_SLOTS:
            # Slot id + 1 holds the id's row, -1 where there is none, and the first and last slots are -1: an id out
            # of range, clipped to one of them, is not found.
            self._table = np.full(int(ids.max()) + 3, -1, dtype=np.int64)
            self._table[ids + 1] = np.arange(len(ids))
        else:
            self._order = np.argsort(ids, kind="stable")
            self._sorted = ids[self._order]

    def __call__(self, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions in `wanted` of the ids found, their rows)."""
        wanted = np.asarray(wanted, dtype=np.int64)
        if self._table is not None:
            rows = self._table.take(wanted + 1, mode="clip")
            known = rows >= 0
            return np.flatnonzero(known), rows[known]
        if not len(self._sorted):
            return np.array([], dtype=np.int64), np.array([], dtype=np.int64)
        places = np.minimum(np.searchsorted(self._sorted, wanted), len(self._sorted) - 1)
        known = self._sorted[places] == wanted
        return np.flatnonzero(known), self._order[places[known]]


@dataclass(frozen=True, eq=False)
class ItemSide:
    """A model's movies (`ids`) and their factor rows (`factors`, float32 as Spark saves them), with a lookup from id to
    row. The solves take their few rows in float64; the products with every movie stay in float32."""

    ids: np.ndarray
    factors: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "_lookup", RowLookup(self.ids))

    def rows(self, movie_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions in `movie_ids` of the movies the model knows, their rows in `factors`)."""
        return self._lookup(movie_ids)


@dataclass(frozen=True, eq=False)
class ImplicitAls:
    """The implicit ALS ranking model's item side and the parameters its user solve used.

    Spark's ALS reads a training value r (here rating - neutral_rating) as confidence 1 + alpha |r|
    and preference 1 when r > 0 (0 otherwise), and solves for the user
    (Y^T Y + sum_i alpha |r_i| y_i y_i^T + reg n+ I) x = sum_{r_i > 0} (1 + alpha r_i) y_i,
    n+ being the number of positive values.
    """

    items: ItemSide
    gram: np.ndarray  # Y^T Y over every movie of the model
    alpha: float
    reg_param: float
    neutral_rating: float
    norms: np.ndarray  # each movie's factor length, for `similar` (1 for a zero vector, which is similar to nothing)
    columns: np.ndarray  # the factors transposed, contiguous: a product with every movie is faster over these rows

    @classmethod
    def of(cls, item_ids: np.ndarray, factors: np.ndarray, *, alpha: float, reg_param: float, neutral_rating: float):
        factors = np.asarray(factors, dtype=np.float32)
        wide = factors.astype(np.float64)
        items = ItemSide(np.asarray(item_ids, dtype=np.int64), factors)
        norms = np.linalg.norm(factors, axis=1)
        norms = np.where(norms == 0, 1.0, norms).astype(np.float32)
        return cls(items, wide.T @ wide, alpha, reg_param, neutral_rating, norms, np.ascontiguousarray(factors.T))

    def similar(self, movie_id: int, k: int) -> list[tuple[int, float]] | None:
        """The `k` movies whose factors point most nearly the way `movie_id`'s do (movie id, cosine), best first, itself
        excluded; None when the model does not know the movie."""
        rows = self.items.rows(np.array([movie_id]))[1]
        if not len(rows):
            return None
        row = rows[0]
        cosines = (self.items.factors[row] @ self.columns) / (self.norms * self.norms[row])
        cosines[row] = -np.inf
        return top_k(self.items.ids, cosines, k)

    def user_vector(self, movie_ids: np.ndarray, ratings: np.ndarray) -> np.ndarray | None:
        """The user's factors from their ratings; None when none of the rated movies is in the model."""
        positions, rows = self.items.rows(movie_ids)
        return self._solve_user(rows, np.asarray(ratings, dtype=np.float64)[positions]) if len(rows) else None

    def _solve_user(self, rows: np.ndarray, ratings: np.ndarray) -> np.ndarray:
        """The factors of a user who rated the movies of factor rows `rows` `ratings`."""
        values = ratings - self.neutral_rating
        y = self.items.factors[rows].astype(np.float64)
        extra = self.alpha * np.abs(values)
        positive = values > 0
        gram = self.gram + (y * extra[:, None]).T @ y
        gram.flat[:: len(gram) + 1] += self.reg_param * np.count_nonzero(positive)
        rhs = (1.0 + extra[positive]) @ y[positive]
        return _solve(gram, rhs)

    def score_user(self, movie_ids: Sequence[int], ratings: Sequence[float], k: int) -> list[tuple[int, float]]:
        """The user's top k (movie id, score), best first, the rated movies left out: `EaseModel.score_user`'s answer
        for ALS (empty when no rated movie is in the model)."""
        positions, rows = self.items.rows(movie_ids)
        if not len(rows):
            return []
        scores = self._solve_user(rows, np.asarray(ratings, dtype=np.float64)[positions]).astype(np.float32) @ self.columns
        scores[rows] = -np.inf  # the rated movies the model knows: the others have no score to leave out
        return top_k(self.items.ids, scores, k)


@dataclass(frozen=True, eq=False)
class Stars:
    """The rating model: global mean and movie biases, the user-bias shrinkage, and the residual ALS's item side."""

    global_mean: float
    item_bias: dict[int, float]
    user_bias_reg: float
    residual: ItemSide | None = None  # None: the stars are the biases
    residual_reg: float = 0.1

    def __post_init__(self) -> None:
        ids = np.fromiter(self.item_bias, dtype=np.int64, count=len(self.item_bias))
        object.__setattr__(self, "_bias_rows", RowLookup(ids))
        object.__setattr__(self, "_biases", np.fromiter(self.item_bias.values(), dtype=np.float64, count=len(ids)))

    def _bias(self, movie_ids: np.ndarray) -> np.ndarray:
        """Each movie's bias, 0 for a movie the model does not know."""
        biases = np.zeros(len(movie_ids))
        positions, rows = self._bias_rows(movie_ids)
        biases[positions] = self._biases[rows]
        return biases

    def predict(self, movie_ids: Sequence[int], ratings: Sequence[float], candidates: Sequence[int]) -> list[float]:
        """The user's predicted stars of `candidates` (0.5-5.0), from their ratings."""
        rated = np.asarray(movie_ids, dtype=np.int64)
        values = np.asarray(ratings, dtype=np.float64)
        rated_bias = self._bias(rated)
        # The training's last user-bias step: the user's residuals after the mean and the movies' biases, shrunk.
        user_bias = float((values - self.global_mean - rated_bias).sum()) / (self.user_bias_reg + len(rated)) if len(rated) else 0.0
        wanted = np.asarray(candidates, dtype=np.int64)
        predicted = self.global_mean + user_bias + self._bias(wanted)
        if self.residual is not None and len(rated):
            positions, rows = self.residual.rows(rated)
            if len(rows):
                # Explicit ALS's user solve: (sum y y^T + reg n I) x = sum residual y.
                targets = values[positions] - (self.global_mean + user_bias + rated_bias[positions])
                y = self.residual.factors[rows].astype(np.float64)
                gram = y.T @ y
                gram.flat[:: len(gram) + 1] += self.residual_reg * len(rows)
                vector = _solve(gram, y.T @ targets)
                places, candidate_rows = self.residual.rows(wanted)
                predicted[places] += self.residual.factors[candidate_rows].astype(np.float64) @ vector
        return np.clip(predicted, MIN_RATING, MAX_RATING).round(4).tolist()


def top_k(item_ids: np.ndarray, scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The `k` best (movie, score) of `scores` (a score per movie of `item_ids`), by score, ties to the smaller id;
    a movie left out scores -inf."""
    if k <= 0:
        return []
    # The k-th best of an even sample is at most the k-th best of all: every movie of the top k scores at least that
    # much, and only a few others do, so the exact bound is found among those few rather than among every movie.
    sample = scores[:: max(1, len(scores) // (SAMPLE_PER_PLACE * k))]
    floor = np.partition(sample, len(sample) - k)[len(sample) - k] if len(sample) >= k else -np.inf
    places = np.flatnonzero(scores >= floor)
    candidates = scores[places]
    k = min(k, int(np.count_nonzero(candidates > -np.inf)))
    if k <= 0:
        return []
    bound = np.partition(candidates, len(candidates) - k)[len(candidates) - k]
    best = places[candidates >= bound]  # every movie tied at the bound, so the smaller ids win the ties
    best = best[np.lexsort((item_ids[best], -scores[best]))][:k]
    return [(int(item_ids[i]), float(scores[i])) for i in best]
