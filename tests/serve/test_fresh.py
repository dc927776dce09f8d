"""Fresh recommendations: fold-in over the champion for users with ratings newer than the batch, and the write path."""

import json
import shutil
import threading
from datetime import date, timedelta
from pathlib import Path

import pytest
from dagster import DagsterInstance
from fastapi.testclient import TestClient

from movierec_dagster.names import RECOMMENDATIONS, TABLES
from movierec_dagster.recommendations.assets import day_part
from movierec_dagster.serve.app import Service, create_app
from movierec_dagster.serve.data import FOLD_IN
from movierec_dagster.serve.writes import MAX_BODY_BYTES, LandingFolderWriter, event_writer
from movierec_dagster.tables import LakeFiles, arrow_dataset, part_values, write_arrow
from tests.conftest import local_definitions
from tests.pipeline import today
from tests.stream.events import event, write_lines

KEY = "test-key-1"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def fresh_home(graph_run, tmp_path) -> Path:
    """A copy of the session graph run's home (lake included), which these tests may write to."""
    home = tmp_path / "home"
    shutil.copytree(graph_run.home, home)
    return home


@pytest.fixture
def writable(fresh_home):
    """A service on the copied lake whose posts land in the lake's landing folder, and a client holding a key."""
    landing = fresh_home / "lake" / "landing" / "rating_events"
    service = Service(str(fresh_home / "lake"), writer=LandingFolderWriter(landing))
    assert service.refresh()
    with TestClient(create_app(service, api_keys=("other-key", KEY))) as client:
        yield service, client, landing


def _landed(landing: Path) -> list[dict]:
    """The events the service wrote (its files are api-*; the graph run's own event files stay beside them)."""
    return [json.loads(line) for path in sorted(landing.glob("api-*.jsonl")) for line in path.read_text().splitlines()]


@pytest.mark.slow  # the session's whole-graph run
def test_fold_in_of_a_user_with_nothing_new_gives_the_batch_s_list(service):
    """Fold-in over the champion from the ratings the batch saw reproduces the batch's top 10, user by user."""
    served = service.served
    assert served.batch_model_version == served.source.champion
    compared = 0
    for user in served.user_index:
        batch = json.loads(served.recommendations_json(user, 10))
        rated = served.user_ratings(user)
        if batch["source"] != "model" or not rated:
            continue
        # One of the user's own ratings marked fresh again: the same ratings, so the fold-in must agree.
        movie, (rating, rated_at) = next(iter(rated.items()))
        folded = json.loads(served.with_fresh([(user, movie, rating, rated_at)]).recommendations_json(user, 10))
        assert folded["source"] == FOLD_IN
        assert [r["movie_id"] for r in folded["recommendations"]] == [r["movie_id"] for r in batch["recommendations"]], user
        for mine, theirs in zip(folded["recommendations"], batch["recommendations"], strict=True):
            assert mine["score"] == pytest.approx(theirs["score"], abs=2e-3)
            assert mine["predicted_rating"] == pytest.approx(theirs["predicted_rating"], abs=2e-3)
        compared += 1
    assert compared >= 10


@pytest.mark.slow  # the session's whole-graph run
def test_a_fresh_rating_replaces_an_older_one_of_the_same_movie_only(service):
    """The user's latest rating of each movie, as the pipeline keeps it: a fresh rating replaces an older one of its
    movie, not a newer one, and of two at the same instant the later received wins."""
    served = service.served
    user = next(user for user in served.user_index if served.user_ratings(user))
    rated = served.user_ratings(user)
    movie, (rating, rated_at) = next(iter(rated.items()))
    other = max(rated) + 1
    older = served.with_fresh([(user, movie, 0.5 if rating != 0.5 else 1.0, rated_at - 1)]).user_ratings(user)
    assert older == rated
    same_instant = served.with_fresh([(user, movie, 2.0, rated_at), (user, movie, 3.0, rated_at), (user, other, 4.5, rated_at + 5)])
    assert same_instant.user_ratings(user) == {**rated, movie: (3.0, rated_at), other: (4.5, rated_at + 5)}


