"""Duplicate detection on a parsed batch: which copy is kept, and what counts as seen before."""

from datetime import UTC, datetime

import pytest

from movierec_dagster.stream import transforms
from movierec_dagster.stream.transforms import DUPLICATE, DUPLICATE_EARLIER, REASON
from tests.stream.events import event

# (text, source): a valid copy of an id always wins over an invalid one, even from an earlier source
LINES = [
    (event("u1", rating=0), "0.jsonl"),
    (event("d", rating=1.0), "a.jsonl"),
    (event("u1", rating=2.0), "a.jsonl"),
    ("junk", "a.jsonl"),
    (event("e"), "a.jsonl"),
    (event("d", rating=5.0), "b.jsonl"),
    (event("e"), "b.jsonl"),
    (event("old", rating=0), "b.jsonl"),
    ("more junk", "b.jsonl"),
]
COMMON_REJECTS = [
    ("0.jsonl", "u1", "rating is outside 0.5-5.0"),
    ("a.jsonl", None, "not a JSON object"),
    ("b.jsonl", "d", DUPLICATE),
    ("b.jsonl", "old", "rating is outside 0.5-5.0"),  # invalid first: its own reason, though "old" was seen
    ("b.jsonl", None, "not a JSON object"),
]


@pytest.fixture
def parsed(spark):
    now = datetime.now(UTC)
    frame = spark.createDataFrame(
        [(text, source, now) for text, source in LINES], "value string, source string, landed_at timestamp"
    )
    parsed = transforms.parse_events(frame, now).cache()
    yield parsed
    parsed.unpersist()


def _classify(parsed, ingested_ids, max_broadcast_ids=transforms.MAX_BROADCAST_IDS):
    classified = transforms.classify_batch(parsed, ingested_ids, datetime.now(UTC), max_broadcast_ids)
    valid = {(row.event_id, row.rating) for row in transforms.valid_events(classified).collect()}
    rejected = [(row.source, row.event_id, row[REASON]) for row in transforms.rejected_events(classified).collect()]
    return valid, sorted(rejected, key=str), transforms.batch_stats(classified)


@pytest.mark.parametrize("broadcast", [True, False], ids=["broadcast joins", "shuffled joins"])
def test_first_valid_copy_is_kept_and_ids_seen_before_are_all_rejected(spark, parsed, broadcast):
    earlier = spark.createDataFrame([("e",), ("old",)], "event_id string")
    if broadcast:
        valid, rejected, stats = _classify(parsed, earlier)
    else:
        # A batch over the limit gets no broadcast hints; with Spark's own broadcasting off too, the joins shuffle.
        spark.conf.set("spark.sql.autoBroadcastJoinThreshold", "-1")
        try:
            valid, rejected, stats = _classify(parsed, earlier, max_broadcast_ids=0)
        finally:
            spark.conf.unset("spark.sql.autoBroadcastJoinThreshold")

    assert valid == {("d", 1.0), ("u1", 2.0)}
    expected = COMMON_REJECTS + [("a.jsonl", "e", DUPLICATE_EARLIER), ("b.jsonl", "e", DUPLICATE_EARLIER)]
    assert rejected == sorted(expected, key=str)
    assert stats.duplicates == 3


def test_without_earlier_ids_only_repeats_in_the_batch_are_duplicates(parsed):
    valid, rejected, stats = _classify(parsed, None)

    assert valid == {("d", 1.0), ("u1", 2.0), ("e", 4.0)}
    assert rejected == sorted(COMMON_REJECTS + [("b.jsonl", "e", DUPLICATE)], key=str)
    assert stats.duplicates == 2
