"""Where generated rating events come from: a MovieLens replay or synthetic activity.

A source is an iterator of `Rating(user_id, movie_id, rating, timestamp)`;
`encode_events` turns ratings into JSON lines (with a fresh event id) and mixes
in malformed lines on request. Every random choice comes from one seeded
`random.Random`, so a seed makes a run reproducible (except "now" timestamps).
"""

import csv
import io
import json
import random
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
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


def read_movielens_ratings(archive: Path) -> list[Rating]:
    """Every rating of a MovieLens zip (or a folder holding ratings.csv)."""
    archive = Path(archive)
    try:
        if archive.is_dir():
            text = (archive / "ratings.csv").read_text()
        else:
            with zipfile.ZipFile(archive) as bundle:
                member = next((n for n in bundle.namelist() if n.endswith("ratings.csv")), None)
                if member is None:
                    raise GeneratorInputError(f"{archive} has no ratings.csv: is it a MovieLens archive?")
                text = bundle.read(member).decode("utf-8")
    except (OSError, zipfile.BadZipFile) as error:
        raise GeneratorInputError(f"Cannot read MovieLens ratings from {archive}: {error}") from error
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header != ["userId", "movieId", "rating", "timestamp"]:
        raise GeneratorInputError(f"{archive}: ratings.csv has the header {header}, not userId,movieId,rating,timestamp.")
    return [Rating(int(u), int(m), float(r), int(t)) for u, m, r, t in reader]


def replay(
    ratings: list[Rating], rng: random.Random, *, order: str = "shuffle", timestamps: str = "original"
) -> Iterator[Rating]:
    """The ratings again and again, shuffled or in time order, with their own timestamps or now."""
    if not ratings:
        raise GeneratorInputError("There are no ratings to replay.")
    if order not in ("shuffle", "time"):
        raise GeneratorInputError(f"order must be 'shuffle' or 'time', not {order!r}")
    if timestamps not in ("original", "now"):
        raise GeneratorInputError(f"timestamps must be 'original' or 'now', not {timestamps!r}")
    sequence = sorted(ratings, key=lambda r: r.timestamp) if order == "time" else list(ratings)
    while True:
        if order == "shuffle":
            rng.shuffle(sequence)
        if timestamps == "original":
            yield from sequence
        else:
            for rating in sequence:
                yield rating._replace(timestamp=int(time.time()))


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


def synthetic(population: Population, rng: random.Random, *, new_fraction: float = 0.05) -> Iterator[Rating]:
    """Endless synthetic ratings; a `new_fraction` of users and of movies the model has never seen."""
    if not 0 <= new_fraction <= 1:
        raise GeneratorInputError(f"new_fraction must be between 0 and 1, not {new_fraction}")
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


def event_line(event_id: str, rating: Rating) -> str:
    """The design's event as one JSON line."""
    return (
        f'{{"event_id":"{event_id}","user_id":{rating.user_id},"movie_id":{rating.movie_id},'
        f'"rating":{rating.rating},"timestamp":{rating.timestamp}}}\n'
    )


def _uuid(rng: random.Random) -> str:
    """A version-4 UUID drawn from `rng` (so a seed reproduces the ids)."""
    h = f"{(rng.getrandbits(128) & ~(0xF << 76) & ~(0x3 << 62)) | (0x4 << 76) | (0x2 << 62):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _malformed_kinds(rng: random.Random) -> list[Callable[[str, Rating, str | None], bytes]]:
    def good(event_id: str, rating: Rating) -> dict:
        return {"event_id": event_id, **rating._asdict()}

    def with_fields(**changes: object) -> Callable[[str, Rating, str | None], bytes]:
        def make(event_id: str, rating: Rating, _previous: str | None) -> bytes:
            event = {**good(event_id, rating), **changes}
            return (json.dumps({k: v for k, v in event.items() if v is not _DROP}) + "\n").encode()

        return make

    def not_json(_e: str, _r: Rating, _p: str | None) -> bytes:
        return b"this is not an event\n"

    def truncated(event_id: str, rating: Rating, _p: str | None) -> bytes:
        line = event_line(event_id, rating)
        return (line[: rng.randrange(1, len(line) - 2)] + "\n").encode()

    def invalid_utf8(event_id: str, rating: Rating, _p: str | None) -> bytes:
        return b'{"event_id":"\xff\xfe' + event_id.encode() + b'","user_id":1}\n'

    def duplicate(event_id: str, rating: Rating, previous: str | None) -> bytes:
        # The previous valid event sent again: the ingest must keep only one.
        return (previous or event_line(event_id, rating)).encode()

    return [
        not_json,
        truncated,
        invalid_utf8,
        duplicate,
        with_fields(movie_id=_DROP),
        with_fields(user_id="abc"),
        with_fields(rating=0),
        with_fields(rating=5.5),
        with_fields(rating=3.25),
        with_fields(user_id=-7),
        with_fields(movie_id=0),
        with_fields(timestamp=int(time.time()) + 86_400 * 365),
    ]


_DROP = object()


@dataclass
class Counts:
    """What `encode_events` produced so far."""

    valid: int = 0
    malformed: int = 0

    @property
    def total(self) -> int:
        return self.valid + self.malformed


def encode_events(
    ratings: Iterator[Rating], rng: random.Random, *, malformed_fraction: float = 0.0, counts: Counts | None = None
) -> Iterator[bytes]:
    """JSON lines of events for `ratings`, a `malformed_fraction` of them replaced by bad lines.

    A malformed line is one of: not JSON, a truncated line, invalid UTF-8, a missing
    field, a wrong type, a rating of 0, 5.5 or 3.25, a non-positive id, a future
    timestamp, or a resent earlier event (a duplicate id). `counts` is updated as
    lines are produced.
    """
    if not 0 <= malformed_fraction <= 1:
        raise GeneratorInputError(f"malformed_fraction must be between 0 and 1, not {malformed_fraction}")
    counts = counts if counts is not None else Counts()
    kinds = _malformed_kinds(rng)
    previous: str | None = None
    for rating in ratings:
        event_id = _uuid(rng)
        if malformed_fraction and rng.random() < malformed_fraction:
            kind = rng.choice(kinds)
            counts.malformed += 1
            yield kind(event_id, rating, previous)
            continue
        line = event_line(event_id, rating)
        previous = line
        counts.valid += 1
        yield line.encode()
