"""The HTTP API on a lake the pipeline wrote: recommendations, the popularity fallback, similar movies, health, metrics."""

import re

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pyspark.sql import functions as F

from movierec_dagster.model import registry, training
from movierec_dagster.recommendations.assets import TABLE as RECOMMENDATIONS_TABLE
from movierec_dagster.serve.app import create_app
from movierec_dagster.serve.cli import cors_origins
from tests.pipeline import today


def batch_rows(spark, lake, user_id: int) -> list[tuple]:
    """(rank, movie_id, score, predicted_rating, source) of the user in today's batch, read by the pipeline's own reader."""
    rows = (
        lake.read_table(spark, RECOMMENDATIONS_TABLE)
        .where((F.col("date") == today()) & (F.col("user_id") == user_id))
        .orderBy("rank")
        .collect()
    )
    return [(r["rank"], r["movie_id"], r["score"], r["predicted_rating"], r["source"]) for r in rows]


@pytest.mark.slow  # the session's whole-graph run
def test_a_users_recommendations_are_todays_batch_with_titles(client, spark, pipeline_lake, synthetic):
    champion = registry.read_champion(pipeline_lake)["version"]
    response = client.get("/users/1/recommendations", params={"k": 10})
    assert response.status_code == 200
    body = response.json()
    assert (body["user_id"], body["source"], body["known_user"]) == (1, "model", True)
    assert body["date"] == today() and body["model_version"] == champion
    expected = batch_rows(spark, pipeline_lake, 1)
    assert len(expected) == 10
    served = [(r["rank"], r["movie_id"], r["score"], r["predicted_rating"], "model") for r in body["recommendations"]]
    assert [s[:2] for s in served] == [e[:2] for e in expected]
    assert [s[2:4] for s in served] == [pytest.approx(e[2:4], abs=1e-4) for e in expected]
    # The list reads in the order of its score: each no higher than the one above.
    scores = [s[2] for s in served]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= score <= 1.0 for score in scores)
    for row in body["recommendations"]:
        assert f"Movie {row['movie_id']}" in row["title"] and row["year"] == 1980 + row["movie_id"] % 40
        assert synthetic.movie_genre[row["movie_id"]] in row["genres"]

    first_three = client.get("/users/1/recommendations", params={"k": 3}).json()["recommendations"]
    assert first_three == body["recommendations"][:3]


@pytest.mark.slow
def test_users_the_batch_fell_back_for_or_never_saw_get_the_popularity_fallback(client, spark, pipeline_lake, graph_run):
    # The new user's one streamed rating is fewer than min_ratings: the batch gave them the popularity fallback.
    body = client.get(f"/users/{graph_run.new_user}/recommendations").json()
    assert (body["source"], body["known_user"]) == ("popularity", True)
    assert [r["movie_id"] for r in body["recommendations"]] == [e[1] for e in batch_rows(spark, pipeline_lake, graph_run.new_user)]

    stranger = graph_run.new_user + 1000
    body = client.get(f"/users/{stranger}/recommendations", params={"k": 5}).json()
    assert (body["user_id"], body["source"], body["known_user"]) == (stranger, "popularity", False)
    ratings = lake_ratings(spark, pipeline_lake)
    users = ratings.select("user_id").distinct().count()
    most_rated = [
        (r["movie_id"], r["count"] / users)
        for r in ratings.groupBy("movie_id").count().orderBy(F.desc("count"), "movie_id").limit(5).collect()
    ]
    # Most-rated first, each with the share of users who rated it: the order and the number agree.
    assert [(r["movie_id"], r["score"]) for r in body["recommendations"]] == [
        (movie, pytest.approx(share, abs=1e-4)) for movie, share in most_rated
    ]
    assert [r["rank"] for r in body["recommendations"]] == [1, 2, 3, 4, 5]
    assert all(0.5 <= r["predicted_rating"] <= 5.0 for r in body["recommendations"])


def lake_ratings(spark, lake):
    """Every (user, movie) rated: training_ratings and the streamed events, once each."""
    pairs = lake.read_table(spark, "training_ratings").select("user_id", "movie_id")
    return pairs.unionByName(lake.read_table(spark, "rating_events").select("user_id", "movie_id")).distinct()


def similarities(bundle: training.ModelBundle, movie: int) -> tuple[np.ndarray, np.ndarray]:
    """Every movie of the champion's ranking model and its similarity to `movie`, worked out here from the saved model:
    the cosine of implicit ALS's item factors, or EASE's weight from `movie` (its row of B)."""
    model = bundle.ranking_model
    if bundle.ranking_model_kind == training.EASE_RANKER:
        ids = model.item_ids.astype(np.int64)
        return ids, model.weights[int(np.flatnonzero(ids == movie)[0])].astype(np.float64)
    factors = model.itemFactors.collect()
    ids = np.array([row["id"] for row in factors])
    vectors = np.array([row["features"] for row in factors], dtype=np.float64)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return ids, vectors @ vectors[int(np.flatnonzero(ids == movie)[0])]


