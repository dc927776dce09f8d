"""The rating record every source yields, its half-star scale and MovieLens-like weights, and the input error."""

from typing import NamedTuple

RATINGS = tuple(step / 2 for step in range(1, 11))  # 0.5 .. 5.0
# Roughly MovieLens's distribution: 4.0 and 3.0 are the most common, half stars rarer.
RATING_WEIGHTS = (1.4, 2.7, 1.8, 7.5, 5.6, 19.9, 13.0, 26.6, 7.7, 13.2)


class Rating(NamedTuple):
    user_id: int
    movie_id: int
    rating: float
    timestamp: int


class GeneratorInputError(ValueError):
    """The generator cannot use its input; the message says what to do."""
