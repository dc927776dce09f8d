"""What the API answers before there is anything to serve, and to input it cannot take: JSON with a clear message."""

import pytest
from fastapi.testclient import TestClient

from movierec_dagster.serve.app import Service, create_app
from tests.dashboard.lakes import NEWEST_DATE, _recommendation_rows, build_lake, commit


@pytest.fixture
def empty_client(tmp_path):
    """The API on a lake nothing has written yet, after its first look at it."""
    service = Service(str(tmp_path / "lake"))
    assert not service.refresh()
    with TestClient(create_app(service)) as client:
        yield client


def test_before_any_recommendations_everything_says_what_to_run(empty_client):
    health = empty_client.get("/health")
    assert health.status_code == 503 and health.json()["status"] == "unavailable"
    assert "make demo" in health.json()["detail"]
    for path in ("/users/1/recommendations", "/movies/1/similar"):
        response = empty_client.get(path)
        assert response.status_code == 503
        assert "No recommendations have been made yet" in response.json()["detail"]
        assert "make demo" in response.json()["detail"]
    assert "movierec_serve_ready 0.0" in empty_client.get("/metrics").text


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("/users/abc/recommendations", "user_id"),
        ("/users/1.5/recommendations", "user_id"),
        ("/users/0/recommendations", "user_id"),
        ("/users/1/recommendations?k=0", "k"),
        ("/users/1/recommendations?k=101", "k"),
        ("/users/1/recommendations?k=ten", "k"),
        ("/movies/abc/similar", "movie_id"),
        ("/movies/1/similar?k=-1", "k"),
        ("/movies?q=%20%20", "q"),
        ("/movies?q=%1E%0A", "q"),  # white space to Python's split (no word), though not to Unicode's \s
    ],
)
def test_bad_input_is_a_422_naming_the_parameter(empty_client, path, named):
    response = empty_client.get(path)
    assert response.status_code == 422 and response.headers["content-type"] == "application/json"
    assert response.json()["detail"].startswith(f"{named}: ")


def test_an_unknown_path_is_a_json_404(empty_client):
    response = empty_client.get("/users")
    assert response.status_code == 404 and response.json() == {"detail": "Not Found"}


def test_a_batch_made_before_lists_had_a_score_says_to_score_again(tmp_path):
    lake = build_lake(tmp_path / "lake", training_ratings=True)
    old_batch = _recommendation_rows(lake, NEWEST_DATE, lake.users, 10, "v0").drop_columns(["score"])
    commit(lake, "user_recommendations", old_batch, f"date={NEWEST_DATE}")
    service = Service(str(tmp_path / "lake"))
    assert not service.refresh()
    with TestClient(create_app(service)) as client:
        detail = client.get("/health").json()["detail"]
    assert "made before each list carried its score" in detail and "score_recommendations" in detail
