"""`make demo`'s pipeline against the seed's pipeline as a plain PySpark script, alternated on ml-latest-small.

Each pair runs the seed's script (../shared/seed-pipeline/seed_pipeline.py, a fresh process
and work folder) and then the demo (`python -m movierec_dagster.demo`, a fresh process on an
empty MOVIEREC_HOME), both with this venv, one after the other, so the two see the same
machine. Reported per run: the whole process's wall time for both; for the demo also its own
"Whole pipeline" figure (from the Spark start to the last line, Python's imports excluded),
and the load average. Target (issue 12): the demo's pipeline within 1.6x the seed's script.

    .venv/bin/python -m bench.demo_vs_seed [--pairs 3] [--source PATH]
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.paths import MOVIELENS

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT.parent / "shared" / "seed-pipeline" / "seed_pipeline.py"


def timed(command: list[str], environment: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, env=environment, cwd=ROOT, check=True, capture_output=True, text=True)
    return time.perf_counter() - started, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--source", default=str(MOVIELENS))
    args = parser.parse_args()
    seed_times, demo_times, pipeline_times = [], [], []
    print("| pair | load | seed script | demo process | demo pipeline | pipeline / seed |")
    print("|---|---|---|---|---|---|")
    for pair in range(1, args.pairs + 1):
        with tempfile.TemporaryDirectory() as folder:
            home = Path(folder)
            load = os.getloadavg()[0]
            seed_seconds, _ = timed([sys.executable, str(SEED), args.source, str(home / "seed")], dict(os.environ))
            (home / "dagster_home").mkdir()
            shutil.copy(ROOT / "infra" / "local" / "dagster.yaml", home / "dagster_home" / "dagster.yaml")
            environment = {
                **os.environ, "MOVIEREC_HOME": str(home / "demo"), "DAGSTER_HOME": str(home / "dagster_home"),
                "MOVIELENS_SOURCE": args.source,
            }
            demo_seconds, output = timed([sys.executable, "-m", "movierec_dagster.demo"], environment)
        pipeline = float(re.search(r"Whole pipeline: ([\d.]+) s", output)[1])
        seed_times.append(seed_seconds)
        demo_times.append(demo_seconds)
        pipeline_times.append(pipeline)
        print(
            f"| {pair} | {load:.1f} | {seed_seconds:.1f} s | {demo_seconds:.1f} s | {pipeline:.1f} s | "
            f"{pipeline / seed_seconds:.2f}x |",
            flush=True,
        )
    ratios = [p / s for p, s in zip(pipeline_times, seed_times)]
    process_ratios = [d / s for d, s in zip(demo_times, seed_times)]
    print(
        f"\nmedian: seed {statistics.median(seed_times):.1f} s, demo pipeline {statistics.median(pipeline_times):.1f} s "
        f"({statistics.median(ratios):.2f}x), demo process {statistics.median(demo_times):.1f} s "
        f"({statistics.median(process_ratios):.2f}x)"
    )


if __name__ == "__main__":
    main()
