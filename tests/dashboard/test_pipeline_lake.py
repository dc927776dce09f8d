"""The dashboard's data layer on a lake the pipeline wrote (the session's whole-graph run), not one built by hand."""

import duckdb
import pytest
from deltalake import DeltaTable

from movierec_dagster.dashboard.data import Lake
from movierec_dagster.tables import lake_location
from movierec_dagster.dashboard.summary import dashboard_summary
from movierec_dagster.model import registry
from tests.pipeline import today


@pytest.mark.slow  # the session's whole-graph run, which the other slow tests share
def test_the_dashboard_reads_the_lake_the_pipeline_wrote(graph_run, synthetic):
    champion = registry.read_champion(graph_run.defs.resources["lake"])

    lake = Lake(lake_location({"MOVIEREC_HOME": str(graph_run.home)}))
    lake.check_exists()
    day = today()
    # Today's batch, made again after the new user's rating streamed in: it serves them too.
    assert lake.newest_recommendation_date() == day
    assert lake.recommended_users(day) == sorted([*synthetic.user_genre, graph_run.new_user])

    user = 1
    recs = lake.recommendations(day, user)
    assert list(recs.rows["rank"]) == list(range(1, 11))
    assert recs.model_version == champion["version"] and not recs.cold_start
    for row in recs.rows.itertuples():
        assert f"Movie {row.movie_id}" in row.title and row.year == 1980 + row.movie_id % 40
        assert synthetic.movie_genre[row.movie_id] in list(row.genres)

    tables, rated = lake.top_rated(user)
    assert tables == ["training_ratings", "rating_events"]
    assert len(rated) == 10 and list(rated["rating"]) == sorted(rated["rating"], reverse=True)
    # The new user's only rating streamed in after the retrain: it is in rating_events, not training_ratings.
    _, rated = lake.top_rated(graph_run.new_user)
    assert len(rated) == 1 and "Movie 5" in rated["title"].iloc[0]

    history = lake.model_history()
    assert list(history.versions["version"]) == [champion["version"]] and history.versions["champion"].all()
    assert history.versions["ndcg_at_10"].notna().all() and not history.unreadable
    assert history.champion["version"] == champion["version"]

    # The demo names the lake by the pipeline's own URI (file://...).
    assert dashboard_summary(graph_run.defs.resources["lake"].uri())[0].endswith(f"/?user={user}")


@pytest.mark.slow  # the session's whole-graph run
def test_every_table_the_pipeline_wrote_is_read_by_deltalake_and_duckdb_alone(graph_run):
    """No movierec code: the tables are plain Delta tables, and their rows are what the pipeline committed."""
    pipeline_lake = graph_run.defs.resources["lake"]
    tables = pipeline_lake.fs_path("tables")
    names = sorted(pipeline_lake.list_names("tables"))
    assert {"movies", "ratings", "rating_events", "rating_event_ids", "training_ratings", "user_recommendations"} <= set(names)
    for name in names:
        rows = DeltaTable(f"{tables}/{name}").to_pyarrow_table()
        assert rows.num_rows == pipeline_lake.table_version(name).rows, name
        assert "write_id" not in rows.column_names, name
    ratings = DeltaTable(f"{tables}/training_ratings").to_pyarrow_table()  # noqa: F841 - DuckDB finds it by name
    [(count,)] = duckdb.sql("SELECT count(*) FROM ratings").fetchall()
    assert count == pipeline_lake.table_version("training_ratings").rows
