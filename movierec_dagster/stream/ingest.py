"""The exactly-once ingest of rating events: one Structured Streaming query with the availableNow trigger.

Plain PySpark and Python, no Dagster: the asset, the crash test and the
benchmark all call `ingest_rating_events`. Exactly once comes from three
things together:

- the query's checkpoint (`lake/checkpoints/rating_events/<source>/`) records which
  input each micro-batch holds before the batch runs, and a batch is marked
  done only after its output is committed, so a killed run replays the same
  input as the same batch;
- each batch commits its rows to each table as its own part,
  `ingest_batch=cp<checkpoint id>-<batch id>`, in a Delta commit that carries the
  application transaction (checkpoint id, batch id): a replayed batch that was
  committed before is recognised and not committed again, and a new checkpoint
  (deleted, reset, or another source) can never touch an earlier batch;
- duplicates are looked up in every other part, so a replay classifies its rows
  exactly as the first attempt did, and events taken in under an earlier
  checkpoint still count as seen.

The lookup scans a 64-bit hash of each earlier id, not the ids: the table
`rating_event_ids` holds, part for part, the hashes of `rating_events`' rows (a
batch commits its part there before its valid part), and only the parts where a
hash of the batch matches are read for the exact comparison of the ids. A part of
`rating_events` with no part in the index (an index deleted, or a lake converted
without one) is indexed by the next batch.

Each source has a checkpoint of its own, named for it: switching the landing
folder for Event Hubs, or a landing folder that moved with a copied lake, starts
a new checkpoint, and whatever the new one reads again is rejected as a duplicate.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from movierec_dagster.names import EVENT_IDS, EVENTS, REJECTED_EVENTS
from movierec_dagster.resources.event_source import EventSource
from movierec_dagster.resources.lake import CHECKPOINTS, Lake
from movierec_dagster.stream import transforms
from movierec_dagster.resources.stream_checkpoint import StreamCheckpoint
from movierec_dagster.stream.transforms import BATCH, MAX_BROADCAST_IDS, REASON, BatchStats
from movierec_dagster.tables import TableVersion

EVENTS_TABLE, REJECTED_TABLE, EVENT_IDS_TABLE = EVENTS, REJECTED_EVENTS, EVENT_IDS
ID_HASH = "id_hash"


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


def checkpoint_uri(lake: Lake, source: EventSource) -> str:
    return lake.uri(CHECKPOINTS, EVENTS_TABLE, source.checkpoint_name())


def ingest_checkpoint(lake: Lake, source: EventSource) -> StreamCheckpoint:
    """The ingest's checkpoint for `source`, read without Spark (what the sensor compares the source with)."""
    return StreamCheckpoint(lake.filesystem(), lake.fs_path(CHECKPOINTS, EVENTS_TABLE, source.checkpoint_name()))


def batch_part(checkpoint_id: str, batch_id: int) -> str:
    """The table part of one micro-batch: unique across checkpoints, the same when the batch is replayed."""
    return f"{BATCH}=cp{checkpoint_id[:12]}-{batch_id:08d}"  # "cp" first: Spark reads the value as text


def process_batch(spark: SparkSession, lake: Lake, lines: DataFrame, checkpoint_id: str, batch_id: int) -> BatchStats | None:
    """Validate one micro-batch and commit it as its part of the three tables; None when it was committed before.

    Each table's commit carries the application transaction (checkpoint id, batch id), so running
    the batch again commits only what a killed attempt did not.
    """
    if lake.table(EVENTS_TABLE).committed_before(checkpoint_id, batch_id):
        return None
    part = batch_part(checkpoint_id, batch_id)
    transaction = (checkpoint_id, batch_id)
    now = datetime.now(UTC)
    parsed = transforms.parse_events(lines, now).cache()
    earlier = classified = None
    try:
        earlier = earlier_event_ids(spark, lake, parsed.where(F.col(REASON).isNull()).select("event_id"), part)
        classified = transforms.classify_batch(parsed, earlier, now).cache()
        stats = transforms.batch_stats(classified)
        if stats.read:
            # Rejected first, the index before the events: the valid part appearing is the last step of a batch.
            lake.write_table(transforms.rejected_events(classified), REJECTED_TABLE, part=part, transaction=transaction)
            valid = transforms.valid_events(classified)
            lake.write_table(id_hashes(valid), EVENT_IDS_TABLE, part=part, transaction=transaction)
            lake.write_table(valid, EVENTS_TABLE, part=part, transaction=transaction)
        return stats
    finally:
        for frame in (classified, earlier, parsed):
            if frame is not None:
                frame.unpersist()


