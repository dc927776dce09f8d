"""`event_rules.rating_event_failure` gives every event the reason the Spark ingest gives it, without Spark."""

import json
import math
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from pyspark.sql import functions as F

from movierec_dagster import event_rules
from movierec_dagster.event_rules import event_seconds, rating_event_failure
from movierec_dagster.stream import transforms
from tests.stream.events import BAD_LINES

PAST = 1_700_000_000  # 2023-11-14


def _event(**fields: object) -> dict[str, object]:
    """A valid event with some fields replaced; a field given as `...` is left out."""
    body: dict[str, object] = {"event_id": "e", "user_id": 1, "movie_id": 10, "rating": 4.0, "timestamp": PAST}
    body.update(fields)
    return {name: value for name, value in body.items() if value is not ...}


def _events(now: datetime) -> list[dict[str, object]]:
    soon = int(now.timestamp())
    return [
        _event(),
        _event(event_id=12345, user_id="7", movie_id=" 8 ", rating="4.5"),
        {"UserId": 2, "MovieId": 3, "Rating": 3.5, "Timestamp": PAST},  # the seed's shape: the id is derived
        _event(rating=..., Rating=2.5, timestamp=None, Timestamp=PAST),  # a design field absent or null: the seed's
        _event(event_id=...),
        _event(event_id="   "),
        _event(event_id="x" * 128),
        _event(event_id="x" * 129),
        _event(event_id="\U0001f600" * 128),  # characters, not bytes
        _event(event_id={"a": [1, 2.5]}),
        _event(user_id=...),
        _event(user_id="abc"),
        _event(user_id=0),
        _event(user_id=-4),
        _event(user_id=2_147_483_647),
        _event(user_id=2_147_483_648),
        _event(user_id=4.0),
        _event(user_id=10**19),
        _event(user_id=True),
        _event(movie_id=None),
        _event(movie_id=0),
        _event(movie_id=[1, 2]),
        _event(rating=...),
        _event(rating="abc"),
        _event(rating=0.25),
        _event(rating=5.5),
        _event(rating=0),
        _event(rating=4.75),
        _event(rating=math.nan),
        _event(timestamp=...),
        _event(timestamp=-5),
        _event(timestamp=soon + 400),
        _event(timestamp=soon + 200),
        _event(timestamp="2024-05-06T07:08:09Z"),
        _event(timestamp="yesterday"),
        _event(timestamp="1700000000.5"),
        _event(timestamp=1_700_000_000.5),  # Spark reads it as 1.7000000005E9
        _event(event_id="", user_id="x", rating=9, timestamp="bad"),  # several failures: the first one counts
    ]


# Each put in an otherwise valid event: Spark's cast of a string to double, and its odd corners.
RATINGS: list[object] = [
    " 4.5", "\t4.5", "4.5\n", "4.5e0", "45E-1", "4.5d", "4.5F", "4.500000001f", "0x1.2p2", "0x12", ".5", "5.", "+4",
    "4,5", "4_5", "\u0664", "", "NaN", "-NaN", "nan", "INF", "-Infinity", "Infinity", "1e400", True, 4.00, 3,
    math.inf, [4.5], {"v": 4.5},
]  # fmt: skip

# Each put in an otherwise valid event: epoch seconds, and Spark's cast of a string to timestamp.
TIMESTAMPS: list[object] = [
    "2024-05-06T07:08:09Z", "2024-05-06 07:08:09", "2024-05-06T07:08:09.123+01:00", "2024-05-06T07:08:09.1234567Z",
    "2024-05-06", "2024-05", "+2024-05-06", "-2024-05-06", "2024-5-6T7:8:9", "2024-05-06T07:08", "2024-05-06T07",
    "2024-05-06T07:08Z", "2024-05-06T", "2024-05-06T07:08:09.", "2024-05-06T07:08:09 UTC", "2024-05-06T07:08:09GMT+1",
    "2024-05-06T07:08:09UTC-05:30", "2024-05-06T07:08:09UT+3", "2024-05-06T07:08:09+1:00", "2024-05-06T07:08:09+05:3",
    "2024-05-06T07:08:09+0530", "2024-05-06T07:08:09-18:00", "2024-05-06T07:08:09+19:00", "2024-05-06T07:08:09z",
    "2024-05-06T07:08:09 Europe/Paris", "2024-05-06T07:08:09 europe/paris", "2024-05-06T07:08:09 PST",
    "2024-05-06T07:08:09 EST", "2024-03-31T02:30:00 Europe/Paris", "2024-10-27T02:30:00 Europe/Paris",
    "2024-02-29", "2023-02-29", "2024-13-01", "2024-05-06T24:00:00", "2024-05-06T07:60:00", "2024-05-06T07:08:60",
    "T00:00:00", "00:00", "0:00:00Z", "\tT00:00:00", "\t2024-05-06\n", "20240506", "2024/05/06", "May 6 2024",
    "123456-01-01", "300000-01-01", "0000-01-01", "1234567890123", "1.7e9", "1700000000.", "-0.5", "0", "1700000000\n",
    "2024", 1_700_000_000, 1_700_000_000.25, 1e5, True,
]  # fmt: skip