@pytest.mark.slow
def test_a_new_user_who_rates_five_films_of_a_genre_gets_that_genre(writable, synthetic):
    service, client, _ = writable
    user = 90_001
    assert client.get(f"/users/{user}/recommendations").json()["source"] == "popularity"
    genre = "Comedy" if "Comedy" in synthetic.movie_genre.values() else next(iter(synthetic.movie_genre.values()))
    liked = [movie for movie, g in sorted(synthetic.movie_genre.items()) if g == genre][:5]
    posted = client.post(f"/users/{user}/ratings", json={"ratings": [{"movie_id": m, "rating": 5.0} for m in liked]}, headers=AUTH)
    assert posted.status_code == 202, posted.text
    answer = client.get(f"/users/{user}/recommendations").json()
    assert answer["source"] == FOLD_IN and answer["newest_rating_at"] is not None
    shown = [r["movie_id"] for r in answer["recommendations"]]
    assert len(shown) == 10 and not set(shown) & set(liked)
    in_genre = sum(synthetic.movie_genre[m] == genre for m in shown)
    catalogue_share = sum(g == genre for g in synthetic.movie_genre.values()) / len(synthetic.movie_genre)
    assert in_genre >= 8 > 10 * catalogue_share, (in_genre, catalogue_share)


@pytest.mark.slow
def test_fewer_ratings_than_the_batch_needs_keep_the_popularity_list_without_the_rated_movie(writable):
    _, client, _ = writable
    popular = [r["movie_id"] for r in client.get("/users/90002/recommendations").json()["recommendations"]]
    assert client.post("/users/90002/ratings", json={"ratings": [{"movie_id": popular[0], "rating": 4.0}]}, headers=AUTH).status_code == 202
    answer = client.get("/users/90002/recommendations").json()
    shown = [r["movie_id"] for r in answer["recommendations"]]
    assert answer["source"] == "popularity" and answer["known_user"] is False
    assert shown[:9] == popular[1:] and len(shown) == 10 and popular[0] not in shown  # the 11th most rated moves up


@pytest.mark.slow
def test_a_posted_rating_reaches_rating_events_once_and_is_never_recommended_back(writable, fresh_home, synthetic_zip):
    service, client, landing = writable
    user = 3
    before = [r["movie_id"] for r in client.get(f"/users/{user}/recommendations").json()["recommendations"]]
    body = {"ratings": [{"movie_id": before[0], "rating": 4.5, "event_id": "posted-1", "rated_at": "2026-01-02T03:04:05Z"}]}
    assert client.post(f"/users/{user}/ratings", json=body, headers=AUTH).status_code == 202
    answer = client.get(f"/users/{user}/recommendations").json()
    assert answer["source"] == FOLD_IN and before[0] not in [r["movie_id"] for r in answer["recommendations"]]
    assert [event["event_id"] for event in _landed(landing)] == ["posted-1"]
    again = client.post(f"/users/{user}/ratings", json=body, headers=AUTH)
    assert again.status_code == 409 and "duplicate event_id" in again.json()["detail"]

    defs = local_definitions(fresh_home, synthetic_zip)
    with DagsterInstance.ephemeral() as instance:
        for _ in range(2):  # a second ingest finds nothing new: the event is in rating_events once
            assert defs.resolve_job_def("ingest_rating_events").execute_in_process(instance=instance).success
    lake = defs.resources["lake"]
    events = arrow_dataset(lake.table("rating_events"), lake.table_version("rating_events")).to_table().to_pylist()
    mine = [event for event in events if event["event_id"] == "posted-1"]
    assert [(e["user_id"], e["movie_id"], e["rating"]) for e in mine] == [(user, before[0], 4.5)]
    assert service.refresh()  # the poll reads the new rating_events file: still fresh, still not recommended
    after = client.get(f"/users/{user}/recommendations").json()
    assert after["source"] == FOLD_IN and before[0] not in [r["movie_id"] for r in after["recommendations"]]


