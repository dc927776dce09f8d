"""Rating events: raw lines to validated rows, plain PySpark (no Dagster).

`parse_events` takes the raw lines of the event source (`value` text plus where
and when each line landed) and returns one row per line with the typed fields
and a `reject_reason`, null for a valid event. `classify_batch` then
marks duplicate `event_id`s, within the batch and against the ids already
ingested, and `valid_events` / `rejected_events` split them.

Both event shapes are accepted: the design's
`{"event_id", "user_id", "movie_id", "rating", "timestamp"}` and the seed's
`{"UserId", "MovieId", "Rating", "Timestamp"}` (which has no id: the id is then
derived from the event's content, so a resent seed event is a duplicate).
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from movierec_dagster.event_rules import (
    EPOCH_SECONDS_TEXT,
    EVENT_ID_TOO_LONG,
    FIELDS,
    FUTURE_TOLERANCE_SECONDS,
    INTEGER_TEXT,
    MAX_EVENT_ID_CHARS,
    MAX_ID,
    SEED_FIELDS,
    TIMESTAMP_BEFORE_1970,
    TIMESTAMP_IN_FUTURE,
    TIMESTAMP_UNREADABLE,
    missing,
    not_a_positive_id,
    not_an_integer,
)
from movierec_dagster.validation import RAW, REASON, first_failure, rating_value_failure

VALUE, SOURCE, LANDED_AT = "value", "source", "landed_at"
RAW_BYTES = "raw_length"
BATCH = "ingest_batch"
EVENT_COLUMNS = ("event_id", "user_id", "movie_id", "rating", "rated_at", "ingested_at")
REJECTED_COLUMNS = (RAW, RAW_BYTES, REASON, "event_id", SOURCE, LANDED_AT, "ingested_at")

MAX_EVENT_BYTES = 64 * 1024  # an event is ~120 bytes; anything this big is not one
MAX_RAW_CHARS = 4096  # how much of a rejected line is kept
MAX_BROADCAST_IDS = 2_000_000  # about 100 MB of event ids held by the driver to broadcast

DUPLICATE = "duplicate event_id"
DUPLICATE_EARLIER = "duplicate event_id (already ingested)"

_CORRUPT = "_corrupt_record"
# Every field read as text, so the validation below sees what was sent: a string's own text, other values as
# compact JSON (integers keep their digits; other numbers are written from their double: 4.00 reads "4.0",
# 1.5e9 "1.5E9", NaN '"NaN"'). event_rules.rating_event_failure reproduces this for the HTTP write path.
_JSON_SCHEMA = ", ".join(f"`{name}` string" for name in (*FIELDS, *SEED_FIELDS.values(), _CORRUPT))
# `rating` and `Rating` cannot both be addressed (Spark resolves fields case-insensitively): a struct
# cast renames by position, so the seed's fields become `seed_<field>`.
_NAMED_SCHEMA = "struct<" + ", ".join(
    f"`{name}`: string" for name in (*FIELDS, *(f"seed_{name}" for name in SEED_FIELDS), _CORRUPT)
) + ">"


def _field(parsed: Column, name: str) -> Column:
    """The design's field, else the seed's; blank text counts as missing."""
    value = parsed[name]
    if name in SEED_FIELDS:
        value = F.coalesce(value, parsed[f"seed_{name}"])
    value = F.trim(value)
    return F.when(value != "", value)


def _as_long(text: Column) -> Column:
    return F.when(text.rlike(INTEGER_TEXT), text.try_cast("bigint"))


def _id_failure(value: Column, text: Column, name: str) -> list[tuple[Column, str]]:
    return [
        (text.isNull(), missing(name)),
        (value.isNull(), not_an_integer(name)),
        ((value <= 0) | (value > MAX_ID), not_a_positive_id(name)),
    ]


def _event_seconds(text: Column) -> Column:
    """Epoch seconds from a number (integer or decimal seconds) or an ISO-8601 text, else null."""
    number = F.when(text.rlike(EPOCH_SECONDS_TEXT), text.try_cast("double"))
    return F.coalesce(number, F.unix_micros(F.try_to_timestamp(text)) / 1_000_000)


def parse_events(lines: DataFrame, now: datetime) -> DataFrame:
    """One row per line: event_id, user_id, movie_id, rating, rated_at, the line's source, reject_reason, value.

    The line's `value` is kept as it came; `rejected_events` turns it into the
    stored `raw` text, so only rejected lines pay for that.

    `lines` has `value` (the line's text, possibly invalid UTF-8), `source` and
    `landed_at`; `now` is the ingest time, which bounds future timestamps.

    The work is done in steps, each a projection of named columns: the
    optimizer keeps a projection whose costly columns are used more than once,
    so each field's text and typed value is computed once per line. Written as
    one expression, the checks inlined them again and again inside nested
    branches (a 50 KB plan) and parsing cost five to seven times as much.
    """
    value = F.col(VALUE)
    json = F.from_json(value, _JSON_SCHEMA, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": _CORRUPT}).cast(
        _NAMED_SCHEMA
    )
    measured = lines.select(
        value, F.col(SOURCE), F.col(LANDED_AT), F.octet_length(value).alias("_bytes"),
        F.expr(f"is_valid_utf8({VALUE})").alias("_utf8"),
    )
    is_utf8, length = F.col("_utf8"), F.col("_bytes")
    parsed = measured.withColumn("_parsed", F.when(is_utf8 & (length <= MAX_EVENT_BYTES), json))
    texts = parsed.select(
        "*",
        F.trim(value).alias("_trimmed"),
        *(_field(F.col("_parsed"), name).alias(f"_text_{name}") for name in FIELDS),
        (F.col("_parsed.event_id").isNull() & F.col("_parsed.seed_user_id").isNotNull()).alias("_seed_shaped"),
    )
    text = {name: F.col(f"_text_{name}") for name in FIELDS}
    content = F.concat_ws("|", text["user_id"], text["movie_id"], text["rating"], text["timestamp"])
    typed = texts.select(
        "*",
        F.when(F.col("_seed_shaped"), F.concat(F.lit("seed-"), F.substring(F.sha2(content, 256), 1, 32)))
        .otherwise(text["event_id"])
        .alias("_id"),
        _as_long(text["user_id"]).alias("_user"),
        _as_long(text["movie_id"]).alias("_movie"),
        text["rating"].try_cast("double").alias("_rating"),
        _event_seconds(text["timestamp"]).alias("_seconds"),
    )
    trimmed, parsed_json, event_id = F.col("_trimmed"), F.col("_parsed"), F.col("_id")
    user_id, movie_id, rating, seconds = F.col("_user"), F.col("_movie"), F.col("_rating"), F.col("_seconds")
    structural = first_failure(
        [
            (~is_utf8, "not valid UTF-8"),
            (length > MAX_EVENT_BYTES, f"line longer than {MAX_EVENT_BYTES} bytes"),
            (trimmed == "", "empty line"),
            (~trimmed.startswith("{"), "not a JSON object"),
            (parsed_json.isNull() | parsed_json[_CORRUPT].isNotNull(), "not valid JSON (malformed or truncated)"),
        ]
    )
    field_checks = first_failure(
        [
            (event_id.isNull(), missing("event_id")),
            (F.length(event_id) > MAX_EVENT_ID_CHARS, EVENT_ID_TOO_LONG),
            *_id_failure(user_id, text["user_id"], "user_id"),
            *_id_failure(movie_id, text["movie_id"], "movie_id"),
            (text["rating"].isNull(), missing("rating")),
        ]
    )
    time_checks = first_failure(
        [
            (text["timestamp"].isNull(), missing("timestamp")),
            (seconds.isNull(), TIMESTAMP_UNREADABLE),
            (seconds < 0, TIMESTAMP_BEFORE_1970),
            (seconds > F.lit(now.timestamp() + FUTURE_TOLERANCE_SECONDS), TIMESTAMP_IN_FUTURE),
        ]
    )
    reasoned = typed.withColumn(
        REASON, F.coalesce(structural, field_checks, rating_value_failure(rating), time_checks)
    )
    valid = F.col(REASON).isNull()
    return reasoned.select(
        event_id.alias("event_id"),
        F.when(valid, user_id.cast("int")).alias("user_id"),
        F.when(valid, movie_id.cast("int")).alias("movie_id"),
        F.when(valid, rating).alias("rating"),
        F.when(valid, F.timestamp_micros((seconds * 1_000_000).cast("bigint"))).alias("rated_at"),
        F.col(SOURCE),
        F.col(LANDED_AT),
        F.col(REASON),
        value,
        length.alias(RAW_BYTES),
    )


@dataclass
class BatchStats:
    """What one micro-batch did; `add` sums batches into a run's totals. Times are in UTC."""

    accepted: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    newest_event: datetime | None = None
    oldest_landed: datetime | None = None
    batches: int = 0

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())

    @property
    def read(self) -> int:
        return self.accepted + self.rejected

    @property
    def duplicates(self) -> int:
        return sum(self.rejected_by_reason.get(reason, 0) for reason in (DUPLICATE, DUPLICATE_EARLIER))

    def add(self, other: "BatchStats") -> None:
        self.accepted += other.accepted
        for reason, count in other.rejected_by_reason.items():
            self.rejected_by_reason[reason] = self.rejected_by_reason.get(reason, 0) + count
        self.newest_event = max(filter(None, (self.newest_event, other.newest_event)), default=None)
        self.oldest_landed = min(filter(None, (self.oldest_landed, other.oldest_landed)), default=None)
        self.batches += other.batches


