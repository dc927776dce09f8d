"""The Streamlit app's logic through AppTest: a user's view, the URL, the model page, and every empty or bad state."""

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from movierec_dagster.dashboard.data import FIX_COMMAND
from tests.dashboard.lakes import CHAMPION, MODEL_VERSION, NEWEST_DATE, TinyLake, build_lake

APP = Path(__file__).resolve().parents[2] / "movierec_dagster" / "dashboard" / "app.py"


def run_app(user: str | None = None) -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=60)
    if user is not None:
        app.query_params["user"] = user
    return app.run()


def recommendation_table(app: AppTest):
    assert not app.exception, app.exception
    return app.table[0].value


def cold_start_badges(app: AppTest) -> list[str]:
    """st.badge is markdown with a colour-badge directive."""
    return [markdown.value for markdown in app.markdown if "badge[" in markdown.value and "Cold start" in markdown.value]


def shows_fix(app: AppTest) -> bool:
    return any(code.value == FIX_COMMAND for code in app.code)


def test_selecting_a_user_shows_ten_recommendations_and_puts_the_user_in_the_url(tiny_lake: TinyLake, use_lake):
    use_lake(tiny_lake.location)
    app = run_app()
    assert app.query_params["user"] == str(tiny_lake.users[0])
    app.selectbox[0].select(3).run()
    table = recommendation_table(app)
    assert len(table) == 10
    assert list(table["Title"]) == [tiny_lake.movies[m]["title"] for m in tiny_lake.recommended[3]]
    assert app.query_params["user"] == "3"
    assert any(MODEL_VERSION in caption.value and NEWEST_DATE in caption.value for caption in app.caption)
    assert not cold_start_badges(app)
    assert len(app.table) == 2  # the user's own highest-rated movies beside them


def test_the_user_in_the_url_is_shown(tiny_lake: TinyLake, use_lake):
    use_lake(tiny_lake.location)
    app = run_app(user="4")
    assert app.selectbox[0].value == 4
    assert list(recommendation_table(app)["Title"]) == [tiny_lake.movies[m]["title"] for m in tiny_lake.recommended[4]]


def test_a_user_who_rated_after_the_batch_is_told_the_api_has_a_fresh_list(tmp_path: Path, use_lake):
    lake = build_lake(tmp_path / "lake", training_ratings=True, streamed_since=True)
    use_lake(lake.location)
    rated_since = run_app(user="1")
    notes = [info.value for info in rated_since.info if "after this batch" in info.value]
    assert len(notes) == 1 and "rated 1 movie" in notes[0] and "2026-03-05 09:00" in notes[0] and "fold_in" in notes[0]
    assert not [info for info in run_app(user="2").info if "after this batch" in info.value]


def test_genre_table_counts_the_recommended_movies_genres(tiny_lake: TinyLake, use_lake):
    use_lake(tiny_lake.location)
    app = run_app(user="2")
    genres = app.dataframe[0].value
    labels = [g for m in tiny_lake.recommended[2] for g in (tiny_lake.movies[m]["genres"] or ["(no genres listed)"])]
    assert genres["movies"].sum() == len(labels)
    assert dict(zip(genres["genre"], genres["movies"])) == {g: labels.count(g) for g in set(labels)}
    assert genres["share"].sum() == pytest.approx(1.0)


def bar_chart(app: AppTest) -> dict:
    """The first chart's Vega-Lite spec: the list's bars (the second is the genre donut)."""
    return json.loads(app.get("vega_lite_chart")[0].proto.spec)


def test_the_list_reads_in_one_order_with_its_match_and_the_stars_labelled(tiny_lake: TinyLake, use_lake):
    use_lake(tiny_lake.location)
    app = run_app(user="3")
    table = recommendation_table(app)
    matches = [int(shown.removesuffix("%")) for shown in table["Match"]]
    assert matches == sorted(matches, reverse=True) and matches[0] > matches[-1]
    assert list(table.columns[-2:]) == ["Match", "Predicted stars"]
    stars = [float(shown) for shown in table["Predicted stars"]]
    assert stars != sorted(stars, reverse=True)  # the tiny lake's stars, like the rating model's, do not follow the rank
    assert any("In order of **match**" in caption.value for caption in app.caption)
    chart = bar_chart(app)
    bars = next(layer for layer in chart["layer"] if layer["mark"]["type"] == "bar")
    assert bars["encoding"]["x"]["field"] == "score" and bars["encoding"]["x"]["title"] == "Match"
    assert "Match" in [header.value for header in app.subheader]


def test_cold_start_user_gets_a_badge(tiny_lake: TinyLake, use_lake):
    use_lake(tiny_lake.location)
    app = run_app(user=str(max(tiny_lake.cold_start_users)))
    table = recommendation_table(app)
    assert len(table) == 10
    assert cold_start_badges(app)
    assert len(app.get("vega_lite_chart")) == 2  # the list's bars and the genre donut
    # Popular movies are ordered by how many users rated them, and the numbers say so.
    assert "Rated by" in table.columns and "Match" not in table.columns
    assert bar_chart(app)["layer"][0]["encoding"]["x"]["title"] == "Rated by"


@pytest.mark.parametrize("user", ["999", "abc"])
def test_unknown_user_in_the_url_says_so_and_offers_the_selector(tiny_lake: TinyLake, use_lake, user: str):
    use_lake(tiny_lake.location)
    app = run_app(user=user)
    assert not app.exception
    assert user in app.error[0].value
    assert shows_fix(app)
    assert app.selectbox[0].value is None
    assert not app.table
    app.selectbox[0].select(2).run()
    assert len(recommendation_table(app)) == 10
    assert app.query_params["user"] == "2"


def test_no_lake_says_to_run_the_demo(tmp_path: Path, use_lake):
    use_lake(tmp_path / "nowhere")
    app = run_app()
    assert not app.exception
    assert "no lake" in app.info[0].value
    assert shows_fix(app)
    app.switch_page("pages/model.py").run()
    assert not app.exception
    assert "no lake" in app.info[0].value


def test_no_recommendations_yet_says_to_run_the_demo(tmp_path, use_lake):
    use_lake(build_lake(tmp_path / "lake", recommendations=False, models=False).location)
    app = run_app()
    assert not app.exception
    assert "no recommendations" in app.info[0].value
    assert shows_fix(app)
    app.switch_page("pages/model.py").run()
    assert "No model has been trained yet" in app.info[0].value
    assert shows_fix(app)


def test_corrupt_table_is_a_message_not_a_stack_trace(tiny_lake: TinyLake, use_lake):
    use_lake(tiny_lake.location)
    tiny_lake.fs.pipe_file(tiny_lake.committed_files("movies")[0], b"not parquet at all")
    app = run_app(user="1")
    assert not app.exception
    assert "could not be read" in app.error[0].value
    assert shows_fix(app)


def test_model_page_shows_the_champion_and_the_metric_history(tiny_lake: TinyLake, use_lake):
    use_lake(tiny_lake.location)
    app = run_app()
    app.switch_page("pages/model.py").run()
    assert not app.exception
    assert any(CHAMPION in header.value for header in app.subheader)
    assert [metric.label for metric in app.metric] == ["RMSE", "MAE", "NDCG@10", "Precision@10", "Recall@10"]
    assert app.metric[0].value == "0.8600"
    versions = app.dataframe[0].value
    assert len(versions) == 3
    assert list(versions.loc[versions["champion"], "version"]) == [CHAMPION]
    assert len(app.get("vega_lite_chart")) == 2
