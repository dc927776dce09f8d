"""StreamCheckpoint on checkpoints written by real file-source streaming queries (batches, compaction, an uncommitted batch) and on a hand-written one in memory://."""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import fsspec
import pytest

from movierec_dagster.resources.stream_checkpoint import StreamCheckpoint

# Compact the file source log every 3 batches and delete the files a compaction covers as soon as
# Spark allows, so that the early batch files are gone and only the .compact file still lists them.
COMPACT_EVERY_3 = {
    "spark.sql.streaming.fileSource.log.compactInterval": "3",
    "spark.sql.streaming.fileSource.log.cleanupDelay": "0",
    "spark.sql.streaming.minBatchesToRetain": "2",
}


@contextmanager
def spark_conf(spark, settings: dict[str, str]) -> Iterator[None]:
    """`settings` on the shared session for the duration, then as they were."""
    before = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            spark.conf.unset(key) if value is None else spark.conf.set(key, value)


def land(folder: Path, files: int) -> set[str]:
    """`files` one-line text files in `folder`; their names."""
    folder.mkdir(parents=True)
    for i in range(files):
        (folder / f"{i:02d}.txt").write_text(f"line {i}\n")
    return {f"{i:02d}.txt" for i in range(files)}


def run_stream(spark, landing: Path, checkpoint: Path) -> tuple[str, dict[int, set[str]]]:
    """One availableNow run of a text file stream, one file a batch: the query id and each batch's file names."""
    seen: dict[int, set[str]] = {}

    def record(batch, batch_id: int) -> None:
        seen[batch_id] = {row.file_name for row in batch.distinct().collect()}

    query = (
        spark.readStream.format("text")
        .option("maxFilesPerTrigger", 1)
        .load(str(landing))
        .select("_metadata.file_name")
        .writeStream.foreachBatch(record)
        .trigger(availableNow=True)
        .option("checkpointLocation", str(checkpoint))
        .start()
    )
    query.awaitTermination()
    return query.id, seen


def names(paths: set[str]) -> set[str]:
    return {path.rsplit("/", 1)[-1] for path in paths}


def test_a_finished_run(spark, tmp_path: Path):
    landed = land(tmp_path / "landing", 5)
    query_id, seen = run_stream(spark, tmp_path / "landing", tmp_path / "checkpoint")
    checkpoint = StreamCheckpoint.at(str(tmp_path / "checkpoint"))

    assert checkpoint.exists()
    assert checkpoint.query_id() == query_id
    assert checkpoint.last_committed_batch() == len(seen) - 1 == 4
    files = checkpoint.committed_files()
    assert all(path.startswith("file:///") for path in files)
    assert names(files) == landed == set().union(*seen.values())


def test_a_compacted_log(spark, tmp_path: Path):
    landed = land(tmp_path / "landing", 12)
    with spark_conf(spark, COMPACT_EVERY_3):
        run_stream(spark, tmp_path / "landing", tmp_path / "checkpoint")
    log = {path.name for path in (tmp_path / "checkpoint" / "sources" / "0").iterdir()}
    assert "11.compact" in log
    assert not {"0", "1", "3", "4", "6", "7"} & log  # deleted: only the .compact files still list these batches

    checkpoint = StreamCheckpoint.at(str(tmp_path / "checkpoint"))
    assert checkpoint.last_committed_batch() == 11
    assert names(checkpoint.committed_files()) == landed


@pytest.mark.parametrize("settings", [{}, COMPACT_EVERY_3], ids=["plain-last-batch", "compact-last-batch"])
def test_a_planned_but_uncommitted_batch_does_not_count(spark, tmp_path: Path, settings: dict[str, str]):
    land(tmp_path / "landing", 12)
    with spark_conf(spark, settings):
        _, seen = run_stream(spark, tmp_path / "landing", tmp_path / "checkpoint")
    checkpoint = StreamCheckpoint.at(str(tmp_path / "checkpoint"))
    assert (tmp_path / "checkpoint" / "offsets" / "11").is_file()

    (tmp_path / "checkpoint" / "commits" / "11").unlink()  # a crash after batch 11 was planned
    assert checkpoint.last_committed_batch() == 10
    assert names(checkpoint.committed_files()) == set().union(*(seen[batch] for batch in range(11)))
    assert not names(checkpoint.committed_files()) & seen[11]
    assert checkpoint.committed_offsets() == {"logOffset": 10}


