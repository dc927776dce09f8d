"""The planted preference structure synthetic ratings come from: the users and movies, and their tastes.

`Population` is the users and movies synthetic activity draws from; `Tastes` is what users think of
movies and which ones they rate, drawn from scratch (`Tastes.planted`) or taken from a MovieLens
history (`Tastes.from_history`). Every random choice comes from the seeded `random.Random` passed in,
so a seed makes the tastes reproducible.
"""

import math
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from itertools import accumulate
from dataclasses import dataclass

from generator.ratings import GeneratorInputError, Rating

GENRES = (
    "Drama", "Comedy", "Thriller", "Action", "Romance", "Adventure", "Crime", "Sci-Fi", "Horror", "Fantasy",
    "Children", "Animation", "Mystery", "Documentary", "War", "Musical", "Western", "IMAX", "Film-Noir",
)
GENRE_MOVIES = (4361, 3756, 1894, 1828, 1596, 1263, 1199, 980, 978, 779, 664, 611, 573, 440, 382, 334, 167, 158, 87)
GENRES_PER_MOVIE, GENRES_PER_MOVIE_WEIGHTS = (1, 2, 3, 4, 5), (2851, 3218, 2338, 987, 348)  # ml-latest-small's movies
TASTE_TILT = 4.0  # planted without a history: how strongly tastes tilt the choice of a genre (per rating point)


@dataclass(frozen=True)
class Population:
    """The users and movies synthetic activity draws from; ids past the known ones are "new"."""

    known_users: tuple[int, ...]
    known_movies: tuple[int, ...]
    new_users: int = 50
    new_movies: int = 50

    @classmethod
    def from_ratings(cls, ratings: Iterable[Rating], new_users: int = 50, new_movies: int = 50) -> "Population":
        ratings = list(ratings)
        return cls(
            tuple(sorted({r.user_id for r in ratings})), tuple(sorted({r.movie_id for r in ratings})), new_users, new_movies
        )

    @classmethod
    def default(cls) -> "Population":
        """ml-latest-small's shape: users 1-610, about 9,700 movies."""
        return cls(tuple(range(1, 611)), tuple(range(1, 9743)))

    def first_new_user(self) -> int:
        return max(self.known_users) + 1

    def first_new_movie(self) -> int:
        return max(self.known_movies) + 1


def _weighted_sample(rng: random.Random, items: Sequence, weights: Sequence[float], k: int) -> list:
    """`k` distinct items, drawn in proportion to `weights`."""
    chosen: list = []
    while len(chosen) < min(k, len(items)):
        item = rng.choices(items, weights)[0]
        if item not in chosen:
            chosen.append(item)
    return chosen


def _draw_taste(rng: random.Random, strength: float, strong: int) -> tuple[float, ...]:
    """One user's taste for each of GENRES: a few loved (60%) or disliked, the rest close to indifferent."""
    taste = [rng.gauss(0.0, 0.1) for _ in GENRES]
    for genre in _weighted_sample(rng, range(len(GENRES)), GENRE_MOVIES, strong):
        taste[genre] = (1 if rng.random() < 0.6 else -1) * strength * rng.uniform(0.5, 1.0)
    return tuple(taste)


