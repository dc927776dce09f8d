"""Rating events: the streamed ratings, ingested exactly once, and the quarantine of the bad ones."""

import time
from collections.abc import Iterator
from typing import Any

from dagster import AssetExecutionContext, AssetSpec, MaterializeResult, MetadataValue, RetryPolicy, multi_asset

from movierec_dagster.metadata import ROW_COUNT, committed, data_version, table_metadata
from movierec_dagster.resources import EventSource, Lake, SparkResource
from movierec_dagster.stream.checks import events_checks, rejected_checks, stream_check_specs
from movierec_dagster.stream.ingest import EVENT_IDS_TABLE, EVENTS_TABLE, REJECTED_TABLE, IngestResult, ingest_rating_events

GROUP = "stream"
# Ingest runs must never overlap: this pool has limit 1 (infra/local/dagster.yaml), and the ingest
# job's runs carry a tag the run queue limits to one at a time.
INGEST_POOL = "rating_events_ingest"
# A failed ingest is tried again: the ingest is idempotent (checkpoint, per-batch folders), and its
# usual failure passes, e.g. a killed run's JVM still holding the checkpoint for a few seconds
# (CONCURRENT_STREAM_LOG_UPDATE).
INGEST_RETRY = RetryPolicy(max_retries=2, delay=10)


def _ingest_metadata(result: IngestResult, seconds: float) -> dict[str, Any]:
    stats = result.stats
    metadata: dict[str, Any] = {
        "events_read": MetadataValue.int(stats.read),
        "accepted": MetadataValue.int(stats.accepted),
        "rejected": MetadataValue.int(stats.rejected),
        "duplicates_dropped": MetadataValue.int(stats.duplicates),
        "batches": MetadataValue.int(stats.batches),
        "rejected_by_reason": MetadataValue.json(dict(sorted(stats.rejected_by_reason.items()))),
        "seconds": MetadataValue.float(round(seconds, 2)),
        "events_per_second": MetadataValue.float(round(stats.read / seconds, 1) if seconds else 0.0),
    }
    if stats.newest_event is not None:
        metadata["newest_event_time"] = MetadataValue.timestamp(stats.newest_event.timestamp())
        metadata["lag_seconds"] = MetadataValue.float(round(result.lag_seconds, 1))
    if stats.oldest_landed is not None:
        waited = result.finished_at.timestamp() - stats.oldest_landed.timestamp()
        metadata["max_landing_to_table_seconds"] = MetadataValue.float(round(waited, 1))
    return metadata


@multi_asset(
    specs=[
        AssetSpec(
            EVENTS_TABLE,
            group_name=GROUP,
            kinds={"spark", "delta"},
            description="One row per valid rating event (event_id, user_id, movie_id, rating, rated_at, "
            "ingested_at), ingested exactly once from the event source.",
        ),
        AssetSpec(
            REJECTED_TABLE,
            group_name=GROUP,
            kinds={"spark", "delta"},
            description="One row per rejected rating event: its raw text, the reason, where and when it landed.",
        ),
        AssetSpec(
            EVENT_IDS_TABLE,
            group_name=GROUP,
            kinds={"spark", "delta"},
            description="The ingest's index of every rating_events id: a 64-bit hash of each, in the same "
            "ingest_batch parts, which a new batch's ids are looked up in before the exact comparison.",
        ),
    ],
    check_specs=stream_check_specs,
    pool=INGEST_POOL,
    retry_policy=INGEST_RETRY,
)
def rating_events(
    context: AssetExecutionContext, spark: SparkResource, lake: Lake, event_source: EventSource
) -> Iterator[MaterializeResult]:
    """Ingest the rating events that arrived since the last run: valid ones to rating_events, the rest quarantined.

    The checks run on the whole tables, in this step: a bad row keeps failing them until it is dealt with.
    """
    started = time.perf_counter()
    session = spark.session()
    context.log.info(f"Ingesting rating events from {event_source.describe()}")
    result = ingest_rating_events(session, lake, event_source, log=context.log.info)
    seconds = time.perf_counter() - started
    stats = result.stats
    context.log.info(
        f"{stats.read:,} events in {stats.batches} batch(es): {stats.accepted:,} accepted, "
        f"{stats.rejected:,} rejected, in {seconds:.1f} s"
    )
    if stats.rejected_by_reason:
        context.log.warning(f"Rejected events by reason: {stats.rejected_by_reason}")
    ingest = _ingest_metadata(result, seconds)
    events_metadata = dict(ingest)
    rejected_metadata = {"rejected": ingest["rejected"], "rejected_by_reason": ingest["rejected_by_reason"]}
    events_version, rejected_version = lake.table_version(EVENTS_TABLE), lake.table_version(REJECTED_TABLE)
    index_version = lake.table_version(EVENT_IDS_TABLE)
    events = rejected = None
    if events_version is not None:
        events = lake.read_table(session, EVENTS_TABLE, version=events_version)
        events_metadata = table_metadata(
            events, location=MetadataValue.path(lake.table_uri(EVENTS_TABLE)), **ingest, **committed(events_version)
        )
    if rejected_version is not None:
        rejected = lake.read_table(session, REJECTED_TABLE, version=rejected_version)
        rejected_metadata = table_metadata(
            rejected,
            location=MetadataValue.path(lake.table_uri(REJECTED_TABLE)),
            **rejected_metadata,
            **committed(rejected_version),
        )
    yield MaterializeResult(
        asset_key=EVENTS_TABLE,
        metadata=events_metadata,
        check_results=events_checks(context, events),
        data_version=data_version(events_version) if events_version else None,
    )
    yield MaterializeResult(
        asset_key=REJECTED_TABLE,
        metadata=rejected_metadata,
        check_results=rejected_checks(rejected),
        data_version=data_version(rejected_version) if rejected_version else None,
    )
    if index_version is not None:
        yield MaterializeResult(
            asset_key=EVENT_IDS_TABLE,
            metadata={
                ROW_COUNT: MetadataValue.int(index_version.rows),
                "location": MetadataValue.path(lake.table_uri(EVENT_IDS_TABLE)),
                **committed(index_version),
            },
            data_version=data_version(index_version),
        )
    else:
        yield MaterializeResult(asset_key=EVENT_IDS_TABLE, metadata={ROW_COUNT: MetadataValue.int(0)})
