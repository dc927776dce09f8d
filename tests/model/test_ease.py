"""EASE (movierec_dagster/model/ease.py): the closed form, the Spark top-k against a numpy reference, fold-in, persistence."""

import uuid

import fsspec
import numpy as np
import pandas as pd
import pytest

from movierec_dagster.resources import LocalLake
from movierec_dagster.model.ease import (
    BINARY,
    CENTERED,
    RATING,
    EaseModel,
    EaseParams,
    ease_top_k_unseen,
    fit_ease,
    input_values,
)


def random_ratings(users: int, movies: int, density: float, seed: int) -> pd.DataFrame:
    """user_id, movie_id, rating: each pair rated with probability `density`, half stars 0.5-5; movie ids not contiguous."""
    rng = np.random.default_rng(seed)
    rated = rng.random((users, movies)) < density
    user_rows, movie_columns = np.nonzero(rated)
    return pd.DataFrame(
        {
            "user_id": (user_rows + 1).astype("int32"),
            "movie_id": (movie_columns * 3 + 7).astype("int32"),
            "rating": rng.integers(1, 11, len(user_rows)) / 2.0,
        }
    )


def ratings_frame(spark, frame: pd.DataFrame):
    return spark.createDataFrame(frame).repartition(3)


def closed_form(frame: pd.DataFrame, params: EaseParams) -> tuple[np.ndarray, np.ndarray]:
    """(movie ids, B) by the formula, in float64: B = I - P diag(1 / diag(P)), P = (X^T X + lambda I)^-1."""
    movies, columns = np.unique(frame["movie_id"], return_inverse=True)
    _, rows = np.unique(frame["user_id"], return_inverse=True)
    x = np.zeros((rows.max() + 1, len(movies)))
    x[rows, columns] = input_values(frame["rating"].to_numpy(), params)
    p = np.linalg.inv(x.T @ x + params.l2 * np.eye(len(movies)))
    return movies, np.eye(len(movies)) - p / np.diag(p)[None, :]


def reference_top_k(model: EaseModel, frame: pd.DataFrame, k: int) -> dict[int, list[int]]:
    """Every user's scores in float64 from the model's weights, rated movies dropped, sorted by (score desc, id asc)."""
    lists = {}
    for user, theirs in frame.groupby("user_id"):
        positions, columns = model.columns(theirs["movie_id"].to_numpy())
        values = input_values(theirs["rating"].to_numpy()[positions], model.params).astype(np.float64)
        if not np.any(values):
            continue
        scores = values @ model.weights[columns].astype(np.float64)
        rated = set(theirs["movie_id"])
        ranked = sorted((-scores[i], int(movie)) for i, movie in enumerate(model.item_ids) if int(movie) not in rated)
        lists[int(user)] = [movie for _, movie in ranked[:k]]
    return lists


@pytest.mark.parametrize("weighting", [BINARY, RATING, CENTERED])
def test_weights_are_the_closed_form_with_a_zero_diagonal(spark, weighting):
    frame = random_ratings(40, 15, 0.4, seed=1)
    params = EaseParams(l2=5.0, weighting=weighting)
    model = fit_ease(ratings_frame(spark, frame), params)
    movies, expected = closed_form(frame, params)
    assert model.item_ids.dtype == np.int32 and model.weights.dtype == np.float32
    np.testing.assert_array_equal(model.item_ids, movies)
    np.testing.assert_allclose(model.weights, expected, atol=1e-6)
    assert not np.diag(model.weights).any()


def test_weights_minimise_the_regularised_loss_among_zero_diagonal_matrices():
    """The gradient of ||X - XB||^2 + l2 ||B||^2 vanishes off the diagonal (the diagonal is held at 0)."""
    from movierec_dagster.model.ease import ease_weights, gram_matrix

    rng = np.random.default_rng(3)
    x = (rng.random((30, 12)) < 0.5) * rng.integers(1, 6, (30, 12)).astype(float)
    rows, columns = np.nonzero(x)
    weights = ease_weights(gram_matrix(rows, columns, x[rows, columns], 12), 2.0).astype(np.float64)
    gradient = -x.T @ (x - x @ weights) + 2.0 * weights
    off_diagonal = ~np.eye(12, dtype=bool)
    assert np.abs(gradient[off_diagonal]).max() < 1e-4 * np.abs(x.T @ x).max()


