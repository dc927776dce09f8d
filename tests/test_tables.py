"""The table layer without Spark: commits in memory, in local folders and on Azurite (ADLS), racing writers, a writer killed mid-commit, clean-up."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import fsspec
import pytest
from fsspec.implementations.local import LocalFileSystem

from movierec_dagster.tables import WHOLE, Part, Table, join, lake_filesystem, new_snapshot_id, put_if_absent

ROOT = Path(__file__).resolve().parents[1]
FILES_PER_SNAPSHOT = 5


def _table(fs, path: str) -> Table:
    return Table(fs, path, f"{fs.protocol[0] if isinstance(fs.protocol, tuple) else fs.protocol}://{path}")


def _write_snapshot(table: Table, part: str = WHOLE, marker: str = "") -> str:
    """A snapshot of FILES_PER_SNAPSHOT files, each holding `marker`."""
    snapshot = new_snapshot_id()
    folder = table.snapshot_path(snapshot, part)
    table.fs.makedirs(folder, exist_ok=True)
    for n in range(FILES_PER_SNAPSHOT):
        table.fs.pipe_file(join(folder, f"part-{n}"), marker.encode())
    return snapshot


def _shared_table(request, tmp_path, name: str) -> Table:
    """A table that writers in several threads or processes can share: in a local folder, or on Azurite."""
    if request.param == "azurite":
        return request.getfixturevalue("adls_lake").table(name)
    return _table(fsspec.filesystem("file"), str(tmp_path / "tables" / name))


@pytest.fixture(params=["memory", "file", "azurite"])
def table(request, tmp_path) -> Table:
    if request.param == "memory":
        fs = fsspec.filesystem("memory")
        path = f"/tables-{os.getpid()}-{time.time_ns()}/ratings"
        yield _table(fs, path)
        fs.rm(path.rsplit("/", 1)[0], recursive=True)
    else:
        yield _shared_table(request, tmp_path, "ratings")


@pytest.fixture(params=["file", "azurite"])
def shared_table(request, tmp_path) -> Table:
    """`table` without memory://, whose exclusive create is a check then a write: racing threads could both win."""
    return _shared_table(request, tmp_path, "events")


def test_a_table_is_its_newest_commit(table):
    assert table.current() is None
    first = _write_snapshot(table, marker="v0")
    table.commit({WHOLE: Part(first, rows=3)}, replace_all=True, properties={"streamed_rows": 0})
    second = _write_snapshot(table, marker="v1")
    table.commit({WHOLE: Part(second, rows=4)}, replace_all=True, properties={"streamed_rows": 7})
    current = table.current()
    assert (current.version, current.parts, current.rows, current.properties) == (
        1, {WHOLE: Part(second, 4)}, 4, {"streamed_rows": 7},
    )
    assert table.data_uris(current) == [f"{table.uri}/snapshot={second}"]


def test_parts_replace_only_themselves(table):
    for day, marker in [("date=2026-01-01", "a"), ("date=2026-01-02", "b"), ("date=2026-01-01", "c")]:
        table.commit({day: Part(_write_snapshot(table, day, marker), rows=len(marker))})
    parts = table.current().parts
    assert sorted(parts) == ["date=2026-01-01", "date=2026-01-02"]
    folder = table.snapshot_path(parts["date=2026-01-01"].snapshot, "date=2026-01-01")
    assert table.fs.cat_file(join(folder, "part-0")) == b"c"
    assert table.current().rows == 2


def test_a_table_is_written_whole_or_in_parts_not_both(table):
    table.commit({WHOLE: Part(_write_snapshot(table))}, replace_all=True)
    with pytest.raises(ValueError, match="whole and in parts"):
        table.commit({"date=2026-01-01": Part(_write_snapshot(table, "date=2026-01-01"))})


def test_unknown_rows_make_the_table_count_unknown(table):
    table.commit({"a=1": Part(_write_snapshot(table, "a=1"), rows=2)})
    table.commit({"a=2": Part(_write_snapshot(table, "a=2"))})
    assert table.current().rows is None


