"""The lake's Delta tables without Spark, in local folders and on Azurite (ADLS): commits, racing writers, a writer killed mid-commit, clean-up."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from fsspec.implementations.local import LocalFileSystem

from movierec_dagster.tables import (
    WHOLE,
    DataFile,
    LakeFiles,
    OldTableFormat,
    Table,
    TableVersion,
    adls_credentials,
    arrow_dataset,
    arrow_filesystem,
    join,
    new_write_folder,
    write_arrow,
)

ROOT = Path(__file__).resolve().parents[1]


def _rows(marker: str, count: int = 1) -> pa.Table:
    return pa.table({"marker": [marker] * count})


def _markers(table: Table, version: TableVersion, parts: list[str] | None = None) -> list[str]:
    """The markers a reader of `version` (or of its `parts`) reads, without Spark."""
    return arrow_dataset(table, version, parts).to_table().column("marker").to_pylist()


def _write_file(table: Table, rows: pa.Table) -> DataFile:
    """A Parquet file written under the table, as a writer writes one before its commit."""
    relative = join(new_write_folder(), "part-00000.parquet")
    path = join(table.path, relative)
    table.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    pq.write_table(rows, path, filesystem=arrow_filesystem(table.fs))
    return DataFile(relative, WHOLE, rows.num_rows, table.fs.size(path))


@pytest.fixture(params=["file", "azurite"])
def table(request, tmp_path) -> Table:
    """A table writers in several threads or processes share: in a local folder, or on Azurite."""
    if request.param == "azurite":
        return request.getfixturevalue("adls_lake").table("ratings")
    return _table(tmp_path)


def _table(tmp_path) -> Table:
    return LakeFiles(str(tmp_path / "lake")).table("ratings")


def test_a_table_is_its_newest_commit(table):
    assert table.current() is None
    first = write_arrow(table, _rows("v0", 3))
    second = write_arrow(table, _rows("v1", 4))
    current = table.current()
    assert second.version == first.version + 1
    assert (current.version, current.parts, current.rows) == (second.version, {WHOLE: 4}, 4)
    assert _markers(table, current) == ["v1"] * 4
    assert table.file_uris(current) == [f"{table.uri}/{current.files[0].path}"]


def test_parts_replace_only_themselves(table):
    for part, marker, count in [("date=2026-01-01", "a", 1), ("date=2026-01-02", "b", 2), ("date=2026-01-01", "c", 3)]:
        write_arrow(table, _rows(marker, count), part=part)
    current = table.current()
    assert current.parts == {"date=2026-01-01": 3, "date=2026-01-02": 2}
    first_day = arrow_dataset(table, current, ["date=2026-01-01"]).to_table()
    assert set(zip(first_day["marker"].to_pylist(), first_day["date"].to_pylist())) == {("c", "2026-01-01")}


def _race(writer, *markers: str) -> None:
    """`writer(marker)` in a thread per marker, all started, then all joined."""
    threads = [threading.Thread(target=writer, args=(marker,)) for marker in markers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_racing_writers_of_different_parts_lose_nothing(table):
    """Each commit lands whole, and the version it returns is one that holds it."""
    batches = 10 if isinstance(table.fs, LocalFileSystem) else 4  # Azurite answers in milliseconds, not microseconds
    committed: list[tuple[str, TableVersion]] = []
    errors = []

    def writer(name: str) -> None:
        try:
            for batch in range(batches):
                part = f"batch={name}-{batch}"
                committed.append((part, write_arrow(table, _rows(name), part=part)))
        except Exception as error:  # reported below: a thread's exception is otherwise lost
            errors.append(error)

    _race(writer, "a", "b", "c")
    assert not errors
    current = table.current()
    assert current.parts == {f"batch={name}-{batch}": 1 for name in "abc" for batch in range(batches)}
    assert len({version.version for _, version in committed}) == 3 * batches, "two commits returned the same version"
    assert all(part in version.parts for part, version in committed), "a commit returned a version without its part"


def test_two_writers_replacing_the_table_never_mix(table):
    """From the first commit on, every version holds one writer's file: never both, never none."""
    rounds = 8 if isinstance(table.fs, LocalFileSystem) else 4
    first = write_arrow(table, _rows("x", 2))
    barrier = threading.Barrier(2)
    errors = []

    def writer(marker: str) -> None:
        try:
            for _ in range(rounds):
                file = _write_file(table, _rows(marker, 2))
                barrier.wait()
                table.commit([file], schema=first.schema)
        except Exception as error:
            errors.append(error)
            barrier.abort()

    _race(writer, "x", "y")
    assert not errors
    current = table.current()
    assert current.version >= first.version + 2 * rounds
    for version in range(first.version, current.version + 1):
        markers = _markers(table, table.at(version))
        assert markers in (["x", "x"], ["y", "y"]), f"version {version} holds {markers}"



