"""Duplicate detection on a parsed batch: which copy is kept, and what counts as seen before."""

from datetime import UTC, datetime

from movierec_dagster.stream import transforms
from movierec_dagster.stream.transforms import DUPLICATE, DUPLICATE_EARLIER, REASON
from tests.stream.events import event


def test_first_valid_copy_is_kept_and_ids_seen_before_are_all_rejected(spark):
    now = datetime.now(UTC)
    lines = [
        # (text, source): a valid copy of an id always wins over an invalid one, even from an earlier source
        (event("u1", rating=0), "0.jsonl"),
        (event("d", rating=1.0), "a.jsonl"),
        (event("u1", rating=2.0), "a.jsonl"),
        ("junk", "a.jsonl"),
        (event("e"), "a.jsonl"),
        (event("d", rating=5.0), "b.jsonl"),
        (event("e"), "b.jsonl"),
        ("more junk", "b.jsonl"),
    ]
    frame = spark.createDataFrame(
        [(text.encode(), source, now) for text, source in lines], "value binary, source string, landed_at timestamp"
    ).selectExpr("cast(value as string) as value", "source", "landed_at")
    earlier = spark.createDataFrame([("e",), ("old",)], "event_id string")
    parsed = transforms.parse_events(frame, now).cache()

    classified = transforms.classify_batch(parsed, earlier, now)

    valid = {(row.event_id, row.rating) for row in transforms.valid_events(classified).collect()}
    rejected = [(row.source, row.event_id, row[REASON]) for row in transforms.rejected_events(classified).collect()]
    assert valid == {("d", 1.0), ("u1", 2.0)}
    assert sorted(rejected, key=str) == sorted([
        ("0.jsonl", "u1", "rating is outside 0.5-5.0"),
        ("a.jsonl", "e", DUPLICATE_EARLIER),
        ("a.jsonl", None, "not a JSON object"),
        ("b.jsonl", "d", DUPLICATE),
        ("b.jsonl", "e", DUPLICATE_EARLIER),
        ("b.jsonl", None, "not a JSON object"),
    ], key=str)
    assert transforms.batch_stats(classified).duplicates == 3
