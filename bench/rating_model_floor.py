"""What a rating model can learn from the synthetic data beyond the biases, and what the residual ALS learns.

The generator's ratings are a planted expected value plus Gaussian noise, rounded.
Rebuilt from the same seed, the planted values give two floors on the held-out
RMSE: an oracle that knows every expected value, and one that knows the true
biases and each user's mean genre affinity (what user and movie biases can
capture). The gap between them is all a model of tastes could add. Then, with
`--grid`, the residual ALS (`training.fit_rating_model`) is fitted for each
rank:regParam:iterations on the training split and measured against the bias
baseline on the held-out 20%; `--noise-free` replaces each rating by its planted
expected value, to tell the model's capacity from the noise.

    .venv/bin/python -m bench.rating_model_floor --ratings 1000000 --grid 50:0.1:5,10:0.1:5,20:0.3:10
"""

import argparse
import random
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import functions as F

from bench.model_data import SYNTHETIC_CACHE, movielens_ratings, session, synthetic_archive
from generator.dataset import _Model, default_movies, default_users
from generator.sources import Population, Tastes
from movierec_dagster.model import evaluation, training


def _planted_values(users: int, movies: int, seed: int, user: np.ndarray, movie: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(expected rating, genre affinity) of each (user, movie), from the tastes `write_dataset` drew with `seed`."""
    tastes = Tastes.planted(Population(tuple(range(1, users + 1)), tuple(range(1, movies + 1)), 0, 0), random.Random(seed))
    model = _Model(tastes, users, movies)
    u, m = user - 1, movie - 1
    affinity = (model.user_taste[u[:, None], model.movie_genres[m]] * model.genre_mask[m]).sum(axis=1) / model.genre_count[m]
    return model.global_mean + model.user_bias[u] + model.movie_bias[m] + affinity, affinity


def _rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.clip(predicted, 0.5, 5.0) - actual) ** 2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ratings", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", type=Path, default=SYNTHETIC_CACHE)
    parser.add_argument("--grid", default="", help="comma-separated rank:regParam:iterations of the residual ALS")
    parser.add_argument("--noise-free", action="store_true", help="fit and measure on the planted expected values")
    args = parser.parse_args()
    users, movies = default_users(args.ratings), default_movies(args.ratings)
    archive = synthetic_archive(args.data, args.ratings, args.seed)
    spark = session()
    ratings = movielens_ratings(spark, archive)
    frame = ratings.toPandas()
    expected, affinity = _planted_values(
        users, movies, args.seed, frame["user_id"].to_numpy(), frame["movie_id"].to_numpy()
    )
    actual = frame["rating"].to_numpy()
    mean_affinity = pd.Series(affinity).groupby(frame["user_id"].to_numpy()).transform("mean").to_numpy()
    print(f"{len(frame):,} ratings of {users:,} users and {movies:,} movies (seed {args.seed}); rating std {actual.std():.3f}")
    print(f"oracle (planted expected values):                 RMSE {_rmse(expected, actual):.4f}")
    print(f"true biases + each user's mean affinity:          RMSE {_rmse(expected - affinity + mean_affinity, actual):.4f}")
    print(f"genre affinity: std within a user {np.sqrt(np.mean((affinity - mean_affinity) ** 2)):.3f}, overall {affinity.std():.3f}")
    if not args.grid:
        return
    if args.noise_free:
        frame["rating"] = expected
        ratings = spark.createDataFrame(frame).repartition(2).cache()
    train, test = evaluation.split(ratings, 0.2, seed=42)
    train, test = train.cache(), test.cache()
    base = training.ModelParams()
    biases = training.fit_biases(train, base.user_bias_reg, base.item_bias_reg, base.bias_iterations)
    for point in args.grid.split(","):
        rank, reg_param, iterations = point.split(":")
        params = replace(base, rating_rank=int(rank), rating_reg_param=float(reg_param), rating_max_iter=int(iterations))
        started = time.perf_counter()
        bundle = training.ModelBundle(biases, training.fit_rating_model(train, biases, params), ranking_model=None)
        predictions = training.predict_ratings(bundle, test, keep_baseline=True).cache()
        als = evaluation.rating_errors(predictions, "predicted_rating")["rmse"]
        bias = evaluation.rating_errors(predictions.withColumn("baseline", training.clip_rating(F.col("baseline"))), "baseline")["rmse"]
        predictions.unpersist()
        print(
            f"residual ALS rank {rank} regParam {reg_param} {iterations} iterations: RMSE {als:.5f}, "
            f"biases {bias:.5f}, difference {als - bias:+.5f} ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