def test_committed_offsets_of_a_file_source(spark, tmp_path: Path):
    land(tmp_path / "landing", 3)
    run_stream(spark, tmp_path / "landing", tmp_path / "checkpoint")
    checkpoint = StreamCheckpoint.at(str(tmp_path / "checkpoint"))

    assert checkpoint.committed_offsets() == {"logOffset": 2}
    assert checkpoint.committed_offsets(source=1) is None  # the query has one source


def test_an_absent_checkpoint(tmp_path: Path):
    checkpoint = StreamCheckpoint.at(str(tmp_path / "never-started"))

    assert not checkpoint.exists()
    assert checkpoint.query_id() is None
    assert checkpoint.last_committed_batch() is None
    assert checkpoint.committed_files() == set()
    assert checkpoint.committed_offsets() is None


def test_at_a_file_uri(spark, tmp_path: Path):
    land(tmp_path / "landing", 2)
    query_id, _ = run_stream(spark, tmp_path / "landing", tmp_path / "checkpoint")
    checkpoint = StreamCheckpoint.at((tmp_path / "checkpoint").as_uri())

    assert checkpoint.path == str(tmp_path / "checkpoint")
    assert checkpoint.query_id() == query_id
    assert checkpoint.last_committed_batch() == 1
    assert names(checkpoint.committed_files()) == {"00.txt", "01.txt"}


@pytest.fixture
def memory_folder(tmp_path: Path) -> Iterator[str]:
    """A folder of its own on fsspec's process-wide memory filesystem, removed afterwards."""
    uri = f"memory://{tmp_path.name}/checkpoint"
    yield uri
    fs, path = fsspec.core.url_to_fs(uri)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def test_at_memory_with_a_hand_written_checkpoint(memory_folder: str):
    """Batches 0-4 planned, 0-3 committed; 2.compact replaced the (deleted) files of batches 0 and 1."""
    fs, root = fsspec.core.url_to_fs(memory_folder)

    def entry(batch: int) -> str:
        return json.dumps({"path": f"file:///landing/{batch:02d}.txt", "timestamp": 1, "batchId": batch})

    fs.pipe(f"{root}/metadata", b'{"id":"6b0f2a4e-0000-4000-8000-000000000000"}')
    for batch in range(5):
        fs.pipe(f"{root}/offsets/{batch}", f'v1\n{{"batchWatermarkMs":0}}\n{{"logOffset":{batch}}}'.encode())
    for batch in range(4):
        fs.pipe(f"{root}/commits/{batch}", b'v1\n{"nextBatchWatermarkMs":0}')
    fs.pipe(f"{root}/commits/.4.crc", b"")  # hidden, and a leftover temp file: neither is a commit
    fs.pipe(f"{root}/commits/.4.1f2e.tmp", b"v1\n{}")
    fs.pipe(f"{root}/sources/0/2.compact", "\n".join(["v1", entry(0), entry(1), entry(2)]).encode())
    for batch in (3, 4):
        fs.pipe(f"{root}/sources/0/{batch}", f"v1\n{entry(batch)}".encode())
    fs.pipe(f"{root}/sources/0/.3.crc", b"\x00")

    checkpoint = StreamCheckpoint.at(memory_folder)
    assert checkpoint.exists()
    assert checkpoint.query_id() == "6b0f2a4e-0000-4000-8000-000000000000"
    assert checkpoint.last_committed_batch() == 3
    assert checkpoint.committed_files() == {f"file:///landing/{batch:02d}.txt" for batch in range(4)}
    assert checkpoint.committed_offsets() == {"logOffset": 3}