@pytest.mark.slow
def test_a_rating_streamed_after_the_batch_is_folded_in_at_the_next_poll(writable, fresh_home, synthetic_zip):
    """No POST: a rating that lands as a file and is ingested turns the user's list into a fold-in once polled."""
    service, client, landing = writable
    user = 4
    before = client.get(f"/users/{user}/recommendations").json()
    assert before["source"] == "model"
    movie = before["recommendations"][0]["movie_id"]
    write_lines(landing, "streamed.jsonl", [event("streamed-1", user_id=user, movie_id=movie, rating=1.0).encode()])
    defs = local_definitions(fresh_home, synthetic_zip)
    with DagsterInstance.ephemeral() as instance:
        assert defs.resolve_job_def("ingest_rating_events").execute_in_process(instance=instance).success
    assert client.get(f"/users/{user}/recommendations").json()["source"] == "model"  # not polled yet
    # The poll reads only the new rating_events files, without the lock a POST takes: a rating posted meanwhile is
    # kept beside the streamed one.
    polled = []
    polling = threading.Thread(target=lambda: polled.append(service.refresh()))
    polling.start()
    posted = before["recommendations"][1]["movie_id"]
    body = {"ratings": [{"movie_id": posted, "rating": 4.0, "event_id": "during-the-poll"}]}
    assert client.post(f"/users/{user}/ratings", json=body, headers=AUTH).status_code == 202
    polling.join()
    assert polled == [True]
    after = client.get(f"/users/{user}/recommendations").json()
    assert after["source"] == FOLD_IN and not {movie, posted} & {r["movie_id"] for r in after["recommendations"]}
    rated = service.served.user_ratings(user)
    assert rated[movie][0] == 1.0 and rated[posted][0] == 4.0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({"ratings": [{"movie_id": 999_999, "rating": 4.0}]}, 422, "movie_id 999999 is not in the catalogue"),
        ({"ratings": [{"movie_id": 1, "rating": 5.5}]}, 422, "rating is outside 0.5-5.0"),
        ({"ratings": [{"movie_id": 1, "rating": 4.25}]}, 422, "rating is not a multiple of 0.5"),
        ({"ratings": [{"movie_id": 1, "rating": 4.0, "rated_at": "2999-01-01T00:00:00Z"}]}, 422, "rated_at is in the future"),
        ({"ratings": [{"movie_id": 1, "rating": 4.0, "event_id": "e"}, {"movie_id": 2, "rating": 3.0, "event_id": "e"}]}, 409, "duplicate event_id"),
        ({"ratings": [{"movie_id": 1, "rating": 4.0}, {"movie_id": 2, "rating": 9}]}, 422, "ratings[1]: rating is outside 0.5-5.0"),
        ({"ratings": [{"movie_id": 1, "rating": 4.0}] * 101}, 422, "at most 100"),
        ({"rating": []}, 422, '{"ratings"'),
        ({"ratings": [{"movie_id": 1, "rating": 4.0, "user_id": 9}]}, 422, "unknown field 'user_id'"),
        ({"ratings": [[1, 4.0]]}, 422, "ratings[0]: not a JSON object"),
        ({"ratings": [{"movie_id": 1, "rating": 4.0, "event_id": 7}]}, 422, "event_id is not text"),
        ({"ratings": [{"movie_id": "one", "rating": 4.0}]}, 422, "movie_id is not an integer"),
        ({"ratings": [{"movie_id": 1}]}, 422, "rating is missing"),
    ],
)
def test_bad_input_is_refused_with_its_reason_and_nothing_is_written(writable, body, status, reason):
    _, client, landing = writable
    response = client.post("/users/7/ratings", json=body, headers=AUTH)
    assert response.status_code == status and reason in response.json()["detail"], response.text
    assert _landed(landing) == []
    assert client.get("/users/7/recommendations").json()["source"] != FOLD_IN


