"""Model logic on tiny frames: merging ratings, the split, biases, metrics against hand-computed values, predictions."""

import math
import random
from dataclasses import replace
from datetime import datetime

import pytest

from movierec_dagster.model import evaluation, training
from movierec_dagster.model.retrain import AlsModelConfig
from movierec_dagster.model.training import ModelParams

TINY = ModelParams(
    rating_rank=2, rating_max_iter=3, ranking_rank=2, ranking_max_iter=3, bias_iterations=2, ranker=training.ALS_RANKER
)


def _ratings(spark, rows):
    return spark.createDataFrame(rows, "user_id int, movie_id int, rating double")


def test_merge_keeps_the_latest_rating_and_prefers_the_stream_on_ties(spark):
    t = datetime
    history = spark.createDataFrame(
        [(1, 10, 3.0, t(2020, 1, 1), 2020), (1, 20, 2.0, t(2020, 1, 1), 2020), (2, 10, 5.0, t(2021, 1, 1), 2021)],
        "user_id int, movie_id int, rating double, rated_at timestamp, year int",
    )
    events = spark.createDataFrame(
        [
            ("a", 1, 10, 4.5, t(2024, 1, 1), t(2024, 1, 2)),  # newer than history: wins
            ("b", 1, 20, 5.0, t(2020, 1, 1), t(2024, 1, 2)),  # same instant as history: the stream wins
            ("c", 2, 10, 1.0, t(2019, 1, 1), t(2024, 1, 2)),  # older than history: loses
            ("d", 3, 30, 2.0, t(2024, 1, 1), t(2024, 1, 2)),
            ("e", 3, 30, 3.5, t(2024, 1, 1), t(2024, 1, 3)),  # same instant, ingested later: wins
        ],
        "event_id string, user_id int, movie_id int, rating double, rated_at timestamp, ingested_at timestamp",
    )
    merged = {(r.user_id, r.movie_id): r.rating for r in training.merge_ratings(history, events).collect()}
    assert merged == {(1, 10): 4.5, (1, 20): 5.0, (2, 10): 5.0, (3, 30): 3.5}
    assert training.merge_ratings(history, None).count() == 3


def test_split_is_disjoint_complete_and_fixed(spark):
    ratings = _ratings(spark, [(u, m, 3.0) for u in range(1, 21) for m in range(1, 21)])
    train, test = evaluation.split(ratings, 0.2, seed=42)
    train_keys = {(r.user_id, r.movie_id) for r in train.collect()}
    test_keys = {(r.user_id, r.movie_id) for r in test.collect()}
    assert not train_keys & test_keys
    assert len(train_keys) + len(test_keys) == 400
    assert 40 < len(test_keys) < 120
    assert {(r.user_id, r.movie_id) for r in evaluation.split(ratings.repartition(3), 0.2, seed=42)[1].collect()} == test_keys
    with pytest.raises(ValueError, match="test_fraction"):
        evaluation.split(ratings, 1.5, seed=1)


def test_biases_without_regularisation_recover_an_additive_model(spark):
    # rating = 3 + user effect + movie effect, every pair observed: alternating least squares finds it.
    user_effect, movie_effect = {1: -1.0, 2: 0.0, 3: 1.0}, {10: -0.5, 20: 0.5}
    rows = [(u, m, 3.0 + ue + me) for u, ue in user_effect.items() for m, me in movie_effect.items()]
    biases = training.fit_biases(_ratings(spark, rows), user_reg=0.0, item_reg=0.0, iterations=3)
    predicted = {(r.user_id, r.movie_id): r.baseline for r in training.bias_prediction(biases, _ratings(spark, rows)).collect()}
    assert predicted == pytest.approx({(u, m): rating for u, m, rating in rows})
    unknown = training.bias_prediction(biases, _ratings(spark, [(99, 99, 1.0)])).first()
    assert unknown.baseline == pytest.approx(biases.global_mean)


def test_rating_errors(spark):
    frame = spark.createDataFrame([(4.0, 3.0), (2.0, 4.0)], "rating double, prediction double")
    assert evaluation.rating_errors(frame, "prediction") == pytest.approx({"rmse": math.sqrt(2.5), "mae": 1.5})


