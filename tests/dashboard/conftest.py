"""Fixtures for the dashboard tests: a tiny lake per test (in memory, or in a folder), and the app pointed at it."""

import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest

from tests.dashboard.lakes import TinyLake, build_lake


@pytest.fixture
def memory_location() -> Iterator[str]:
    """A fresh `memory://` lake location, emptied afterwards (fsspec's memory filesystem is one per process)."""
    location = f"memory://lake-{uuid.uuid4().hex}"
    yield location
    fs, path = fsspec.core.url_to_fs(location)
    if fs.exists(path):
        fs.rm(path, recursive=True)


@pytest.fixture
def tiny_lake(memory_location: str) -> TinyLake:
    return build_lake(memory_location)


@pytest.fixture
def folder_lake(tmp_path: Path) -> TinyLake:
    """A tiny lake in a local folder, for a dashboard in another process."""
    return build_lake(tmp_path / "lake")


@pytest.fixture(params=["memory", "folder", "file-uri"])
def any_lake(request: pytest.FixtureRequest, tmp_path: Path) -> TinyLake:
    """The tiny lake at each kind of location the dashboard reads: memory://, a folder, a file:// URI."""
    if request.param == "memory":
        return build_lake(request.getfixturevalue("memory_location"))
    folder = tmp_path / "lake"
    return build_lake(folder if request.param == "folder" else folder.as_uri())


@pytest.fixture
def use_lake(monkeypatch: pytest.MonkeyPatch):
    """Point the dashboard (MOVIEREC_LAKE) at a lake location."""

    def point(location: str | Path) -> None:
        monkeypatch.setenv("MOVIEREC_LAKE", str(location))

    return point
