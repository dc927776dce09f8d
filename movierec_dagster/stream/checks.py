"""Checks on the stream tables: each event once, ratings on the scale, no null fields, every rejection explained."""

from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetChecksDefinition, asset_check

from movierec_dagster.movielens.transforms import invalid_rating_count, null_key_count
from movierec_dagster.resources import LocalLake, LocalSpark
from movierec_dagster.stream import transforms
from movierec_dagster.stream.ingest import EVENTS_TABLE, REJECTED_TABLE

DUPLICATE_SAMPLE = 10
NOTHING_YET = "no events ingested yet"


@asset_check(
    asset=EVENTS_TABLE,
    name="event_ids_unique",
    blocking=True,
    description="Every event_id occurs once in rating_events: nothing was ingested twice.",
)
def event_ids_unique(context: AssetCheckExecutionContext, spark: LocalSpark, lake: LocalLake) -> AssetCheckResult:
    events = lake.read_table_if_exists(spark.session(), EVENTS_TABLE)
    if events is None:
        return AssetCheckResult(passed=True, description=NOTHING_YET, metadata={"duplicated_event_ids": 0})
    duplicated = transforms.duplicate_event_ids(events).cache()
    try:
        count = duplicated.count()
        sample = [row.event_id for row in duplicated.limit(DUPLICATE_SAMPLE).collect()]
    finally:
        duplicated.unpersist()
    if count:
        context.log.warning(f"{count:,} event ids occur more than once in {EVENTS_TABLE}, e.g. {sample}")
    return AssetCheckResult(passed=count == 0, metadata={"duplicated_event_ids": count, "sample": str(sample)})


@asset_check(
    asset=EVENTS_TABLE,
    name="rating_on_scale",
    blocking=True,
    description="Every rating in rating_events is 0.5 to 5.0 in steps of 0.5.",
)
def event_rating_on_scale(spark: LocalSpark, lake: LocalLake) -> AssetCheckResult:
    events = lake.read_table_if_exists(spark.session(), EVENTS_TABLE)
    invalid = 0 if events is None else invalid_rating_count(events)
    return AssetCheckResult(passed=invalid == 0, metadata={"ratings_off_scale": invalid})


@asset_check(
    asset=EVENTS_TABLE,
    name="fields_not_null",
    blocking=True,
    description=f"No row of rating_events has a null {', '.join(transforms.EVENT_COLUMNS)}.",
)
def event_fields_not_null(spark: LocalSpark, lake: LocalLake) -> AssetCheckResult:
    events = lake.read_table_if_exists(spark.session(), EVENTS_TABLE)
    nulls = 0 if events is None else null_key_count(events, list(transforms.EVENT_COLUMNS))
    return AssetCheckResult(passed=nulls == 0, metadata={"rows_with_null_field": nulls})


@asset_check(
    asset=REJECTED_TABLE,
    name="every_rejection_has_a_reason",
    blocking=True,
    description="Every rejected event keeps a reason and its raw text.",
)
def every_rejection_has_a_reason(spark: LocalSpark, lake: LocalLake) -> AssetCheckResult:
    rejected = lake.read_table_if_exists(spark.session(), REJECTED_TABLE)
    unexplained = 0 if rejected is None else null_key_count(rejected, [transforms.REASON, transforms.RAW])
    return AssetCheckResult(passed=unexplained == 0, metadata={"rows_without_reason_or_raw": unexplained})


stream_checks: list[AssetChecksDefinition] = [
    event_ids_unique,
    event_rating_on_scale,
    event_fields_not_null,
    every_rejection_has_a_reason,
]
