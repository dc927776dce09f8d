"""The ingest on real files: every bad input quarantined with its reason, valid events kept once, runs incremental."""

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

from pyspark.sql import functions as F

from movierec_dagster.resources import LandingFolderSource, LocalLake
from movierec_dagster.stream import ingest, transforms
from movierec_dagster.stream.transforms import DUPLICATE, DUPLICATE_EARLIER
from tests.stream.events import BAD_LINES, event, write_lines


def _source(lake: LocalLake) -> LandingFolderSource:
    return LandingFolderSource(folder=lake.fs_path("landing", "rating_events"))


def _landing(lake: LocalLake) -> Path:
    return Path(lake.fs_path("landing", "rating_events"))


def test_bad_inputs_are_quarantined_and_valid_events_kept_once(spark, lake):
    valid = [event(f"ok-{i}", user_id=i + 1, movie_id=100 + i, rating=0.5 + (i % 10) / 2).encode() for i in range(20)]
    seed_event = json.dumps({"UserId": 7, "MovieId": 70, "Rating": 3.5, "Timestamp": 1_500_000_000}).encode()
    iso_event = event("iso", timestamp="2024-11-26T05:46:40Z").encode()
    bad = [line for line, _ in BAD_LINES]
    write_lines(_landing(lake), "a.jsonl", valid[:10] + bad[:8] + [seed_event])
    write_lines(_landing(lake), "b.jsonl", bad[8:] + valid[10:] + [iso_event, valid[0]])  # valid[0] again: a duplicate
    write_lines(_landing(lake), "empty.jsonl", [])

    result = ingest.ingest_rating_events(spark, lake, _source(lake), log=lambda _: None)

    events = lake.read_table(spark, "rating_events")
    assert sorted(events.columns) == sorted(
        ["event_id", "user_id", "movie_id", "rating", "rated_at", "ingested_at", "ingest_batch"]
    )
    ids = [row.event_id for row in events.collect()]
    assert len(ids) == len(set(ids)) == 22
    assert {f"ok-{i}" for i in range(20)} | {"iso"} <= set(ids)
    seed_row = events.where(F.col("event_id").startswith("seed-")).collect()
    assert [(r.user_id, r.movie_id, r.rating, int(r.rated_at.timestamp())) for r in seed_row] == [(7, 70, 3.5, 1_500_000_000)]
    assert dict(events.where("event_id = 'ok-3'").select("rating").first().asDict()) == {"rating": 2.0}

    rejected = lake.read_table(spark, "rejected_rating_events")
    reasons = sorted(row.reject_reason for row in rejected.collect())
    assert reasons == sorted([reason for _, reason in BAD_LINES] + [DUPLICATE])
    huge = rejected.where(F.col("reject_reason").startswith("line longer")).first()
    assert huge.raw_length > 1_000_000 and len(huge.raw) == 4096
    assert rejected.where("reject_reason = 'not valid UTF-8'").first().raw.startswith('{"event_id": "\ufffd')

    stats = result.stats
    assert (stats.read, stats.accepted, stats.rejected, stats.duplicates) == (39, 22, 17, 1)
    assert stats.rejected_by_reason["rating is outside 0.5-5.0"] == 2


def test_each_run_takes_only_new_events_and_drops_ids_seen_before(spark, lake):
    write_lines(_landing(lake), "1.jsonl", [event(f"e{i}", user_id=i + 1).encode() for i in range(5)])
    first = ingest.ingest_rating_events(spark, lake, _source(lake), log=lambda _: None)
    nothing = ingest.ingest_rating_events(spark, lake, _source(lake), log=lambda _: None)
    write_lines(_landing(lake), "2.jsonl", [event("e2").encode(), event("e9").encode()])
    second = ingest.ingest_rating_events(spark, lake, _source(lake), log=lambda _: None)

    assert (first.stats.accepted, nothing.stats.read, nothing.stats.batches) == (5, 0, 0)
    assert (second.stats.read, second.stats.accepted, second.stats.duplicates) == (2, 1, 1)
    assert second.stats.rejected_by_reason == {DUPLICATE_EARLIER: 1}
    assert lake.read_table(spark, "rating_events").count() == 6
    assert first.lag_seconds is not None and first.lag_seconds > 0


