"""Endless synthetic rating streams: ratings from planted tastes (learnable), or noise.

A stream is an iterator of `Rating(user_id, movie_id, rating, timestamp)`: `planted` draws from
`Tastes`, `random_ratings` is noise, and `synthetic` plants tastes on a `Population` (or draws noise).
Every random choice comes from one seeded `random.Random`, so a seed makes a stream reproducible;
its timestamps are the time of the draw.
"""

import random
import time
from bisect import bisect
from collections.abc import Iterator

from generator.ratings import RATING_WEIGHTS, RATINGS, GeneratorInputError, Rating
from generator.tastes import Population, Tastes

RATING_KINDS = ("planted", "random")  # synthetic ratings: from planted tastes (learnable), or noise
SEEN_TRIES = 20  # draws of a movie a user has not rated before settling for a re-rating
NOISE_TABLE = 4096  # Gaussian noise is drawn once per stream and cycled through: cheaper than a draw an event


def _check_fraction(new_fraction: float) -> None:
    if not 0 <= new_fraction <= 1:
        raise GeneratorInputError(f"new_fraction must be between 0 and 1, not {new_fraction}")


def planted(tastes: Tastes, rng: random.Random, *, new_fraction: float = 0.05) -> Iterator[Rating]:
    """Endless ratings drawn from `tastes`; a `new_fraction` of users and of movies the model has never seen."""
    _check_fraction(new_fraction)
    if new_fraction and not (tastes.new_users and tastes.new_movies):
        raise GeneratorInputError("new_fraction needs new users and movies: give the population some.")
    return _planted(tastes, rng, new_fraction)


def _planted(tastes: Tastes, rng: random.Random, new_fraction: float) -> Iterator[Rating]:
    # One look-up a user and one a movie, the rest inlined: the generator's target is 100,000 events/s.
    random_value, mean = rng.random, tastes.global_mean
    users, user_totals = tastes._users, tastes._user_totals
    user_top, user_last = user_totals[-1], len(users) - 1
    movies, movie_totals = tastes._movies, tastes._movie_totals
    movie_top, movie_last = movie_totals[-1], len(movies) - 1
    new_users, new_movies = tastes.new_users, tastes.new_movies
    genre_movies = [(ms, totals, totals[-1] if totals else 0.0, len(ms) - 1) for ms, totals in tastes._genre_movies]
    rated, raters, stand_in = tastes.rated, tastes.raters, tastes.stand_in
    profile = {}
    for user, taste in tastes.user_taste.items():
        genre_totals = tastes._user_genre_totals[user]
        walk_from = rated.get(stand_in.get(user, user), ())
        seen = frozenset(rated.get(user, ()))
        profile[user] = (tastes.user_bias[user], taste, genre_totals, genre_totals[-1] if taste else 0.0, len(taste) - 1, seen, walk_from)
    movie_info = {}
    for movie, bias in tastes.movie_bias.items():
        genres = tastes.movie_genres.get(movie, ())
        movie_info[movie] = (mean + bias, genres, 1.0 / max(1, len(genres)))
    noise = [rng.gauss(0.0, tastes.noise) for _ in range(NOISE_TABLE)]
    index = 0
    while True:
        if random_value() < new_fraction:
            user = new_users[int(random_value() * len(new_users))]
        else:
            user = users[bisect(user_totals, random_value() * user_top, 0, user_last)]
        user_bias, taste, genre_totals, genre_top, genre_last, seen, walk_from = profile[user]
        if random_value() < new_fraction:
            movie = new_movies[int(random_value() * len(new_movies))]
        else:
            tries = SEEN_TRIES
            while True:
                if walk_from:  # someone who rated one of the user's movies, and one of theirs
                    others = raters[walk_from[int(random_value() * len(walk_from))]]
                    theirs = rated[others[int(random_value() * len(others))]]
                    movie = theirs[int(random_value() * len(theirs))]
                elif genre_top:
                    in_genre, totals, top, last = genre_movies[bisect(genre_totals, random_value() * genre_top, 0, genre_last)]
                    movie = in_genre[bisect(totals, random_value() * top, 0, last)]
                else:
                    movie = movies[bisect(movie_totals, random_value() * movie_top, 0, movie_last)]
                tries -= 1
                if not tries or movie not in seen:
                    break
        movie_base, genres, share = movie_info[movie]
        index = (index + 1) & (NOISE_TABLE - 1)
        value = movie_base + user_bias + noise[index]
        if genres:
            affinity = 0.0
            for genre in genres:
                affinity += taste[genre]
            value += affinity * share
        step = round(value * 2)
        yield Rating(user, movie, RATINGS[9 if step > 10 else 0 if step < 1 else step - 1], int(time.time()))


def random_ratings(population: Population, rng: random.Random, *, new_fraction: float = 0.05) -> Iterator[Rating]:
    """Endless ratings that are noise: users and movies chosen uniformly, ratings drawn from MovieLens's distribution."""
    _check_fraction(new_fraction)
    return _random_ratings(population, rng, new_fraction)


def _random_ratings(population: Population, rng: random.Random, new_fraction: float) -> Iterator[Rating]:
    users, movies = population.known_users, population.known_movies
    new_user, new_movie = population.first_new_user(), population.first_new_movie()
    ratings = rng.choices(RATINGS, RATING_WEIGHTS, k=4096)
    random_value, choice, randrange = rng.random, rng.choice, rng.randrange
    index = 0
    while True:
        user = new_user + randrange(population.new_users) if random_value() < new_fraction else choice(users)
        movie = new_movie + randrange(population.new_movies) if random_value() < new_fraction else choice(movies)
        index = (index + 1) & 4095
        yield Rating(user, movie, ratings[index], int(time.time()))


def synthetic(
    population: Population, rng: random.Random, *, new_fraction: float = 0.05, ratings: str = "planted"
) -> Iterator[Rating]:
    """Endless synthetic ratings on `population`; a `new_fraction` of users and of movies the model has never seen.

    `ratings="planted"` (the default) draws them from tastes planted on the population
    (`Tastes.planted`), which a recommender can learn; `"random"` is noise (`random_ratings`).
    For a stream that agrees with a MovieLens history, use `planted(Tastes.from_history(...), rng)`.
    """
    if ratings == "random":
        return random_ratings(population, rng, new_fraction=new_fraction)
    if ratings != "planted":
        raise GeneratorInputError(f"ratings must be one of {', '.join(RATING_KINDS)}, not {ratings!r}")
    _check_fraction(new_fraction)
    return planted(Tastes.planted(population, rng), rng, new_fraction=new_fraction)