@pytest.mark.parametrize("replace", ["table", "part"])
def test_two_writers_of_a_new_table_or_part_never_both_land(fsspec_lake, replace):
    """Racing first writes (nothing to remove, so no file in common to conflict on): one writer's rows, never both."""
    rounds = 6 if isinstance(fsspec_lake.filesystem(), LocalFileSystem) else 3
    for round_ in range(rounds):
        table = fsspec_lake.table(f"new_{round_}" if replace == "table" else "parts")
        part = f"batch={round_}" if replace == "part" else WHOLE
        barrier = threading.Barrier(2)
        errors = []

        def writer(marker: str, table=table, part=part, barrier=barrier, errors=errors) -> None:
            try:
                barrier.wait()
                write_arrow(table, _rows(marker, 2), part=part)
            except Exception as error:
                errors.append(error)

        _race(writer, "x", "y")
        assert not errors
        parts = [part] if part else None
        assert _markers(table, table.current(), parts) in (["x", "x"], ["y", "y"]), f"round {round_}"


WRITER = """
import sys
import pyarrow as pa
import os
from movierec_dagster.tables import LakeFiles, adls_credentials, write_arrow
table = LakeFiles(sys.argv[1], adls_credentials(os.environ)).table("t")
n = 0
while True:
    write_arrow(table, pa.table({"marker": [str(n)] * (n + 1)}), properties={"n": n})
    n += 1
"""


@pytest.mark.parametrize(("store", "delay"), [("file", 0.3), ("file", 0.55), ("file", 0.8), ("azurite", 0.55)])
def test_a_writer_killed_at_any_moment_leaves_a_whole_version(request, tmp_path, store, delay):
    """Write n commits n + 1 rows marked n; the writer opens the table as readers do (ADLS credentials from the environment)."""
    location = str(tmp_path / "lake") if store == "file" else request.getfixturevalue("adls_location")
    files = LakeFiles(location, adls_credentials(os.environ))
    fs, root = files.fs, files.root
    process = subprocess.Popen([sys.executable, "-c", WRITER, location], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 60
        while not fs.exists(join(root, "t", "_delta_log")) and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.01)
        time.sleep(delay)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()

    table = files.table("t")
    current = table.current()
    assert current is not None and current.rows > 0, "the writer must have committed before the kill"
    markers = _markers(table, current)
    n = int(markers[0])
    assert markers == [str(n)] * (n + 1) and current.rows == n + 1
    assert table.properties(current) == {"n": str(n)}
    # Whatever the kill interrupted is invisible, and the next writer simply goes on.
    after = write_arrow(table, _rows("after"))
    assert after.version > current.version
    assert _markers(table, table.current()) == ["after"]


def test_a_replayed_transaction_commits_nothing(table):
    committed = write_arrow(table, _rows("batch 5"), transaction=("stream", 5))
    assert table.transaction_version("stream") == 5
    assert write_arrow(table, _rows("batch 5 again"), transaction=("stream", 5)) is None
    assert write_arrow(table, _rows("batch 4"), transaction=("stream", 4)) is None
    assert table.current() == committed
    assert _markers(table, table.current()) == ["batch 5"]
    following = write_arrow(table, _rows("batch 6"), transaction=("stream", 6), replace="nothing")
    assert following.version == committed.version + 1 and table.transaction_version("stream") == 6
    assert table.transaction_version("another stream") is None


def test_commit_properties_are_read_back_and_survive_a_clean_up(table):
    write_arrow(table, _rows("a"), properties={"streamed_rows": 7})
    second = write_arrow(table, _rows("b"), properties={"streamed_rows": 9, "model": "v2"})
    assert table.properties(second) == {"streamed_rows": "9", "model": "v2"}
    assert table.vacuum(retention_hours=0)  # it deletes the replaced file, in commits of its own
    cleaned = table.current()
    assert cleaned.version > second.version
    assert table.properties(cleaned) == {"streamed_rows": "9", "model": "v2"}


