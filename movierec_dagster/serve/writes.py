"""The API's write path: ratings posted by a client become rating events in the deployment's event source.

A request is checked whole before anything is written: every rating by the ingest's own rules
(`event_rules`, the same messages the rejected_rating_events table gives), every movie in the
catalogue, every event id new. Then its events are written as one unit and the call returns once
they are durable (a landing file fsynced and renamed into place; an Event Hubs batch acknowledged).
From there the ingest takes them into `rating_events` exactly once, like any other event: a
resent event id is rejected there as a duplicate.
"""

import json
import os
import uuid
from collections.abc import Container, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from movierec_dagster.event_rules import event_seconds, id_value, rating_event_failure, rating_value

MAX_RATINGS_PER_REQUEST = 100
MAX_BODY_BYTES = 64 * 1024  # 100 ratings take about 10 KB
BODY_SHAPE = 'give {"ratings": [{"movie_id": 1, "rating": 4.5, "rated_at": "<ISO time, optional>"}, ...]}'
TOO_LARGE = f"The body is larger than {MAX_BODY_BYTES:,} bytes: post at most {MAX_RATINGS_PER_REQUEST} ratings a request."


class RatingsRejected(Exception):
    """The request was refused and nothing was written: an HTTP status, a message, and per-rating errors."""

    def __init__(self, status: int, detail: str, errors: list[dict[str, Any]] | None = None):
        super().__init__(detail)
        self.status, self.detail, self.errors = status, detail, errors


@dataclass(frozen=True)
class PostedRating:
    event_id: str
    user_id: int
    movie_id: int
    rating: float
    timestamp: Any  # as sent (ISO text or epoch seconds), so the ingest reads what was validated
    rated_at_micros: int

    def line(self) -> bytes:
        """The design's event, one JSON line."""
        event = {
            "event_id": self.event_id, "user_id": self.user_id, "movie_id": self.movie_id,
            "rating": self.rating, "timestamp": self.timestamp,
        }
        return (json.dumps(event, separators=(",", ":")) + "\n").encode()


def parse_ratings(
    body: bytes, user_id: int, catalogue: Container[int], seen_ids: Container[str], now: datetime
) -> list[PostedRating]:
    """The request's ratings (a body the HTTP layer bounded to MAX_BODY_BYTES), each checked; `RatingsRejected`
    (nothing to write) if any is refused.

    `seen_ids`: event ids accepted before, refused as duplicates (409).
    """
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise RatingsRejected(400, f"The body is not JSON: {BODY_SHAPE}.") from None
    items = document.get("ratings") if isinstance(document, dict) else None
    if not isinstance(items, list) or not items:
        raise RatingsRejected(422, f"ratings: {BODY_SHAPE}.")
    if len(items) > MAX_RATINGS_PER_REQUEST:
        raise RatingsRejected(422, f"ratings: {len(items)} given, at most {MAX_RATINGS_PER_REQUEST} a request.")
    errors, posted, ids = [], [], set()
    for index, item in enumerate(items):
        reason, rating = _check(item, user_id, catalogue, now)
        if reason is None and rating is not None:
            if rating.event_id in ids or rating.event_id in seen_ids:
                reason = "duplicate event_id"
            ids.add(rating.event_id)
        if reason is not None:
            errors.append({"index": index, "movie_id": item.get("movie_id") if isinstance(item, dict) else None, "reason": reason})
        elif rating is not None:
            posted.append(rating)
    if errors:
        status = 409 if all(error["reason"] == "duplicate event_id" for error in errors) else 422
        summary = "; ".join(f"ratings[{e['index']}]: {e['reason']}" for e in errors[:5])
        raise RatingsRejected(status, f"Nothing was written: {summary}{' ...' if len(errors) > 5 else ''}", errors)
    return posted


_FIELDS = {"movie_id", "rating", "rated_at", "event_id"}


