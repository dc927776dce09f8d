"""The dashboard's lake queries (committed Delta versions only, in folders and on Azurite's ADLS) and the genre summary."""

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from movierec_dagster.dashboard import data
from movierec_dagster.dashboard.data import Lake, LakeNotFound, TableNotFound, genre_counts
from movierec_dagster.tables import lake_location
from movierec_dagster.deployment import build_deployment
from movierec_dagster.recommendations import assets as recommendation_assets
from movierec_dagster.resources import lake as pipeline_lake
from movierec_dagster.tables import adls_credentials, adls_storage_options
from tests.dashboard.lakes import (
    CHAMPION,
    MODEL_METRICS,
    MODEL_VERSION,
    NEWEST_DATE,
    RECOMMENDATIONS_SCHEMA,
    STALE_USER,
    UNCOMMITTED_DATE,
    TinyLake,
    build_lake,
    commit,
    model_info,
    put,
)


def test_lake_location_prefers_movierec_lake_then_home(tmp_path: Path):
    assert lake_location({"MOVIEREC_HOME": str(tmp_path)}) == str(tmp_path / "lake")
    assert lake_location({"MOVIEREC_HOME": str(tmp_path), "MOVIEREC_LAKE": str(tmp_path / "x")}) == str(tmp_path / "x")
    assert lake_location({}) == str(Path(".movierec/lake").resolve())
    url = "abfss://lake@account.dfs.core.windows.net/movierec/"
    assert lake_location({"MOVIEREC_LAKE": url}) == url.rstrip("/")
    assert lake_location({"MOVIEREC_LAKE": "file:///srv/lake/"}) == "file:///srv/lake"


@pytest.mark.parametrize("home_folder", [None, "", " ", "custom-home"])
def test_dashboard_reads_the_lake_the_local_deployment_writes(home_folder):
    environ = {} if home_folder is None else {"MOVIEREC_HOME": home_folder}
    assert lake_location(environ) == build_deployment(environ=environ).resources["lake"].root


def test_adls_credentials_come_from_the_environment():
    secret = {"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c", "AZURE_CLIENT_SECRET": "s"}
    fresh = {"use_listings_cache": False}

    def options(environ: dict[str, str]) -> dict:
        return adls_storage_options(**adls_credentials(environ))

    assert options({"AZURE_STORAGE_CONNECTION_STRING": "AccountName=a;", **secret}) == {**fresh, "connection_string": "AccountName=a;"}
    assert options(secret) == {**fresh, "tenant_id": "t", "client_id": "c", "client_secret": "s"}
    assert options({**secret, "AZURE_CLIENT_SECRET": " "}) == {**fresh, "anon": False}
    assert options({"AZURE_STORAGE_CONNECTION_STRING": " "}) == {**fresh, "anon": False}


def test_the_pipelines_adls_lake_takes_the_credentials_as_the_readers_do():
    environ = {"AZURE_STORAGE_CONNECTION_STRING": "AccountName=a;", "AZURE_TENANT_ID": "t"}
    lake = pipeline_lake.AdlsLake(root="abfss://lake@a.dfs.core.windows.net/movierec", **adls_credentials(environ))
    assert lake.storage_options() == adls_storage_options(**adls_credentials(environ))


@pytest.fixture(params=["folder", "azurite"])
def folder_or_adls_lake(request: pytest.FixtureRequest, tmp_path: Path) -> TinyLake:
    """The tiny lake in a folder and on Azurite: MOVIEREC_LAKE an `abfss://` URI, AZURE_STORAGE_CONNECTION_STRING set."""
    return build_lake(tmp_path / "lake" if request.param == "folder" else request.getfixturevalue("adls_location"))


@pytest.mark.skipif(importlib.util.find_spec("adlfs") is not None, reason="adlfs is installed")
def test_an_adls_lake_without_adlfs_says_what_to_install():
    with pytest.raises(LakeNotFound, match="pip install adlfs"):
        Lake("abfss://lake@account.dfs.core.windows.net/movierec")


def test_newest_part_and_one_users_recommendations_with_movie_details(any_lake: TinyLake):
    lake = Lake(any_lake.location)
    lake.check_exists()
    date = lake.newest_recommendation_date()
    assert date == NEWEST_DATE
    assert lake.recommended_users(date) == any_lake.users
    recs = lake.recommendations(date, 2)
    assert list(recs.rows["rank"]) == list(range(1, 11))
    assert list(recs.rows["movie_id"]) == any_lake.recommended[2]
    first = any_lake.movies[any_lake.recommended[2][0]]
    assert recs.rows["title"].iloc[0] == first["title"]
    assert list(recs.rows["genres"].iloc[0]) == first["genres"]
    assert recs.model_version == MODEL_VERSION
    assert not recs.cold_start
    assert lake.recommendations(date, max(any_lake.cold_start_users)).cold_start
    tables, rated = lake.top_rated(1)
    assert tables == ["ratings"] and len(rated) == 8