def test_ranking_metrics_hand_computed(spark):
    recommendations = spark.createDataFrame(
        [(1, 10, 1), (1, 11, 2), (1, 12, 3), (2, 20, 1), (2, 21, 2)], "user_id int, movie_id int, rank int"
    )
    test = _ratings(
        spark,
        [
            (1, 11, 5.0), (1, 12, 4.0), (1, 13, 4.5), (1, 10, 2.0),  # user 1: relevant 11, 12, 13; hits at ranks 2, 3
            (2, 99, 4.0),  # user 2: one relevant, not recommended
            (3, 30, 4.0),  # user 3: relevant, no recommendations at all
            (4, 40, 3.0),  # user 4: nothing relevant: not evaluated
        ],
    )
    metrics = evaluation.ranking_metrics(recommendations, test, k=3)
    ndcg_1 = (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))
    assert metrics == pytest.approx(
        {"precision_at_3": (2 / 3) / 3, "recall_at_3": (2 / 3) / 3, "ndcg_at_3": ndcg_1 / 3, "evaluated_users": 3}
    )


def test_ranking_metrics_need_a_relevant_rating(spark):
    recommendations = spark.createDataFrame([(1, 10, 1)], "user_id int, movie_id int, rank int")
    with pytest.raises(ValueError, match="held-out rating"):
        evaluation.ranking_metrics(recommendations, _ratings(spark, [(1, 10, 1.0)]), k=10)


def test_predictions_are_clipped_and_cover_unknown_users(spark):
    rows = [(u, m, 5.0 if (u + m) % 2 else 0.5) for u in range(1, 7) for m in range(1, 9)]
    bundle = training.fit_bundle(_ratings(spark, rows), TINY)
    pairs = spark.createDataFrame([(1, 1), (2, 3), (999, 1), (1, 999)], "user_id int, movie_id int")
    predictions = training.predict_ratings(bundle, pairs).collect()
    assert len(predictions) == 4
    assert all(0.5 <= r.predicted_rating <= 5.0 for r in predictions)


def test_evaluate_reports_metrics_and_both_baselines(spark):
    rows = [(u, m, 4.5 if (u % 2) == (m % 2) else 1.0) for u in range(1, 13) for m in range(1, 21) if (u * m) % 3]
    train, test = evaluation.split(_ratings(spark, rows), 0.25, seed=1)
    measured, bundle = evaluation.evaluate(train, test, TINY)
    assert set(measured.metrics) == {"rmse", "mae", "precision_at_10", "recall_at_10", "ndcg_at_10"}
    assert set(measured.baselines["bias"]) == {"rmse", "mae"}
    assert set(measured.baselines["most_popular"]) == {"precision_at_10", "recall_at_10", "ndcg_at_10"}
    assert measured.test_rows == test.count()
    assert 0.0 <= measured.metrics["ndcg_at_10"] <= 1.0
    assert bundle.ranking_model.rank == 2


def test_evaluate_leaves_the_callers_cache_alone_and_releases_its_own(spark):
    rows = [(u, m, 4.5 if (u % 2) == (m % 2) else 1.0) for u in range(1, 13) for m in range(1, 21) if (u * m) % 3]
    train, test = evaluation.split(_ratings(spark, rows), 0.25, seed=1)
    train.cache()
    try:
        evaluation.evaluate(train, test, TINY)
        assert train.is_cached and train.storageLevel.useMemory
        assert not test.is_cached
    finally:
        train.unpersist()


@pytest.mark.slow  # several ALS fits
def test_the_refit_learns_from_the_held_out_ratings_the_evaluation_measured_on(spark):
    # Users 1-12 rate movies of their parity 4.5 and the others 1.0; user 99 and movie 99 appear only in the
    # held-out split, so only a model fitted on every rating has factors and biases for them.
    rows = [(u, m, 4.5 if (u % 2) == (m % 2) else 1.0) for u in range(1, 13) for m in range(1, 21) if (u * m) % 3]
    rows += [(99, m, 4.5 if m % 2 else 1.0) for m in range(1, 21)] + [(u, 99, 4.5 if u % 2 else 1.0) for u in range(1, 13)]
    ratings = _ratings(spark, rows)
    train, test = evaluation.split(ratings, 0.25, seed=1)
    train = train.where("user_id != 99 and movie_id != 99")
    test = test.unionByName(ratings.where("user_id = 99 or movie_id = 99")).distinct()
    measured, refitted = evaluation.evaluate_and_refit(train, test, ratings, TINY)
    alone, evaluated = evaluation.evaluate(train, test, TINY)
    try:
        assert measured.metrics == pytest.approx(alone.metrics) and measured.test_rows == test.count()
        assert 99 not in {r.id for r in evaluated.ranking_model.userFactors.collect()}
        assert 99 in {r.id for r in refitted.ranking_model.userFactors.collect()}
        assert 99 in {r.id for r in refitted.ranking_model.itemFactors.collect()}
        assert 99 in {r.user_id for r in refitted.biases.user_bias.collect()}
        assert 99 in {r.movie_id for r in refitted.biases.item_bias.collect()}
    finally:
        refitted.release()
        evaluated.release()