def test_top_k_excludes_rated_movies_and_breaks_ties_by_the_smaller_id(spark):
    """A hand-made B whose scores tie exactly (small integers in float32): the order is score, then movie id."""
    ids = np.array([2, 5, 9, 11, 14, 20], dtype=np.int32)
    weights = np.array(
        [
            [0, 1, 1, 2, 1, 0],
            [1, 0, 2, 1, 1, 1],
            [1, 2, 0, 0, 2, 1],
            [2, 1, 0, 0, 1, 2],
            [1, 1, 2, 1, 0, 1],
            [0, 1, 1, 2, 1, 0],
        ],
        dtype=np.float32,
    )
    model = EaseModel(ids, weights, EaseParams(l2=1.0, weighting=BINARY))
    frame = pd.DataFrame(
        {
            "user_id": [1, 2, 2, 3, 4, 4, 4, 4, 4, 5],
            "movie_id": [2, 5, 20, 11, 2, 5, 9, 11, 14, 999],  # user 5 rated only a movie the model does not know
            "rating": [4.0, 3.0, 5.0, 1.0, 4.0, 4.0, 4.0, 4.0, 4.0, 5.0],
        }
    )
    top = ease_top_k_unseen(model, ratings_frame(spark, frame), k=3).toPandas()
    lists = {int(u): g.sort_values("rank")["movie_id"].tolist() for u, g in top.groupby("user_id")}
    assert lists == reference_top_k(model, frame, 3)
    assert lists[1] == [11, 5, 9]  # scores 2, 1, 1, 1, 0: the ties at 1 go to 5 and 9 before 14
    assert lists[4] == [20]  # one unrated movie left
    assert 5 not in lists  # nothing known of user 5: no list, the pipeline's popularity fallback serves them
    assert (top.groupby("user_id")["rank"].apply(lambda r: sorted(r) == list(range(1, len(r) + 1)))).all()


def test_top_k_of_a_fitted_model_matches_the_reference(spark):
    frame = random_ratings(70, 30, 0.3, seed=2)
    ratings = ratings_frame(spark, frame)
    model = fit_ease(ratings, EaseParams(l2=10.0, weighting=RATING))
    top = ease_top_k_unseen(model, ratings, k=5).toPandas()
    assert list(top.dtypes.astype(str)) == ["int32", "int32", "int32", "float64"]
    lists = {int(u): g.sort_values("rank")["movie_id"].tolist() for u, g in top.groupby("user_id")}
    assert lists == reference_top_k(model, frame, 5)
    rated = set(zip(frame["user_id"], frame["movie_id"]))
    assert not any((u, m) in rated for u, m in zip(top["user_id"], top["movie_id"]))
    # Down each list the score never rises.
    assert all(np.all(np.diff(g.sort_values("rank")["score"].to_numpy()) <= 0) for _, g in top.groupby("user_id"))


def test_users_limits_the_lists(spark):
    frame = random_ratings(30, 20, 0.3, seed=4)
    ratings = ratings_frame(spark, frame)
    model = fit_ease(ratings, EaseParams(l2=10.0))
    top = ease_top_k_unseen(model, ratings, users=spark.createDataFrame(pd.DataFrame({"user_id": [3, 7, 1000]})), k=4)
    assert sorted(top.toPandas()["user_id"].unique()) == [3, 7]