def test_only_the_committed_version_is_read(folder_or_adls_lake: TinyLake):
    """Replaced and uncommitted files are still on disk; a glob of the table's Parquet would read them."""
    tiny = folder_or_adls_lake
    for name in ("movies", "ratings", "user_recommendations"):
        assert set(tiny.committed_files(name)) < set(tiny.parquet_on_disk(name))
    assert any(f"/date={UNCOMMITTED_DATE}/" in path for path in tiny.parquet_on_disk("user_recommendations"))
    lake = Lake(tiny.location, tiny.credentials)
    assert lake.newest_recommendation_date() == NEWEST_DATE  # not the uncommitted UNCOMMITTED_DATE
    with pytest.raises(TableNotFound, match=UNCOMMITTED_DATE):
        lake.recommended_users(UNCOMMITTED_DATE)
    assert STALE_USER not in lake.recommended_users(NEWEST_DATE)
    recs = lake.recommendations(NEWEST_DATE, 1)
    assert len(recs.rows) == 10 and set(recs.rows["model_version"]) == {MODEL_VERSION}
    assert not recs.rows["title"].str.startswith("Old movie").any()
    _, rated = lake.top_rated(1)
    assert len(rated) == 8 and "Movie 39" not in set(rated["title"])  # the replaced version's extra rating


def test_a_new_commit_shows_up_on_an_open_lake(folder_or_adls_lake: TinyLake):
    lake = Lake(folder_or_adls_lake.location, folder_or_adls_lake.credentials)
    assert lake.newest_recommendation_date() == NEWEST_DATE
    newer = pa.Table.from_pylist([{"user_id": 7, "movie_id": 1, "rank": 1}], schema=RECOMMENDATIONS_SCHEMA)
    commit(folder_or_adls_lake, "user_recommendations", newer, f"date={UNCOMMITTED_DATE}")
    assert lake.newest_recommendation_date() == UNCOMMITTED_DATE
    assert lake.recommended_users(UNCOMMITTED_DATE) == [7]


def test_top_rated_uses_training_ratings_when_present(tmp_path: Path):
    without = Lake(build_lake(tmp_path / "a").location)
    tables, rows = without.top_rated(1)
    assert tables == ["ratings"]
    assert list(rows["rating"]) == sorted(rows["rating"], reverse=True)
    assert len(rows) == 8

    with_streamed = Lake(build_lake(tmp_path / "b", training_ratings=True).location)
    assert with_streamed.own_ratings_tables() == ["training_ratings"]
    tables, rows = with_streamed.top_rated(1, limit=3)
    assert tables == ["training_ratings"]
    assert rows["title"].iloc[0] == "Movie 40"  # the streamed 5-star rating, newest among the 5-star ones
    assert len(rows) == 3


def test_top_rated_includes_ratings_streamed_since_the_retrain(tmp_path: Path):
    lake = Lake(build_lake(tmp_path / "lake", training_ratings=True, streamed_since=True).location)
    assert lake.own_ratings_tables() == ["training_ratings", "rating_events"]
    tables, rows = lake.top_rated(1)
    assert tables == ["training_ratings", "rating_events"]
    # Movie 3 was re-rated 5 stars after the retrain: that rating counts, the history's 2 stars do not.
    assert list(rows["title"][:2]) == ["Movie 3", "Movie 40"] and list(rows["rating"][:2]) == [5.0, 5.0]
    assert list(rows["title"]).count("Movie 3") == 1 and len(rows) == 9


def test_ratings_streamed_after_the_batch_are_counted_for_the_fresh_list_note(tmp_path: Path):
    lake = Lake(build_lake(tmp_path / "lake", training_ratings=True, streamed_since=True).location)
    made = lake.recommendations(NEWEST_DATE, 1).generated_at
    # e1 reached rating_events the day before this batch, e2 three days after it.
    assert lake.rated_after(1, made) == (1, pd.Timestamp("2026-03-05 09:00", tz="UTC"))
    assert lake.rated_after(2, made) == (0, None)
    assert lake.rated_after(1, made - pd.Timedelta(days=2))[0] == 2