def test_evaluate_and_refit_leaves_only_the_returned_bundle_cached(spark):
    rows = [(u, m, 4.5 if (u % 2) == (m % 2) else 1.0) for u in range(1, 13) for m in range(1, 21) if (u * m) % 3]
    ratings = _ratings(spark, rows)
    train, test = evaluation.split(ratings, 0.25, seed=1)
    spark.catalog.clearCache()
    _, bundle = evaluation.evaluate_and_refit(train, test, ratings, TINY)
    assert bundle.biases.user_bias.is_cached and bundle.biases.item_bias.is_cached
    bundle.release()
    assert spark._jsparkSession.sharedState().cacheManager().isEmpty()  # the evaluated bundle's biases too


def _additive_with_noise(spark):
    """Ratings the biases explain: mean + user bias + movie bias + noise, no interaction to learn."""
    rng = random.Random(3)
    user_bias = {u: rng.gauss(0, 0.5) for u in range(1, 31)}
    movie_bias = {m: rng.gauss(0, 0.5) for m in range(1, 41)}
    rows = [
        (u, m, min(5.0, max(0.5, round(2 * (3.5 + user_bias[u] + movie_bias[m] + rng.gauss(0, 0.6))) / 2)))
        for u in user_bias for m in movie_bias if rng.random() < 0.6
    ]
    return _ratings(spark, rows)


# A residual ALS free to fit the noise: on additive data it cannot beat the biases.
OVERFITTING = replace(TINY, rating_rank=8, rating_reg_param=0.0001, rating_max_iter=8)


@pytest.mark.slow  # several ALS fits
def test_a_residual_als_that_does_not_beat_the_biases_is_dropped(spark):
    ratings = _additive_with_noise(spark)
    train, test = evaluation.split(ratings, 0.25, seed=1)
    measured, bundle = evaluation.evaluate(train, test, OVERFITTING)
    bias = measured.baselines["bias"]
    assert measured.residual_als["rmse"] > bias["rmse"]
    assert bundle.rating_model is None and bundle.rating_model_kind == training.BIASES_ONLY
    assert {name: measured.metrics[name] for name in ("rmse", "mae")} == bias
    predicted = training.predict_ratings(bundle, test, keep_baseline=True).collect()
    assert all(row.predicted_rating == min(5.0, max(0.5, row.baseline)) for row in predicted)
    bundle.release()
    # The refit on all ratings drops it too: the rating model saved is the kind that was measured.
    _, refitted = evaluation.evaluate_and_refit(train, test, ratings, OVERFITTING)
    assert refitted.rating_model is None
    refitted.release()


def test_a_residual_als_that_beats_the_biases_is_kept(spark):
    # 4.5 when user and movie have the same parity: an interaction no bias can explain.
    rows = [(u, m, 4.5 if (u % 2) == (m % 2) else 1.0) for u in range(1, 13) for m in range(1, 21) if (u * m) % 3]
    train, test = evaluation.split(_ratings(spark, rows), 0.25, seed=1)
    measured, bundle = evaluation.evaluate(train, test, TINY)
    assert bundle.rating_model is not None and bundle.rating_model_kind == training.BIASES_AND_RESIDUAL_ALS
    assert measured.metrics["rmse"] == measured.residual_als["rmse"] < measured.baselines["bias"]["rmse"]
    bundle.release()


def test_rating_rank_zero_fits_no_residual_als(spark):
    ratings = _additive_with_noise(spark)
    train, test = evaluation.split(ratings, 0.25, seed=1)
    measured, bundle = evaluation.evaluate(train, test, replace(TINY, rating_rank=0))
    assert bundle.rating_model is None and measured.residual_als is None
    assert {name: measured.metrics[name] for name in ("rmse", "mae")} == measured.baselines["bias"]
    assert measured.metrics["ndcg_at_10"] > 0  # the ranking model is fitted and measured as before
    bundle.release()
    with pytest.raises(ValueError, match="rating_rank"):
        training.fit_bundle(train, replace(TINY, rating_rank=-1))


