"""The exactly-once ingest of rating events: one Structured Streaming query with the availableNow trigger.

Plain PySpark and Python, no Dagster: the asset, the crash test and the
benchmark all call `ingest_rating_events`. Exactly once comes from three
things together:

- the query's checkpoint (`lake/checkpoints/rating_events/`) records which
  input each micro-batch holds before the batch runs, and a batch is marked
  done only after its output is written, so a killed run replays the same
  input as the same batch id;
- each batch writes its valid and rejected rows to its own folder
  `ingest_batch=<id>`, replaced atomically by the lake, so a replayed batch
  replaces its half-done output instead of adding to it;
- duplicates are looked up only in batches before the current one, so a replay
  classifies its rows exactly as the first attempt did.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from movierec_dagster.resources.lake import CHECKPOINTS
from movierec_dagster.stream import transforms
from movierec_dagster.stream.transforms import BATCH, BatchStats

EVENTS_TABLE = "rating_events"
REJECTED_TABLE = "rejected_rating_events"
CHECKPOINT = (CHECKPOINTS, EVENTS_TABLE)


class Lake(Protocol):
    """What the ingest needs of the lake resource."""

    def uri(self, *parts: str) -> str: ...
    def read_table_if_exists(self, spark: SparkSession, key: str) -> DataFrame | None: ...
    def write_table(self, df: DataFrame, key: str, *, subpath: str | None = None) -> str: ...


class EventLines(Protocol):
    """What the ingest needs of the event source: its new lines as a stream (`value`, `source`, `landed_at`)."""

    def read_stream(self, spark: SparkSession) -> DataFrame: ...


class IngestError(RuntimeError):
    """The streaming query failed; the message carries Spark's reason."""


@dataclass
class IngestResult:
    stats: BatchStats
    finished_at: datetime

    @property
    def lag_seconds(self) -> float | None:
        """How far the newest accepted event is behind the end of this ingest."""
        if self.stats.newest_event is None:
            return None
        return (self.finished_at - self.stats.newest_event).total_seconds()


def batch_folder(batch_id: int) -> str:
    return f"{BATCH}={batch_id}"


def process_batch(spark: SparkSession, lake: Lake, lines: DataFrame, batch_id: int) -> BatchStats:
    """Validate one micro-batch and write its two folders; safe to run again for the same batch id."""
    now = datetime.now(UTC)
    earlier = lake.read_table_if_exists(spark, EVENTS_TABLE)
    if earlier is not None:
        earlier = earlier.where(F.col(BATCH) < batch_id).select("event_id")
    parsed = transforms.parse_events(lines, now).cache()
    classified = transforms.classify_batch(parsed, earlier, now).cache()
    try:
        stats = transforms.batch_stats(classified)
        if stats.read:
            # Rejected first: the valid folder appearing is the last step of a batch.
            lake.write_table(transforms.rejected_events(classified), REJECTED_TABLE, subpath=batch_folder(batch_id))
            lake.write_table(transforms.valid_events(classified), EVENTS_TABLE, subpath=batch_folder(batch_id))
        return stats
    finally:
        classified.unpersist()
        parsed.unpersist()


def ingest_rating_events(
    spark: SparkSession,
    lake: Lake,
    source: EventLines,
    *,
    log: Callable[[str], Any] = print,
) -> IngestResult:
    """Process everything the source holds that no earlier ingest processed, then stop."""
    totals = BatchStats()

    def on_batch(lines: DataFrame, batch_id: int) -> None:
        stats = process_batch(spark, lake, lines, batch_id)
        totals.add(stats)
        log(
            f"batch {batch_id}: {stats.read:,} events read, {stats.accepted:,} accepted, "
            f"{stats.rejected:,} rejected ({stats.duplicates:,} duplicates)"
        )

    query = (
        source.read_stream(spark)
        .writeStream.queryName(f"{EVENTS_TABLE}_ingest")
        .foreachBatch(on_batch)
        .option("checkpointLocation", lake.uri(*CHECKPOINT))
        .trigger(availableNow=True)
        .start()
    )
    try:
        query.awaitTermination()
    except StreamingQueryException as error:
        raise IngestError(f"The rating events ingest failed: {error.getMessage()}") from error
    return IngestResult(stats=totals, finished_at=datetime.now(UTC))