def classify_batch(
    parsed: DataFrame,
    ingested_ids: DataFrame | None,
    ingested_at: datetime,
    max_broadcast_ids: int = MAX_BROADCAST_IDS,
) -> DataFrame:
    """The parsed batch with duplicates marked in `reject_reason`, and `ingested_at`.

    A repeated valid `event_id` keeps its first occurrence (by source and
    position in the batch) and the others are duplicates; every copy of an id
    already in `ingested_ids` (a frame with an `event_id` column, or None) is a
    duplicate too. `ingested_ids` need hold only the earlier ids that may be
    among the batch's, and is broadcast: the ingest passes those whose hash
    matches one of the batch's, at most about as many as the batch's ids.

    `parsed` is scanned several times: cache it. Duplicates are rare, so
    neither the batch's rows nor the earlier ids are shuffled: the ids repeated
    in the batch come from an aggregate of the ids alone, the ids seen before
    from the batch's ids against `ingested_ids`, and only the rows of
    those few ids are ranked and joined back. A batch of more than
    `max_broadcast_ids` valid events (a large backlog, which may be mostly
    duplicates) is too big to broadcast from the driver: Spark then plans
    those joins itself, with shuffles.
    """
    rows = parsed.withColumn("_position", F.monotonically_increasing_id())
    valid = rows.where(F.col(REASON).isNull())
    small = valid.count() <= max_broadcast_ids
    suspects = duplicate_event_ids(valid).select("event_id", F.lit(False).alias("_seen"))
    if ingested_ids is not None:
        seen = valid.select("event_id").join(broadcast_if(ingested_ids, small), "event_id", "left_semi")
        suspects = (
            suspects.unionByName(seen.select("event_id", F.lit(True).alias("_seen")))
            .groupBy("event_id")
            .agg(F.max("_seen").alias("_seen"))
        )
    first = Window.partitionBy("event_id").orderBy(SOURCE, "_position")
    duplicates = (
        valid.select("event_id", SOURCE, "_position")
        .join(broadcast_if(suspects, small), "event_id")
        .select(
            "_position",
            F.when(F.col("_seen"), F.lit(DUPLICATE_EARLIER))
            .when(F.row_number().over(first) > 1, F.lit(DUPLICATE))
            .alias("_duplicate"),
        )
        .where(F.col("_duplicate").isNotNull())
    )
    return (
        rows.join(broadcast_if(duplicates, small), "_position", "left")
        .withColumn(REASON, F.coalesce(F.col(REASON), F.col("_duplicate")))
        .withColumn("ingested_at", F.lit(ingested_at).cast("timestamp"))
        .drop("_position", "_duplicate")
    )