def test_an_older_version_keeps_its_own_properties(table):
    first = write_arrow(table, _rows("a"), properties={"streamed_rows": 7})
    write_arrow(table, _rows("b"), properties={"streamed_rows": 9})
    assert table.properties(first) == {"streamed_rows": "7"}


def test_a_reader_pinned_to_a_version_reads_it_after_a_newer_commit(table):
    pinned = write_arrow(table, _rows("old", 2))
    write_arrow(table, _rows("new", 3))
    assert _markers(table, pinned) == ["old", "old"]
    assert _markers(table, table.current()) == ["new"] * 3


def test_the_files_of_an_uncommitted_write_are_never_read(table):
    write_arrow(table, _rows("committed"))
    uncommitted = _write_file(table, _rows("uncommitted"))
    current = table.current()
    assert uncommitted.path not in {file.path for file in current.files}
    assert _markers(table, current) == ["committed"]


def test_vacuum_keeps_what_a_reader_may_still_use(table):
    """The default retention (a day) keeps a replaced file for its pinned readers, and a write still under way."""
    pinned = write_arrow(table, _rows("old"))
    write_arrow(table, _rows("new"))
    uncommitted = _write_file(table, _rows("uncommitted"))
    assert table.vacuum() == []
    assert _markers(table, pinned) == ["old"]
    assert table.fs.exists(join(table.path, uncommitted.path))
    assert _markers(table, table.current()) == ["new"]


def test_vacuum_without_retention_deletes_replaced_and_uncommitted_files(table):
    replaced = write_arrow(table, _rows("old")).files[0]
    write_arrow(table, _rows("new"))
    uncommitted = _write_file(table, _rows("uncommitted"))
    assert sorted(table.vacuum(retention_hours=0)) == sorted([replaced.path, uncommitted.path])
    assert not table.fs.exists(join(table.path, replaced.path))
    assert not table.fs.exists(join(table.path, uncommitted.path))
    assert _markers(table, table.current()) == ["new"]


def test_a_table_written_here_is_read_by_deltalake_alone(table):
    write_arrow(table, _rows("a", 2), part="date=2026-01-01")
    write_arrow(table, _rows("b"), part="date=2026-01-02")
    read = DeltaTable(table.uri, storage_options=table.storage_options or None).to_pyarrow_table()
    expected = [("a", "2026-01-01"), ("a", "2026-01-01"), ("b", "2026-01-02")]
    assert sorted(zip(read["marker"].to_pylist(), read["date"].to_pylist())) == expected


def test_a_table_in_the_old_format_names_its_conversion(table):
    old_commit = join(table.path, "_log", f"{0:020d}.json")
    table.fs.makedirs(old_commit.rsplit("/", 1)[0], exist_ok=True)
    table.fs.pipe_file(old_commit, b'{"version": 0}')
    with pytest.raises(OldTableFormat, match="python -m movierec_dagster.convert_lake"):
        table.current()
    with pytest.raises(OldTableFormat):  # nor does a writer start a Delta table over it
        write_arrow(table, _rows("new"))


def _refused_once(monkeypatch, message: str) -> list[str]:
    """delta-rs's commit raises OSError(`message`) the first time, as a store's refusal reaches it; then commits."""
    refusals: list[str] = []
    commit = DeltaTable.create_write_transaction

    def refuse_first(self, *args, **kwargs):
        if not refusals:
            refusals.append(message)
            raise OSError(message)
        return commit(self, *args, **kwargs)

    monkeypatch.setattr(DeltaTable, "create_write_transaction", refuse_first)
    return refusals


def test_a_taken_version_answered_with_412_is_tried_again(tmp_path, monkeypatch):
    """A store that refuses a log file that exists with 412, not 409, reaches us as an OSError: a conflict."""
    table = _table(tmp_path)
    first = write_arrow(table, _rows("a"))
    refusals = _refused_once(monkeypatch, "Generic MicrosoftAzure error: Request precondition failure")
    second = write_arrow(table, _rows("b"))
    assert refusals and second.version == first.version + 1
    assert _markers(table, table.current()) == ["b"]


def test_any_other_storage_error_is_raised(tmp_path, monkeypatch):
    table = _table(tmp_path)
    write_arrow(table, _rows("a"))
    _refused_once(monkeypatch, "Generic MicrosoftAzure error: Server returned 403 Forbidden")
    with pytest.raises(OSError, match="403"):
        write_arrow(table, _rows("b"))
    assert _markers(table, table.current()) == ["a"]
