"""The local lake: atomic table replacement and recovery from a run killed between the swap's renames."""

import os

import pytest
from pyspark.sql import functions as F

from movierec_dagster.resources.lake import STAGING


def test_write_replaces_and_reads_back(spark, lake):
    lake.write_table(spark.range(3), "numbers")
    lake.write_table(spark.range(5), "numbers")
    assert lake.read_table(spark, "numbers").count() == 5
    assert not any(lake.path(STAGING).iterdir())


def test_a_missing_table_is_named_or_none(spark, lake):
    with pytest.raises(FileNotFoundError, match="materialize the asset 'numbers'"):
        lake.read_table(spark, "numbers")
    assert lake.read_table_if_exists(spark, "numbers") is None
    lake.write_table(spark.range(2), "numbers")
    assert lake.read_table_if_exists(spark, "numbers").count() == 2


def test_failed_write_leaves_the_previous_table(spark, lake):
    lake.write_table(spark.range(3), "numbers")
    failing = spark.range(10).withColumn("boom", F.when(F.col("id") == 7, F.raise_error(F.lit("killed"))))
    with pytest.raises(Exception, match="killed"):
        lake.write_table(failing, "numbers")
    assert sorted(r.id for r in lake.read_table(spark, "numbers").collect()) == [0, 1, 2]


def test_interrupted_swap_is_restored(spark, lake):
    lake.write_table(spark.range(3), "numbers")
    # Simulate a run killed after moving the old table aside and before moving the new one in.
    retired = lake.path(STAGING) / "tables__numbers-dead.retired"
    os.rename(lake.path("tables", "numbers"), retired)
    assert lake.table_exists("numbers")
    assert lake.read_table(spark, "numbers").count() == 3


def test_partition_subpaths_replace_only_their_own(spark, lake):
    lake.write_table(spark.range(2), "daily", subpath="date=2026-01-01")
    lake.write_table(spark.range(3), "daily", subpath="date=2026-01-02")
    lake.write_table(spark.range(4), "daily", subpath="date=2026-01-01")
    counts = {str(r.date): r["count"] for r in lake.read_table(spark, "daily").groupBy("date").count().collect()}
    assert counts == {"2026-01-01": 4, "2026-01-02": 3}


def test_reading_a_missing_table_says_what_to_materialize(spark, lake):
    with pytest.raises(FileNotFoundError, match="materialize the asset 'ghost'"):
        lake.read_table(spark, "ghost")


def test_json_round_trip(lake):
    assert lake.read_json("models", "champion.json") is None
    lake.write_json({"version": "v1"}, "models", "champion.json")
    assert lake.read_json("models", "champion.json") == {"version": "v1"}
