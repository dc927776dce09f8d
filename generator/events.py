"""Rating events as the ingest reads them: `encode_events` turns ratings into JSON lines.

Each line gets a fresh event id, and malformed lines are mixed in on request. The ids and the
malformed mix come from one seeded `random.Random`, so a seed makes the lines reproducible (except
timestamps taken from the clock).
"""

import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from generator.ratings import GeneratorInputError, Rating


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