@pytest.mark.slow
def test_writes_need_a_key_and_a_bounded_body(writable, fresh_home):
    service, client, landing = writable
    rating = {"ratings": [{"movie_id": 1, "rating": 4.0}]}
    missing = client.post("/users/7/ratings", json=rating)
    assert missing.status_code == 401 and "Authorization: Bearer" in missing.json()["detail"]
    wrong = client.post("/users/7/ratings", json=rating, headers={"Authorization": "Bearer not-a-key"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Bearer")
    huge = client.post("/users/7/ratings", content=b"{" + b" " * MAX_BODY_BYTES + b"}", headers={**AUTH, "Content-Type": "application/json"})
    assert huge.status_code == 413
    not_json = client.post("/users/7/ratings", content=b"{not json", headers={**AUTH, "Content-Type": "application/json"})
    assert not_json.status_code == 400
    with TestClient(create_app(service)) as keyless:
        off = keyless.post("/users/7/ratings", json=rating, headers=AUTH)
        assert off.status_code == 403 and "MOVIEREC_SERVE_API_KEYS" in off.json()["detail"]
    assert _landed(landing) == []
    assert client.get("/users/7/recommendations").status_code == 200  # reads stay open without a key


@pytest.mark.slow
def test_without_an_event_source_writing_says_what_to_set(pipeline_lake):
    writer, why = event_writer({}, "abfss://lake@account.dfs.core.windows.net/movierec")
    assert writer is None and "EVENTHUB_NAMESPACE" in why and "MOVIEREC_LANDING_FOLDER" in why
    service = Service(pipeline_lake.uri(), no_writer=why)
    assert service.refresh()
    with TestClient(create_app(service, api_keys=(KEY,))) as client:
        refused = client.post("/users/7/ratings", json={"ratings": [{"movie_id": 1, "rating": 4.0}]}, headers=AUTH)
    assert refused.status_code == 503 and refused.json()["detail"] == why


def test_posted_ratings_go_to_the_landing_folder_named_else_the_local_lake_s(tmp_path):
    named, _ = event_writer({"MOVIEREC_LANDING_FOLDER": str(tmp_path / "elsewhere")}, str(tmp_path / "lake"))
    local, _ = event_writer({}, str(tmp_path / "lake"))
    assert named.describe() == f"landing folder {tmp_path / 'elsewhere'}"
    assert local.describe() == f"landing folder {tmp_path / 'lake' / 'landing' / 'rating_events'}"


@pytest.mark.slow
def test_a_rating_posted_while_a_new_batch_loads_is_kept(writable, fresh_home):
    """The full load runs without the lock a POST takes; the ratings posted meanwhile are folded into the new data."""
    service, client, _ = writable
    recommendations = LakeFiles(str(fresh_home / "lake")).table(TABLES, RECOMMENDATIONS)
    todays = arrow_dataset(recommendations, recommendations.current(), [day_part(today())]).to_table()
    tomorrow = (date.fromisoformat(today()) + timedelta(days=1)).isoformat()
    write_arrow(recommendations, todays.drop_columns(list(part_values(day_part(today())))), part=day_part(tomorrow))
    user = 4
    first = client.get(f"/users/{user}/recommendations").json()["recommendations"][0]["movie_id"]
    loading = threading.Thread(target=service.refresh)
    loading.start()
    body = {"ratings": [{"movie_id": first, "rating": 5.0, "event_id": "during-the-load"}]}
    assert client.post(f"/users/{user}/ratings", json=body, headers=AUTH).status_code == 202
    loading.join()
    assert client.get("/health").json()["date"] == tomorrow
    answer = client.get(f"/users/{user}/recommendations").json()
    assert answer["source"] == FOLD_IN and first not in [r["movie_id"] for r in answer["recommendations"]]