def id_hashes(events: DataFrame, *keep: str) -> DataFrame:
    return events.select(F.xxhash64("event_id").alias(ID_HASH), *keep)


def earlier_event_ids(spark: SparkSession, lake: Lake, batch_ids: DataFrame, part: str) -> DataFrame | None:
    """The `event_id`s of every part of rating_events but `part` whose hash is one of `batch_ids`', cached, or None.

    Every earlier id equal to one of the batch has its hash, so the exact
    comparison needs no other; a duplicate is rare, so these are few. The
    batch's hashes are looked up in the index, a scan of 8 bytes per earlier
    event, and the matches (a duplicate, or rarely two ids of the same hash)
    kept; only the parts holding one are read, for the ids of those hashes.
    The caller unpersists what is returned. What the driver collects is a
    list of parts.
    """
    events = lake.table_version(EVENTS_TABLE)
    if events is None:
        return None
    # An empty part holds no ids (and a backfill would write no folder for it).
    earlier = {name: rows for name, rows in events.parts.items() if name != part and rows != 0}
    if not earlier:
        return None
    index = index_earlier_parts(spark, lake, events, earlier)
    small = batch_ids.count() <= MAX_BROADCAST_IDS
    matched = (
        lake.read_table(spark, EVENT_IDS_TABLE, version=index.only(earlier))
        .join(transforms.broadcast_if(id_hashes(batch_ids), small), ID_HASH, "left_semi")
        .select(BATCH, ID_HASH)
        .cache()
    )
    try:
        holding = [row[BATCH] for row in matched.select(BATCH).distinct().collect()]
        if not holding:
            return None
        ids = (
            id_hashes(lake.read_table(spark, EVENTS_TABLE, version=events.only(f"{BATCH}={name}" for name in holding)), "event_id")
            .join(transforms.broadcast_if(matched.select(ID_HASH), small), ID_HASH, "left_semi")
            .select("event_id")
            .cache()
        )
        ids.count()
        return ids
    finally:
        matched.unpersist()


def index_earlier_parts(spark: SparkSession, lake: Lake, events: TableVersion, earlier: dict[str, int]) -> TableVersion:
    """The index, after indexing every part of `earlier` it lacks (in one write and one commit)."""
    table = lake.table(EVENT_IDS_TABLE)
    index = table.current()
    missing = [name for name in earlier if index is None or name not in index.parts]
    if not missing:
        return index
    rows = lake.read_table(spark, EVENTS_TABLE, version=events.only(missing))
    return lake.write_table(id_hashes(rows, BATCH), EVENT_IDS_TABLE, partition_by=[BATCH], replace="nothing")


def ingest_rating_events(
    spark: SparkSession,
    lake: Lake,
    source: EventSource,
    *,
    log: Callable[[str], Any] = print,
) -> IngestResult:
    """Process everything the source holds that no earlier ingest processed, then stop."""
    totals = BatchStats()
    checkpoint = ingest_checkpoint(lake, source)

    def on_batch(lines: DataFrame, batch_id: int) -> None:
        # Spark writes the checkpoint's id before the first batch, and keeps it for the checkpoint's life.
        stats = process_batch(spark, lake, lines, checkpoint.query_id(), batch_id)
        if stats is None:
            log(f"batch {batch_id}: committed by an earlier run that stopped before its checkpoint did; not again")
            return
        totals.add(stats)
        log(
            f"batch {batch_id}: {stats.read:,} events read, {stats.accepted:,} accepted, "
            f"{stats.rejected:,} rejected ({stats.duplicates:,} duplicates)"
        )

    query = (
        source.read_stream(spark, checkpoint)
        .writeStream.queryName(f"{EVENTS_TABLE}_ingest")
        .foreachBatch(on_batch)
        .option("checkpointLocation", checkpoint_uri(lake, source))
        .trigger(availableNow=True)
        .start()
    )
    try:
        query.awaitTermination()
    except StreamingQueryException as error:
        raise IngestError(f"The rating events ingest failed: {error.getMessage()}") from error
    return IngestResult(stats=totals, finished_at=datetime.now(UTC))
