"""Fold-in against Spark: a user's vector solved alone from the final item factors is the one the training solved."""

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from movierec_dagster.model import foldin, training
from movierec_dagster.names import MAX_RATING, MIN_RATING
from tests.model.test_ease import random_ratings


def _factors(frame) -> tuple[np.ndarray, np.ndarray]:
    rows = frame.orderBy("id").collect()
    return np.array([row.id for row in rows]), np.array([row.features for row in rows], dtype=np.float64)


@pytest.fixture(scope="module")
def fitted(spark):
    ratings = random_ratings(users=60, movies=40, density=0.3, seed=7)
    frame = spark.createDataFrame(ratings).select(
        F.col("user_id").cast("int"), F.col("movie_id").cast("int"), F.col("rating").cast("float")
    )
    params = training.ModelParams(ranking_rank=6, ranking_max_iter=4, rating_rank=4, rating_max_iter=4)
    bundle = training.fit_bundle(frame, training.ModelParams(**{**params.as_dict(), "ranker": training.ALS_RANKER}))
    yield ratings, params, bundle
    bundle.release()


@pytest.mark.slow  # fits both models in Spark (the module's fixture)
def test_an_implicit_als_user_solved_alone_has_the_training_s_factors(fitted):
    """Spark's last half-iteration solves the users against the final item factors: fold-in solves the same system."""
    ratings, params, bundle = fitted
    item_ids, item_factors = _factors(bundle.ranking_model.itemFactors)
    user_ids, user_factors = _factors(bundle.ranking_model.userFactors)
    model = foldin.ImplicitAls.of(
        item_ids, item_factors, alpha=params.alpha, reg_param=params.ranking_reg_param, neutral_rating=params.neutral_rating
    )
    for user, expected in zip(user_ids, user_factors, strict=True):
        mine = ratings[ratings.user_id == user]
        vector = model.user_vector(mine.movie_id.to_numpy(), mine.rating.to_numpy())
        np.testing.assert_allclose(vector, expected, rtol=2e-3, atol=2e-4)


@pytest.mark.slow  # fits both models in Spark (the module's fixture)
def test_stars_of_a_known_user_are_the_training_s(fitted, spark):
    """The user bias and the residual ALS vector solved alone give the batch's predicted stars."""
    ratings, params, bundle = fitted
    biases = bundle.biases
    item_bias = {row.movie_id: row.item_bias for row in biases.item_bias.collect()}
    residual_ids, residual_factors = _factors(bundle.rating_model.itemFactors)
    stars = foldin.Stars(
        biases.global_mean, item_bias, params.user_bias_reg,
        foldin.ItemSide(residual_ids, residual_factors), params.rating_reg_param,
    )
    users = sorted(ratings.user_id.unique())[:10]
    movies = [*sorted(ratings.movie_id.unique()), 999]  # 999: a movie the models never saw
    pairs = pd.DataFrame([(u, m) for u in users for m in movies], columns=["user_id", "movie_id"])
    batch = training.predict_ratings(bundle, spark.createDataFrame(pairs)).toPandas()
    for user in users:
        mine = ratings[ratings.user_id == user]
        expected = batch[batch.user_id == user].sort_values("movie_id")
        predicted = stars.predict(mine.movie_id.tolist(), mine.rating.tolist(), expected.movie_id.tolist())
        np.testing.assert_allclose(predicted, expected.predicted_rating, atol=2e-3)


@pytest.mark.slow  # fits both models in Spark (the module's fixture)
def test_a_user_the_model_never_saw_is_scored_from_their_first_rating(fitted):
    ratings, params, bundle = fitted
    item_ids, item_factors = _factors(bundle.ranking_model.itemFactors)
    model = foldin.ImplicitAls.of(item_ids, item_factors, alpha=1.0, reg_param=0.1, neutral_rating=3.0)
    assert model.user_vector(np.array([999]), np.array([5.0])) is None  # no movie the model knows
    assert model.score_user([999], [5.0], k=5) == []
    best = model.score_user([int(item_ids[0])], [5.0], k=5)
    assert len(best) == 5 and int(item_ids[0]) not in [movie for movie, _ in best]
    assert [score for _, score in best] == sorted((score for _, score in best), reverse=True)


