"""The code location loads, for the local deployment, with every job, schedule and sensor; unknown deployments fail clearly."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from movierec_dagster.deployment import UnknownDeploymentError, build_deployment
from tests.conftest import local_definitions


ASSETS = {
    "movielens_archive", "movies", "ratings", "tags", "links", "rating_events", "rejected_rating_events", "rating_event_ids",
    "training_ratings", "als_model", "champion_model", "user_recommendations",
}
JOBS = {"movielens_etl", "ingest_rating_events", "retrain_model", "score_recommendations"}
SCHEDULES = {"nightly_retrain": "retrain_model"}
SENSORS = {"rating_events_sensor", "retrain_sensor", "recommendations_automation", "run_failure_alert"}
# Contracts, not implementations: only resources/ and deployment.py may name these.
IMPLEMENTATIONS = re.compile(r"\b(LocalLake|LocalSpark|LandingFolderSource|EventHubsSource)\b")
PACKAGE = Path(__file__).resolve().parents[1] / "movierec_dagster"


def test_local_definitions_load_with_every_asset_job_schedule_and_sensor(home, synthetic_zip):
    defs = local_definitions(home, synthetic_zip)
    assert {key.to_user_string() for key in defs.resolve_all_asset_keys()} == ASSETS
    repository = defs.get_repository_def()
    assert {job.name for job in repository.get_all_jobs() if not job.name.startswith("__")} == JOBS
    assert {schedule.name: schedule.job_name for schedule in repository.schedule_defs} == SCHEDULES
    assert {sensor.name for sensor in repository.sensor_defs} == SENSORS
    assert defs.resources["lake"].uri() == (home.resolve() / "lake").as_uri()
    assert defs.resources["movielens"].location == str(synthetic_zip)


def test_steps_ask_for_contracts_not_implementations():
    offenders = [
        f"{path.relative_to(PACKAGE)}: {match}"
        for path in PACKAGE.rglob("*.py")
        if path.parent.name != "resources" and path.name != "deployment.py"
        for match in IMPLEMENTATIONS.findall(path.read_text())
    ]
    assert offenders == []


def test_unknown_deployment_is_a_clear_error():
    with pytest.raises(UnknownDeploymentError, match="MOVIEREC_DEPLOYMENT='mars'.*choose one of local"):
        build_deployment(environ={"MOVIEREC_DEPLOYMENT": "mars"})


def test_local_landing_folder_and_its_archive_are_in_the_lake(tmp_path):
    resources = build_deployment(environ={"MOVIEREC_HOME": str(tmp_path)}).resources
    lake = Path(resources["lake"].fs_path())
    assert Path(resources["event_source"].folder) == lake / "landing" / "rating_events"
    assert Path(resources["event_source"].archive_folder) == lake / "landing_archive"


def test_default_source_is_the_grouplens_url(tmp_path):
    deployment = build_deployment(environ={"MOVIEREC_HOME": str(tmp_path)})
    assert deployment.resources["movielens"].location.startswith("https://files.grouplens.org/")


def test_the_code_location_loads_as_dagster_dev_loads_it(home):
    """`dagster dev` imports the module and insists on exactly one Definitions object at module scope."""
    workspace = Path(__file__).resolve().parents[1] / "workspace.yaml"
    environment = {**os.environ, "MOVIEREC_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home")}
    (home / "dagster_home").mkdir(parents=True)
    completed = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", str(workspace)],
        cwd=workspace.parent,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def _small_data(tmp_path: Path, **environ: str) -> bool:
    return build_deployment(environ={"MOVIEREC_HOME": str(tmp_path), **environ}).resources["spark"].small_data


def test_local_spark_is_tuned_for_small_data_on_small_movielens_and_for_large_otherwise(tmp_path):
    small, large = tmp_path / "small.zip", tmp_path / "large.zip"
    small.write_bytes(b"x" * 1_000_000)  # ml-latest-small's size
    with large.open("wb") as archive:
        archive.truncate(9 * 1024**2)  # about 1M ratings
    assert _small_data(tmp_path)  # the default source, ml-latest-small
    assert _small_data(tmp_path, MOVIELENS_SOURCE=str(small))
    assert not _small_data(tmp_path, MOVIELENS_SOURCE=str(large))
    assert not _small_data(tmp_path, MOVIELENS_SOURCE="https://example.org/ml-latest.zip")
    assert not _small_data(tmp_path, MOVIELENS_SOURCE=str(small), MOVIEREC_SPARK_TUNING="large")
    assert _small_data(tmp_path, MOVIELENS_SOURCE=str(large), MOVIEREC_SPARK_TUNING="Small")
    with pytest.raises(ValueError, match="MOVIEREC_SPARK_TUNING='tiny': choose one of small, large"):
        _small_data(tmp_path, MOVIEREC_SPARK_TUNING="tiny")


def test_the_small_data_tuning_reaches_the_session(tmp_path):
    """The JVM LocalSpark starts runs with C1 alone, without adaptive execution (a process of its own: the tests'
    session is already up)."""
    script = (
        "from movierec_dagster.resources import LocalSpark\n"
        "spark = LocalSpark(master='local[1]', driver_memory='1g', small_data=True).session()\n"
        "print(list(spark._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()))\n"
        "print('adaptive', spark.conf.get('spark.sql.adaptive.enabled'))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    assert "-XX:TieredStopAtLevel=1" in done.stdout and "adaptive false" in done.stdout


def test_local_spark_master_and_driver_memory_come_from_the_environment(tmp_path):
    spark = build_deployment(
        environ={"MOVIEREC_HOME": str(tmp_path), "MOVIEREC_SPARK_MASTER": "local[1]", "MOVIEREC_SPARK_DRIVER_MEMORY": "8g"}
    ).resources["spark"]
    assert (spark.master, spark.driver_memory) == ("local[1]", "8g")
    default = build_deployment(environ={"MOVIEREC_HOME": str(tmp_path)}).resources["spark"]
    assert (default.master, default.driver_memory) == ("local[*]", "4g")
