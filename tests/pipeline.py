"""The whole graph run on planted synthetic data, once per test session, for the tests that read what it made."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dagster import Definitions
from pyspark.sql import functions as F

from movierec_dagster.model import registry
from movierec_dagster.model.schedules import ScheduleSettings
from movierec_dagster.recommendations.assets import local_day
from tests.stream.events import event, write_lines

# Small models: the tests check behaviour, not quality at scale.
SMALL = {"rating_rank": 4, "rating_max_iter": 8, "ranking_rank": 4, "ranking_max_iter": 8, "bias_iterations": 2}


def today() -> str:
    """The day a batch made now is for, in the schedules' default time zone (the tests' definitions set none)."""
    return local_day(ScheduleSettings().timezone)


def run_graph(run_job: Callable[..., None], landing: Path, new_user: int) -> None:
    """ETL, an ingest, a retrain, today's scoring; then ratings streamed after the retrain, and today's batch again.

    `run_job(name, run_config=None)` runs one job and fails the test unless it succeeds.
    """
    run_job("movielens_etl")
    write_lines(landing, "a.jsonl", [event("a", user_id=1, movie_id=2).encode(), event("b", user_id=3).encode(), b"junk"])
    run_job("ingest_rating_events")
    run_job("retrain_model", run_config={"ops": {"als_model": {"config": SMALL}}})
    run_job("score_recommendations")
    write_lines(landing, "b.jsonl", [event("c", user_id=new_user, movie_id=5).encode()])
    run_job("ingest_rating_events")
    run_job("score_recommendations")


def graph_outputs(lake, spark) -> dict:
    """What the graph made, in a form two runs can be compared by: tables, the champion's counts, recommendations per day."""
    champion = registry.read_champion(lake)
    info = registry.read_model_info(lake, champion["version"])
    recommendations = lake.read_table(spark, "user_recommendations")
    return {
        "ratings": sorted(map(tuple, lake.read_table(spark, "ratings").drop("year").collect())),
        "events": sorted(r.event_id for r in lake.read_table(spark, "rating_events").collect()),
        "rejected": lake.read_table(spark, "rejected_rating_events").count(),
        "training_ratings": sorted(
            map(tuple, lake.read_table(spark, "training_ratings").select("user_id", "movie_id", "rating").collect())
        ),
        "streamed_rows": info["streamed_rows"],
        "training_rows": info["training_rows"],
        "per_day_and_source": sorted(
            (str(r.date), r.source, r["count"]) for r in recommendations.groupBy("date", "source").count().collect()
        ),
        "users_per_day": sorted(
            (str(r.date), r.users)
            for r in recommendations.groupBy("date").agg(F.count_distinct("user_id").alias("users")).collect()
        ),
    }


@dataclass(frozen=True)
class GraphRun:
    defs: Definitions
    home: Path
    new_user: int