def test_processed_files_move_to_the_archive_and_count_once(spark, lake):
    archive = Path(lake.fs_path("landing_archive"))
    source = LandingFolderSource(folder=str(_landing(lake)), archive_folder=str(archive))
    write_lines(_landing(lake), "1.jsonl", [event("a").encode(), event("b").encode()])
    ingest.ingest_rating_events(spark, lake, source, log=lambda _: None)
    write_lines(_landing(lake), "2.jsonl", [event("c").encode()])
    second = ingest.ingest_rating_events(spark, lake, source, log=lambda _: None)

    # A run's files move once their batch is committed, when the next batch starts: 1.jsonl at the
    # start of the second run; 2.jsonl waits for the next one.
    assert sorted(path.name for path in _landing(lake).iterdir()) == ["2.jsonl"]
    assert [path.name for path in archive.rglob("*.jsonl")] == ["1.jsonl"]
    assert second.stats.read == 1
    assert sorted(row.event_id for row in lake.read_table(spark, "rating_events").collect()) == ["a", "b", "c"]


CHECKPOINT_ID = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def _batch(spark, lake):
    write_lines(_landing(lake), "1.jsonl", [event("a").encode(), event("b").encode(), b"junk"])
    return spark.read.text(_source(lake).folder).select(
        "value", F.lit("1.jsonl").alias("source"), F.current_timestamp().alias("landed_at")
    )


def test_a_batch_committed_before_is_not_committed_again(spark, lake):
    batch = _batch(spark, lake)
    first = ingest.process_batch(spark, lake, batch, CHECKPOINT_ID, 0)
    versions = {key: lake.table_version(key).version for key in ("rating_events", "rejected_rating_events")}

    again = ingest.process_batch(spark, lake, batch, CHECKPOINT_ID, 0)

    assert (first.accepted, first.rejected, first.duplicates) == (2, 1, 0)
    assert again is None, "the application transaction in the commit says the batch is in"
    assert {key: lake.table_version(key).version for key in versions} == versions
    assert lake.read_table(spark, "rating_events").count() == 2


def test_a_batch_killed_between_its_commits_is_completed_once(spark, lake):
    """The rejected rows were committed, then the run died: the replay commits the rest, and the rejected rows once."""
    batch = _batch(spark, lake)
    part = ingest.batch_part(CHECKPOINT_ID, 0)
    now = datetime.now(UTC)
    rejected_only = transforms.rejected_events(transforms.classify_batch(transforms.parse_events(batch, now), None, now))
    lake.write_table(rejected_only, "rejected_rating_events", part=part, transaction=(CHECKPOINT_ID, 0))

    replay = ingest.process_batch(spark, lake, batch, CHECKPOINT_ID, 0)

    assert (replay.accepted, replay.rejected) == (2, 1)
    assert lake.read_table(spark, "rating_events").count() == 2
    assert lake.read_table(spark, "rejected_rating_events").count() == 1


def _event_ids(spark, lake) -> list[str]:
    return sorted(row.event_id for row in lake.read_table(spark, "rating_events").select("event_id").collect())


def test_a_deleted_checkpoint_loses_nothing_and_ingests_nothing_twice(spark, lake):
    write_lines(_landing(lake), "1.jsonl", [event("a").encode(), event("b").encode()])
    ingest.ingest_rating_events(spark, lake, _source(lake), log=lambda _: None)
    parts_before = set(lake.table_version("rating_events").parts)
    lake.delete("checkpoints", "rating_events", _source(lake).checkpoint_name())
    write_lines(_landing(lake), "2.jsonl", [event("c").encode()])

    again = ingest.ingest_rating_events(spark, lake, _source(lake), log=lambda _: None)

    # The new checkpoint reads 1.jsonl again: its events are already in the table.
    assert again.stats.rejected_by_reason == {DUPLICATE_EARLIER: 2} and again.stats.accepted == 1
    assert _event_ids(spark, lake) == ["a", "b", "c"]
    assert parts_before < set(lake.table_version("rating_events").parts), "earlier batches must not be overwritten"
    assert lake.table_version("rating_events").rows == 3


