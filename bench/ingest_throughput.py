"""Ingest steady state: events per second through `ingest_rating_events` (target: at least 50,000).

Lands `--files` x `--per-file` synthetic events (1% malformed), runs one warm-up
ingest (JVM start, first plan), then times an ingest of a second landing of the
same size on top of the first (so duplicate lookup reads a non-empty table).

    .venv/bin/python -m bench.ingest_throughput [--files 20 --per-file 10000]
"""

import argparse
import random
import tempfile
import time
from pathlib import Path

from generator.sinks import LocalSink
from generator.sources import Population, encode_events, synthetic
from movierec_dagster.resources import LandingFolderSource, LocalLake, LocalSpark
from movierec_dagster.stream.ingest import ingest_rating_events


def land(folder: Path, files: int, per_file: int, seed: int) -> int:
    rng = random.Random(seed)
    sink = LocalSink(folder, roll_events=per_file, roll_seconds=3_600, prefix=f"bench{seed}")
    lines = encode_events(synthetic(Population.default(), rng), rng, malformed_fraction=0.01)
    for _, line in zip(range(files * per_file), lines):
        sink.write(line)
    sink.close()
    return files * per_file


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--per-file", type=int, default=10_000)
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args()
    started = time.perf_counter()
    spark = LocalSpark(master=args.master).session()
    print(f"Spark session: {time.perf_counter() - started:.1f} s ({args.master})")
    with tempfile.TemporaryDirectory() as root:
        lake = LocalLake(root=root)
        source = LandingFolderSource(folder=lake.uri("landing", "rating_events"), max_files_per_batch=10_000)
        landing = Path(source.folder)
        for round_, label in ((1, "warm-up"), (2, "steady state")):
            count = land(landing, args.files, args.per_file, seed=round_)
            started = time.perf_counter()
            result = ingest_rating_events(spark, lake, source, log=lambda _: None)
            seconds = time.perf_counter() - started
            stats = result.stats
            print(
                f"{label}: {count:,} events in {seconds:.1f} s = {stats.read / seconds:,.0f} events/s "
                f"({stats.accepted:,} accepted, {stats.rejected:,} rejected, {stats.batches} batch(es))"
            )
    spark.stop()


if __name__ == "__main__":
    main()