def test_a_batch_without_a_champion_says_so(tiny_lake: TinyLake):
    lake = Lake(tiny_lake.location)
    recs = lake.recommendations(NEWEST_DATE, 2)
    assert recs.made_by == f"model {MODEL_VERSION}"
    baseline = data.Recommendations(date=NEWEST_DATE, rows=recs.rows.assign(model_version=None))
    assert baseline.model_version is None and "popularity baseline" in baseline.made_by


def test_missing_lake_and_missing_recommendations_are_named(tmp_path: Path):
    for nowhere in (str(tmp_path / "nowhere"), (tmp_path / "nowhere").as_uri()):
        with pytest.raises(LakeNotFound, match="no lake"):
            Lake(nowhere).check_exists()
    lake = Lake(build_lake(tmp_path / "lake", recommendations=False).location)
    lake.check_exists()
    with pytest.raises(TableNotFound, match="no recommendations"):
        lake.newest_recommendation_date()


def test_an_unknown_scheme_is_named():
    with pytest.raises(LakeNotFound, match="nosuchscheme://lake"):
        Lake("nosuchscheme://lake")


def test_a_query_on_a_missing_table_names_it(folder_or_adls_lake: TinyLake):
    folder_or_adls_lake.fs.rm(folder_or_adls_lake.path("tables", "ratings"), recursive=True)
    with pytest.raises(TableNotFound, match="The table 'ratings' is not in the lake"):
        Lake(folder_or_adls_lake.location, folder_or_adls_lake.credentials).top_rated(1)


def test_model_history_lists_the_model_json_files_with_the_champion_marked(folder_or_adls_lake: TinyLake):
    put(folder_or_adls_lake, b"{not json", "models", "als", "20260303T060000Z-broken", "model.json")
    # A prune deletes model.json first: the rest of a pruned version is not a version.
    put(folder_or_adls_lake, b"{}", "models", "als", "20260227T060000Z-pruned", "ranking", "metadata")
    history = Lake(folder_or_adls_lake.location, folder_or_adls_lake.credentials).model_history()
    assert list(history.versions["version"]) == list(MODEL_METRICS)
    assert list(history.versions["rmse"]) == [rmse for rmse, _ in MODEL_METRICS.values()]
    assert list(history.versions.loc[history.versions["champion"], "version"]) == [CHAMPION]
    assert history.versions["bias_rmse"].eq(0.9).all()
    assert history.champion["version"] == CHAMPION
    assert len(history.unreadable) == 1 and "broken" in history.unreadable[0]
    assert json.loads(history.versions["params"].iloc[0]) == {"rank": 8, "regParam": 0.1}


def test_a_model_json_without_a_version_is_reported_not_raised(tmp_path: Path):
    lake = build_lake(tmp_path / "lake", models=False)
    info = model_info(MODEL_VERSION, 0.9, 0.2)
    put(lake, json.dumps({**info, "version": None}).encode(), "models", "als", MODEL_VERSION, "model.json")
    history = Lake(lake.location).model_history()
    assert history.versions.empty and history.champion is None
    assert len(history.unreadable) == 1 and "no version" in history.unreadable[0]


def test_genre_counts_sum_to_the_genre_labels():
    recs = pd.DataFrame({"genres": [["Drama", "Comedy"], ["Drama"], [], ["Action", "Drama"]]})
    genres = genre_counts(recs)
    assert list(genres["genre"]) == ["Drama", "(no genres listed)", "Action", "Comedy"]
    assert list(genres["movies"]) == [3, 1, 1, 1]
    assert genres["movies"].sum() == 6
    assert genres["share"].sum() == pytest.approx(1.0)


def test_demo_summary_names_a_real_user_and_what_is_missing(tiny_lake: TinyLake, tmp_path: Path):
    from movierec_dagster.dashboard.summary import dashboard_summary

    lines = dashboard_summary(tiny_lake.location)
    assert lines[0].endswith(f"/?user={tiny_lake.users[0]}")
    assert tiny_lake.movies[tiny_lake.recommended[tiny_lake.users[0]][0]]["title"] in lines[1]
    assert MODEL_VERSION in lines[1]
    empty = build_lake(tmp_path / "empty", recommendations=False)
    assert "no recommendations" in dashboard_summary(empty.location)[0]


def test_the_day_parts_the_pipeline_writes_are_those_the_dashboard_reads():
    # The fixtures' lakes write `date=<day>` parts, as the dashboard reads them; the pipeline names them so too.
    assert recommendation_assets.day_part(NEWEST_DATE) == f"date={NEWEST_DATE}"
