"""The code location loads, for the local deployment, with every job, schedule and sensor; unknown deployments fail clearly."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from movierec_dagster.deployment import UnknownDeploymentError, build_deployment
from tests.conftest import local_definitions


def test_local_definitions_load(home, synthetic_zip):
    defs = local_definitions(home, synthetic_zip)
    keys = {key.to_user_string() for key in defs.resolve_all_asset_keys()}
    assert {"movielens_archive", "movies", "ratings", "tags", "links"} <= keys
    assert defs.resolve_job_def("movielens_etl") is not None
    assert defs.resources["lake"].root == str(home.resolve() / "lake")
    assert defs.resources["movielens"].location == str(synthetic_zip)


def test_unknown_deployment_is_a_clear_error():
    with pytest.raises(UnknownDeploymentError, match="MOVIEREC_DEPLOYMENT='mars'.*choose one of local"):
        build_deployment(environ={"MOVIEREC_DEPLOYMENT": "mars"})


def test_local_landing_folder_and_its_archive_are_in_the_lake(tmp_path):
    resources = build_deployment(environ={"MOVIEREC_HOME": str(tmp_path)}).resources
    lake = Path(resources["lake"].root)
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
