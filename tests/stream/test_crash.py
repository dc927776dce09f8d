"""Exactly once under a crash: an ingest killed (SIGKILL) mid-stream and run again keeps every valid event once."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from movierec_dagster.resources import LandingFolderSource
from movierec_dagster.stream.ingest import ingest_rating_events
from tests.stream.events import event, write_lines

pytestmark = pytest.mark.slow  # ingests killed in processes of their own

FILES, EVENTS_PER_FILE = 24, 50
ROOT = Path(__file__).resolve().parents[2]

INGEST = """
import sys
from movierec_dagster.resources import LandingFolderSource, LocalLake, LocalSpark
from movierec_dagster.stream.ingest import ingest_rating_events
lake = LocalLake(root=sys.argv[1])
source = LandingFolderSource(
    folder=lake.fs_path("landing", "rating_events"), archive_folder=lake.fs_path("landing_archive"), max_files_per_batch=1
)
ingest_rating_events(LocalSpark(master="local[1]", shuffle_partitions=1, driver_memory="1g").session(), lake, source)
"""


def _batches_done(lake) -> int:
    version = lake.table_version("rating_events")
    return len(version.parts) if version else 0


def test_killed_ingest_rerun_keeps_every_valid_event_once(spark, lake, tmp_path):
    landing = Path(lake.fs_path("landing", "rating_events"))
    expected = set()
    for f in range(FILES):
        ids = [f"f{f}-e{i}" for i in range(EVENTS_PER_FILE)]
        expected.update(ids)
        lines = [event(i, user_id=f + 1, movie_id=n + 1).encode() for n, i in enumerate(ids)]
        # Every file also resends an event of the previous file, and has one bad line.
        lines += [event(f"f{max(f - 1, 0)}-e0").encode(), b"{not json"]
        write_lines(landing, f"{f:03d}.jsonl", lines)

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # A session of its own, so the kill takes the Python process and its Spark JVM together, as a crash
    # would: a JVM left running on its own goes on planning batches in the checkpoint for a moment.
    process = subprocess.Popen(
        [sys.executable, "-c", INGEST, lake.root],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    while _batches_done(lake) < 3 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done_at_kill = _batches_done(lake)
    assert 3 <= done_at_kill < FILES, "the kill must land mid-stream"

    archive = Path(lake.fs_path("landing_archive"))
    source = LandingFolderSource(folder=str(landing), archive_folder=str(archive), max_files_per_batch=5)
    ingest_rating_events(spark, lake, source, log=lambda _: None)

    events = lake.read_table(spark, "rating_events")
    ids = [row.event_id for row in events.select("event_id").collect()]
    assert len(ids) == len(set(ids)), "an event was ingested twice"
    assert set(ids) == expected, "an event is missing"
    rejected = lake.read_table(spark, "rejected_rating_events")
    assert rejected.where("reject_reason LIKE 'not valid JSON%'").count() == FILES
    # Archiving moved files, never lost one: the last batch's files wait in the landing folder.
    archived, waiting = {p.name for p in archive.rglob("*.jsonl")}, {p.name for p in landing.glob("*.jsonl")}
    assert archived and not archived & waiting and len(archived | waiting) == FILES
