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

from movierec_dagster.names import MAX_RATING, MIN_RATING


def _solve(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """x of gram @ x = rhs, gram symmetric positive (semi)definite; least squares if it is singular."""
    try:
        return np.linalg.solve(gram, rhs)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(gram, rhs, rcond=None)[0]


@dataclass(frozen=True, eq=False)
class ItemSide:
    """A model's movies (`ids`) and their factor rows (`factors`, float32 as Spark saves them), with a lookup from id to
    row. The solves take their few rows in float64; the products with every movie stay in float32."""

    ids: np.ndarray
    factors: np.ndarray

    def __post_init__(self) -> None:
        # The ids in order, sorted once: a request looks up its few movies by binary search.
        order = np.argsort(self.ids, kind="stable")
        object.__setattr__(self, "_order", order)
        object.__setattr__(self, "_sorted", self.ids[order])

    def rows(self, movie_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions in `movie_ids` of the movies the model knows, their rows in `factors`)."""
        movie_ids = np.asarray(movie_ids, dtype=np.int64)
        if not len(self._sorted):
            return np.array([], dtype=np.int64), np.array([], dtype=np.int64)
        places = np.minimum(np.searchsorted(self._sorted, movie_ids), len(self._sorted) - 1)
        known = self._sorted[places] == movie_ids
        return np.flatnonzero(known), self._order[places[known]]


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

    @classmethod
    def of(cls, item_ids: np.ndarray, factors: np.ndarray, *, alpha: float, reg_param: float, neutral_rating: float):
        factors = np.asarray(factors, dtype=np.float32)
        wide = factors.astype(np.float64)
        items = ItemSide(np.asarray(item_ids, dtype=np.int64), factors)
        norms = np.linalg.norm(factors, axis=1)
        return cls(items, wide.T @ wide, alpha, reg_param, neutral_rating, np.where(norms == 0, 1.0, norms).astype(np.float32))

    def similar(self, movie_id: int, k: int) -> list[tuple[int, float]] | None:
        """The `k` movies whose factors point most nearly the way `movie_id`'s do (movie id, cosine), best first, itself
        excluded; None when the model does not know the movie."""
        rows = self.items.rows(np.array([movie_id]))[1]
        if not len(rows):
            return None
        factors, row = self.items.factors, rows[0]
        return top_k(self.items, (factors @ factors[row]) / (self.norms * self.norms[row]), {movie_id}, k)

    def user_vector(self, movie_ids: np.ndarray, ratings: np.ndarray) -> np.ndarray | None:
        """The user's factors from their ratings; None when none of the rated movies is in the model."""
        positions, rows = self.items.rows(np.asarray(movie_ids, dtype=np.int64))
        if len(rows) == 0:
            return None
        values = np.asarray(ratings, dtype=np.float64)[positions] - self.neutral_rating
        y = self.items.factors[rows].astype(np.float64)
        extra = self.alpha * np.abs(values)
        positive = values > 0
        gram = self.gram + (y * extra[:, None]).T @ y
        gram[np.diag_indices_from(gram)] += self.reg_param * np.count_nonzero(positive)
        rhs = ((1.0 + extra[positive])[:, None] * y[positive]).sum(axis=0)
        return _solve(gram, rhs)

    def scores(self, movie_ids: np.ndarray, ratings: np.ndarray) -> np.ndarray | None:
        """Every model movie's score for the user (as `items.ids`), or None when the model can't score them."""
        vector = self.user_vector(movie_ids, ratings)
        return None if vector is None else self.items.factors @ vector.astype(np.float32)

    def score_user(self, movie_ids: Sequence[int], ratings: Sequence[float], k: int) -> list[tuple[int, float]]:
        """The user's top k (movie id, score), best first, the rated movies left out: `EaseModel.score_user`'s answer
        for ALS (empty when no rated movie is in the model)."""
        scores = self.scores(np.asarray(movie_ids), np.asarray(ratings))
        return [] if scores is None else top_k(self.items, scores, set(movie_ids), k)


@dataclass(frozen=True, eq=False)
class Stars:
    """The rating model: global mean and movie biases, the user-bias shrinkage, and the residual ALS's item side."""

    global_mean: float
    item_bias: dict[int, float]
    user_bias_reg: float
    residual: ItemSide | None = None  # None: the stars are the biases
    residual_reg: float = 0.1

    def user_bias(self, movie_ids: Sequence[int], ratings: Sequence[float]) -> float:
        """The training's last user-bias step: the user's residuals after the mean and the movies' biases, shrunk."""
        residuals = [r - self.global_mean - self.item_bias.get(int(m), 0.0) for m, r in zip(movie_ids, ratings, strict=True)]
        return sum(residuals) / (self.user_bias_reg + len(residuals))

    def predict(self, movie_ids: Sequence[int], ratings: Sequence[float], candidates: Sequence[int]) -> list[float]:
        """The user's predicted stars of `candidates` (0.5-5.0), from their ratings."""
        user_bias = self.user_bias(movie_ids, ratings) if len(movie_ids) else 0.0
        baseline = {int(m): self.global_mean + user_bias + self.item_bias.get(int(m), 0.0) for m in {*movie_ids, *candidates}}
        predicted = np.array([baseline[int(m)] for m in candidates], dtype=np.float64)
        if self.residual is not None and len(movie_ids):
            rated = np.asarray(movie_ids, dtype=np.int64)
            positions, rows = self.residual.rows(rated)
            if len(rows):
                # Explicit ALS's user solve: (sum y y^T + reg n I) x = sum residual y.
                targets = np.asarray(ratings, dtype=np.float64)[positions] - [baseline[int(m)] for m in rated[positions]]
                y = self.residual.factors[rows].astype(np.float64)
                gram = y.T @ y
                gram[np.diag_indices_from(gram)] += self.residual_reg * len(rows)
                vector = _solve(gram, y.T @ targets)
                places, candidate_rows = self.residual.rows(np.asarray(candidates, dtype=np.int64))
                predicted[places] += self.residual.factors[candidate_rows].astype(np.float64) @ vector
        return np.clip(predicted, MIN_RATING, MAX_RATING).round(4).tolist()


def top_k(items: ItemSide, scores: np.ndarray, exclude: set[int], k: int) -> list[tuple[int, float]]:
    """The `k` best (movie, score) of `scores` (a score per `items.ids`), not in `exclude`: by score, ties to the
    smaller id."""
    item_ids, scores = items.ids, np.array(scores)
    if exclude:
        scores[items.rows(np.fromiter(exclude, dtype=np.int64, count=len(exclude)))[1]] = -np.inf
    k = min(k, int(np.count_nonzero(scores > -np.inf)))
    if k <= 0:
        return []
    bound = np.partition(scores, len(scores) - k)[len(scores) - k]
    best = np.flatnonzero(scores >= bound)  # every movie tied at the bound, so the smaller ids win the ties
    best = best[np.lexsort((item_ids[best], -scores[best]))][:k]
    return [(int(item_ids[i]), float(scores[i])) for i in best]
