"""The whole graph run on planted synthetic data, once per test session, for the tests that read what it made."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dagster import Definitions

from tests.stream.events import event, write_lines

# Small models: the tests check behaviour, not quality at scale.
SMALL = {"rating_rank": 4, "rating_max_iter": 8, "ranking_rank": 4, "ranking_max_iter": 8, "bias_iterations": 2}
DAY = "2025-03-01"
LATER = "2025-03-02"


def run_graph(run_job: Callable[..., None], landing: Path, new_user: int) -> None:
    """ETL, an ingest, a retrain, a day's scoring; then ratings streamed after the retrain, and another day.

    `run_job(name, run_config=None, tags=None)` runs one job and fails the test unless it succeeds.
    """
    run_job("movielens_etl")
    write_lines(landing, "a.jsonl", [event("a", user_id=1, movie_id=2).encode(), event("b", user_id=3).encode(), b"junk"])
    run_job("ingest_rating_events")
    run_job("retrain_model", run_config={"ops": {"als_model": {"config": SMALL}}})
    run_job("score_recommendations", tags={"dagster/partition": DAY})
    write_lines(landing, "b.jsonl", [event("c", user_id=new_user, movie_id=5).encode()])
    run_job("ingest_rating_events")
    run_job("score_recommendations", tags={"dagster/partition": LATER})


@dataclass(frozen=True)
class GraphRun:
    defs: Definitions
    home: Path
    new_user: int