# Lines as a producer may write them, which json.dumps would not: Spark reads the numbers from the text,
# the HTTP path gets them from json.loads.
RAW_LINES = [
    '{"event_id": "r1", "user_id": 1, "movie_id": 10, "rating": 4.50, "timestamp": 17e8}',
    '{"event_id": "r2", "user_id": 1e0, "movie_id": 10, "rating": 45E-1, "timestamp": 1700000000.000}',
    '{"event_id": "r3", "user_id": -0, "movie_id": 10, "rating": 1e400, "timestamp": 1700000000}',
    '{"event_id": "r4", "user_id": 1, "movie_id": 10, "rating": 4.5000000000000000001, "timestamp": 99999.99}',
    '{"event_id": {"k" : [ 1 , 2.50 ]}, "user_id": 1, "movie_id": 10, "rating": 4, "timestamp": 1700000000}',
    '{"event_id": "r6", "user_id": 1, "movie_id": 10, "rating": 4, "rating": 2.25, "timestamp": 1700000000}',
]


def _spark_parse(spark, lines: list[str], now: datetime) -> list[tuple[str | None, int | None]]:
    """Each line's reject_reason and rated_at (in microseconds) from the ingest's `parse_events`."""
    frame = spark.createDataFrame(
        [(line, str(position), now) for position, line in enumerate(lines)], "value string, source string, landed_at timestamp"
    )
    parsed = transforms.parse_events(frame, now).select("source", "reject_reason", F.unix_micros("rated_at").alias("micros"))
    by_position = {int(row.source): (row.reject_reason, row.micros) for row in parsed.collect()}
    return [by_position[position] for position in range(len(lines))]


def test_every_event_gets_the_reason_spark_gives_it(spark):
    now = datetime.now(UTC)  # the same ingest time for both
    events = [
        *_events(now),
        *(_event(event_id=f"rating-{i}", rating=rating) for i, rating in enumerate(RATINGS)),
        *(_event(event_id=f"time-{i}", timestamp=timestamp) for i, timestamp in enumerate(TIMESTAMPS)),
    ]
    lines = [json.dumps(body) for body in events] + RAW_LINES

    spark_rows = _spark_parse(spark, lines, now)
    spark_reasons = [reason for reason, _ in spark_rows]

    mismatches = [
        (line, spark_reason, mine)
        for line, spark_reason in zip(lines, spark_reasons, strict=True)
        if (mine := rating_event_failure(json.loads(line), now)) != spark_reason
    ]
    assert mismatches == [], "\n".join(f"{line}: Spark {spark!r}, event_rules {mine!r}" for line, spark, mine in mismatches)
    # A valid event's rated_at is the time event_seconds reads (Spark truncates to whole microseconds).
    for line, (reason, micros) in zip(lines, spark_rows, strict=True):
        if reason is None:
            event = json.loads(line)
            timestamp = event["timestamp"] if event.get("timestamp") is not None else event["Timestamp"]
            assert int(event_seconds(timestamp, now) * 1_000_000) == micros, line
    # The events reach every field, rating and time check (and pass them all).
    every_rule = {
        None,
        event_rules.EVENT_ID_TOO_LONG,
        event_rules.RATING_NOT_A_NUMBER,
        event_rules.RATING_OUT_OF_RANGE,
        event_rules.RATING_OFF_STEP,
        event_rules.TIMESTAMP_UNREADABLE,
        event_rules.TIMESTAMP_BEFORE_1970,
        event_rules.TIMESTAMP_IN_FUTURE,
        *(event_rules.missing(name) for name in event_rules.FIELDS),
        *(check(name) for check in (event_rules.not_an_integer, event_rules.not_a_positive_id) for name in ("user_id", "movie_id")),
    }
    assert every_rule <= set(spark_reasons)


_STRUCTURAL = {"not a JSON object", "not valid JSON (malformed or truncated)", "not valid UTF-8"}


@pytest.mark.parametrize(
    ("line", "reason"),
    [(line, reason) for line, reason in BAD_LINES if reason not in _STRUCTURAL and not reason.startswith("line longer")],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_the_ingest_tests_bad_events_get_their_reasons_without_spark(line, reason):
    assert rating_event_failure(json.loads(line), datetime.now(UTC)) == reason


def test_the_rules_load_without_spark_or_dagster():
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, movierec_dagster.event_rules; print(' '.join(sys.modules))"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert not [name for name in loaded if name.split(".")[0] in ("pyspark", "dagster", "py4j")]
