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

    .venv/bin/python -m bench.ingest_sustained [--rate 50000 --seconds 60 --warm-ups 3]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.ingest_throughput import land, landing_source
from movierec_dagster.resources import LocalLake, LocalSpark
from movierec_dagster.stream.ingest import ingest_rating_events

KEPT_UP = 0.97  # the share of the arrival rate that counts as keeping up (the sizes vary a little)


def report(total: int, landed_in: float, runs: list[tuple[int, float, bool]], tail: float) -> None:
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=50_000, help="events per second the generator lands")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--warm-ups", type=int, default=3, help="rounds of 200,000 events before the clock starts")
    args = parser.parse_args()
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
        report(total, generator_ended[0], runs, tail)
    spark.stop()


if __name__ == "__main__":
    main()
