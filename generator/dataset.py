"""A synthetic MovieLens dataset: an ml-latest-format zip (movies, ratings, tags, links) that MOVIELENS_SOURCE accepts.

`write_dataset` draws a population's tastes with `Tastes.planted` (MovieLens-like
popularity with a long tail, genres, user and movie biases, a few strong genre
tastes a user) and samples every user's movies the way the `planted` event
stream does (a genre by the user's taste for it, then one of its movies by
popularity), but vectorised per chunk of users with numpy and without
replacement: each (user, movie) pair is rated at most once. Ratings are the
planted model's value (mean + biases + genre affinity + Gaussian noise) rounded
to the half-star scale, so a model can learn them.

Users' activity is skewed (log-normal, every user at least 20 ratings when there
are that many), timestamps span MovieLens's years (1995-2019, each user active
for a session or for years; whole stars only before 2003, as there), titles carry their year ("Silent River, The
(1994)"), links have IMDb and TMDb ids, and a few users tag some of what they
rate. ratings.csv is streamed into the zip chunk by chunk: memory is bounded by
the population (users x genres, movies), not by the number of ratings.
"""

import math
import random
import secrets
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from queue import Queue

import numpy as np

from generator.ratings import RATINGS, GeneratorInputError
from generator.tastes import GENRES, Population, Tastes

# MovieLens-25M's shape, and ml-latest-small's (which the defaults interpolate between).
ML_25M = (25_000_095, 162_541, 59_047)
ML_LATEST_SMALL = (100_836, 610, 9_724)
HEADERS = {
    "movies.csv": "movieId,title,genres",
    "ratings.csv": "userId,movieId,rating,timestamp",
    "tags.csv": "userId,movieId,tag,timestamp",
    "links.csv": "movieId,imdbId,tmdbId",
}
MIN_RATINGS_PER_USER = 20  # as in MovieLens: every user rated at least 20 movies (when there are enough ratings)
ACTIVITY_SKEW = 1.4  # Tastes.planted's log-normal activity (sigma 1) to this power: sigma 1.4, ML-25M's spread
FIRST_TIMESTAMP, LAST_TIMESTAMP = 789_652_009, 1_574_327_703  # ML-25M's first and last ratings (1995-01-09, 2019-11-21)
HALF_STARS_SINCE = 1_045_526_400  # 2003-02-18: MovieLens's ratings before it are whole stars
SESSION_USERS = 0.45  # share of users who rate everything within a day; the others over weeks to years
TAGGERS, TAG_RATE = 0.08, 0.5  # share of users who tag, and the share of their ratings they tag: about 4% of ratings
CHUNK_RATINGS = 1 << 19  # ratings generated (and compressed) at a time
HEAVY_SHARE = 0.05  # a user rating more than this share of the movies draws them in one go (Gumbel top-k)
ZIP_DATE = (2019, 11, 21, 0, 0, 0)  # every member's date: the same seed gives the same bytes

_WORDS = (
    "Silent", "Last", "Broken", "Golden", "Dark", "Lost", "Wild", "Secret", "Crimson", "Frozen", "Hidden", "Eternal",
    "Midnight", "Burning", "Distant", "Little", "Brave", "Hollow", "Electric", "Savage", "Quiet", "Iron", "Velvet",
    "Endless", "Forgotten", "Restless", "Scarlet", "Bitter", "Sweet", "Northern",
)
_NOUNS = (
    "River", "Night", "City", "Heart", "Dream", "Road", "Kingdom", "Summer", "Shadow", "Storm", "Garden", "Island",
    "Mirror", "Empire", "Stranger", "Journey", "Promise", "Harbor", "Winter", "Machine", "Voice", "Horizon", "Letter",
    "Circus", "Station", "Planet", "Witness", "Fortune", "Valley", "Frontier",
)
_GENRE_TAGS = {
    "Drama": ("emotional", "character study", "based on a true story"), "Comedy": ("funny", "witty", "quirky"),
    "Thriller": ("suspense", "twist ending", "tense"), "Action": ("explosions", "fight scenes", "car chase"),
    "Romance": ("love story", "romantic", "chick flick"), "Adventure": ("epic", "quest", "treasure"),
    "Crime": ("heist", "gangsters", "detective"), "Sci-Fi": ("sci-fi", "dystopia", "time travel"),
    "Horror": ("scary", "gore", "zombies"), "Fantasy": ("magic", "dragons", "fairy tale"),
    "Children": ("family", "kids"), "Animation": ("animated", "pixar"), "Mystery": ("whodunit", "mystery"),
    "Documentary": ("documentary", "informative"), "War": ("world war ii", "anti-war"), "Musical": ("musical", "singing"),
    "Western": ("western", "cowboys"), "IMAX": ("imax", "visually stunning"), "Film-Noir": ("noir", "atmospheric"),
}
_LIKED_TAGS, _DISLIKED_TAGS = ("classic", "masterpiece", "must see", "great soundtrack"), ("boring", "overrated", "predictable")


