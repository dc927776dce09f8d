"""The ingest while `rating_events` already holds many events (issue 13's target: 50,000 events/s at 25M).

Fills `rating_events` with `--events-in-table` events as earlier ingests leave
it (parts of `--part-events` rows, one per earlier batch, ids shaped as the
generator's UUIDs), written by Spark in one job; warms the JVM with one small
ingest; then lands `--events` synthetic events (1% malformed) plus
`--duplicates` resent events whose ids are already in the table, and times the
ingest of them in batches of `--files-per-batch` files of `--per-file` events.
Prints each batch's seconds and the CPU the Spark JVM spent on it (what the
duplicate lookup adds grows with the table), and the events/s. With `--merge`,
then times the alternative to the ingest's id index: a Delta merge (delta-rs)
of a batch as large as one of the ingest's into the table, inserting the ids
not in it.

    .venv/bin/python -m bench.ingest_at_scale [--events-in-table 25000000 --events 1000000]
"""

import argparse
import hashlib
import os
import tempfile
import time
import uuid
from pathlib import Path

import pyarrow as pa
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from bench.ingest_throughput import jvm_cpu_seconds, land
from movierec_dagster.resources import LandingFolderSource, LocalLake, LocalSpark
from movierec_dagster.resources.lake import LANDING, LANDING_ARCHIVE
from movierec_dagster.stream.ingest import EVENTS_TABLE, ingest_rating_events
from movierec_dagster.stream.transforms import BATCH

FILLED_CHECKPOINT = "filledtable0"  # the checkpoint id the filled parts are named for


def old_event_id(number: int) -> str:
    """The id of the table's `number`th filled event (what `fill_table` writes in Spark)."""
    digest = hashlib.md5(str(number).encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:]}"


def fill_table(spark: SparkSession, lake: LocalLake, events: int, part_events: int) -> int:
    """Commit `events` rows to `rating_events` as parts of `part_events` rows; returns the number of parts."""
    parts = max(1, -(-events // part_events))
    digest = F.md5(F.col("id").cast("string"))
    groups = ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))
    event_id = F.concat_ws("-", *(F.substring(digest, start, length) for start, length in groups))
    rows = spark.range(0, events, numPartitions=parts).select(
        event_id.alias("event_id"),
        (F.col("id") % 200_000 + 1).cast("int").alias("user_id"),
        (F.col("id") % 50_000 + 1).cast("int").alias("movie_id"),
        ((F.col("id") % 10 + 1) / 2).alias("rating"),
        F.timestamp_seconds(F.lit(1_700_000_000) + F.col("id") % 86_400_000).alias("rated_at"),
        F.current_timestamp().alias("ingested_at"),
        F.format_string(f"cp{FILLED_CHECKPOINT}-%08d", F.spark_partition_id()).alias(BATCH),
    )
    lake.write_table(rows, EVENTS_TABLE, partition_by=[BATCH])
    return parts


