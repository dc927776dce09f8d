"""Fixtures for the dashboard tests: a tiny lake per test (in a folder, or at a file:// URI), and the app pointed at it.

No lake in fsspec's `memory://` filesystem: the tables are Delta tables, which delta-rs reads and commits
with its own object stores, and those cannot share fsspec's memory filesystem.
"""

from pathlib import Path

import pytest

from tests.dashboard.lakes import TinyLake, build_lake


@pytest.fixture
def tiny_lake(tmp_path: Path) -> TinyLake:
    return build_lake(tmp_path / "lake")


@pytest.fixture
def folder_lake(tmp_path: Path) -> TinyLake:
    """A tiny lake in a local folder, for a dashboard in another process."""
    return build_lake(tmp_path / "lake")


@pytest.fixture(params=["folder", "file-uri"])
def any_lake(request: pytest.FixtureRequest, tmp_path: Path) -> TinyLake:
    """The tiny lake at each kind of local location the dashboard reads: a folder, a file:// URI."""
    folder = tmp_path / "lake"
    return build_lake(folder if request.param == "folder" else folder.as_uri())


@pytest.fixture
def use_lake(monkeypatch: pytest.MonkeyPatch):
    """Point the dashboard (MOVIEREC_LAKE) at a lake location."""

    def point(location: str | Path) -> None:
        monkeypatch.setenv("MOVIEREC_LAKE", str(location))

    return point
