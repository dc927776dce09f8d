"""Ingest steady state: events per second through `ingest_rating_events` (target: at least 50,000).

Lands `--files` x `--per-file` synthetic events (1% malformed) per round: the
first `--warm-ups` rounds warm the JVM (start, code generation, JIT: the CPU a
round costs settles after about three), then the last round is timed on top of
the earlier ones (so the duplicate lookup reads a non-empty table). Besides the
wall-clock rate it prints the CPU seconds the Spark JVM spent and the rate two
fully available cores would give: on a shared machine the wall clock mostly
measures the neighbours.

    .venv/bin/python -m bench.ingest_throughput [--files 20 --per-file 10000 --warm-ups 3]
"""

import argparse
import os
import random
import subprocess
import tempfile
import time
from pathlib import Path

from generator.sinks import LocalSink
from generator.sources import Population, encode_events, synthetic
from movierec_dagster.resources import LandingFolderSource, LocalLake, LocalSpark
from movierec_dagster.resources.lake import LANDING, LANDING_ARCHIVE
from movierec_dagster.stream.ingest import ingest_rating_events


def land(folder: Path, files: int, per_file: int, seed: int) -> int:
    rng = random.Random(seed)
    sink = LocalSink(folder, roll_events=per_file, roll_seconds=3_600, prefix=f"bench{seed}")
    lines = encode_events(synthetic(Population.default(), rng), rng, malformed_fraction=0.01)
    for _, line in zip(range(files * per_file), lines):
        sink.write(line)
    sink.close()
    return files * per_file


def landing_source(lake: LocalLake) -> LandingFolderSource:
    """The lake's landing folder, archived as the local deployment does, every landed file in one batch."""
    return LandingFolderSource(
        folder=lake.fs_path(LANDING, "rating_events"), archive_folder=lake.fs_path(LANDING_ARCHIVE), max_files_per_batch=10_000
    )


def jvm_cpu_seconds() -> float | None:
    """User + system CPU seconds of this process's Spark JVM (Linux /proc), or None when it cannot be read."""
    found = subprocess.run(["pgrep", "-P", str(os.getpid()), "java"], capture_output=True, text=True).stdout.split()
    try:
        fields = open(f"/proc/{found[0]}/stat").read().rsplit(")", 1)[1].split()
    except (IndexError, OSError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--per-file", type=int, default=10_000)
    parser.add_argument("--warm-ups", type=int, default=3)
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
