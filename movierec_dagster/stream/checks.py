"""Checks on the stream tables, evaluated in the ingest's step: each event once, ratings on the scale,
no null fields, every rejection explained. A table nothing was ingested into yet passes."""

from dagster import AssetCheckResult, AssetCheckSpec, AssetExecutionContext
from pyspark.sql import DataFrame

from movierec_dagster.checks import not_null, not_null_spec, rating_on_scale, rating_on_scale_spec
from movierec_dagster.stream import transforms
from movierec_dagster.stream.ingest import EVENTS_TABLE, REJECTED_TABLE

EVENT_IDS_UNIQUE = "event_ids_unique"
FIELDS_NOT_NULL = "fields_not_null"
EVERY_REJECTION_HAS_A_REASON = "every_rejection_has_a_reason"
DUPLICATE_SAMPLE = 10
REJECTION_FIELDS = [transforms.REASON, transforms.RAW]

stream_check_specs = [
    AssetCheckSpec(
        EVENT_IDS_UNIQUE,
        asset=EVENTS_TABLE,
        blocking=True,
        description="Every event_id occurs once in rating_events: nothing was ingested twice.",
    ),
    rating_on_scale_spec(EVENTS_TABLE),
    not_null_spec(EVENTS_TABLE, FIELDS_NOT_NULL, list(transforms.EVENT_COLUMNS)),
    AssetCheckSpec(
        EVERY_REJECTION_HAS_A_REASON,
        asset=REJECTED_TABLE,
        blocking=True,
        description="Every rejected event keeps a reason and its raw text.",
    ),
]


def event_ids_unique(context: AssetExecutionContext, events: DataFrame | None) -> AssetCheckResult:
    count, sample = 0, []
    if events is not None:
        duplicated = transforms.duplicate_event_ids(events).cache()
        try:
            count = duplicated.count()
            sample = [row.event_id for row in duplicated.limit(DUPLICATE_SAMPLE).collect()]
        finally:
            duplicated.unpersist()
    if count:
        context.log.warning(f"{count:,} event ids occur more than once in {EVENTS_TABLE}, e.g. {sample}")
    return AssetCheckResult(
        asset_key=EVENTS_TABLE,
        check_name=EVENT_IDS_UNIQUE,
        passed=count == 0,
        metadata={"duplicated_event_ids": count, "sample": str(sample)},
    )


def events_checks(context: AssetExecutionContext, events: DataFrame | None) -> list[AssetCheckResult]:
    return [
        event_ids_unique(context, events),
        rating_on_scale(EVENTS_TABLE, events),
        not_null(EVENTS_TABLE, FIELDS_NOT_NULL, events, list(transforms.EVENT_COLUMNS)),
    ]


def rejected_checks(rejected: DataFrame | None) -> list[AssetCheckResult]:
    return [not_null(REJECTED_TABLE, EVERY_REJECTION_HAS_A_REASON, rejected, REJECTION_FIELDS)]