def merge_seconds(lake: LocalLake, new_events: int, duplicates: int, table_events: int) -> tuple[float, int]:
    """The other way to drop ids seen before: a Delta merge (delta-rs, on the driver) of a batch of `new_events`
    new and `duplicates` resent events into `rating_events`, inserting the unseen ones. Its seconds and rows inserted."""
    version = lake.table_version(EVENTS_TABLE)
    step = max(1, table_events // max(duplicates, 1))
    ids = [str(uuid.uuid4()) for _ in range(new_events)] + [old_event_id(n) for n in range(0, step * duplicates, step)]
    count = len(ids)
    schema = version.schema
    batch = pa.table(
        {
            "event_id": pa.array(ids, pa.string()),
            "user_id": pa.array([1] * count, pa.int32()),
            "movie_id": pa.array([1] * count, pa.int32()),
            "rating": pa.array([4.0] * count),
            "rated_at": pa.array([0] * count, pa.int64()).cast(schema.field("rated_at").type),
            "ingested_at": pa.array([0] * count, pa.int64()).cast(schema.field("ingested_at").type),
            BATCH: pa.array([f"cpmerge-{0:08d}"] * count),
        }
    ).cast(schema)
    delta = lake.table(EVENTS_TABLE).delta(version)
    started = time.perf_counter()
    outcome = (
        delta.merge(source=batch, predicate="t.event_id = s.event_id", source_alias="s", target_alias="t")
        .when_not_matched_insert_all()
        .execute()
    )
    return time.perf_counter() - started, int(outcome.get("num_target_rows_inserted", 0))


def land_duplicates(folder: Path, count: int, table_events: int) -> None:
    """A file of `count` resent events, their ids spread over the whole filled table."""
    step = max(1, table_events // max(count, 1))
    with open(folder / "resent.jsonl", "w") as out:
        for number in range(0, step * count, step):
            event_id = old_event_id(number)
            out.write(f'{{"event_id":"{event_id}","user_id":1,"movie_id":1,"rating":4.0,"timestamp":1700000000}}\n')


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events-in-table", type=int, default=25_000_000)
    parser.add_argument("--part-events", type=int, default=200_000, help="rows of each filled part (earlier batch)")
    parser.add_argument("--events", type=int, default=1_000_000, help="new events landed and timed")
    parser.add_argument("--duplicates", type=int, default=10_000, help="resent events with ids already in the table")
    parser.add_argument("--per-file", type=int, default=100_000)
    parser.add_argument("--files-per-batch", type=int, default=5)
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument(
        "--merge", action="store_true", help="then time a Delta merge doing the duplicate lookup instead, for comparison"
    )
    args = parser.parse_args()
    spark = LocalSpark(master="local[2]", driver_memory=args.driver_memory).session()
    with tempfile.TemporaryDirectory() as root:
        lake = LocalLake(root=root)
        started = time.perf_counter()
        parts = fill_table(spark, lake, args.events_in_table, args.part_events)
        seconds = time.perf_counter() - started
        print(f"filled rating_events: {args.events_in_table:,} events in {parts} parts, {seconds:.0f} s")
        source = LandingFolderSource(
            folder=lake.fs_path(LANDING, "rating_events"),
            archive_folder=lake.fs_path(LANDING_ARCHIVE),
            max_files_per_batch=args.files_per_batch,
        )
        landing = Path(source.folder)
        land(landing, 1, 50_000, seed=1)
        started = time.perf_counter()
        ingest_rating_events(spark, lake, source, log=lambda _: None)
        seconds = time.perf_counter() - started
        print(f"warm-up ingest (50,000 events, the first batch on the filled table): {seconds:.1f} s")

        land(landing, -(-args.events // args.per_file), args.per_file, seed=2)
        land_duplicates(landing, args.duplicates, args.events_in_table)
        batch_ends: list[tuple[float, float | None, str]] = []  # wall clock, JVM CPU, the batch's log line

        def batch_done(line: str) -> None:
            batch_ends.append((time.perf_counter(), jvm_cpu_seconds(), line))

        cpu_before, started = jvm_cpu_seconds(), time.perf_counter()
        result = ingest_rating_events(spark, lake, source, log=batch_done)
        seconds = time.perf_counter() - started
        cpu_after = jvm_cpu_seconds()
        stats = result.stats
        previous = (started, cpu_before)
        for end, cpu_end, line in batch_ends:
            cpu = "" if cpu_end is None or previous[1] is None else f", JVM CPU {cpu_end - previous[1]:.1f} s"
            print(f"  {line}: {end - previous[0]:.1f} s{cpu}")
            previous = (end, cpu_end)
        cpu = "" if cpu_before is None or cpu_after is None else f"; JVM CPU {cpu_after - cpu_before:.0f} s"
        print(
            f"ingest at {args.events_in_table:,} in the table: {stats.read:,} events in {stats.batches} batches, "
            f"{seconds:.1f} s = {stats.read / seconds:,.0f} events/s ({stats.accepted:,} accepted, "
            f"{stats.duplicates:,} duplicates, {stats.rejected - stats.duplicates:,} other rejects){cpu}; "
            f"load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        if args.merge:
            seconds, inserted = merge_seconds(lake, args.events // 2, args.duplicates, args.events_in_table)
            print(
                f"Delta merge (delta-rs) of {args.events // 2:,} new and {args.duplicates:,} resent events into "
                f"the table: {seconds:.1f} s, {inserted:,} inserted",
                flush=True,
            )
    spark.stop()


if __name__ == "__main__":
    main()