def test_switching_the_source_loses_nothing_and_ingests_nothing_twice(spark, lake, tmp_path):
    first = LandingFolderSource(folder=str(tmp_path / "first"))
    second = LandingFolderSource(folder=str(tmp_path / "second"))
    assert first.checkpoint_name() != second.checkpoint_name()
    write_lines(tmp_path / "first", "1.jsonl", [event("a").encode(), event("b").encode()])
    ingest.ingest_rating_events(spark, lake, first, log=lambda _: None)
    # The new source replays part of what the old one carried, then goes on.
    write_lines(tmp_path / "second", "1.jsonl", [event("b").encode(), event("c").encode()])

    switched = ingest.ingest_rating_events(spark, lake, second, log=lambda _: None)

    assert (switched.stats.accepted, switched.stats.duplicates) == (1, 1)
    assert _event_ids(spark, lake) == ["a", "b", "c"]


def test_a_copied_lake_ingests_on(spark, lake, tmp_path):
    write_lines(_landing(lake), "1.jsonl", [event("a").encode()])
    ingest.ingest_rating_events(spark, lake, _source(lake), log=lambda _: None)
    copied = LocalLake(root=str(tmp_path / "copied"))
    shutil.copytree(lake.fs_path(), copied.fs_path())
    write_lines(_landing(copied), "2.jsonl", [event("b").encode()])

    # Spark's checkpoint holds the old folder's absolute paths; the copy's folder has a checkpoint of its own.
    ingest.ingest_rating_events(spark, copied, _source(copied), log=lambda _: None)

    assert _event_ids(spark, copied) == ["a", "b"]
    assert _event_ids(spark, lake) == ["a"]


def test_ids_ingested_before_the_id_index_existed_still_count_as_seen(spark, lake):
    write_lines(_landing(lake), "1.jsonl", [event(f"old-{i}").encode() for i in range(5)])
    ingest.ingest_rating_events(spark, lake, _source(lake), log=lambda _: None)
    lake.delete("tables", ingest.EVENT_IDS_TABLE)  # as a lake from before the index has it
    write_lines(_landing(lake), "2.jsonl", [event("old-3").encode(), event("new").encode()])
    second = ingest.ingest_rating_events(spark, lake, _source(lake), log=lambda _: None)
    write_lines(_landing(lake), "3.jsonl", [event("old-1").encode(), event("new").encode()])
    third = ingest.ingest_rating_events(spark, lake, _source(lake), log=lambda _: None)

    assert (second.stats.accepted, second.stats.rejected_by_reason) == (1, {DUPLICATE_EARLIER: 1})
    assert (third.stats.accepted, third.stats.rejected_by_reason) == (0, {DUPLICATE_EARLIER: 2})
    assert set(lake.table_version(ingest.EVENT_IDS_TABLE).parts) == set(lake.table_version("rating_events").parts)


def test_a_hash_the_index_matches_is_no_duplicate_unless_the_id_is(spark, lake):
    """Two ids can share a 64-bit hash: the index only points at parts, and the ids there decide."""
    write_lines(_landing(lake), "1.jsonl", [event(f"old-{i}").encode() for i in range(3)])
    ingest.ingest_rating_events(spark, lake, _source(lake), log=lambda _: None)
    (part,) = lake.table_version(ingest.EVENT_IDS_TABLE).parts
    index = lake.read_table(spark, ingest.EVENT_IDS_TABLE).drop(transforms.BATCH)
    colliding = spark.createDataFrame([("new",)], "event_id string").select(F.xxhash64("event_id").alias(ingest.ID_HASH))
    lake.write_table(index.unionByName(colliding), ingest.EVENT_IDS_TABLE, part=part)  # as if an old id hashed as "new"

    write_lines(_landing(lake), "2.jsonl", [event("new").encode(), event("old-1").encode()])
    result = ingest.ingest_rating_events(spark, lake, _source(lake), log=lambda _: None)

    assert (result.stats.accepted, result.stats.rejected_by_reason) == (1, {DUPLICATE_EARLIER: 1})
    assert _event_ids(spark, lake) == ["new", "old-0", "old-1", "old-2"]