@dataclass(frozen=True)
class DatasetSummary:
    """What `write_dataset` wrote."""

    path: Path
    ratings: int
    users: int
    movies: int
    tags: int
    seed: int
    seconds: float


def default_users(ratings: int) -> int:
    """Users for `ratings`, at MovieLens-25M's ratings per user (about 154)."""
    return max(1, round(ratings * ML_25M[1] / ML_25M[0]))


def default_movies(ratings: int) -> int:
    """Movies for `ratings`, on the power law through ml-latest-small's and ML-25M's (ratings^0.33)."""
    (small_r, _, small_m), (big_r, _, big_m) = ML_LATEST_SMALL, ML_25M
    exponent = math.log(big_m / small_m) / math.log(big_r / small_r)
    return max(1, round(small_m * (ratings / small_r) ** exponent))


def check_shape(ratings: int, users: int, movies: int) -> None:
    """Refuse a shape that cannot be generated: every user rates at least one movie, no pair twice."""
    if ratings < 1 or users < 1 or movies < 1:
        raise GeneratorInputError(f"ratings, users and movies must be positive, not {ratings}, {users}, {movies}")
    if ratings < users:
        raise GeneratorInputError(f"{ratings:,} ratings are too few for {users:,} users: every user rates at least one movie")
    if ratings > users * movies:
        raise GeneratorInputError(
            f"{ratings:,} ratings are too many for {users:,} users and {movies:,} movies: a user rates a movie at most once"
        )


