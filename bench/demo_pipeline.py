"""The whole `make demo` pipeline on ml-latest-small, and where its time goes.

Runs the demo in a fresh process on an empty MOVIEREC_HOME (set-up excluded:
the venv exists), then reads the runs back from its Dagster instance to split
the wall time into: Spark start-up (measured alone in another fresh process),
the steps' own work, Dagster's overhead inside the runs (run time not spent in
any step), and the rest (Python start-up, imports, generating events, printing).
Target (issue 3): the whole pipeline within 60 s.

    .venv/bin/python -m bench.demo_pipeline [--source PATH]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dagster import DagsterInstance, RunsFilter

from bench.paths import MOVIELENS

ROOT = Path(__file__).resolve().parents[1]
SPARK_START = "import time; t = time.perf_counter(); from movierec_dagster.resources import LocalSpark; LocalSpark().session(); print(time.perf_counter() - t)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default=str(MOVIELENS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        dagster_home = home / "dagster_home"
        dagster_home.mkdir()
        shutil.copy(ROOT / "infra" / "local" / "dagster.yaml", dagster_home / "dagster.yaml")
        environment = {**os.environ, "MOVIEREC_HOME": str(home), "DAGSTER_HOME": str(dagster_home), "MOVIELENS_SOURCE": args.source}
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "movierec_dagster.demo"], env=environment, cwd=ROOT, check=True, capture_output=True)
        total = time.perf_counter() - started
        spark_start = float(subprocess.run([sys.executable, "-c", SPARK_START], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])

        os.environ["DAGSTER_HOME"] = str(dagster_home)
        in_runs = in_steps = 0.0
        print(f"{'run':<24}{'run s':>8}{'steps s':>9}")
        with DagsterInstance.get() as instance:
            for run in reversed(instance.get_runs(RunsFilter())):
                stats = instance.get_run_stats(run.run_id)
                run_seconds = stats.end_time - stats.launch_time if stats.launch_time else stats.end_time - stats.start_time
                step_seconds = sum(step.end_time - step.start_time for step in instance.get_run_step_stats(run.run_id))
                in_runs += run_seconds
                in_steps += step_seconds
                print(f"{run.job_name:<24}{run_seconds:8.1f}{step_seconds:9.1f}")
    step_work = in_steps - spark_start  # the first step of the demo's first run starts the session
    rows = {
        "Spark start-up": spark_start,
        "steps' own work": step_work,
        "Dagster overhead in runs": in_runs - in_steps,
        "the rest (imports, events, printing)": total - in_runs,
    }
    print(f"\nwhole demo: {total:.1f} s (target 60 s)")
    for name, seconds in rows.items():
        print(f"  {name:<38}{seconds:6.1f} s  {seconds / total:5.0%}")


if __name__ == "__main__":
    main()
