"""The table layer without Spark: commits on memory:// and local folders, two writers, a writer killed mid-commit, clean-up."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import fsspec
import pytest

from movierec_dagster.tables import WHOLE, Part, Table, join, new_snapshot_id

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


@pytest.fixture(params=["memory", "file"])
def table(request, tmp_path) -> Table:
    if request.param == "memory":
        fs = fsspec.filesystem("memory")
        path = f"/tables-{os.getpid()}-{time.time_ns()}/ratings"
        yield _table(fs, path)
        fs.rm(path.rsplit("/", 1)[0], recursive=True)
    else:
        yield _table(fsspec.filesystem("file"), str(tmp_path / "tables" / "ratings"))


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


def test_two_writers_of_different_parts_lose_nothing(tmp_path):
    table = _table(fsspec.filesystem("file"), str(tmp_path / "events"))
    errors = []

    def writer(name: str) -> None:
        try:
            for batch in range(15):
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
    assert current.version == 44 and current.rows == 45
    assert sorted(current.parts) == sorted(f"batch={n}-{b}" for n in "abc" for b in range(15))


def test_two_writers_replacing_the_table_never_mix(tmp_path):
    table = _table(fsspec.filesystem("file"), str(tmp_path / "model"))
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
import fsspec
from tests.test_tables import _table, _write_snapshot
from movierec_dagster.tables import WHOLE, Part
table = _table(fsspec.filesystem("file"), sys.argv[1])
n = 0
while True:
    table.commit({WHOLE: Part(_write_snapshot(table, marker=str(n)))}, replace_all=True)
    n += 1
"""


@pytest.mark.parametrize("delay", [0.3, 0.55, 0.8])
def test_a_writer_killed_at_any_moment_leaves_a_whole_version(tmp_path, delay):
    path = tmp_path / "table"
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    deadline = time.monotonic() + 60
    while not (path / "_log").is_dir() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()

    table = _table(fsspec.filesystem("file"), str(path))
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