def test_score_user_gives_the_spark_list(spark):
    frame = random_ratings(50, 25, 0.35, seed=5)
    ratings = ratings_frame(spark, frame)
    model = fit_ease(ratings, EaseParams(l2=8.0, weighting=RATING))
    top = ease_top_k_unseen(model, ratings, k=6).toPandas()
    for user in (1, 17, 42):
        theirs = frame[frame["user_id"] == user].sample(frac=1.0, random_state=user)  # any order of the ratings
        spark_list = top[top["user_id"] == user].sort_values("rank")
        folded = model.score_user(theirs["movie_id"], theirs["rating"], k=6)
        assert [movie for movie, _ in folded] == spark_list["movie_id"].tolist()
        assert [score for _, score in folded] == spark_list["score"].tolist()
    theirs = frame[frame["user_id"] == 1]
    first = model.score_user(theirs["movie_id"], theirs["rating"], k=3)
    excluded = model.score_user(theirs["movie_id"], theirs["rating"], k=3, exclude=[first[0][0]])
    assert [movie for movie, _ in excluded][:2] == [movie for movie, _ in first][1:]
    assert model.score_user([123456], [5.0]) == []


def test_save_and_load_round_trip_through_a_folder_a_uri_and_a_filesystem(tmp_path):
    rng = np.random.default_rng(6)
    model = EaseModel(np.array([1, 4, 9], dtype=np.int32), rng.random((3, 3), dtype=np.float32), EaseParams(l2=7.5, weighting=CENTERED))
    memory = fsspec.filesystem("memory")
    lake = LocalLake(root=str(tmp_path / "lake"))
    places = [
        (str(tmp_path / "local" / "ease"),),  # a local path
        ((tmp_path / "uri" / "ease").as_uri(),),  # a URI
        (f"memory://ease-{uuid.uuid4().hex}/model",),
        (memory, f"/ease-{uuid.uuid4().hex}/model"),  # an fsspec filesystem and its path
        (lake, lake.uri("models", "als", "v1", "ease")),  # the lake resource and a URI under it, as the registry does
    ]
    for place in places:
        model.save(*place)
        loaded = EaseModel.load(*place)
        np.testing.assert_array_equal(loaded.item_ids, model.item_ids)
        np.testing.assert_array_equal(loaded.weights, model.weights)
        assert loaded.item_ids.dtype == np.int32 and loaded.weights.dtype == np.float32
        assert loaded.params == model.params
    with pytest.raises(FileNotFoundError, match="No EASE model"):
        EaseModel.load(str(tmp_path / "nothing"))


def test_a_catalog_above_max_items_is_refused_with_the_fix(spark):
    ratings = ratings_frame(spark, random_ratings(10, 12, 0.5, seed=7))
    with pytest.raises(ValueError, match=r"EASE needs an items x items matrix: 12 movies exceed max_items 11.*ALS ranks them"):
        fit_ease(ratings, EaseParams(max_items=11))


def test_params_are_checked():
    with pytest.raises(ValueError, match="l2 must be positive"):
        EaseParams(l2=0.0)
    with pytest.raises(ValueError, match="weighting must be one of"):
        EaseParams(weighting="stars")
    with pytest.raises(ValueError, match="max_items must be at least 1"):
        EaseParams(max_items=0)
    assert EaseParams(l2=3.0).as_dict()["l2"] == 3.0


def test_movies_are_the_catalog_the_model_knows(spark):
    model = EaseModel(np.array([3, 8], dtype=np.int32), np.zeros((2, 2), dtype=np.float32), EaseParams())
    assert sorted(row.movie_id for row in model.movies(spark).collect()) == [3, 8]


def test_similar_movies_by_ease_are_its_weights_from_the_movie(spark):
    ratings = random_ratings(40, 25, 0.3, seed=5)
    model = fit_ease(spark.createDataFrame(ratings), EaseParams(l2=5.0))
    movie = int(model.item_ids[3])
    row = model.weights[3].astype(np.float64)
    expected = sorted((-row[i], int(other)) for i, other in enumerate(model.item_ids) if i != 3)[:5]
    similar = model.similar(movie, 5)
    assert [other for other, _ in similar] == [other for _, other in expected]
    np.testing.assert_allclose([weight for _, weight in similar], [-weight for weight, _ in expected], rtol=1e-6)
    assert similar == model.score_user([movie], [5.0], k=5)  # the list of a user whose one rating is five stars for it
    assert model.similar(10_000, 5) is None
