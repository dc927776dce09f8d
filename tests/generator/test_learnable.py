"""The synthetic source's planted ratings are learnable: the project's model, fitted on them, beats the baselines.

Uniform random ratings are not: there the model has nothing to find.
"""

import random
from itertools import islice

import pytest
from pyspark.sql import functions as F

from generator.movielens import read_movielens_genres, read_movielens_ratings
from generator.streams import planted, synthetic
from generator.tastes import Population, Tastes
from movierec_dagster.model import evaluation, training

pytestmark = pytest.mark.slow  # ALS fits on generated data

# Small models for small data (the defaults are measured on ml-latest-small's 100,000 ratings).
SMALL = training.ModelParams(
    rating_rank=5, rating_reg_param=0.3, ranking_rank=5, rating_max_iter=3, ranking_max_iter=5, user_bias_reg=5.0,
    item_bias_reg=5.0, bias_iterations=2,
)


def _evaluate(spark, ratings, params=SMALL) -> tuple[evaluation.Evaluation, float]:
    """The model's held-out evaluation (20%, seed 42) on `ratings` (the latest of each pair), and the test ratings' spread."""
    latest = {(r.user_id, r.movie_id): r.rating for r in ratings}
    frame = spark.createDataFrame([(u, m, x) for (u, m), x in latest.items()], "user_id int, movie_id int, rating double")
    train, test = evaluation.split(frame, 0.2, 42)
    measured, bundle = evaluation.evaluate(train, test, params)
    bundle.release()
    return measured, test.agg(F.stddev_pop("rating")).first()[0]


def test_planted_ratings_are_learnable_and_random_ones_are_not(spark):
    population = Population(tuple(range(1, 201)), tuple(range(1, 401)), new_users=0, new_movies=0)
    draws = {kind: list(islice(synthetic(population, random.Random(11), new_fraction=0.0, ratings=kind), 10_000)) for kind in ("planted", "random")}

    learned, spread = _evaluate(spark, draws["planted"])
    most_popular = learned.baselines["most_popular"]["ndcg_at_10"]
    # Which movies a user rates and likes follows their tastes: the ranking model finds them (ml-latest-small: 0.30 against 0.16).
    assert learned.metrics["ndcg_at_10"] > 1.25 * most_popular, learned
    # User and movie biases exist and are learnt; the rating model keeps what they explain (on MovieLens too the
    # biases explain most of what can be: ALS on their residuals gains 0.02 RMSE).
    assert learned.baselines["bias"]["rmse"] < spread - 0.15, (learned, spread)
    assert learned.metrics["rmse"] < learned.baselines["bias"]["rmse"] + 0.005, learned

    noise, noise_spread = _evaluate(spark, draws["random"])
    assert noise.metrics["ndcg_at_10"] < 0.05 and noise.baselines["most_popular"]["ndcg_at_10"] < 0.05, noise
    assert noise.baselines["bias"]["rmse"] > noise_spread - 0.02, "random ratings have no biases to learn"
    assert learned.metrics["ndcg_at_10"] > 4 * noise.metrics["ndcg_at_10"]


def test_a_history_s_tastes_carry_into_the_stream_where_the_model_learns_them(spark, synthetic_zip):
    # The fixture's history: comedy fans and horror fans, each loving their genre and disliking the other.
    tastes = Tastes.from_history(
        read_movielens_ratings(synthetic_zip), random.Random(1), genres=read_movielens_genres(synthetic_zip)
    )
    stream = list(islice(planted(tastes, random.Random(2), new_fraction=0.0), 3000))

    learned, _ = _evaluate(spark, stream, training.ModelParams(rating_rank=4, ranking_rank=4, user_bias_reg=5.0, item_bias_reg=5.0))
    assert learned.metrics["rmse"] < learned.baselines["bias"]["rmse"] - 0.05, learned
    assert learned.metrics["ndcg_at_10"] > 1.2 * learned.baselines["most_popular"]["ndcg_at_10"], learned