class _Model:
    """The planted tastes as numpy arrays: index i is user i + 1, index j movie j + 1."""

    def __init__(self, tastes: Tastes, users: int, movies: int):
        self.users, self.movies = users, movies
        self.global_mean, self.noise = tastes.global_mean, tastes.noise
        self.user_bias = np.array([tastes.user_bias[u] for u in range(1, users + 1)])
        self.user_taste = np.array([tastes.user_taste[u] for u in range(1, users + 1)])
        self.movie_bias = np.array([tastes.movie_bias[m] for m in range(1, movies + 1)])
        self.popularity = np.array([tastes.movie_popularity[m] for m in range(1, movies + 1)])
        genre_lists = [tastes.movie_genres[m] for m in range(1, movies + 1)]
        self.genre_count = np.array([len(g) for g in genre_lists])
        width = max(1, int(self.genre_count.max()))
        self.movie_genres = np.array([g + (0,) * (width - len(g)) for g in genre_lists], dtype=np.int64)  # padded
        self.genre_mask = np.arange(width)[None, :] < self.genre_count[:, None]
        # The genre of a user's next movie, as `planted` draws it: P(genre | user) from the user's running totals,
        # flattened with user i's cumulative shares in (i, i + 1] so that one searchsorted draws every user's genre.
        totals = np.array([tastes.user_genre_totals[u] for u in range(1, users + 1)])
        shares = totals / totals[:, -1:]
        self.genre_share = np.diff(shares, axis=1, prepend=0.0)  # P(genre | user)
        self.user_genre_cdf = (np.arange(users)[:, None] + shares).ravel()
        # A movie of a genre by popularity: genre g's movies' cumulative shares in (g, g + 1].
        cdfs, members, ends, mass = [], [], [], []
        for genre, (in_genre, running) in enumerate(tastes.genre_movies):
            if in_genre:
                running = np.asarray(running)
                cdfs.append(genre + running / running[-1])
                members.append(np.asarray(in_genre) - 1)
            ends.append(sum(len(m) for m in members))
            mass.append(running[-1] if in_genre else 0.0)
        self.genre_movie_cdf, self.genre_members = np.concatenate(cdfs), np.concatenate(members)
        self.genre_end = np.array(ends)
        self.genre_mass = np.array(mass)
        self.incidence = np.zeros((movies, len(tastes.genres)))
        for j, genres in enumerate(genre_lists):
            self.incidence[j, list(genres)] = 1.0
        self.activity = np.array([tastes.user_activity[u] for u in range(1, users + 1)])

    def draw(self, rng: np.random.Generator, users: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`counts[k]` movies for each of `users` (ascending), with replacement: a genre by taste, a movie by popularity."""
        u = np.repeat(users, counts)
        position = np.searchsorted(self.user_genre_cdf, u + rng.random(len(u)), side="right")
        genre = np.minimum(position - u * len(self.genre_mass), len(self.genre_mass) - 1)
        position = np.searchsorted(self.genre_movie_cdf, genre + rng.random(len(u)), side="right")
        return u, self.genre_members[np.minimum(position, self.genre_end[genre] - 1)]

    def movie_weights(self, user: int) -> np.ndarray:
        """P(movie | user) of one draw, up to a constant: popularity x the sum over its genres of P(genre | user) / mass."""
        per_mass = np.divide(self.genre_share[user], self.genre_mass, out=np.zeros_like(self.genre_mass), where=self.genre_mass > 0)
        return self.popularity * (self.incidence @ per_mass)

    def ratings(self, rng: np.random.Generator, u: np.ndarray, m: np.ndarray, stamps: np.ndarray) -> np.ndarray:
        """Half-star steps (1-10) of user u's rating of movie m at `stamps`: `planted`'s value, rounded as it rounds;
        to whole stars before MovieLens offered half stars."""
        affinity = (self.user_taste[u[:, None], self.movie_genres[m]] * self.genre_mask[m]).sum(axis=1) / self.genre_count[m]
        value = self.global_mean + self.user_bias[u] + self.movie_bias[m] + affinity + rng.normal(0.0, self.noise, len(u))
        steps = np.where(stamps < HALF_STARS_SINCE, np.clip(np.rint(value), 1, 5) * 2, np.clip(np.rint(value * 2), 1, 10))
        return steps.astype(np.int64)


def _user_counts(activity: np.ndarray, ratings: int, movies: int) -> np.ndarray:
    """Ratings per user: a floor of MIN_RATINGS_PER_USER (or fewer), the rest in proportion to activity^ACTIVITY_SKEW,
    nobody above `movies`; they add up to `ratings` exactly."""
    users = len(activity)
    floor = min(MIN_RATINGS_PER_USER, ratings // users, movies)
    counts = np.full(users, floor, dtype=np.int64)
    weight = activity**ACTIVITY_SKEW
    while (left := ratings - int(counts.sum())) > 0:
        open_ = counts < movies
        share = np.where(open_, weight, 0.0)
        expected = left * share / share.sum()
        extra = np.minimum(np.floor(expected).astype(np.int64), movies - counts)
        if extra.sum() == 0:  # hand the last few out by the largest remainders
            order = np.argsort(-(expected - np.floor(expected)) - open_, kind="stable")
            extra = np.zeros(users, dtype=np.int64)
            extra[order[:left]] = 1
            extra = np.minimum(extra, movies - counts)
        counts += extra
    return counts


def _first_distinct(
    model: _Model, rng: np.random.Generator, first: int, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Users first..first+len(counts)-1 each rate counts[k] distinct movies: draws until they have them, the first
    distinct ones in draw order (sampling without replacement); users who rate a large share of the movies draw
    them at once with Gumbel top-k, the same distribution."""
    users = np.arange(first, first + len(counts))
    heavy = counts > HEAVY_SHARE * model.movies
    parts_u, parts_m = [], []
    for user, count in zip(users[heavy], counts[heavy]):
        keys = np.log(model.movie_weights(user)) + rng.gumbel(size=model.movies)
        parts_u.append(np.full(count, user))
        parts_m.append(np.argpartition(-keys, count - 1)[:count])
    need = np.where(heavy, 0, counts)
    fresh_rate = np.ones(len(counts))  # the share of a user's last draws that were new: how many to draw next
    kept_u, kept_m = [np.empty(0, dtype=np.int64)], [np.empty(0, dtype=np.int64)]
    while need.any():
        asking = need > 0
        drawn = np.ceil(need[asking] / fresh_rate[asking] * 1.1).astype(np.int64) + 2
        draw_u, draw_m = model.draw(rng, users[asking], drawn)
        old_u, old_m = np.concatenate(kept_u), np.concatenate(kept_m)
        old = asking[old_u - first]  # only the pairs of users still drawing can collide with the new draws
        all_u, all_m = np.concatenate([old_u[old], draw_u]), np.concatenate([old_m[old], draw_m])
        _, first_seen = np.unique(all_u * model.movies + all_m, return_index=True)
        fresh = np.sort(first_seen[first_seen >= old.sum()])  # new pairs, in draw order (grouped by user)
        fresh_u = all_u[fresh]
        fresh_rate[asking] = np.maximum(np.bincount(fresh_u - first, minlength=len(counts))[asking] / drawn, 0.01)
        rank = np.arange(len(fresh)) - np.searchsorted(fresh_u, fresh_u, side="left")
        fresh = fresh[rank < need[fresh_u - first]]
        kept_u.append(all_u[fresh])
        kept_m.append(all_m[fresh])
        need -= np.bincount(all_u[fresh] - first, minlength=len(counts))
    kept_u, kept_m = np.concatenate(kept_u), np.concatenate(kept_m)
    u, m = np.concatenate([kept_u, *parts_u]), np.concatenate([kept_m, *parts_m])
    order = np.argsort(u * model.movies + m)  # as MovieLens: by user, then movie
    return u[order], m[order]


def _digits(values: np.ndarray) -> np.ndarray:
    """The decimal digits of non-negative `values` as ASCII, right-aligned, leading positions 0 (dropped later)."""
    width = len(str(int(values.max()))) if len(values) else 1
    rest = values.astype(np.uint32) if width < 10 or values.max() < 2**32 else values.copy()  # 32-bit division: faster
    digits = np.empty((len(values), width), dtype=np.uint8)
    for position in range(width - 1, -1, -1):
        quotient = rest // 10
        digits[:, position] = rest - quotient * 10 + ord("0")
        rest = quotient
    leading = values[:, None] < 10 ** np.arange(width - 1, 0, -1, dtype=np.int64)  # every position but the last
    digits[:, :-1][leading] = 0
    return digits


def _csv_bytes(*columns: np.ndarray) -> bytes:
    """Rows of comma-separated fields, each field an (n, width) uint8 array of ASCII (0 bytes are dropped)."""
    n = len(columns[0])
    comma, newline = np.full((n, 1), ord(","), dtype=np.uint8), np.full((n, 1), ord("\n"), dtype=np.uint8)
    pieces = []
    for column in columns:
        pieces += [column, comma]
    pieces[-1] = newline
    flat = np.concatenate(pieces, axis=1).ravel()
    return flat[flat != 0].tobytes()


_RATING_TEXT = np.frombuffer(b"".join(f"{r:.1f}".encode() for r in RATINGS), dtype=np.uint8).reshape(10, 3)


def _movie_rows(rng: random.Random, model: _Model) -> tuple[list[str], list[str]]:
    """movies.csv and links.csv rows: titles with a year, genres as MovieLens spells them, distinct IMDb/TMDb ids."""
    movies, links = [], []
    imdb = rng.sample(range(1, 10_000_000), model.movies)
    tmdb = rng.sample(range(1, 1_000_000), model.movies)
    for j in range(model.movies):
        words = f"{rng.choice(_WORDS)} {rng.choice(_NOUNS)}"
        draw = rng.random()
        if draw < 0.12:
            title = f"{words}, The"  # as MovieLens files "The ..." titles: quoted in the CSV
        elif draw < 0.2:
            title = f"{words} {rng.randint(2, 4)}"
        elif draw < 0.28:
            title = f"{words}: {rng.choice(_WORDS)} {rng.choice(_NOUNS)}"
        else:
            title = words
        year = max(1902, 2019 - int(rng.expovariate(1 / 18)))  # MovieLens's films are mostly recent
        genres = "|".join(sorted(GENRES[g] for g in model.movie_genres[j, : model.genre_count[j]]))
        title = f"{title} ({year})"
        movies.append(f'{j + 1},"{title}",{genres}\n' if "," in title else f"{j + 1},{title},{genres}\n")
        links.append(f"{j + 1},{imdb[j]:07d},{'' if rng.random() < 0.002 else tmdb[j]}\n")
    return movies, links


def _tag_rows(
    model: _Model, rng: np.random.Generator, taggers: np.ndarray, u: np.ndarray, m: np.ndarray, steps: np.ndarray, stamps: np.ndarray
) -> str:
    """Tags on some of a chunk's ratings, by the users who tag: a word for one of the movie's genres or for the rating."""
    chosen = np.flatnonzero(taggers[u] & (rng.random(len(u)) < TAG_RATE))
    rows = []
    picks = rng.random((len(chosen), 2))
    offsets = rng.integers(1, 3600, len(chosen))
    for k, pick, offset in zip(chosen, picks, offsets):
        movie, step = m[k], steps[k]
        if step >= 9 and pick[0] < 0.3:
            words = _LIKED_TAGS
        elif step <= 4 and pick[0] < 0.3:
            words = _DISLIKED_TAGS
        else:
            words = _GENRE_TAGS[GENRES[model.movie_genres[movie, int(pick[0] * model.genre_count[movie])]]]
        rows.append(f"{u[k] + 1},{movie + 1},{words[int(pick[1] * len(words))]},{stamps[k] + offset}\n")
    return "".join(rows)


def _chunks(
    model: _Model, rng: np.random.Generator, counts: np.ndarray, taggers: np.ndarray, start: np.ndarray, span: np.ndarray
) -> Iterator[tuple[bytes, str, int]]:
    """(ratings.csv bytes, tags.csv text, ratings) for consecutive users, about CHUNK_RATINGS ratings at a time."""
    ends = np.cumsum(counts)
    first = 0
    while first < len(counts):
        last = max(first + 1, int(np.searchsorted(ends, ends[first] - counts[first] + CHUNK_RATINGS, side="right")))
        u, m = _first_distinct(model, rng, first, counts[first:last])
        stamps = start[u] + (rng.random(len(u)) * span[u]).astype(np.int64)
        steps = model.ratings(rng, u, m, stamps)
        body = _csv_bytes(_digits(u + 1), _digits(m + 1), _RATING_TEXT[steps - 1], _digits(stamps))
        yield body, _tag_rows(model, rng, taggers, u, m, steps, stamps), len(u)
        first = last


def _prefetched(items: Iterator, depth: int = 2) -> Iterator:
    """`items`, produced in a thread `depth` ahead: numpy and zlib release the GIL, so generating and compressing overlap."""
    queue: Queue = Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                queue.put(item)
            queue.put(done)
        except BaseException as error:  # handed to the consumer, which raises it
            queue.put(error)

    thread = threading.Thread(target=produce, name="dataset-chunks", daemon=True)
    thread.start()
    try:
        while (item := queue.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            while not queue.empty():
                queue.get_nowait()
            thread.join(0.1)


def write_dataset(
    path: Path,
    *,
    ratings: int,
    users: int,
    movies: int,
    seed: int | None = None,
    compresslevel: int = 6,
    progress: Callable[[int, float], None] | None = None,
) -> DatasetSummary:
    """Write a synthetic MovieLens zip of exactly `ratings` ratings by users 1..`users` of movies 1..`movies`.

    The zip holds one folder (named after `path`) with movies.csv, ratings.csv, tags.csv,
    links.csv and a README.txt saying how it was made; the same seed gives the same bytes.
    `progress(ratings_written, seconds)` is called after each chunk.
    """
    check_shape(ratings, users, movies)
    started = time.monotonic()
    seed = secrets.randbits(32) if seed is None else seed
    rng = random.Random(seed)
    tastes = Tastes.planted(Population(tuple(range(1, users + 1)), tuple(range(1, movies + 1)), 0, 0), rng)
    model = _Model(tastes, users, movies)
    del tastes
    counts = _user_counts(model.activity, ratings, movies)
    movie_rows, link_rows = _movie_rows(rng, model)
    generator = np.random.Generator(np.random.PCG64(seed))
    taggers = generator.random(users) < TAGGERS
    start = generator.integers(FIRST_TIMESTAMP, LAST_TIMESTAMP, users)
    # A user's ratings fall in [start, start + span): a session of a day at most, or weeks to years (median two months).
    session = generator.random(users) < SESSION_USERS
    days = np.where(session, generator.uniform(0.01, 1.0, users), generator.lognormal(math.log(60), 1.5, users))
    span = np.minimum((days * 86_400).astype(np.int64), LAST_TIMESTAMP - start)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = path.name.removesuffix(".zip")
    partial = path.with_name(f".{path.name}.partial")
    tags = 0
    written = 0
    try:
        with (
            zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=compresslevel) as bundle,
            tempfile.TemporaryFile(dir=path.parent) as tag_file,  # tags.csv, while ratings.csv is being written
        ):

            def member(name: str) -> zipfile.ZipInfo:
                info = zipfile.ZipInfo(f"{folder}/{name}", ZIP_DATE)
                info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
                # A ZipInfo's own level (not the ZipFile's) applies to what is written with it; 3.13 renamed the field.
                setattr(info, "compress_level" if hasattr(info, "compress_level") else "_compresslevel", compresslevel)
                return info

            bundle.writestr(member("movies.csv"), HEADERS["movies.csv"] + "\n" + "".join(movie_rows))
            bundle.writestr(member("links.csv"), HEADERS["links.csv"] + "\n" + "".join(link_rows))
            del movie_rows, link_rows
            # Over 2 GiB of CSV needs zip64 (about 70M ratings); smaller archives stay plain zip.
            with bundle.open(member("ratings.csv"), "w", force_zip64=ratings > 60_000_000) as out:
                out.write((HEADERS["ratings.csv"] + "\n").encode())
                for body, tag_text, count in _prefetched(_chunks(model, generator, counts, taggers, start, span)):
                    out.write(body)
                    tag_file.write(tag_text.encode())
                    tags += tag_text.count("\n")
                    written += count
                    if progress is not None:
                        progress(written, time.monotonic() - started)
            tag_file.seek(0)
            with bundle.open(member("tags.csv"), "w") as out:
                out.write((HEADERS["tags.csv"] + "\n").encode())
                while block := tag_file.read(1 << 20):
                    out.write(block)
            bundle.writestr(member("README.txt"), _readme(folder, ratings, users, movies, tags, seed))
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return DatasetSummary(path, ratings, users, movies, tags, seed, round(time.monotonic() - started, 2))


def _readme(folder: str, ratings: int, users: int, movies: int, tags: int, seed: int) -> str:
    return (
        f"{folder}: a synthetic MovieLens dataset (not GroupLens data)\n\n"
        f"Made by `movierec-generate dataset --ratings {ratings} --users {users} --movies {movies} --seed {seed}`.\n"
        f"{ratings:,} ratings by {users:,} users of {movies:,} movies, {tags:,} tags; the files are laid out as\n"
        "ml-latest's (movies.csv, ratings.csv, tags.csv, links.csv, the same headers), and the ratings come from\n"
        "planted tastes (generator.tastes.Tastes.planted): user and movie biases, genre tastes, Gaussian noise.\n"
    )
