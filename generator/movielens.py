"""A MovieLens archive as a source of rating events: its ratings and genres read, its ratings replayed.

`replay` is an endless iterator of `Rating`s that shuffles with the seeded `random.Random` it is given,
so a seed makes a replay reproducible (except "now" timestamps).
"""

import csv
import io
import random
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

from generator.ratings import GeneratorInputError, Rating


def _read_csv(archive: Path, name: str, *, required: bool = True) -> str | None:
    """The text of the archive's `name` (e.g. ratings.csv); None when it is absent and not `required`."""
    archive = Path(archive)
    try:
        if archive.is_dir():
            path = archive / name
            if not required and not path.exists():
                return None
            return path.read_text()
        with zipfile.ZipFile(archive) as bundle:
            member = next((n for n in bundle.namelist() if n.endswith(name)), None)
            if member is None:
                if not required:
                    return None
                raise GeneratorInputError(f"{archive} has no {name}: is it a MovieLens archive?")
            return bundle.read(member).decode("utf-8")
    except (OSError, zipfile.BadZipFile) as error:
        raise GeneratorInputError(f"Cannot read MovieLens {name.removesuffix('.csv')} from {archive}: {error}") from error


def read_movielens_ratings(archive: Path) -> list[Rating]:
    """Every rating of a MovieLens zip (or a folder holding ratings.csv)."""
    reader = csv.reader(io.StringIO(_read_csv(archive, "ratings.csv")))
    header = next(reader, None)
    if header != ["userId", "movieId", "rating", "timestamp"]:
        raise GeneratorInputError(f"{archive}: ratings.csv has the header {header}, not userId,movieId,rating,timestamp.")
    return [Rating(int(u), int(m), float(r), int(t)) for u, m, r, t in reader]


def read_movielens_genres(archive: Path) -> dict[int, tuple[str, ...]]:
    """movie id -> its genres, from the archive's movies.csv; empty when it has none (genres are optional)."""
    text = _read_csv(archive, "movies.csv", required=False)
    if text is None:
        return {}
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header != ["movieId", "title", "genres"]:
        raise GeneratorInputError(f"{archive}: movies.csv has the header {header}, not movieId,title,genres.")
    return {
        int(row[0]): tuple(g for g in row[2].split("|") if g and g != "(no genres listed)") for row in reader if len(row) == 3
    }


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
