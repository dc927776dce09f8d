"""The model registry: versions kept, champion pointer and pruning (in memory, in a folder, on Azurite), and a load through the JVM's own ALSModel loader."""

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from pyspark.ml.recommendation import ALSModel
from pyspark.sql import DataFrame

from movierec_dagster.model import registry, training
from movierec_dagster.resources.lake import MODELS
from tests.model.test_training import TINY


@pytest.fixture(scope="module")
def bundle(spark):
    """One fitted bundle for the module's tests: each saves and loads it, none changes it."""
    rows = [(u, m, float(1 + (u * m) % 5)) for u in range(1, 8) for m in range(1, 10)]
    return training.fit_bundle(spark.createDataFrame(rows, "user_id int, movie_id int, rating double"), TINY)


def _info(version, bundle):
    return {"version": version, "trained_at": "2025-01-01T00:00:00+00:00", "training_rows": 63, "global_mean": bundle.biases.global_mean}


def test_versions_are_listed_promoted_and_pruned(fsspec_lake):
    """The registry's files without Spark: what the retrain sensor, the dashboard and the service read."""
    lake = fsspec_lake
    versions = [registry.new_version(datetime(2025, 1, day, tzinfo=UTC)) for day in (1, 2, 3)]
    assert versions == sorted(versions)
    for version in versions:
        lake.write_json({"class": "ALSModel"}, MODELS, registry.MODEL_NAME, version, "ranking", "metadata.json")
        registry.write_model_info(lake, {"version": version, "trained_at": "2025-01-01T00:00:00+00:00"})
    assert registry.list_versions(lake) == versions
    assert registry.read_champion(lake) is None
    pointer = registry.promote(lake, registry.read_model_info(lake, versions[0]), datetime(2025, 1, 4, tzinfo=UTC))
    assert registry.read_champion(lake) == pointer == {
        "version": versions[0], "trained_at": "2025-01-01T00:00:00+00:00", "promoted_at": "2025-01-04T00:00:00+00:00"
    }
    # Keep the newest one, and the champion however old.
    assert registry.prune(lake, keep=1) == [versions[1]]
    assert registry.list_versions(lake) == [versions[0], versions[2]]
    assert not lake.exists(MODELS, registry.MODEL_NAME, versions[1])
    assert registry.prune(lake, keep=0) == []


def test_a_saved_bundle_loads_with_the_same_predictions(spark, lake, bundle):
    version = registry.new_version(datetime(2025, 1, 1, tzinfo=UTC))
    registry.save_bundle(lake, version, bundle)
    registry.write_model_info(lake, _info(version, bundle))
    loaded = registry.load_bundle(lake, spark, version)
    pairs = spark.createDataFrame([(1, 2), (3, 4)], "user_id int, movie_id int")
    assert [r.predicted_rating for r in training.predict_ratings(loaded, pairs).orderBy("user_id").collect()] == [
        r.predicted_rating for r in training.predict_ratings(bundle, pairs).orderBy("user_id").collect()
    ]


def test_saved_model_loads_in_the_jvm_with_the_same_predictions(spark, lake, bundle):
    registry.save_bundle(lake, "v1", bundle)
    pairs = spark.createDataFrame([(1, 1), (2, 5), (7, 9)], "user_id int, movie_id int")
    # Scala's own loader, called through py4j: no Python wrapper involved.
    jvm_model = spark.sparkContext._jvm.org.apache.spark.ml.recommendation.ALSModel.load(
        registry.version_uri(lake, "v1", "ranking")
    )
    from_jvm = DataFrame(jvm_model.transform(pairs._jdf), spark).orderBy("user_id").collect()
    from_python = bundle.ranking_model.transform(pairs).orderBy("user_id").collect()
    assert [r.prediction for r in from_jvm] == [r.prediction for r in from_python]
    rating_model = ALSModel.load(registry.version_uri(lake, "v1", "rating"))
    assert [r.prediction for r in rating_model.transform(pairs).orderBy("user_id").collect()] == [
        r.prediction for r in bundle.rating_model.transform(pairs).orderBy("user_id").collect()
    ]


def test_a_biases_only_bundle_saves_no_rating_model_and_loads_as_it_was(spark, lake, bundle):
    bundle = replace(bundle, rating_model=None)
    registry.save_bundle(lake, "v1", bundle)
    registry.write_model_info(lake, {**_info("v1", bundle), "rating_model": bundle.rating_model_kind})
    assert not lake.exists("models", "als", "v1", "rating")
    loaded = registry.load_bundle(lake, spark, "v1")
    assert loaded.rating_model is None
    pairs = spark.createDataFrame([(1, 2), (3, 4), (99, 1)], "user_id int, movie_id int")
    assert [r.predicted_rating for r in training.predict_ratings(loaded, pairs).orderBy("user_id").collect()] == [
        r.predicted_rating for r in training.predict_ratings(bundle, pairs).orderBy("user_id").collect()
    ]


def test_an_ease_bundle_saves_and_loads_with_the_same_lists(spark, lake):
    rows = [(u, m, float(1 + (u * m) % 5)) for u in range(1, 8) for m in range(1, 10)]
    ratings = spark.createDataFrame(rows, "user_id int, movie_id int, rating double")
    bundle = training.fit_bundle(ratings, replace(TINY, ranker=training.EASE_RANKER, ease_l2=1.0))
    registry.save_bundle(lake, "v1", bundle)
    registry.write_model_info(lake, {**_info("v1", bundle), "ranking_model": bundle.ranking_model_kind})
    assert lake.exists("models", "als", "v1", "ease") and not lake.exists("models", "als", "v1", "ranking")
    loaded = registry.load_bundle(lake, spark, "v1")
    assert loaded.ranking_model_kind == training.EASE_RANKER
    seen = ratings.where("movie_id < 6")
    assert training.recommend_top_k(loaded, seen, k=3).orderBy("user_id", "rank").collect() == (
        training.recommend_top_k(bundle, seen, k=3).orderBy("user_id", "rank").collect()
    )
