"""What the model benchmarks share: a Spark session set up like the local deployment's, ml-latest-small's ratings,
and synthetic zips made once and cached."""

import sys
import tempfile
import zipfile
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from bench.paths import MOVIELENS
from generator.dataset import default_movies, default_users, write_dataset
from movierec_dagster.resources import LocalSpark

SYNTHETIC_CACHE = Path(tempfile.gettempdir()) / "rating-floor"



def session() -> SparkSession:
    spark = LocalSpark().session()
    spark.sparkContext.setCheckpointDir(tempfile.mkdtemp(prefix="movierec-bench-checkpoints-"))
    return spark


def movielens_ratings(spark: SparkSession, archive: Path = MOVIELENS) -> DataFrame:
    """user_id, movie_id, rating of ml-latest-small, cached."""
    if not archive.is_file():
        sys.exit(f"ml-latest-small.zip is not at {archive}")
    with zipfile.ZipFile(archive) as bundle:
        name = next(n for n in bundle.namelist() if n.endswith("ratings.csv"))
        frame = pd.read_csv(bundle.open(name)).rename(columns={"userId": "user_id", "movieId": "movie_id"})
    ratings = spark.createDataFrame(frame[["user_id", "movie_id", "rating"]]).repartition(2).cache()
    ratings.count()
    return ratings


def synthetic_archive(folder: Path, ratings: int, seed: int) -> Path:
    """A synthetic MovieLens zip of `ratings` in the generator's default shape, written to `folder` once."""
    archive = folder / f"synthetic-{ratings}-seed{seed}.zip"
    if not archive.exists():
        folder.mkdir(parents=True, exist_ok=True)
        write_dataset(archive, ratings=ratings, users=default_users(ratings), movies=default_movies(ratings), seed=seed)
    return archive
