"""Live: the ETL materialized on a real Azure Databricks workspace and ADLS lake (marker `databricks`; `make databricks-smoke`)."""

import os
import tempfile

import pytest
from dagster import DagsterInstance, execute_job
from dagster._core.definitions.reconstruct import ReconstructableRepository

from movierec_dagster.deployment import MissingSettingsError, build_deployment

pytestmark = [pytest.mark.databricks, pytest.mark.filterwarnings("ignore::dagster.SupersessionWarning")]


def test_the_etl_materializes_on_a_real_workspace(monkeypatch):
    monkeypatch.setenv("MOVIEREC_DEPLOYMENT", "databricks")
    try:
        build_deployment("databricks", dict(os.environ))
    except MissingSettingsError as missing:
        pytest.skip(f"the README's 'Run on Azure Databricks' variables are not set: {missing}")
    # A step launcher needs a job Dagster can rebuild from its module, and an instance that outlives the
    # step's process: execute_in_process gives neither.
    repository = ReconstructableRepository.for_module("movierec_dagster.definitions", "defs")
    with tempfile.TemporaryDirectory(prefix="movierec-live-") as home, DagsterInstance.local_temp(home) as instance:
        result = execute_job(repository.get_reconstructable_job("movielens_etl"), instance, raise_on_error=False)
        rows = {
            event.asset_key.to_user_string(): event.step_materialization_data.materialization.metadata
            for event in result.all_events
            if event.is_step_materialization
        }
    assert result.success, "see the step's Databricks run (its link is in the run's events)"
    assert rows["ratings"]["dagster/row_count"].value > 0 and rows["movies"]["dagster/row_count"].value > 0