def broadcast_if(frame: DataFrame, small: bool) -> DataFrame:
    """`frame` marked to be broadcast when `small`; otherwise Spark plans the join itself, with shuffles."""
    return F.broadcast(frame) if small else frame


def valid_events(classified: DataFrame) -> DataFrame:
    return classified.where(F.col(REASON).isNull()).select(*EVENT_COLUMNS)


def rejected_events(classified: DataFrame) -> DataFrame:
    raw = F.substring(F.expr(f"make_valid_utf8({VALUE})"), 1, MAX_RAW_CHARS).alias(RAW)
    return classified.where(F.col(REASON).isNotNull()).select(
        *(raw if name == RAW else F.col(name) for name in REJECTED_COLUMNS)
    )


def batch_stats(classified: DataFrame) -> BatchStats:
    """Counts of a classified batch, in one pass."""
    rows = (
        classified.groupBy(REASON)
        .agg(F.count(F.lit(1)).alias("n"), F.max("rated_at").alias("newest"), F.min(LANDED_AT).alias("landed"))
        .collect()
    )
    stats = BatchStats(batches=1)
    for row in rows:
        stats.oldest_landed = min(filter(None, (stats.oldest_landed, _utc(row["landed"]))), default=None)
        if row[REASON] is None:
            stats.accepted = row["n"]
            stats.newest_event = _utc(row["newest"])
        else:
            stats.rejected_by_reason[row[REASON]] = row["n"]
    return stats


def _utc(moment: datetime | None) -> datetime | None:
    """Spark returns timestamps as naive datetimes in the driver's local zone."""
    return None if moment is None else moment.astimezone(UTC)


def duplicate_event_ids(events: DataFrame) -> DataFrame:
    """`event_id` and `copies` of every id that occurs more than once in `events`."""
    return events.groupBy("event_id").agg(F.count(F.lit(1)).alias("copies")).where(F.col("copies") > 1)