def _check(item: Any, user_id: int, catalogue: Container[int], now: datetime) -> tuple[str | None, PostedRating | None]:
    if not isinstance(item, dict):
        return "not a JSON object", None
    unknown = sorted(set(item) - _FIELDS)
    if unknown:
        return f"unknown field {unknown[0]!r} (fields: {', '.join(sorted(_FIELDS))})", None
    event_id = item.get("event_id")
    if event_id is None:
        event_id = str(uuid.uuid4())
    elif not isinstance(event_id, str):
        return "event_id is not text", None
    timestamp = item.get("rated_at")
    if timestamp is None:
        timestamp = f"{now.timestamp():.6f}"  # as text: the ingest reads decimal seconds only from text
    event = {
        "event_id": event_id, "user_id": user_id, "movie_id": item.get("movie_id"),
        "rating": item.get("rating"), "timestamp": timestamp,
    }
    reason = rating_event_failure(event, now)
    if reason is not None:
        return reason.replace("timestamp", "rated_at"), None
    movie_id, rating, seconds = id_value(item["movie_id"]), rating_value(item["rating"]), event_seconds(timestamp, now)
    if movie_id not in catalogue:
        return f"movie_id {movie_id} is not in the catalogue", None
    return None, PostedRating(event_id, user_id, movie_id, rating, timestamp, round(seconds * 1_000_000))


class EventWriter(Protocol):
    def write(self, lines: list[bytes]) -> None:
        """Write the lines as one unit; return once they are durable."""

    def describe(self) -> str: ...


class LandingFolderWriter:
    """One JSON-lines file per request in the landing folder: written aside, fsynced, renamed into place."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def describe(self) -> str:
        return f"landing folder {self.folder}"

    def write(self, lines: list[bytes]) -> None:
        from generator.sinks import LocalSink

        sink = LocalSink(self.folder, roll_events=len(lines) + 1, prefix="api")
        for line in lines:
            sink.write(line)
        sink.close()


class EventHubsWriter:
    """The request's events sent to the hub (partition key: the user, so one user's ratings stay in order)."""

    def __init__(self, producer: Any, name: str):
        self.producer, self.name = producer, name

    def describe(self) -> str:
        return f"event hub {self.name}"

    def write(self, lines: list[bytes]) -> None:
        from generator.sinks import EventHubSink

        sink = EventHubSink(self.producer, flush_events=len(lines) + 1, flush_seconds=3600)
        for line in lines:
            sink.write(line)
        sink.flush()  # send_batch returns once the hub has acknowledged the batch


def event_writer(environ: Mapping[str, str], lake_location: str) -> tuple[EventWriter | None, str]:
    """The deployment's event source as a writer, or None and why: MOVIEREC_LANDING_FOLDER, else Event Hubs
    (EVENTHUB_CONNECTION_STRING or EVENTHUB_NAMESPACE + EVENTHUB_NAME), else a local lake's landing folder."""
    from movierec_dagster.home import LANDING_EVENTS

    folder = environ.get("MOVIEREC_LANDING_FOLDER", "").strip()
    if folder:
        return LandingFolderWriter(folder), ""
    if environ.get("EVENTHUB_CONNECTION_STRING", "").strip() or environ.get("EVENTHUB_NAMESPACE", "").strip():
        from generator.sinks import eventhub_producer

        name = environ.get("EVENTHUB_NAME", "").strip() or "(named by the connection string)"
        return EventHubsWriter(eventhub_producer(dict(environ)), name), ""
    if "://" in lake_location and not lake_location.startswith("file://"):
        return None, (
            f"The lake {lake_location} is not on this machine and no event source is configured: set EVENTHUB_NAMESPACE "
            "and EVENTHUB_NAME (or EVENTHUB_CONNECTION_STRING), or MOVIEREC_LANDING_FOLDER."
        )
    root = lake_location.removeprefix("file://")
    return LandingFolderWriter(os.path.join(root, *LANDING_EVENTS)), ""