class Tastes:
    """A planted preference structure shaped like MovieLens: what users think of movies, and which they rate.

    What: user u's rating of movie m is the global mean + u's bias + m's bias + u's taste for
    m's genres (the mean of u's tastes over them) + Gaussian noise, rounded to a half star in 0.5-5.0.

    Which: users rate in proportion to their activity. With a history (`rated`: each known
    user's movies), a user's next movie is one that someone who rated one of theirs rated too
    ("who rated this also rated") and that they have not rated yet: the stream keeps the
    history's popularity skew and co-ratings, which the ranking model learns from. Without a
    history, a user picks a genre in proportion to its share of the ratings times
    exp(`taste_tilt` x their taste for it), then one of its movies by popularity (a long tail).

    New users and movies (the ids past the known ones, see `Population`) have tastes but no
    activity or popularity: `planted` draws them for its `new_fraction`. A new user's picks
    start from the movies of a known user (`stand_in`), when there is a history.

    Build it with `Tastes.planted` (drawn from scratch for a `Population`) or
    `Tastes.from_history` (the biases, tastes, activity and co-ratings of a MovieLens history).
    """

    def __init__(
        self,
        *,
        global_mean: float,
        noise: float,
        genres: Sequence[str],
        user_bias: dict[int, float],
        user_taste: dict[int, tuple[float, ...]],
        movie_bias: dict[int, float],
        movie_genres: dict[int, tuple[int, ...]],
        user_activity: dict[int, float],
        movie_popularity: dict[int, float],
        new_users: Sequence[int] = (),
        new_movies: Sequence[int] = (),
        rated: dict[int, tuple[int, ...]] | None = None,
        stand_in: dict[int, int] | None = None,
        taste_tilt: float = TASTE_TILT,
    ):
        if not user_activity or not movie_popularity:
            raise GeneratorInputError("Tastes need at least one known user and one known movie.")
        self.global_mean, self.noise, self.genres = global_mean, max(0.0, noise), tuple(genres)
        self.user_bias, self.user_taste = user_bias, user_taste
        self.movie_bias, self.movie_genres = movie_bias, movie_genres
        self.user_activity, self.movie_popularity = user_activity, movie_popularity
        self.new_users, self.new_movies = tuple(new_users), tuple(new_movies)
        self.rated, self.stand_in = rated or {}, stand_in or {}
        raters: dict[int, list[int]] = defaultdict(list)
        for user, movies in self.rated.items():
            for movie in movies:
                raters[movie].append(user)
        self.raters = {movie: tuple(users) for movie, users in raters.items()}
        # The samplers: running totals of the weights, as random.choices takes them.
        self._users = tuple(user_activity)
        self._user_totals = tuple(accumulate(user_activity.values()))
        self._movies = tuple(movie_popularity)
        self._movie_totals = tuple(accumulate(movie_popularity.values()))
        by_genre: list[list[int]] = [[] for _ in self.genres]
        for movie in self._movies:
            for genre in movie_genres.get(movie, ()):
                by_genre[genre].append(movie)
        self._genre_movies = [(tuple(ms), tuple(accumulate(movie_popularity[m] for m in ms))) for ms in by_genre]
        # P(genre | user) ~ the genre's share of the ratings x exp(tilt x the user's taste for it); no genres at all:
        # movies by popularity alone.
        mass = [totals[-1] if totals else 0.0 for _, totals in self._genre_movies]
        self._user_genre_totals = {
            user: tuple(accumulate(m * math.exp(taste_tilt * t) for m, t in zip(mass, taste)))
            for user, taste in user_taste.items()
        }

    @property
    def user_genre_totals(self) -> dict[int, tuple[float, ...]]:
        """user -> running totals over `genres` of P(genre | user), unnormalised: how `planted` picks a user's genre."""
        return self._user_genre_totals

    @property
    def genre_movies(self) -> list[tuple[tuple[int, ...], tuple[float, ...]]]:
        """Per genre (as `genres`), its known movies and their popularity's running totals: how `planted` picks one."""
        return self._genre_movies

    @property
    def population(self) -> Population:
        """The known users and movies, and how many new ones there are."""
        return Population(
            tuple(sorted(self.user_activity)), tuple(sorted(self.movie_popularity)), len(self.new_users), len(self.new_movies)
        )

    def expected(self, user: int, movie: int) -> float:
        """User `user`'s rating of `movie` before noise and rounding."""
        genres = self.movie_genres.get(movie, ())
        taste = self.user_taste[user]
        affinity = sum(taste[g] for g in genres) / len(genres) if genres else 0.0
        return self.global_mean + self.user_bias[user] + self.movie_bias[movie] + affinity

    @classmethod
    def planted(
        cls,
        population: Population,
        rng: random.Random,
        *,
        noise: float = 0.6,
        user_spread: float = 0.45,
        movie_spread: float = 0.45,
        taste_strength: float = 1.0,
        tastes_per_user: int = 3,
        popularity_skew: float = 1.7,
        popularity_head: float = 0.05,
    ) -> "Tastes":
        """Tastes drawn from scratch for `population`, with MovieLens's shape.

        Activity is log-normal; popularity a long tail, (rank + head)^-skew with a head of
        `popularity_head` of the movies (as in ml-latest-small, the top 10% of the movies get
        about 60% of the ratings and the top 1% about 14%, whatever the number); popular movies are
        liked a little more; genres are as common as in MovieLens, one to five a movie; user
        and movie biases are Gaussian; a user has strong feelings about `tastes_per_user` genres
        (loved or disliked, up to `taste_strength` rating points) and mild ones about the rest;
        ratings average about 3.5.
        """
        users, movies = population.known_users, population.known_movies
        new_users = tuple(range(population.first_new_user(), population.first_new_user() + population.new_users))
        new_movies = tuple(range(population.first_new_movie(), population.first_new_movie() + population.new_movies))
        activity = {user: rng.lognormvariate(0.0, 1.0) for user in users}
        ranked = list(movies)
        rng.shuffle(ranked)
        head = popularity_head * len(ranked)
        popularity = {movie: (rank + 1 + head) ** -popularity_skew for rank, movie in enumerate(ranked)}
        logs = {movie: math.log(weight) for movie, weight in popularity.items()}
        log_mean = sum(logs.values()) / len(logs)
        log_spread = math.sqrt(sum((x - log_mean) ** 2 for x in logs.values()) / len(logs)) or 1.0
        genre_ids = range(len(GENRES))
        all_users, all_movies = (*users, *new_users), (*movies, *new_movies)
        movie_genres = {
            movie: tuple(sorted(_weighted_sample(rng, genre_ids, GENRE_MOVIES, rng.choices(GENRES_PER_MOVIE, GENRES_PER_MOVIE_WEIGHTS)[0])))
            for movie in all_movies
        }
        # A standardised log-popularity of 0.1 a standard deviation: the most popular movies get about +0.3.
        movie_bias = {
            movie: rng.gauss(0.0, movie_spread) + (0.1 * (logs[movie] - log_mean) / log_spread if movie in logs else 0.0)
            for movie in all_movies
        }
        return cls(
            # Popular movies and liked genres are rated more often: the stream's mean comes out near MovieLens's 3.5.
            global_mean=3.1,
            noise=noise,
            genres=GENRES,
            user_bias={user: rng.gauss(0.0, user_spread) for user in all_users},
            user_taste={user: _draw_taste(rng, taste_strength, tastes_per_user) for user in all_users},
            movie_bias=movie_bias,
            movie_genres=movie_genres,
            user_activity=activity,
            movie_popularity=popularity,
            new_users=new_users,
            new_movies=new_movies,
        )

    @classmethod
    def from_history(
        cls,
        ratings: Iterable[Rating],
        rng: random.Random,
        *,
        genres: dict[int, tuple[str, ...]] | None = None,
        new_users: int = 50,
        new_movies: int = 50,
        user_reg: float = 15.0,
        item_reg: float = 10.0,
        taste_reg: float = 10.0,
        noise: float | None = None,
    ) -> "Tastes":
        """The tastes a MovieLens history shows, so that streamed ratings agree with it (and with what a model learned).

        The global mean and the user and movie biases are those the rating model fits
        (training.fit_biases, the same regularisation); a user's taste for a genre is their mean
        residual on its movies, shrunk by `taste_reg`; activity is the users' rating counts,
        popularity the movies'; `noise` defaults to what the biases and tastes leave unexplained.
        `genres` (movie -> its genres, as `read_movielens_genres` returns) is optional: without
        it there are no tastes. New users take a known user's bias, tastes and movies to start
        from; new movies a known movie's bias and genres.
        """
        # Sorted: the same history read in another order gives the same tastes (and, with a seed, the same stream).
        triples = sorted((r.user_id, r.movie_id, r.rating) for r in ratings)
        if not triples:
            raise GeneratorInputError("There are no ratings to learn tastes from.")
        global_mean = sum(r for _, _, r in triples) / len(triples)
        user_count = Counter(u for u, _, _ in triples)
        movie_count = Counter(m for _, m, _ in triples)
        user_bias = dict.fromkeys(user_count, 0.0)
        movie_bias: dict[int, float] = {}
        for _ in range(3):  # as training.fit_biases: alternate, movies first
            sums: dict[int, float] = defaultdict(float)
            for u, m, r in triples:
                sums[m] += r - global_mean - user_bias[u]
            movie_bias = {m: total / (item_reg + movie_count[m]) for m, total in sums.items()}
            sums = defaultdict(float)
            for u, m, r in triples:
                sums[u] += r - global_mean - movie_bias[m]
            user_bias = {u: total / (user_reg + user_count[u]) for u, total in sums.items()}
        names = list(GENRES)
        for movie_genre_names in (genres or {}).values():
            names.extend(g for g in movie_genre_names if g not in names)
        index = {name: i for i, name in enumerate(names)}
        movie_genres = {m: tuple(index[g] for g in (genres or {}).get(m, ())) for m in movie_count}
        taste_sum = {u: [0.0] * len(names) for u in user_count}
        taste_n = {u: [0] * len(names) for u in user_count}
        residuals = []
        for u, m, r in triples:
            residual = r - global_mean - user_bias[u] - movie_bias[m]
            residuals.append(residual)
            for g in movie_genres[m]:
                taste_sum[u][g] += residual
                taste_n[u][g] += 1
        user_taste = {u: tuple(s / (taste_reg + n) for s, n in zip(taste_sum[u], taste_n[u])) for u in user_count}
        if noise is None:
            unexplained = 0.0
            for (u, m, _), residual in zip(triples, residuals):
                genre_ids = movie_genres[m]
                affinity = sum(user_taste[u][g] for g in genre_ids) / len(genre_ids) if genre_ids else 0.0
                unexplained += (residual - affinity) ** 2
            noise = math.sqrt(unexplained / len(triples))
        rated: dict[int, list[int]] = defaultdict(list)
        for u, m, _ in triples:
            rated[u].append(m)
        known_users, known_movies = sorted(user_count), sorted(movie_count)
        first_user, first_movie = known_users[-1] + 1, known_movies[-1] + 1
        stand_in = {user: rng.choice(known_users) for user in range(first_user, first_user + new_users)}
        for user, known in stand_in.items():
            user_bias[user], user_taste[user] = user_bias[known], user_taste[known]
        for movie in range(first_movie, first_movie + new_movies):
            known = rng.choice(known_movies)
            movie_bias[movie], movie_genres[movie] = movie_bias[known], movie_genres[known]
        return cls(
            global_mean=global_mean,
            noise=noise,
            genres=names,
            user_bias=user_bias,
            user_taste=user_taste,
            movie_bias=movie_bias,
            movie_genres=movie_genres,
            user_activity={u: float(user_count[u]) for u in known_users},
            movie_popularity={m: float(movie_count[m]) for m in known_movies},
            new_users=range(first_user, first_user + new_users),
            new_movies=range(first_movie, first_movie + new_movies),
            rated={u: tuple(dict.fromkeys(movies)) for u, movies in rated.items()},
            stand_in=stand_in,
        )
