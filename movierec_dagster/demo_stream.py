"""The stream's part of `make demo`: land a burst of events (some malformed), then summarise the ingest run."""

import math
import random
from itertools import islice
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from dagster import ExecuteInProcessResult

from generator.sinks import LocalSink
from generator.events import Counts, encode_events
from generator.ratings import Rating
from generator.streams import RATING_KINDS, planted, synthetic
from generator.tastes import Population, Tastes
from movierec_dagster.metadata import ROW_COUNT
from movierec_dagster.resources import Lake
from movierec_dagster.names import EVENTS as EVENTS_TABLE
from movierec_dagster.names import REJECTED_EVENTS as REJECTED_TABLE
from movierec_dagster.tables import arrow_dataset

DEMO_SEED = 12  # the ratings every demo lands (see land_burst)


# The history's tastes are learned from at most about this many ratings: all of a sample of users.
# A burst of a few thousand events needs no more, and a MovieLens-25M history would be 25M Python
# objects (12 GiB, minutes).
TASTES_FROM_RATINGS = 200_000


def _read_lake_table(lake: Lake, key: str, columns: list[str]) -> pa.Table | None:
    """A committed table of the lake (pyarrow: no Spark); None when there is none."""
    table = lake.table(key)
    version = table.current()
    return None if version is None else arrow_dataset(table, version).to_table(columns=columns)


def _sample_of_users(ratings: pa.Table, limit: int) -> pa.Table:
    """All the ratings of every n-th user (by id), n chosen so that about `limit` ratings remain."""
    if ratings.num_rows <= limit:
        return ratings
    users = pc.unique(ratings.column("user_id")).sort()
    every = math.ceil(ratings.num_rows / limit)
    return ratings.filter(pc.is_in(ratings.column("user_id"), value_set=users[::every]))


def history_tastes(lake: Lake, rng: random.Random, max_ratings: int = TASTES_FROM_RATINGS) -> Tastes | None:
    """The tastes of the lake's MovieLens history (its `ratings` and `movies` tables); None before the ETL committed `ratings`.

    A history of more than `max_ratings` ratings is sampled by user first.
    """
    ratings = _read_lake_table(lake, "ratings", ["user_id", "movie_id", "rating"])
    if ratings is None or ratings.num_rows == 0:
        return None
    movies = _read_lake_table(lake, "movies", ["movie_id", "genres"])
    genres = {movie["movie_id"]: tuple(movie["genres"] or ()) for movie in (movies.to_pylist() if movies else [])}
    sample = _sample_of_users(ratings, max_ratings)
    history = [Rating(row["user_id"], row["movie_id"], row["rating"], 0) for row in sample.to_pylist()]
    return Tastes.from_history(history, rng, genres=genres)


def land_burst(
    landing: str | Path,
    *,
    lake: Lake | None = None,
    count: int = 5_000,
    malformed: float = 0.05,
    seed: int | None = None,
    ratings: str = "planted",
    tastes: Tastes | None = None,
) -> Counts:
    """Write `count` synthetic events, a `malformed` share of them bad, into the landing folder.

    `ratings="planted"` draws them from `tastes`: by default the tastes of the MovieLens history
    in `lake` (`history_tastes`), so that the streamed ratings agree
    with what the model learns from the history; tastes planted on `Population.default()` when
    the lake has no history yet. `ratings="random"` is noise, as the demo streamed before.

    Without a `seed`, the ratings are the demo's own (`DEMO_SEED`) under fresh event ids: every
    demo lands the same ratings again, and as training keeps the latest rating of each (user,
    movie), repeated demos do not pile up synthetic ratings. A `seed` reproduces the events too.
    """
    if ratings not in RATING_KINDS:
        raise ValueError(f"ratings must be one of {', '.join(RATING_KINDS)}, not {ratings!r}")
    rng = random.Random(DEMO_SEED if seed is None else seed)
    # The event ids and which events are malformed: fresh every run without a seed, and not the ratings' draws with one.
    events_rng = random.Random(None if seed is None else f"events-{seed}")
    if ratings == "random":
        source, drawn_from = synthetic(Population.default(), rng, ratings="random"), "random ratings"
    else:
        drawn_from = "ratings from the given tastes"
        if tastes is None:
            tastes, drawn_from = (history_tastes(lake, rng) if lake else None), "ratings from the history's tastes"
        if tastes is None:
            tastes, drawn_from = Tastes.planted(Population.default(), rng), "ratings from planted tastes: no history yet"
        source = planted(tastes, rng)
    counts = Counts()
    sink = LocalSink(Path(landing), roll_events=1_000, roll_seconds=3_600, prefix="demo")
    try:
        lines = encode_events(source, events_rng, malformed_fraction=malformed, counts=counts)
        for line in islice(lines, count):
            sink.write(line)
    finally:
        sink.close()
    print(
        f"   landed {count:,} events ({counts.malformed:,} malformed; {drawn_from}) in {len(sink.files)} files under {landing}"
    )
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
