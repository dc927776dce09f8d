"""The dashboard's lake queries (DuckDB over Spark-style Parquet folders) and the genre summary."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from movierec_dagster import deployment
from movierec_dagster.dashboard import data
from movierec_dagster.dashboard.data import (
    Lake,
    LakeNotFound,
    TableNotFound,
    duckdb_url,
    genre_counts,
    lake_location,
)
from movierec_dagster.deployment import build_deployment
from movierec_dagster.model import registry
from movierec_dagster.movielens import transforms
from movierec_dagster.recommendations import build
from tests.dashboard.lakes import CHAMPION, MODEL_METRICS, MODEL_VERSION, NEWEST_DATE, TinyLake, build_lake


def test_lake_location_prefers_movierec_lake_then_home(tmp_path: Path):
    assert lake_location({"MOVIEREC_HOME": str(tmp_path)}) == str(tmp_path / "lake")
    assert lake_location({"MOVIEREC_HOME": str(tmp_path), "MOVIEREC_LAKE": str(tmp_path / "x")}) == str(tmp_path / "x")
    assert lake_location({}) == str(Path(".movierec/lake").resolve())
    url = "abfss://lake@account.dfs.core.windows.net/movierec/"
    assert lake_location({"MOVIEREC_LAKE": url}) == url.rstrip("/")


@pytest.mark.parametrize("home", [None, "", " ", "custom-home"])
def test_dashboard_reads_the_lake_the_local_deployment_writes(home):
    environ = {} if home is None else {"MOVIEREC_HOME": home}
    assert lake_location(environ) == build_deployment(environ=environ).resources["lake"].root


def test_spark_abfss_url_is_rewritten_for_duckdb():
    assert duckdb_url("abfss://lake@acct.dfs.core.windows.net/movierec") == "abfss://acct.dfs.core.windows.net/lake/movierec"
    assert duckdb_url("/data/lake") == "/data/lake"


def test_newest_partition_and_one_users_recommendations_with_movie_details(tiny_lake: TinyLake):
    lake = Lake(str(tiny_lake.root))
    date = lake.newest_recommendation_date()
    assert date == NEWEST_DATE
    assert lake.recommended_users(date) == tiny_lake.users
    recs = lake.recommendations(date, 2)
    assert list(recs.rows["rank"]) == list(range(1, 11))
    assert list(recs.rows["movie_id"]) == tiny_lake.recommended[2]
    first = tiny_lake.movies[tiny_lake.recommended[2][0]]
    assert recs.rows["title"].iloc[0] == first["title"]
    assert list(recs.rows["genres"].iloc[0]) == first["genres"]
    assert recs.model_version == MODEL_VERSION
    assert not recs.cold_start
    assert lake.recommendations(date, max(tiny_lake.cold_start_users)).cold_start


def test_top_rated_uses_training_ratings_when_present(tmp_path: Path):
    without = Lake(str(build_lake(tmp_path / "a").root))
    table, rows = without.top_rated(1)
    assert table == "ratings"
    assert list(rows["rating"]) == sorted(rows["rating"], reverse=True)
    assert len(rows) == 8

    with_streamed = Lake(str(build_lake(tmp_path / "b", training_ratings=True).root))
    table, rows = with_streamed.top_rated(1, limit=3)
    assert table == "training_ratings"
    assert rows["title"].iloc[0] == "Movie 40"  # the streamed 5-star rating, newest among the 5-star ones
    assert len(rows) == 3


def test_missing_lake_and_missing_recommendations_are_named(tmp_path: Path):
    with pytest.raises(LakeNotFound, match="no lake"):
        Lake(str(tmp_path / "nowhere")).check_exists()
    lake = Lake(str(build_lake(tmp_path / "lake", recommendations=False).root))
    lake.check_exists()
    with pytest.raises(TableNotFound, match="no recommendations"):
        lake.newest_recommendation_date()


def test_a_query_on_a_missing_table_names_it(tmp_path: Path):
    root = build_lake(tmp_path / "lake").root
    shutil.rmtree(root / "tables" / "ratings")
    with pytest.raises(TableNotFound, match="The table 'ratings' is not in the lake"):
        Lake(str(root)).top_rated(1)


def test_model_history_is_ordered_with_the_champion_marked(tiny_lake: TinyLake):
    models = tiny_lake.root / "models" / "als"
    for version, text in (("als-broken", "{not json"), ("als-pruned", (models / CHAMPION / "model.json").read_text())):
        (models / version).mkdir()
        (models / version / "model.json").write_text(text)
    (models / "versions.json").write_text(json.dumps({"versions": [*MODEL_METRICS, "als-broken"]}))
    history = Lake(str(tiny_lake.root)).model_history()
    assert list(history.versions["version"]) == list(MODEL_METRICS)
    assert list(history.versions["rmse"]) == [rmse for rmse, _ in MODEL_METRICS.values()]
    assert list(history.versions.loc[history.versions["champion"], "version"]) == [CHAMPION]
    assert history.versions["bias_rmse"].eq(0.9).all()
    assert history.champion["version"] == CHAMPION
    assert len(history.unreadable) == 1 and "als-broken" in history.unreadable[0]
    assert json.loads(history.versions["params"].iloc[0]) == {"rank": 8, "regParam": 0.1}


def test_an_unreadable_version_list_is_reported_not_raised(tiny_lake: TinyLake):
    (tiny_lake.root / "models" / "als" / "versions.json").write_text("{not json")
    history = Lake(str(tiny_lake.root)).model_history()
    assert history.versions.empty and history.champion["version"] == CHAMPION
    assert len(history.unreadable) == 1 and "versions.json" in history.unreadable[0]


def test_genre_counts_sum_to_the_genre_labels():
    recs = pd.DataFrame({"genres": [["Drama", "Comedy"], ["Drama"], [], ["Action", "Drama"]]})
    genres = genre_counts(recs)
    assert list(genres["genre"]) == ["Drama", "(no genres listed)", "Action", "Comedy"]
    assert list(genres["movies"]) == [3, 1, 1, 1]
    assert genres["movies"].sum() == 6
    assert genres["share"].sum() == pytest.approx(1.0)


def test_demo_summary_names_a_real_user_and_what_is_missing(tmp_path: Path, tiny_lake: TinyLake):
    from movierec_dagster.dashboard.summary import dashboard_summary

    lines = dashboard_summary(str(tiny_lake.root))
    assert lines[0].endswith(f"/?user={tiny_lake.users[0]}")
    assert tiny_lake.movies[tiny_lake.recommended[tiny_lake.users[0]][0]]["title"] in lines[1]
    assert MODEL_VERSION in lines[1]
    assert "no recommendations" in dashboard_summary(str(build_lake(tmp_path / "empty", recommendations=False).root))[0]


def test_the_dashboards_copied_names_are_the_pipelines():
    assert data.DEFAULT_HOME == deployment.DEFAULT_HOME
    assert data.MODELS == f"{registry.MODELS}/{registry.MODEL_NAME}"
    assert data.NO_GENRES == transforms.NO_GENRES
    assert data.COLD_START_SOURCE == build.POPULARITY
