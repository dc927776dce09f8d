"""What the model benchmarks share: a Spark session set up like the local deployment's, and ml-latest-small's ratings."""

import sys
import tempfile
import zipfile
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from bench.paths import MOVIELENS
from movierec_dagster.resources import LocalSpark



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