def test_top_k_breaks_ties_by_the_smaller_id_and_never_returns_an_excluded_movie():
    ids = np.array([5, 3, 9, 1, 7])
    best = foldin.top_k(ids, np.array([0.5, 0.9, 0.5, -np.inf, 0.1]), k=3)  # 1 left out, though tied with 5 and 9
    assert best == [(3, 0.9), (5, 0.5), (9, 0.5)]
    assert foldin.top_k(ids, np.full(5, -np.inf), k=3) == []


@pytest.mark.parametrize("catalogue", [7, 5_000, 59_047])
def test_top_k_of_a_large_catalogue_is_the_sorted_list_s_head(catalogue):
    """The sampled floor never changes the answer: the k best by score then id, ties and exclusions included."""
    rng = np.random.default_rng(catalogue)
    ids = rng.permutation(np.arange(1, 3 * catalogue, 3))
    scores = np.round(rng.normal(size=catalogue), 1).astype(np.float32)  # coarse: many ties at every bound
    scores[rng.choice(catalogue, catalogue // 3, replace=False)] = -np.inf  # left out
    for k in (1, 10, 100):
        oracle = sorted((-score, movie) for movie, score in zip(ids.tolist(), scores.tolist(), strict=True) if score > -np.inf)
        assert foldin.top_k(ids, scores, k) == [(movie, -negative) for negative, movie in oracle[:k]]
    # Fewer movies left than asked for: every one of them, in order.
    few = np.full(catalogue, -np.inf, dtype=np.float32)
    kept = rng.choice(catalogue, 5, replace=False)
    few[kept] = scores[kept].clip(-1, 1)
    best = foldin.top_k(ids, few, 10)
    assert sorted(movie for movie, _ in best) == sorted(ids[kept].tolist()) and [s for _, s in best] == sorted((s for _, s in best), reverse=True)


@pytest.mark.parametrize("ids", [np.array([5, 3, 9, 1, 0, 7]), np.array([5, 3, 9, 1, 0, 2**40])], ids=["dense ids", "sparse ids"])
def test_a_row_lookup_finds_each_known_id_and_nothing_else(ids):
    lookup = foldin.RowLookup(ids)
    wanted = np.array([9, -1, 0, 4, 2**40, 2**41, 7, 5, 9])
    positions, rows = lookup(wanted)
    known = {int(i): row for row, i in enumerate(ids)}
    expected = [(place, known[int(w)]) for place, w in enumerate(wanted) if int(w) in known]
    assert list(zip(positions.tolist(), rows.tolist(), strict=True)) == expected
    assert [len(part) for part in lookup(np.array([], dtype=np.int64))] == [0, 0]
    assert [len(part) for part in foldin.RowLookup(np.array([], dtype=np.int64))(wanted)] == [0, 0]


def test_stars_stay_on_the_scale_for_an_extreme_user():
    stars = foldin.Stars(global_mean=4.5, item_bias={1: 0.6, 2: -4.4}, user_bias_reg=0.0)
    assert stars.predict([2], [5.0], [1, 2]) == [MAX_RATING, MAX_RATING]  # 10.0 and 5.0: a user bias of 4.9
    assert stars.predict([1], [0.5], [2]) == [MIN_RATING]  # -4.5: a user bias of -4.6


def test_similar_movies_by_implicit_als_are_the_nearest_by_cosine():
    factors = np.array([[1, 0], [2, 0.1], [-0.5, 3], [-1, 0], [0.5, 0.5], [0, 0]], dtype=np.float32)
    model = foldin.ImplicitAls.of(np.array([10, 20, 30, 40, 50, 60]), factors, alpha=1.0, reg_param=0.1, neutral_rating=3.0)
    similar = model.similar(10, 3)
    assert [movie for movie, _ in similar] == [20, 50, 60]  # the same way, 45 degrees off, a zero vector (cosine 0)
    assert similar[0][1] == pytest.approx(2 / np.hypot(2, 0.1), abs=1e-6) and similar[2][1] == 0
    assert [movie for movie, _ in model.similar(10, 10)] == [20, 50, 60, 30, 40]  # all but itself
    assert model.similar(99, 3) is None