@pytest.mark.slow
def test_similar_movies_are_the_nearest_by_the_champions_ranking_model(client, spark, pipeline_lake):
    champion = registry.read_champion(pipeline_lake)["version"]
    bundle = registry.load_bundle(pipeline_lake, spark, champion)
    model = bundle.ranking_model
    movie = int(model.item_ids[0] if bundle.ranking_model_kind == training.EASE_RANKER else model.itemFactors.first()["id"])
    ids, similarity = similarities(bundle, movie)
    others = [(float(s), int(i)) for s, i in zip(similarity, ids, strict=True) if i != movie]
    expected = [i for _, i in sorted(others, key=lambda pair: (-pair[0], pair[1]))[:4]]

    response = client.get(f"/movies/{movie}/similar", params={"k": 4})
    assert response.status_code == 200
    body = response.json()
    assert body["movie_id"] == movie and body["model_version"] == champion and f"Movie {movie}" in body["title"]
    assert [r["movie_id"] for r in body["similar"]] == expected
    scores = [r["similarity"] for r in body["similar"]]
    assert scores == sorted(scores, reverse=True) and movie not in [r["movie_id"] for r in body["similar"]]

    missing = client.get("/movies/999999/similar")
    assert missing.status_code == 404 and "999999" in missing.json()["detail"]


@pytest.mark.slow
def test_health_names_the_partition_and_model_and_metrics_count_requests(client, spark, pipeline_lake, service):
    health = client.get("/health")
    assert health.status_code == 200
    body = health.json()
    champion = registry.read_champion(pipeline_lake)["version"]
    committed = pipeline_lake.table_version(RECOMMENDATIONS_TABLE)
    assert f"date={today()}" in committed.parts
    assert body["status"] == "ready" and body["date"] == today() and body["table_version"] == committed.version
    assert body["champion"] == champion and body["model_version"] == champion
    todays = pipeline_lake.read_table(spark, RECOMMENDATIONS_TABLE).where(F.col("date") == today())
    assert body["rows"] == todays.count() and body["users"] == todays.select("user_id").distinct().count()

    client.get("/users/1/recommendations")
    client.get("/users/x/recommendations")
    metrics = client.get("/metrics").text
    assert 'movierec_serve_requests_total{route="/users/{user_id}/recommendations",status="200"}' in metrics
    assert 'movierec_serve_requests_total{route="/users/{user_id}/recommendations",status="422"}' in metrics
    assert "movierec_serve_ready 1.0" in metrics


@pytest.mark.slow
def test_asking_for_more_than_there_is_says_so(client):
    body = client.get("/users/1/recommendations", params={"k": 20}).json()
    assert len(body["recommendations"]) == 10 and body["note"] == "k=20 asked, 10 available"
    assert "note" not in client.get("/users/1/recommendations", params={"k": 10}).json()


@pytest.mark.slow
def test_titles_are_searched_by_their_words_in_any_case(client, synthetic):
    movie = min(synthetic.movie_genre)
    title = client.get(f"/movies/{movie}/similar", params={"k": 1}).json()["title"]
    body = client.get("/movies", params={"q": title.upper(), "k": 5}).json()
    assert body["query"] == title.upper() and body["movies"][0]["movie_id"] == movie
    # Every word must be in the title, in any order; the titles that start with the query come first.
    words = title.split()
    reordered = client.get("/movies", params={"q": " ".join(reversed(words)), "k": 100}).json()
    assert movie in [m["movie_id"] for m in reordered["movies"]]
    nothing = client.get("/movies", params={"q": "no such film anywhere"}).json()
    assert (nothing["matches"], nothing["movies"], nothing["note"]) == (0, [], "k=10 asked, 0 available")
    assert client.get("/movies", params={"q": "   "}).status_code == 422


@pytest.mark.slow
def test_the_root_points_to_the_docs_and_health_answers_a_head(client):
    root = client.get("/", follow_redirects=False)
    assert root.status_code == 307 and root.headers["location"] == "/docs"
    # The docs page loads its assets from the service itself: it works offline.
    page = client.get("/docs").text
    assets = re.findall(r"""(?:src|href)=["'](/[^"']+\.(?:js|css))["']""", page)
    assert assets and "cdn" not in page.lower()
    assert all(client.get(asset).status_code == 200 for asset in assets)
    head = client.head("/health")
    assert head.status_code == 200 and head.content == b""


@pytest.mark.slow
def test_browsers_on_the_configured_origins_may_call_the_api(service):
    origin = "https://app.example.com"
    with TestClient(create_app(service, cors_origins=(origin,))) as allowed, TestClient(create_app(service)) as closed:
        assert allowed.get("/health", headers={"Origin": origin}).headers["access-control-allow-origin"] == origin
        assert "access-control-allow-origin" not in allowed.get("/health", headers={"Origin": "https://elsewhere.example"}).headers
        assert "access-control-allow-origin" not in closed.get("/health", headers={"Origin": origin}).headers
    assert cors_origins({"MOVIEREC_SERVE_CORS_ORIGINS": f" {origin}, http://localhost:5173 ,"}) == (origin, "http://localhost:5173")
    assert cors_origins({}) == ()
