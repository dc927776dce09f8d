"""One training at a time: two retrains started together run their training steps one after the other."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterInstance

from movierec_dagster.model import registry
from tests.conftest import local_definitions

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # two trainings, each in a process (and JVM) of its own, as two run workers would
def test_the_pool_serialises_two_concurrent_retrains(home, synthetic_zip, tmp_path):
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(ROOT / "infra" / "local" / "dagster.yaml", dagster_home / "dagster.yaml")  # pools: one step at a time
    defs = local_definitions(home, synthetic_zip)
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        assert defs.resolve_job_def("movielens_etl").execute_in_process(instance=instance).success

    environment = {**os.environ, "MOVIEREC_SPARK_MASTER": "local[1]"}
    command = [sys.executable, "-m", "tests.model.retrain_in_a_process", str(home), str(synthetic_zip), str(dagster_home)]
    workers = [
        subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=600) for worker in workers]
    for worker, (_, errors) in zip(workers, outputs):
        assert worker.returncode == 0, f"a retrain failed:\n{_failure(errors)}"
    run_ids = [output.strip().splitlines()[-1] for output, _ in outputs]

    with DagsterInstance.from_config(str(dagster_home)) as instance:
        steps = sorted(
            (stats.start_time, stats.end_time)
            for run_id in run_ids
            for stats in instance.get_run_step_stats(run_id)
            if stats.step_key == "als_model"
        )
    assert len(steps) == 2
    (_, first_end), (second_start, _) = steps
    assert first_end <= second_start, f"the two trainings overlapped: {steps}"
    # Both candidates passed the gate on the same data; the one trained second is the champion.
    versions = registry.list_versions(defs.resources["lake"])
    assert len(versions) == 2 and registry.read_champion(defs.resources["lake"])["version"] == versions[-1]


def _failure(stderr: str) -> str:
    """A failed worker's errors: its lines that report one, and the end of its output."""
    lines = stderr.splitlines()
    errors = [line for line in lines if "ERROR" in line or "Error" in line or "Exception" in line]
    return "\n".join([*errors[-20:], "...", *lines[-40:]])
