"""The SQL that registers the lake's Delta tables in Unity Catalog (run by deploy.sh --warehouse)."""

import subprocess
import sys
from pathlib import Path

import pytest

from movierec_dagster.unity_catalog import LAKE_TABLES, register_statements

ROOT = Path(__file__).resolve().parents[1]
LAKE = "abfss://lake@account.dfs.core.windows.net/movierec"


def test_every_table_of_the_lake_is_registered_at_its_folder():
    statements = register_statements(LAKE, "main")
    assert statements[0].startswith("CREATE SCHEMA IF NOT EXISTS `main`.`movierec`")
    assert f"CREATE TABLE IF NOT EXISTS `main`.`movierec`.`rating_events` LOCATION '{LAKE}/tables/rating_events'" in statements
    assert f"CREATE TABLE IF NOT EXISTS `main`.`movierec`.`quarantine_ratings` LOCATION '{LAKE}/quarantine/ratings'" in statements
    assert len(statements) == 1 + len(LAKE_TABLES) + 4


def test_names_are_quoted_so_a_catalog_cannot_end_the_statement():
    (schema, *_) = register_statements(LAKE, "odd`name", "s")
    assert schema.startswith("CREATE SCHEMA IF NOT EXISTS `odd``name`.`s`")


def test_a_lake_off_cloud_storage_is_refused():
    with pytest.raises(ValueError, match="abfss://"):
        register_statements("/home/me/lake", "main")


def test_the_command_runs_without_the_projects_packages():
    """deploy.sh runs it with the system's python3: it must import nothing but the pipeline's names."""
    done = subprocess.run(
        [sys.executable, "-S", "-m", "movierec_dagster.unity_catalog", "--lake", LAKE, "--catalog", "main"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    assert done.stdout.splitlines() == register_statements(LAKE, "main")
