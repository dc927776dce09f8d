"""Live: the ETL materialized on a real Azure Databricks workspace and ADLS lake (marker `databricks`, needs the README's variables)."""

import os

import pytest
from dagster import DagsterInstance

from movierec_dagster.deployment import DATABRICKS_SETTINGS

pytestmark = pytest.mark.databricks


def test_the_etl_materializes_on_a_real_workspace(monkeypatch):
    missing = [setting.name for setting in DATABRICKS_SETTINGS if not os.environ.get(setting.name)]
    if missing:
        pytest.skip(f"set {', '.join(missing)} (the README's 'Run on Azure Databricks') to run against a workspace")
    monkeypatch.setenv("MOVIEREC_DEPLOYMENT", "databricks")
    from movierec_dagster.definitions import build_definitions

    defs = build_definitions()
    with DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("movielens_etl").execute_in_process(instance=instance, raise_on_error=False)
    assert result.success
    rows = {m.asset_key.to_user_string(): m.metadata["dagster/row_count"].value
            for m in result.asset_materializations_for_node("movielens_tables")}
    assert rows["ratings"] > 0 and rows["movies"] > 0
