"""Rating event lines for the stream tests: valid ones and every kind of bad input."""

import json
import time
from pathlib import Path


def event(event_id: str, user_id: object = 1, movie_id: object = 10, rating: object = 4.0, timestamp: object = None) -> str:
    timestamp = int(time.time()) - 3600 if timestamp is None else timestamp
    return json.dumps(
        {"event_id": event_id, "user_id": user_id, "movie_id": movie_id, "rating": rating, "timestamp": timestamp}
    )


def without(field: str, **values: object) -> str:
    body = json.loads(event("x", **values))
    body.pop(field)
    return json.dumps(body)


# (line as bytes, expected reject reason)
BAD_LINES: list[tuple[bytes, str]] = [
    (b"this is not json", "not a JSON object"),
    (b'{"event_id": "trunc", "user_id": 3, "movie_id"', "not valid JSON (malformed or truncated)"),
    (without("movie_id").replace('"x"', '"no-movie"').encode(), "movie_id is missing"),
    (without("event_id").encode(), "event_id is missing"),
    (event("wrong-type", user_id="abc").encode(), "user_id is not an integer"),
    (event("wrong-type-2", movie_id=[1, 2]).encode(), "movie_id is not an integer"),
    (event("rating-0", rating=0).encode(), "rating is outside 0.5-5.0"),
    (event("rating-55", rating=5.5).encode(), "rating is outside 0.5-5.0"),
    (event("rating-325", rating=3.25).encode(), "rating is not a multiple of 0.5"),
    (event("rating-nan", rating=float("nan")).encode(), "rating is not a number"),
    (event("negative-user", user_id=-4).encode(), "user_id is not a positive 32-bit integer"),
    (event("zero-movie", movie_id=0).encode(), "movie_id is not a positive 32-bit integer"),
    (event("future", timestamp=int(time.time()) + 86_400).encode(), "timestamp is in the future"),
    (event("bad-time", timestamp="yesterday").encode(), "timestamp is not epoch seconds or ISO-8601"),
    (('{"event_id": "huge", "pad": "' + "x" * 1_000_000 + '"}').encode(), "line longer than 65536 bytes"),
    (b'{"event_id": "\xff\xfe", "user_id": 1}', "not valid UTF-8"),
]


def write_lines(folder: Path, name: str, lines: list[bytes]) -> Path:
    """A landing file, written aside and renamed in as the generator does."""
    folder.mkdir(parents=True, exist_ok=True)
    aside = folder / f".{name}.tmp"
    aside.write_bytes(b"".join(line + b"\n" for line in lines))
    return aside.rename(folder / name)
