"""Fixtures for the dashboard tests: a tiny lake per test, and the app pointed at it."""

from pathlib import Path

import pytest

from tests.dashboard.lakes import TinyLake, build_lake


@pytest.fixture
def tiny_lake(tmp_path: Path) -> TinyLake:
    return build_lake(tmp_path / "lake")


@pytest.fixture
def use_lake(monkeypatch: pytest.MonkeyPatch):
    """Point the dashboard (MOVIEREC_LAKE) at a folder."""

    def point(root: Path) -> None:
        monkeypatch.setenv("MOVIEREC_LAKE", str(root))

    return point
