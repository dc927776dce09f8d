"""The step launcher's cost per step, against the Databricks workspace stand-in (tests/databricks/workspace.py).

Runs the whole pipeline (ETL, ingest, retrain, a day's scoring) with the databricks
deployment on small synthetic data, every Spark step submitted by movierec's volume step
launcher to the stand-in, which runs it with local Spark in this process. Reports the
Databricks runs the pipeline submitted, what each step staged on the volume, and how much
of each step's wall time was the launcher's (upload, submit, polling every
`poll_interval_sec`) rather than the step's own run.

    .venv/bin/python -m bench.databricks_launch
"""

import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

from dagster import DagsterInstance, execute_job
from dagster._core.definitions.reconstruct import ReconstructableRepository

from movierec_dagster.resources import LocalSpark
from movierec_dagster.resources.databricks import CLUSTER_LIBRARIES
from tests.databricks.workspace import Workspace
from tests.pipeline import run_graph
from tests.synthetic import planted_movielens

UPLOADED = ("databricks_step_main.py", "code.zip", "step_run_ref.pkl", "config.pkl")


def main() -> None:
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

if __name__ == "__main__":
    main()
