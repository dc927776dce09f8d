"""The stream: the generator's rate, the ingest's (steady, sustained, with a large table), a landed file's latency
under `dagster dev`, and what the demo's stream does to the model.

    .venv/bin/python -m bench.stream <subcommand> [options]     (--help after a subcommand for its options)

Subcommands:
    generator-throughput  events per second from the generator to the local sink (target: at least 100,000)
    ingest-throughput     the ingest's steady rate through `ingest_rating_events` (target: at least 50,000 events/s)
    ingest-sustained      whether the ingest keeps up with events arriving at a sustained rate (--rate)
    ingest-at-scale       the ingest while `rating_events` already holds many events (--events-in-table 25000000;
                          --merge: a Delta merge instead of the id index)
    ingest-steps          each step of an ingest batch timed on its own, with many events in the table
    read-listing          what Spark's listing job costs a read of a version's files, against the driver's listing
    latency               seconds from a landed file to its events in `rating_events`, under `dagster dev`
    demo-quality          whether the demo's planted stream costs the model anything, judged on the held-out history

The generator and the three ingest benchmarks land the same events: the generator's synthetic stream on
ml-latest-small's shape, 1% malformed (`synthetic_event_lines`). `generator-throughput` reports this process's
peak memory (as it did as a module of its own), so only the generator and the standard library it needs are imported
at the top; Spark, pyarrow, the pipeline's code and the rest of the standard library are imported where they are used.
"""

import argparse
import json
import os
import random
import resource
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

from bench.common import ROOT, add_source, dagster_home, demo_environment, family_parser, free_port, run_demo, subcommand
from generator.events import encode_events, event_line
from generator.ratings import Rating
from generator.sinks import LocalSink
from generator.streams import synthetic
from generator.tastes import Population

# ---- shared: the events landed, the landing folder, the JVM's CPU ----


def synthetic_event_lines(seed: int) -> Iterator[bytes]:
    """The generator's synthetic stream on ml-latest-small's shape as event lines, 1% malformed, seeded."""
    rng = random.Random(seed)
    return encode_events(synthetic(Population.default(), rng), rng, malformed_fraction=0.01)


def write_events(sink: LocalSink, lines: Iterator[bytes], count: int) -> None:
    """`count` of `lines` through `sink`, which is then closed (its last file lands)."""
    for _, line in zip(range(count), lines):
        sink.write(line)
    sink.close()


def land(folder: Path, files: int, per_file: int, seed: int) -> int:
    """`files` files of `per_file` synthetic events landed in `folder`; the number of events."""
    sink = LocalSink(folder, roll_events=per_file, roll_seconds=3_600, prefix=f"bench{seed}")
    write_events(sink, synthetic_event_lines(seed), files * per_file)
    return files * per_file


def landing_source(lake, max_files_per_batch: int = 10_000):
    """The lake's landing folder, archived as the local deployment does; by default a batch takes every landed file
    its byte bound allows."""
    from movierec_dagster.resources import LandingFolderSource
    from movierec_dagster.resources.lake import LANDING, LANDING_ARCHIVE

    return LandingFolderSource(
        folder=lake.fs_path(LANDING, "rating_events"), archive_folder=lake.fs_path(LANDING_ARCHIVE), max_files_per_batch=max_files_per_batch
    )


