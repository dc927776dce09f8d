"""The stream's part of `make demo`: land a burst of events (some malformed), then summarise the ingest run."""

import random
from itertools import islice
from pathlib import Path

from dagster import ExecuteInProcessResult

from generator.sinks import LocalSink
from generator.sources import Counts, Population, encode_events, synthetic
from movierec_dagster.metadata import ROW_COUNT
from movierec_dagster.stream.ingest import EVENTS_TABLE, REJECTED_TABLE


def land_burst(landing: str | Path, *, count: int = 5_000, malformed: float = 0.05, seed: int | None = None) -> Counts:
    """Write `count` synthetic events, a `malformed` share of them bad, into the landing folder."""
    rng = random.Random(seed)
    counts = Counts()
    sink = LocalSink(Path(landing), roll_events=1_000, roll_seconds=3_600, prefix="demo")
    try:
        lines = encode_events(synthetic(Population.default(), rng), rng, malformed_fraction=malformed, counts=counts)
        for line in islice(lines, count):
            sink.write(line)
    finally:
        sink.close()
    print(f"   landed {count:,} events ({counts.malformed:,} malformed) in {len(sink.files)} files under {landing}")
    return counts


def print_ingest_summary(result: ExecuteInProcessResult) -> None:
    """Accepted and rejected counts (by reason) of an ingest run, from its materialization metadata."""
    events = {m.asset_key.to_user_string(): m.metadata for m in result.asset_materializations_for_node("rating_events")}
    ingest = events[EVENTS_TABLE]
    by_reason = ingest["rejected_by_reason"].value
    print("\nRating events")
    print(f"   read {ingest['events_read'].value:>7,}   accepted {ingest['accepted'].value:>7,}   rejected {ingest['rejected'].value:>5,}")
    for reason, count in sorted(by_reason.items(), key=lambda item: -item[1]):
        print(f"      {count:>5,}  {reason}")
    total = events[EVENTS_TABLE].get(ROW_COUNT)
    rejected_total = events[REJECTED_TABLE].get(ROW_COUNT)
    if total is not None:
        print(f"   {EVENTS_TABLE} now holds {total.value:,} events; {REJECTED_TABLE} {rejected_total.value if rejected_total else 0:,}")
