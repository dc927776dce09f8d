"""Ingest at a sustained arrival rate: does it keep up with 50,000 events/s on this machine?

The steady state the stream issue asks about: events keep arriving and ingests
run one after another (as the sensor requests them), each taking what landed
since the last. The generator (`movierec-generate`, a separate process on the
same cores) lands `--rate` events/s for `--seconds`; meanwhile this process
runs `ingest_rating_events` back to back in one warm Spark session, then once
more to take what is left. It keeps up when every event is in the table
shortly after the generator's last file lands (within about one ingest), and
the ingests stay the same size rather than growing with a backlog.

    .venv/bin/python -m bench.ingest_sustained [--rate 50000 --seconds 60 --warm-ups 3]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.ingest_throughput import land
from movierec_dagster.resources import LandingFolderSource, LocalLake, LocalSpark
from movierec_dagster.stream.ingest import ingest_rating_events


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=50_000, help="events per second the generator lands")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--warm-ups", type=int, default=3, help="rounds of 200,000 events before the clock starts")
    args = parser.parse_args()
    spark = LocalSpark(master="local[2]").session()
    with tempfile.TemporaryDirectory() as root:
        lake = LocalLake(root=root)
        source = LandingFolderSource(folder=lake.uri("landing", "rating_events"), max_files_per_batch=10_000)
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
        runs: list[tuple[int, float]] = []
        while True:
            finished = generator.poll() is not None
            run_started = time.perf_counter()
            read = ingest_rating_events(spark, lake, source, log=lambda _: None).stats.read
            runs.append((read, time.perf_counter() - run_started))
            if finished:
                break
            if not read:
                time.sleep(0.5)
        elapsed = time.perf_counter() - started
        if generator.returncode:
            raise SystemExit(f"the generator failed with exit code {generator.returncode}")
        ingested = sum(read for read, _ in runs)
        if ingested < total:
            raise SystemExit(f"only {ingested:,} of {total:,} events were read")
        busy = [(read, seconds) for read, seconds in runs if read]
        landed_in = generator_ended[0]
        print(
            f"arrival {args.rate:,} events/s planned for {args.seconds} s ({total:,} events): the generator took "
            f"{landed_in:.1f} s ({total / landed_in:,.0f} events/s); all were in the table "
            f"{elapsed - landed_in:.1f} s after the last landed"
        )
        print(
            f"{len(busy)} ingests: {statistics.median(r for r, _ in busy):,.0f} events and "
            f"{statistics.median(s for _, s in busy):.1f} s each (median), "
            f"{ingested / sum(s for _, s in busy):,.0f} events/s while ingesting; "
            f"last ingest {runs[-1][0]:,} events in {runs[-1][1]:.1f} s"
        )
        print(f"sustained: {ingested / elapsed:,.0f} events/s end to end; load average {os.getloadavg()[0]:.1f}")
    spark.stop()


if __name__ == "__main__":
    main()