def jvm_cpu_seconds() -> float | None:
    """User + system CPU seconds of this process's Spark JVM (Linux /proc), or None when it cannot be read."""
    import subprocess

    found = subprocess.run(["pgrep", "-P", str(os.getpid()), "java"], capture_output=True, text=True).stdout.split()
    try:
        fields = open(f"/proc/{found[0]}/stat").read().rsplit(")", 1)[1].split()
    except (IndexError, OSError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- generator-throughput: the generator to the local sink ----


def generator_throughput(args: argparse.Namespace) -> None:
    """Generator to the local sink: events per second (target: at least 100,000).

        .venv/bin/python -m bench.stream generator-throughput [--count 500000]
    """
    with tempfile.TemporaryDirectory() as folder:
        sink = LocalSink(Path(folder), roll_events=10_000, roll_seconds=3_600)
        lines = synthetic_event_lines(seed=1)
        cpu = time.process_time()
        started = time.perf_counter()
        write_events(sink, lines, args.count)
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu
        size = sum(f.stat().st_size for f in sink.files)
    print(f"generator -> local sink: {args.count:,} events in {len(sink.files)} files ({size / 1e6:.1f} MB)")
    print(f"   wall {wall:.2f} s = {args.count / wall:,.0f} events/s; CPU {cpu:.2f} s = {args.count / cpu:,.0f} events/s per core")
    print(f"   peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


# ---- ingest-throughput: the ingest's steady state ----


def ingest_throughput(args: argparse.Namespace) -> None:
    """Ingest steady state: events per second through `ingest_rating_events` (target: at least 50,000).

    Lands `--files` x `--per-file` synthetic events (1% malformed) per round: the
    first `--warm-ups` rounds warm the JVM (start, code generation, JIT: the CPU a
    round costs settles after about three), then the last round is timed on top of
    the earlier ones (so the duplicate lookup reads a non-empty table). Besides the
    wall-clock rate it prints the CPU seconds the Spark JVM spent and the rate two
    fully available cores would give: on a shared machine the wall clock mostly
    measures the neighbours.

        .venv/bin/python -m bench.stream ingest-throughput [--files 20 --per-file 10000 --warm-ups 3]
    """
    from movierec_dagster.resources import LocalLake, LocalSpark
    from movierec_dagster.stream.ingest import ingest_rating_events

    started = time.perf_counter()
    spark = LocalSpark(master=args.master).session()
    print(f"Spark session: {time.perf_counter() - started:.1f} s ({args.master})")
    with tempfile.TemporaryDirectory() as root:
        lake = LocalLake(root=root)
        source = landing_source(lake)
        landing = Path(source.folder)
        rounds = args.warm_ups + 1
        for round_ in range(1, rounds + 1):
            label = "steady state" if round_ == rounds else f"warm-up {round_}"
            count = land(landing, args.files, args.per_file, seed=round_)
            cpu_before, started = jvm_cpu_seconds(), time.perf_counter()
            result = ingest_rating_events(spark, lake, source, log=lambda _: None)
            seconds = time.perf_counter() - started
            cpu_after = jvm_cpu_seconds()
            stats = result.stats
            cpu = ""
            if cpu_before is not None and cpu_after is not None:
                spent = cpu_after - cpu_before
                cpu = f"; JVM CPU {spent:.1f} s = {stats.read / (spent / 2):,.0f} events/s on 2 free cores"
            print(
                f"{label}: {count:,} events in {seconds:.1f} s = {stats.read / seconds:,.0f} events/s "
                f"({stats.accepted:,} accepted, {stats.rejected:,} rejected, {stats.batches} batch(es)){cpu}; "
                f"load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    spark.stop()


# ---- ingest-sustained: the ingest at a sustained arrival rate ----

KEPT_UP = 0.97  # the share of the arrival rate that counts as keeping up (the sizes vary a little)


def report_sustained(total: int, landed_in: float, runs: list[tuple[int, float, bool]], tail: float) -> None:
    arrival = total / landed_in
    during = [(read, seconds) for read, seconds, finished in runs if read and not finished]
    if len(during) < 2:
        raise SystemExit(f"only {len(during)} ingest(s) ran while events arrived: run for longer (--seconds)")
    settled = during[len(during) // 2 :]
    taken = sum(read for read, _ in settled) / sum(seconds for _, seconds in settled)
    kept_up = taken >= KEPT_UP * arrival
    print(f"arrival: {total:,} events in {landed_in:.1f} s = {arrival:,.0f} events/s")
    print(f"{len(during)} ingests while they arrived: " + ", ".join(f"{r // 1000:,}k/{s:.1f}s" for r, s in during))
    print(
        f"second half: the ingests took in {taken:,.0f} events/s while {arrival:,.0f} arrived: "
        + ("kept up" if kept_up else "fell behind")
    )
    print(f"the last event was in the table {tail:.1f} s after it landed; load average {os.getloadavg()[0]:.1f}")


def ingest_sustained(args: argparse.Namespace) -> None:
    """Ingest at a sustained arrival rate: does it keep up with 50,000 events/s on this machine?

    The steady state the stream issue asks about: events keep arriving and ingests
    run one after another (as the sensor requests them), each taking what landed
    since the last. The generator (`movierec-generate`, a separate process on the
    same cores) lands `--rate` events/s for `--seconds`; meanwhile this process
    runs `ingest_rating_events` back to back in one warm Spark session, then once
    more to take what is left.

    Back to back, the ingests can only take what arrives, so what shows whether
    they keep up is the backlog. Keeping up, each ingest takes about what arrived
    during the one before, the sizes settle, and over the second half of the run
    the ingests take in events as fast as they arrive; falling behind, the sizes
    keep growing and they take in less than arrives. Run it at rates above the
    target to find where it stops keeping up.

        .venv/bin/python -m bench.stream ingest-sustained [--rate 50000 --seconds 60 --warm-ups 3]
    """
    import subprocess

    from movierec_dagster.resources import LocalLake, LocalSpark
    from movierec_dagster.stream.ingest import ingest_rating_events

    spark = LocalSpark(master="local[2]").session()
    with tempfile.TemporaryDirectory() as root:
        lake = LocalLake(root=root)
        source = landing_source(lake)
        for round_ in range(1, args.warm_ups + 1):
            land(Path(source.folder), 20, 10_000, seed=round_)
            ingest_rating_events(spark, lake, source, log=lambda _: None)
        total = args.rate * args.seconds
        generator = subprocess.Popen(
            [sys.executable, "-m", "generator.cli", "--source", "synthetic", "--malformed", "0.01", "--seed", "99",
             "--landing", source.folder, "--roll-events", str(max(args.rate // 5, 1_000)), "--roll-seconds", "1",
             "--rate", str(args.rate), "--count", str(total), "--quiet"],
        )
        started = time.perf_counter()
        generator_ended: list[float] = []
        threading.Thread(
            target=lambda: (generator.wait(), generator_ended.append(time.perf_counter() - started)), daemon=True
        ).start()
        runs: list[tuple[int, float, bool]] = []  # events read, seconds, whether the generator had finished
        while True:
            finished = generator.poll() is not None
            run_started = time.perf_counter()
            read = ingest_rating_events(spark, lake, source, log=lambda _: None).stats.read
            runs.append((read, time.perf_counter() - run_started, finished))
            if finished:
                break
            if not read:
                time.sleep(0.5)
        tail = time.perf_counter() - started - generator_ended[0]
        if generator.returncode:
            raise SystemExit(f"the generator failed with exit code {generator.returncode}")
        ingested = sum(read for read, _, _ in runs)
        if ingested < total:
            raise SystemExit(f"only {ingested:,} of {total:,} events were read")
        report_sustained(total, generator_ended[0], runs, tail)
    spark.stop()


# ---- ingest-at-scale: the ingest with a large table ----

FILLED_CHECKPOINT = "filledtable0"  # the checkpoint id the filled parts are named for


def old_event_id(number: int) -> str:
    """The id of the table's `number`th filled event (what `fill_table` writes in Spark)."""
    import hashlib

    digest = hashlib.md5(str(number).encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:]}"


def fill_table(spark, lake, events: int, part_events: int) -> int:
    """Commit `events` rows to `rating_events` as parts of `part_events` rows; returns the number of parts."""
    from pyspark.sql import functions as F

    from movierec_dagster.stream.ingest import EVENTS_TABLE
    from movierec_dagster.stream.transforms import BATCH

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


def merge_seconds(lake, new_events: int, duplicates: int, table_events: int) -> tuple[float, int]:
    """The other way to drop ids seen before: a Delta merge (delta-rs, on the driver) of a batch of `new_events`
    new and `duplicates` resent events into `rating_events`, inserting the unseen ones. Its seconds and rows inserted."""
    import pyarrow as pa

    from movierec_dagster.stream.ingest import EVENTS_TABLE
    from movierec_dagster.stream.transforms import BATCH

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


def ingest_at_scale(args: argparse.Namespace) -> None:
    """The ingest while `rating_events` already holds many events (issue 13's target: 50,000 events/s at 25M).

    Fills `rating_events` with `--events-in-table` events as earlier ingests leave
    it (parts of `--part-events` rows, one per earlier batch, ids shaped as the
    generator's UUIDs), written by Spark in one job; warms the JVM with one small
    ingest; then lands `--events` synthetic events (1% malformed) plus
    `--duplicates` resent events whose ids are already in the table, in files of `--per-file`
    events, and times the ingest of them in the landing source's batches (at most
    `--files-per-batch` files, and at most its byte bound: its defaults).
    Prints each batch's seconds and the CPU the Spark JVM spent on it (what the
    duplicate lookup adds grows with the table), and the events/s. With `--merge`,
    then times the alternative to the ingest's id index: a Delta merge (delta-rs)
    of a batch as large as one of the ingest's into the table, inserting the ids
    not in it.

        .venv/bin/python -m bench.stream ingest-at-scale [--events-in-table 25000000 --events 1000000]
    """
    from movierec_dagster.resources import LandingFolderSource, LocalLake, LocalSpark
    from movierec_dagster.stream.ingest import ingest_rating_events

    spark = LocalSpark(master="local[2]", driver_memory=args.driver_memory).session()
    with tempfile.TemporaryDirectory() as root:
        lake = LocalLake(root=root)
        started = time.perf_counter()
        parts = fill_table(spark, lake, args.events_in_table, args.part_events)
        seconds = time.perf_counter() - started
        print(f"filled rating_events: {args.events_in_table:,} events in {parts} parts, {seconds:.0f} s")
        default_files = LandingFolderSource.model_fields["max_files_per_batch"].default
        source = landing_source(lake, max_files_per_batch=args.files_per_batch or default_files)
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


def ingest_steps(args: argparse.Namespace) -> None:
    """Each step of one ingest batch timed on its own, with `--events-in-table` events already in the table.

    Fills `rating_events` as `ingest-at-scale` does, then runs `--rounds` batches of `--events` new
    events (1% malformed) through the steps `process_batch` takes, each forced and timed: parsing and
    checking the lines (cached), the id index's lookup of the batch's ids, marking duplicates (cached),
    and the three writes. The first round also indexes every filled part and warms the JVM.

        .venv/bin/python -m bench.stream ingest-steps [--events-in-table 25000000 --events 500000]
    """
    from datetime import UTC, datetime

    from pyspark.sql import functions as F

    from movierec_dagster.resources import LocalLake, LocalSpark
    from movierec_dagster.stream import transforms
    from movierec_dagster.stream.ingest import EVENT_IDS_TABLE, EVENTS_TABLE, REJECTED_TABLE, batch_part, earlier_event_ids, id_hashes

    spark = LocalSpark(master="local[2]", driver_memory=args.driver_memory).session()
    with tempfile.TemporaryDirectory() as root:
        lake = LocalLake(root=root)
        parts = fill_table(spark, lake, args.events_in_table, args.part_events)
        print(f"filled rating_events: {args.events_in_table:,} events in {parts} parts")
        for number in range(args.rounds):
            folder = Path(root) / "landing" / str(number)
            land(folder, -(-args.events // args.per_file), args.per_file, seed=10 + number)
            lines = spark.read.text(str(folder)).select(
                "value", F.col("_metadata.file_path").alias("source"), F.col("_metadata.file_modification_time").alias("landed_at")
            )
            part, transaction, now = batch_part("bench0steps0", number), ("bench", number), datetime.now(UTC)
            ends = [("", time.perf_counter())]
            parsed = transforms.parse_events(lines, now).cache()
            parsed.count()
            ends.append(("parse", time.perf_counter()))
            earlier = earlier_event_ids(spark, lake, parsed.where(F.col(transforms.REASON).isNull()).select("event_id"), part)
            ends.append(("id lookup", time.perf_counter()))
            classified = transforms.classify_batch(parsed, earlier, now).cache()
            transforms.batch_stats(classified)
            ends.append(("duplicates", time.perf_counter()))
            lake.write_table(transforms.rejected_events(classified), REJECTED_TABLE, part=part, transaction=transaction)
            valid = transforms.valid_events(classified)
            lake.write_table(id_hashes(valid), EVENT_IDS_TABLE, part=part, transaction=transaction)
            lake.write_table(valid, EVENTS_TABLE, part=part, transaction=transaction)
            ends.append(("writes", time.perf_counter()))
            seconds = {step: end - before for (_, before), (step, end) in zip(ends, ends[1:])}
            for frame in (classified, earlier, parsed):
                if frame is not None:
                    frame.unpersist()
            steps = ", ".join(f"{step} {value:.2f} s" for step, value in seconds.items())
            note = " (also indexes the filled parts, and warms the JVM)" if number == 0 else ""
            print(f"round {number}: {args.events:,} events: {steps}; {sum(seconds.values()):.2f} s in all{note}", flush=True)
    spark.stop()


def read_listing(args: argparse.Namespace) -> None:
    """What Spark's listing of a table version's files costs a read: `--files` Parquet files named one by one, as the
    lake's readers name them, read with Spark's listing job (its default threshold, 32 paths) and with the local
    session's listing on the driver, alternated, after warm-up reads. Prints each way's median and fastest read.

        .venv/bin/python -m bench.stream read-listing [--files 127 --reads 15]
    """
    import statistics

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from movierec_dagster.resources import LocalSpark
    from movierec_dagster.resources.spark import LOCAL_LISTING_THRESHOLD

    threshold = "spark.sql.sources.parallelPartitionDiscovery.threshold"
    spark = LocalSpark(master="local[2]", driver_memory="2g").session()
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for number in range(args.files):
            path = Path(folder) / f"part-{number:05d}.parquet"
            pq.write_table(pa.table({"id_hash": np.arange(1_000, dtype=np.int64)}), path)
            paths.append(path.as_uri())

        def read() -> float:
            started = time.perf_counter()
            spark.read.schema("id_hash long").option("basePath", Path(folder).as_uri()).parquet(*paths).count()
            return time.perf_counter() - started

        for _ in range(10):
            read()
        for _ in range(2):
            for label, value in (("a Spark job (Spark's default)", "32"), ("the driver (the local session)", str(LOCAL_LISTING_THRESHOLD))):
                spark.conf.set(threshold, value)
                seconds = [read() for _ in range(args.reads)]
                print(f"{args.files} files listed by {label}: median {statistics.median(seconds):.3f} s, fastest {min(seconds):.3f} s")
    spark.stop()


# ---- latency: a landed file to `rating_events`, under `dagster dev` ----

SENSOR = "rating_events_sensor"
POLL_SECONDS = 0.5

SENSORS_QUERY = """
query {
  repositoriesOrError {
    ... on RepositoryConnection {
      nodes { name location { name } sensors { name sensorState { status ticks(limit: 1) { timestamp status } } } }
    }
    ... on PythonError { message }
  }
}
"""
START_SENSOR = """
mutation ($selector: SensorSelector!) {
  startSensor(sensorSelector: $selector) {
    ... on Sensor { sensorState { status } }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}
"""


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    import urllib.request

    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.load(response)
    if body.get("errors"):
        raise RuntimeError(f"GraphQL error: {body['errors']}")
    return body["data"]


def sensor_state(port: int) -> tuple[dict, dict] | None:
    """(repository selector, sensor) for the ingest sensor, or None while the code location is loading."""
    data = graphql(port, SENSORS_QUERY)["repositoriesOrError"]
    if "message" in data:
        raise RuntimeError(f"The code location failed to load: {data['message']}")
    for repository in data.get("nodes", []):
        for found in repository["sensors"]:
            if found["name"] == SENSOR:
                selector = {
                    "repositoryLocationName": repository["location"]["name"],
                    "repositoryName": repository["name"],
                    "sensorName": SENSOR,
                }
                return selector, found
    return None


def wait_until(what: str, condition, timeout: float, process, log: Path):
    """condition()'s first true result, polled until `timeout` while `process` (dagster dev, logging to `log`) runs."""
    import urllib.error

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dagster dev exited ({process.returncode}) while waiting for {what}; see {log}")
        try:
            result = condition()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            result = None
        if result:
            return result
        time.sleep(POLL_SECONDS)
    raise TimeoutError(f"Gave up after {timeout:.0f} s waiting for {what}; see {log}")


def ingested_ids(table: Path) -> set[str]:
    """The event ids in the table now; a folder being swapped in mid-read is read again on the next poll."""
    import pyarrow.dataset as ds

    if not table.is_dir():
        return set()
    try:
        events = ds.dataset(table, format="parquet", partitioning="hive").to_table(columns=["event_id"])
        return set(events["event_id"].to_pylist())
    except (OSError, ValueError):  # a batch folder renamed while it was listed
        return set()


def land_tracked(landing: Path, count: int, rng: random.Random) -> set[str]:
    """One file of `count` valid synthetic events landed in `landing`; their ids."""
    sink = LocalSink(landing, roll_events=count, roll_seconds=3_600, prefix="latency")
    ids = set()
    for rating in islice(synthetic(Population.default(), rng), count):
        event_id = str(uuid.UUID(int=rng.getrandbits(128)))
        ids.add(event_id)
        sink.write(event_line(event_id, rating).encode())
    sink.close()  # renames the file into the landing folder: the moment it lands
    return ids


def latency(args: argparse.Namespace) -> None:
    """Stream latency: seconds from a file of events landing to those events being in `rating_events`, under `dagster dev`.

    Starts `dagster dev` on a free localhost port with a temporary MOVIEREC_HOME
    (its dagster_home holds a copy of infra/local/dagster.yaml), makes sure
    `rating_events_sensor` is running (it defaults to running; it is started
    through the GraphQL API otherwise), waits for the sensor's first tick, then
    `--rounds` times: lands `--events` events with the generator's LocalSink and
    polls the `rating_events` Parquet table (pyarrow, no Spark) until every one of
    them is there. The ingest reads only the landing folder: no ETL run is needed.
    Stops `dagster dev` (its whole process group) at the end.

        .venv/bin/python -m bench.stream latency [--rounds 3 --events 1000]
    """
    import statistics
    import subprocess

    home = Path(tempfile.mkdtemp(prefix="movierec-latency-"))
    instance_home = dagster_home(home / "dagster_home")
    lake = home / "lake"
    landing, table = lake / "landing" / "rating_events", lake / "tables" / "rating_events"
    port = free_port()
    log = home / "dagster-dev.log"
    env = {**os.environ, "MOVIEREC_HOME": str(home), "DAGSTER_HOME": str(instance_home)}
    print(f"dagster dev on 127.0.0.1:{port}, MOVIEREC_HOME={home}, log {log}", flush=True)
    started = time.monotonic()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the webserver, the daemon, code servers, run workers
        )
    latencies = []
    try:
        selector, found = wait_until("the code location to load", lambda: sensor_state(port), 300, process, log)
        print(f"code location loaded in {time.monotonic() - started:.1f} s; {SENSOR} is {found['sensorState']['status']}")
        if found["sensorState"]["status"] != "RUNNING":
            result = graphql(port, START_SENSOR, {"selector": selector})["startSensor"]
            if result.get("sensorState", {}).get("status") != "RUNNING":
                raise RuntimeError(f"Could not start {SENSOR}: {result}")
            print(f"started {SENSOR} through the GraphQL API")
        first_tick = lambda: sensor_state(port)[1]["sensorState"]["ticks"]  # noqa: E731
        wait_until(f"the first tick of {SENSOR}", first_tick, 300, process, log)
        print(f"{SENSOR} ticking {time.monotonic() - started:.1f} s after start\n", flush=True)

        rng = random.Random(7)
        for round_ in range(1, args.rounds + 1):
            ids = land_tracked(landing, args.events, rng)
            landed = time.monotonic()
            arrived = lambda ids=ids: ids <= ingested_ids(table)  # noqa: E731
            wait_until(f"round {round_}'s events in rating_events", arrived, args.timeout, process, log)
            seconds = time.monotonic() - landed
            latencies.append(seconds)
            print(f"round {round_}: {args.events:,} events landed -> in rating_events after {seconds:.1f} s", flush=True)
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    print(
        f"\nlanding -> rating_events: median {statistics.median(latencies):.1f} s, "
        f"min {min(latencies):.1f} s, max {max(latencies):.1f} s over {len(latencies)} round(s); "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )


# ---- demo-quality: does the demo's stream cost the model anything? ----


def on_history(train, held_out_history, params) -> dict[str, float]:
    from movierec_dagster.model import evaluation

    measured, bundle = evaluation.evaluate(train, held_out_history, params)
    bundle.release()
    return {"rmse": measured.metrics["rmse"], "ndcg_at_10": measured.metrics["ndcg_at_10"]}


def demo_quality(args: argparse.Namespace) -> None:
    """Does the demo's stream cost the model anything? `make demo` twice on ml-latest-small, then the model judged on the history.

    The demo's burst (5,000 events, 5% malformed) is planted on the history's tastes. After each
    demo this fits the shipped model on the training split of what the demo trained on (history
    plus stream) and measures it on the held-out history ratings; beside it the same model fitted
    on the history alone and measured on the same rows, and the same model after 5,000 uniformly
    random ratings (the demo's stream before issue 12). The split hashes (user, movie, seed),
    so a history rating is held out in every variant or in none. Target (issue 12): the demo's
    model no worse than the history's by more than 0.005 RMSE and 0.005 NDCG@10, and the second
    demo no worse than the first.

        .venv/bin/python -m bench.stream demo-quality [--source PATH]
    """
    from pyspark.sql import functions as F

    from movierec_dagster.model import evaluation, training
    from movierec_dagster.resources import LocalLake, LocalSpark

    params = training.ModelParams()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        spark = None
        for demo in (1, 2):
            output = run_demo(demo_environment(home, dagster_home(home / "dagster_home"), args.source))
            gate = next((line.strip() for line in output.splitlines() if "the gate" in line), "")
            spark = spark or LocalSpark(master="local[2]", shuffle_partitions=2).session()
            lake = LocalLake(root=str(home / "lake"))
            history = lake.read_table(spark, "ratings").select("user_id", "movie_id", "rating").cache()
            merged = lake.read_table(spark, "training_ratings").select("user_id", "movie_id", "rating").cache()
            history_train, history_test = evaluation.split(history, 0.2, params.seed)
            merged_train, _ = evaluation.split(merged, 0.2, params.seed)
            if demo == 1:
                rows.append(("history alone", history.count(), on_history(history_train, history_test, params)))
                noise = [r[:3] for r in islice(synthetic(Population.from_ratings([Rating(r.user_id, r.movie_id, r.rating, 0) for r in history.collect()]), random.Random(12), ratings="random"), 5_000)]
                noisy = history.unionByName(spark.createDataFrame(noise, "user_id int, movie_id int, rating double"))
                noisy = noisy.groupBy("user_id", "movie_id").agg(F.last("rating").alias("rating"))
                rows.append(("history + 5,000 random ratings", noisy.count(), on_history(evaluation.split(noisy, 0.2, params.seed)[0], history_test, params)))
            rows.append((f"after demo {demo} (history + planted stream)", merged.count(), on_history(merged_train, history_test, params)))
            print(f"demo {demo}: {gate}", flush=True)
            history.unpersist()
            merged.unpersist()
    base = rows[0][2]
    print("\n| trained on | ratings | RMSE on held-out history | NDCG@10 on held-out history | vs history alone |")
    print("|---|---|---|---|---|")
    for name, count, metrics in rows:
        delta = f"{metrics['rmse'] - base['rmse']:+.4f} RMSE, {metrics['ndcg_at_10'] - base['ndcg_at_10']:+.4f} NDCG@10"
        print(f"| {name} | {count:,} | {metrics['rmse']:.4f} | {metrics['ndcg_at_10']:.4f} | {delta} |")


# ---- the command line ----


def build_parser() -> argparse.ArgumentParser:
    parser, commands = family_parser("python -m bench.stream", __doc__)

    command = subcommand(commands, "generator-throughput", generator_throughput)
    command.add_argument("--count", type=int, default=500_000)

    command = subcommand(commands, "ingest-throughput", ingest_throughput)
    command.add_argument("--files", type=int, default=20)
    command.add_argument("--per-file", type=int, default=10_000)
    command.add_argument("--warm-ups", type=int, default=3)
    command.add_argument("--master", default="local[2]")

    command = subcommand(commands, "ingest-sustained", ingest_sustained)
    command.add_argument("--rate", type=int, default=50_000, help="events per second the generator lands")
    command.add_argument("--seconds", type=int, default=60)
    command.add_argument("--warm-ups", type=int, default=3, help="rounds of 200,000 events before the clock starts")

    command = subcommand(commands, "ingest-at-scale", ingest_at_scale)
    command.add_argument("--events-in-table", type=int, default=25_000_000)
    command.add_argument("--part-events", type=int, default=200_000, help="rows of each filled part (earlier batch)")
    command.add_argument("--events", type=int, default=1_000_000, help="new events landed and timed")
    command.add_argument("--duplicates", type=int, default=10_000, help="resent events with ids already in the table")
    command.add_argument("--per-file", type=int, default=10_000, help="events a landed file (the generator's default)")
    command.add_argument(
        "--files-per-batch", type=int, help="the landing source's file limit (default: its own; its byte limit holds too)"
    )
    command.add_argument("--driver-memory", default="4g")
    command.add_argument(
        "--merge", action="store_true", help="then time a Delta merge doing the duplicate lookup instead, for comparison"
    )

    command = subcommand(commands, "ingest-steps", ingest_steps)
    command.add_argument("--events-in-table", type=int, default=25_000_000)
    command.add_argument("--part-events", type=int, default=200_000, help="rows of each filled part (earlier batch)")
    command.add_argument("--events", type=int, default=500_000, help="new events in each timed batch")
    command.add_argument("--per-file", type=int, default=50_000)
    command.add_argument("--rounds", type=int, default=3)
    command.add_argument("--driver-memory", default="4g")

    command = subcommand(commands, "read-listing", read_listing)
    command.add_argument("--files", type=int, default=127, help="files of the version read (the 25M shape's id index: 127)")
    command.add_argument("--reads", type=int, default=15, help="reads timed each way, each round")

    command = subcommand(commands, "latency", latency)
    command.add_argument("--rounds", type=int, default=3)
    command.add_argument("--events", type=int, default=1_000)
    command.add_argument("--timeout", type=float, default=300, help="seconds to wait for one round's events")
    command.add_argument("--keep", action="store_true", help="keep the temporary home (logs, lake) afterwards")

    add_source(subcommand(commands, "demo-quality", demo_quality))
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.benchmark(args)


if __name__ == "__main__":
    main()