@pytest.mark.parametrize(
    "ratings, blocks",
    [(0, 1), (100_836, 1), (2_500_000, 1), (2_500_001, 2), (5_000_000, 2), (25_000_095, 10), (1_000_000_000, 10)],
)
def test_als_blocks_grow_with_the_ratings_up_to_sparks_default(ratings, blocks):
    assert training.blocks_for(ratings) == blocks


def test_the_config_resolves_num_blocks_0_by_the_ratings_and_keeps_a_count_it_is_given():
    assert AlsModelConfig().params(25_000_095).num_blocks == 10
    assert AlsModelConfig().params(100_836).num_blocks == 1
    assert AlsModelConfig(num_blocks=3).params(25_000_095).num_blocks == 3
    with pytest.raises(ValueError, match="num_blocks must be 0"):
        AlsModelConfig(num_blocks=-1).params(100_836)


def _parity(spark):
    """Users 1-12 rate movies of their parity 4.5 and the others 1.0."""
    rows = [(u, m, 4.5 if (u % 2) == (m % 2) else 1.0) for u in range(1, 13) for m in range(1, 21) if (u * m) % 3]
    return _ratings(spark, rows)


def test_the_ranker_is_chosen_on_a_validation_split_of_the_training_data_alone(spark):
    train, _ = evaluation.split(_parity(spark), 0.25, seed=1)
    auto = replace(TINY, ranker=training.AUTO)
    chosen, figures = evaluation.choose_ranker(train, auto)
    validation = figures["validation_ndcg_at_10"]
    assert set(validation) == {training.EASE_RANKER, training.ALS_RANKER}
    assert chosen.ranker == figures["chosen"] == max(validation, key=validation.get)
    # The same training data, whatever the held-out split holds: the choice cannot have seen it.
    assert evaluation.choose_ranker(train, auto)[1] == figures
    # A ranker that is set is kept, and a catalogue above ease_max_items leaves ALS alone.
    assert evaluation.choose_ranker(train, TINY) == (TINY, {})
    capped, why = evaluation.choose_ranker(train, replace(auto, ease_max_items=5))
    assert capped.ranker == training.ALS_RANKER and "exceed ease_max_items" in why["why"]
    with pytest.raises(ValueError, match="choose_ranker resolves 'auto'"):
        training.fit_bundle(train, auto)


def test_an_ease_bundle_is_evaluated_and_refitted_like_an_als_one(spark):
    ratings = _parity(spark)
    train, test = evaluation.split(ratings, 0.25, seed=1)
    ease_params = replace(TINY, ranker=training.EASE_RANKER, ease_l2=1.0)
    measured, bundle = evaluation.evaluate_and_refit(train, test, ratings, ease_params)
    try:
        assert bundle.ranking_model_kind == training.EASE_RANKER
        # Refitted on every rating: it knows each rated movie (nobody rates a multiple of 3).
        assert set(bundle.ranking_model.item_ids.tolist()) == {m for m in range(1, 21) if m % 3}
        # The parity is what EASE learns: every user's list puts their own parity's unrated movies first.
        lists = training.recommend_top_k(bundle, train, k=3).collect()
        seen = {(row.user_id, row.movie_id) for row in train.collect()}
        known = set(bundle.ranking_model.item_ids.tolist())
        firsts = {row.user_id: row.movie_id for row in lists if row.rank == 1}
        for user, first in firsts.items():
            if any(m % 2 == user % 2 and (user, m) not in seen for m in known):
                assert first % 2 == user % 2, (user, first)
        assert firsts
        assert measured.metrics["ndcg_at_10"] > measured.baselines["most_popular"]["ndcg_at_10"]
        beyond = measured.beyond_accuracy
        assert 0 < beyond["model"]["catalog_coverage"] <= 1 and 0 < beyond["most_popular"]["mean_popularity"] <= 1
    finally:
        bundle.release()


def test_beyond_accuracy_counts_the_listed_share_of_the_catalogue_and_its_raters(spark):
    train = _ratings(spark, [(1, 1, 4.0), (2, 1, 4.0), (1, 2, 3.0), (3, 3, 5.0)])  # 3 users, 3 movies
    lists = spark.createDataFrame([(3, 1, 1, 0.9), (3, 2, 2, 0.5)], "user_id int, movie_id int, rank int, score double")
    figures = evaluation.beyond_accuracy(lists, train)
    assert figures["catalog_coverage"] == pytest.approx(2 / 3)
    assert figures["mean_popularity"] == pytest.approx((2 / 3 + 1 / 3) / 2)