def test_of_racing_creators_exactly_one_wins(shared_table):
    """The commit's exclusive create: on ADLS one Put Blob with If-None-Match: *, however many writers race."""
    path = join(shared_table.path, "contested.json")
    barrier = threading.Barrier(8)
    won: list[int] = []

    def creator(n: int) -> None:
        barrier.wait()
        if put_if_absent(shared_table.fs, path, f"writer {n}".encode()):
            won.append(n)

    threads = [threading.Thread(target=creator, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    assert shared_table.fs.cat_file(path) == f"writer {won[0]}".encode()


def test_two_writers_of_different_parts_lose_nothing(shared_table):
    table = shared_table
    batches = 15 if isinstance(table.fs, LocalFileSystem) else 6  # Azurite answers in milliseconds, not microseconds
    errors = []

    def writer(name: str) -> None:
        try:
            for batch in range(batches):
                part = f"batch={name}-{batch}"
                table.commit({part: Part(_write_snapshot(table, part, name), rows=1)})
        except Exception as error:  # reported below: a thread's exception is otherwise lost
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(name,)) for name in ("a", "b", "c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    current = table.current()
    assert current.version == 3 * batches - 1 and current.rows == 3 * batches
    assert sorted(current.parts) == sorted(f"batch={n}-{b}" for n in "abc" for b in range(batches))


def test_two_writers_replacing_the_table_never_mix(shared_table):
    table = shared_table
    barrier = threading.Barrier(2)

    def writer(marker: str) -> None:
        for _ in range(10):
            snapshot = _write_snapshot(table, marker=marker)
            barrier.wait()
            table.commit({WHOLE: Part(snapshot)}, replace_all=True)

    threads = [threading.Thread(target=writer, args=(marker,)) for marker in ("x", "y")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    current = table.current()
    assert current.version == 19 and list(current.parts) == [WHOLE]
    folder = table.snapshot_path(current.parts[WHOLE].snapshot)
    contents = {table.fs.cat_file(join(folder, f"part-{n}")) for n in range(FILES_PER_SNAPSHOT)}
    assert contents in ({b"x"}, {b"y"})


WRITER = """
import sys
from tests.test_tables import _write_snapshot
from movierec_dagster.tables import WHOLE, Part, Table, lake_filesystem
fs, path = lake_filesystem(sys.argv[1])
table = Table(fs, path, sys.argv[1])
n = 0
while True:
    table.commit({WHOLE: Part(_write_snapshot(table, marker=str(n)))}, replace_all=True)
    n += 1
"""


@pytest.mark.parametrize(("store", "delay"), [("file", 0.3), ("file", 0.55), ("file", 0.8), ("azurite", 0.55)])
def test_a_writer_killed_at_any_moment_leaves_a_whole_version(request, tmp_path, store, delay):
    """The writer opens the table as the readers do (`lake_filesystem`: ADLS credentials from the environment)."""
    location = str(tmp_path / "table") if store == "file" else request.getfixturevalue("adls_location")
    fs, path = lake_filesystem(location)
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, location], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    deadline = time.monotonic() + 60
    while not fs.exists(join(path, "_log")) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()

    table = Table(fs, path, location)
    current = table.current()
    assert current is not None and current.version > 0, "the writer must have committed before the kill"
    folder = table.snapshot_path(current.parts[WHOLE].snapshot)
    contents = [table.fs.cat_file(join(folder, f"part-{n}")) for n in range(FILES_PER_SNAPSHOT)]
    assert contents == [str(current.version).encode()] * FILES_PER_SNAPSHOT
    # Whatever the kill interrupted is invisible, and the next writer simply goes on.
    table.commit({WHOLE: Part(_write_snapshot(table, marker="after"))}, replace_all=True)
    assert table.current().version == current.version + 1


def test_vacuum_keeps_what_a_reader_may_still_use(table):
    first = _write_snapshot(table)
    table.commit({WHOLE: Part(first)}, replace_all=True)
    second = _write_snapshot(table)
    table.commit({WHOLE: Part(second)}, replace_all=True)
    orphan = _write_snapshot(table)  # a writer that died before committing, or is still writing
    assert table.vacuum(retention_seconds=3600) == []
    assert table.vacuum(retention_seconds=0) == [first]
    assert table.fs.exists(table.snapshot_path(orphan)) and table.fs.exists(table.snapshot_path(second))
    assert table.vacuum(retention_seconds=0, now=time.time() + 2 * 24 * 3600) == [orphan]
    assert table.current().parts[WHOLE].snapshot == second
