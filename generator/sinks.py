"""Where generated events go: JSON-lines files in a landing folder, or an Azure Event Hub.

A sink takes encoded lines (`write`), and `close` delivers what it holds:
after `close` nothing is half-written and nothing accepted is lost.
"""

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any, Protocol


class Sink(Protocol):
    def write(self, line: bytes) -> None: ...
    def close(self) -> None: ...


class LocalSink:
    """JSON-lines files in `folder`, each written aside as a hidden file and renamed into place when full.

    A file is rolled after `roll_events` lines or `roll_seconds` seconds,
    whichever comes first; Spark and the sensor ignore hidden files, so a reader
    never sees a partial one.
    """

    def __init__(self, folder: Path, *, roll_events: int = 10_000, roll_seconds: float = 5.0, prefix: str = "events"):
        if roll_events <= 0 or roll_seconds <= 0:
            raise ValueError("roll_events and roll_seconds must be positive")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.roll_events, self.roll_seconds, self.prefix = roll_events, roll_seconds, prefix
        self.files: list[Path] = []
        self._lines: list[bytes] = []
        self._opened = time.monotonic()
        self._run = uuid.uuid4().hex[:8]

    def write(self, line: bytes) -> None:
        if not self._lines:
            self._opened = time.monotonic()
        self._lines.append(line)
        if len(self._lines) >= self.roll_events or time.monotonic() - self._opened >= self.roll_seconds:
            self.roll()

    def roll(self) -> None:
        """Publish the lines held so far as one file (nothing to do when there are none)."""
        if not self._lines:
            return
        name = f"{self.prefix}-{time.strftime('%Y%m%dT%H%M%S')}-{self._run}-{len(self.files):06d}.jsonl"
        final = self.folder / name
        aside = self.folder / f".{name}.tmp"
        try:
            with aside.open("wb") as handle:
                handle.writelines(self._lines)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(aside, final)
        except BaseException:
            aside.unlink(missing_ok=True)  # interrupted mid-write: leave nothing half-written behind
            raise
        self.files.append(final)
        self._lines = []

    def close(self) -> None:
        self.roll()


class EventHubSink:
    """Sends events with an azure-eventhub producer, in batches made by `create_batch`.

    The partition key is the user id, so one user's ratings stay in order. Events
    are held for up to `flush_events` lines or `flush_seconds`, then grouped by
    user; each group fills as few batches as the size limit allows.
    """

    def __init__(self, producer: Any, *, flush_events: int = 5_000, flush_seconds: float = 1.0):
        self.producer = producer
        self.flush_events, self.flush_seconds = flush_events, flush_seconds
        self.sent_events = 0
        self._held: dict[str, list[bytes]] = {}
        self._count = 0
        self._since = time.monotonic()

    def write(self, line: bytes) -> None:
        if not self._count:
            self._since = time.monotonic()
        self._held.setdefault(partition_key(line), []).append(line.rstrip(b"\n"))
        self._count += 1
        if self._count >= self.flush_events or time.monotonic() - self._since >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        from azure.eventhub import EventData

        for key, bodies in self._held.items():
            batch = self.producer.create_batch(partition_key=key)
            for body in bodies:
                event = EventData(body)
                try:
                    batch.add(event)
                except ValueError:
                    if len(batch) == 0:
                        raise ValueError(f"An event of {len(body):,} bytes is larger than an Event Hubs batch allows.") from None
                    self._send(batch)
                    batch = self.producer.create_batch(partition_key=key)
                    batch.add(event)
            if len(batch):
                self._send(batch)
        self._held, self._count = {}, 0

    def _send(self, batch: Any) -> None:
        self.producer.send_batch(batch)
        self.sent_events += len(batch)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.producer.close()


def partition_key(line: bytes) -> str:
    """The user id of an encoded event (the design's or the seed's field); "unknown" for a line without one."""
    try:
        event = json.loads(line)
    except ValueError:
        return "unknown"
    if not isinstance(event, dict):
        return "unknown"
    return str(event.get("user_id", event.get("UserId", "unknown")))


def eventhub_producer(environ: dict[str, str]) -> Any:
    """An EventHubProducerClient from EVENTHUB_CONNECTION_STRING (+ EVENTHUB_NAME), or
    DefaultAzureCredential with EVENTHUB_NAMESPACE + EVENTHUB_NAME."""
    from azure.eventhub import EventHubProducerClient

    name = environ.get("EVENTHUB_NAME", "").strip() or None
    connection_string = environ.get("EVENTHUB_CONNECTION_STRING", "").strip()
    if connection_string:
        return EventHubProducerClient.from_connection_string(connection_string, eventhub_name=name)
    namespace = environ.get("EVENTHUB_NAMESPACE", "").strip()
    if not namespace or not name:
        raise ValueError(
            "The eventhub sink needs EVENTHUB_CONNECTION_STRING (and EVENTHUB_NAME unless the string has an "
            "EntityPath), or EVENTHUB_NAMESPACE and EVENTHUB_NAME with an Azure login DefaultAzureCredential can use."
        )
    from azure.identity import DefaultAzureCredential

    host = namespace if "." in namespace else f"{namespace}.servicebus.windows.net"
    return EventHubProducerClient(fully_qualified_namespace=host, eventhub_name=name, credential=DefaultAzureCredential())
