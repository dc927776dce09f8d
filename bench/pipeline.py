"""The pipeline as a whole: `make demo` end to end, against the seed's script, the ETL's Dagster overhead, and the
Databricks step launcher.

    .venv/bin/python -m bench.pipeline <subcommand> [options]     (--help after a subcommand for its options)

Subcommands:
    demo               `make demo`'s pipeline in a fresh process, and where its time goes (Spark start-up, the steps,
                       Dagster's overhead, the rest)
    demo-vs-seed       `make demo`'s pipeline against the seed project's pipeline as a plain PySpark script, alternated
    etl-overhead       the MovieLens ETL as a Dagster run against the same work as a plain PySpark script
    databricks-launch  the step launcher's cost per step, against the Databricks workspace stand-in

The pipeline at 100k to 25M ratings is `bench.scale` (`make bench-scale`).

`etl-overhead` times fresh processes that import this module, so it imports only the standard library at
the top; Dagster and the pipeline's own code are imported where they are used.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from bench.common import ROOT, add_source, dagster_home, demo_environment, family_parser, run_demo, subcommand

# ---- demo: `make demo`'s pipeline, run by run ----

SPARK_START = "import time; t = time.perf_counter(); from movierec_dagster.resources import LocalSpark; LocalSpark().session(); print(time.perf_counter() - t)"


def demo(args: argparse.Namespace) -> None:
    """The whole `make demo` pipeline on ml-latest-small, and where its time goes.

    Runs the demo in a fresh process on an empty MOVIEREC_HOME (set-up excluded:
    the venv exists), then reads the runs back from its Dagster instance to split
    the wall time into: Spark start-up (measured alone in another fresh process),
    the steps' own work, Dagster's overhead inside the runs (run time not spent in
    any step), and the rest (Python start-up, imports, generating events, printing).
    Target (issue 3): the whole pipeline within 60 s.

        .venv/bin/python -m bench.pipeline demo [--source PATH]
    """
    from dagster import DagsterInstance, RunsFilter

    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        instance_home = dagster_home(home / "dagster_home")
        environment = demo_environment(home, instance_home, args.source)
        started = time.perf_counter()
        run_demo(environment)
        total = time.perf_counter() - started
        spark_start = float(subprocess.run([sys.executable, "-c", SPARK_START], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])

        os.environ["DAGSTER_HOME"] = str(instance_home)
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


# ---- demo-vs-seed: `make demo`'s pipeline against the seed's script ----

SEED = ROOT.parent / "shared" / "seed-pipeline" / "seed_pipeline.py"


def demo_vs_seed(args: argparse.Namespace) -> None:
    """`make demo`'s pipeline against the seed's pipeline as a plain PySpark script, alternated on ml-latest-small.

    Each pair runs the seed's script (../shared/seed-pipeline/seed_pipeline.py, a fresh process
    and work folder) and then the demo (`python -m movierec_dagster.demo`, a fresh process on an
    empty MOVIEREC_HOME), both with this venv, one after the other, so the two see the same
    machine. Reported per run: the whole process's wall time for both; for the demo also its own
    "Whole pipeline" figure (from the Spark start to the last line, Python's imports excluded),
    and the load average. Target (issue 12): the demo's pipeline within 1.6x the seed's script.

        .venv/bin/python -m bench.pipeline demo-vs-seed [--pairs 3] [--source PATH]
    """
    seed_times, demo_times, pipeline_times = [], [], []
    print("| pair | load | seed script | demo process | demo pipeline | pipeline / seed |")
    print("|---|---|---|---|---|---|")
    for pair in range(1, args.pairs + 1):
        with tempfile.TemporaryDirectory() as folder:
            home = Path(folder)
            load = os.getloadavg()[0]
            started = time.perf_counter()
            subprocess.run([sys.executable, str(SEED), args.source, str(home / "seed")], cwd=ROOT, check=True, capture_output=True, text=True)
            seed_seconds = time.perf_counter() - started
            environment = demo_environment(home / "demo", dagster_home(home / "dagster_home"), args.source)
            started = time.perf_counter()
            output = run_demo(environment)
            demo_seconds = time.perf_counter() - started
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


# ---- etl-overhead: the ETL through Dagster against a plain PySpark script ----


def plain_etl(home: Path, source: str) -> None:
    """The same work as the ETL assets, with no Dagster and no checks: unpack, parse, write, quarantine."""
    from movierec_dagster.movielens import archive, transforms
    from movierec_dagster.movielens.assets import ARCHIVE_KEY, SOURCE_TABLES, raw_csv_uri
    from movierec_dagster.resources import LocalLake, LocalSpark
    from movierec_dagster.resources.lake import QUARANTINE, RAW

    lake = LocalLake(root=str(home / "lake"))
    spark = LocalSpark().session()
    with tempfile.TemporaryDirectory() as folder:
        unpacked = archive.unpack(source, Path(folder))
        lake.put_directory(unpacked.folder, ARCHIVE_KEY, RAW)
    for key, table in SOURCE_TABLES.items():
        parsed = table.parse(transforms.read_csv(spark, raw_csv_uri(lake, table.file_name), table.columns)).cache()
        valid, rejected = transforms.split_valid(parsed)
        lake.write_table(valid, key, partition_by=table.partition_by)
        lake.write_table(rejected, key, area=QUARANTINE)
        parsed.unpersist()
        print(key, lake.read_table(spark, key).count(), lake.read_table(spark, key, area=QUARANTINE).count())
    spark.stop()


def dagster_etl(home: Path, source: str) -> None:
    """The ETL job materialized in one Dagster run; its checks run in the tables' step."""
    from dagster import DagsterInstance

    from movierec_dagster.definitions import build_definitions

    defs = build_definitions("local", {"MOVIEREC_HOME": str(home), "MOVIELENS_SOURCE": source})
    with DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("movielens_etl").execute_in_process(
            instance=instance, run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        )
    assert result.success


def _timed_etl(variant: str, source: str) -> float:
    with tempfile.TemporaryDirectory() as home:
        started = time.perf_counter()
        command = [sys.executable, "-m", "bench.pipeline", "etl-overhead", "--run", variant, "--home", home, "--source", source]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - started


def etl_overhead(args: argparse.Namespace) -> None:
    """The MovieLens ETL as a plain PySpark script and through Dagster, side by side in one run.

    Each variant runs in a fresh Python process (so Spark start-up and imports are
    counted, as a user meets them) on its own empty MOVIEREC_HOME, alternating, and
    the medians are compared. Target (issue 2): Dagster at most 1.3x the plain script.

        .venv/bin/python -m bench.pipeline etl-overhead [--source PATH] [--repeats N]
    """
    if args.run:  # one variant, in the fresh process `_timed_etl` started
        (plain_etl if args.run == "plain" else dagster_etl)(Path(args.home), args.source)
        return
    timings: dict[str, list[float]] = {"plain": [], "dagster": []}
    for repeat in range(args.repeats):
        for variant in timings:
            timings[variant].append(_timed_etl(variant, args.source))
            print(f"run {repeat + 1} {variant:<15} {timings[variant][-1]:6.1f} s", flush=True)
    medians = {variant: statistics.median(values) for variant, values in timings.items()}
    print("\nmedian wall time (fresh process, Spark start-up included)")
    for variant, median in medians.items():
        print(f"  {variant:<15} {median:6.1f} s   {median / medians['plain']:.2f}x plain")


# ---- databricks-launch: the step launcher against the workspace stand-in ----

UPLOADED = ("databricks_step_main.py", "code.zip", "step_run_ref.pkl", "config.pkl")


def databricks_launch(args: argparse.Namespace) -> None:
    """The step launcher's cost per step, against the Databricks workspace stand-in (tests/databricks/workspace.py).

    Runs the whole pipeline (ETL, ingest, retrain, a day's scoring) with the databricks
    deployment on small synthetic data, every Spark step submitted by movierec's volume step
    launcher to the stand-in, which runs it with local Spark in this process. Reports the
    Databricks runs the pipeline submitted, what each step staged on the volume, and how much
    of each step's wall time was the launcher's (upload, submit, polling every
    `poll_interval_sec`) rather than the step's own run.

        .venv/bin/python -m bench.pipeline databricks-launch
    """
    from dagster import DagsterInstance, execute_job
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    from movierec_dagster.resources import LocalSpark
    from movierec_dagster.resources.databricks import CLUSTER_LIBRARIES
    from tests.databricks.workspace import Workspace
    from tests.pipeline import run_graph
    from tests.synthetic import planted_movielens

    warnings.simplefilter("ignore")
    spark = LocalSpark(master="local[2]", shuffle_partitions=2).session()
    synthetic = planted_movielens()
    with tempfile.TemporaryDirectory(prefix="movierec-bench-") as work, Workspace(
        spark, secrets={"movierec": {"lake-client-secret": "x", "eventhub-listen-connection-string": "y"}},
        cluster_env={"DATABRICKS_RUNTIME_VERSION": "17.3"},
        preinstalled=tuple(spec for spec in CLUSTER_LIBRARIES if spec.startswith("grpcio-health-checking==")),
    ) as workspace:
        work = Path(work)
        source = synthetic.write_zip(work / "ml.zip")
        os.environ.update(
            MOVIEREC_DEPLOYMENT="databricks", DATABRICKS_HOST=workspace.host, DATABRICKS_TOKEN=workspace.token,
            MOVIEREC_DATABRICKS_CLUSTER_ID="test-cluster", MOVIEREC_DATABRICKS_VOLUME="/Volumes/main/movierec/staging", MOVIEREC_LAKE=(work / "lake").as_uri(),
            MOVIEREC_SECRET_SCOPE="movierec", MOVIELENS_SOURCE=str(source), MOVIEREC_LANDING_FOLDER=str(work / "landing"),
        )
        os.chdir(work)
        repository = ReconstructableRepository.for_module("movierec_dagster.definitions", "defs")
        jobs: list[tuple[str, float, list[int]]] = []  # (job, wall seconds, its Databricks run ids)
        with DagsterInstance.ephemeral() as instance:

            def run_job(name, run_config=None):
                before, started = len(workspace.runs), time.perf_counter()
                result = execute_job(repository.get_reconstructable_job(name), instance, run_config=run_config)
                assert result.success, name
                jobs.append((name, time.perf_counter() - started, sorted(workspace.runs)[before:]))

            started = time.perf_counter()
            run_graph(run_job, work / "landing", max(synthetic.user_genre) + 1)
            total = time.perf_counter() - started

        runs = sorted(workspace.runs.values(), key=lambda run: run.run_id)
        uploads = [(r.path.rsplit("/", 1)[-1], len(r.data)) for r in workspace.requests if r.method == "PUT"]
        sizes = {name: statistics.median(size for file, size in uploads if file == name) for name in UPLOADED}
        print(f"pipeline: {len(runs)} Databricks runs (one per Spark step), {total:.1f} s in all")
        print("uploaded per step (median): " + ", ".join(f"{name} {size / 1024:.0f} KiB" for name, size in sizes.items()))
        print(f"{'job':<24}{'wall':>8}{'runs':>6}{'in runs':>9}{'rest per run':>14}")
        overheads = []
        for name, wall, run_ids in jobs:
            in_runs = sum((workspace.runs[i].end_time - workspace.runs[i].start_time) / 1000 for i in run_ids)
            rest = (wall - in_runs) / len(run_ids)
            overheads += [rest] * len(run_ids)
            print(f"{name:<24}{wall:>7.1f}s{len(run_ids):>6}{in_runs:>8.1f}s{rest:>13.1f}s")
        print(
            f"outside the runs, per run: median {statistics.median(overheads):.1f} s (the launcher's upload, submit and "
            "polling every 5 s until the run ends, and Dagster's run start and end)"
        )


# ---- the command line ----


def build_parser() -> argparse.ArgumentParser:
    parser, commands = family_parser("python -m bench.pipeline", __doc__)

    add_source(subcommand(commands, "demo", demo))

    command = subcommand(commands, "demo-vs-seed", demo_vs_seed)
    command.add_argument("--pairs", type=int, default=3)
    add_source(command)

    command = subcommand(commands, "etl-overhead", etl_overhead)
    add_source(command)
    command.add_argument("--repeats", type=int, default=3)
    command.add_argument("--run", choices=["plain", "dagster"], help=argparse.SUPPRESS)  # the variant's own process
    command.add_argument("--home", help=argparse.SUPPRESS)

    subcommand(commands, "databricks-launch", databricks_launch)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.benchmark(args)


if __name__ == "__main__":
    main()
