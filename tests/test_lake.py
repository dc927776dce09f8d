"""The lake resource: Delta tables written by Spark on file:// URIs, readers during a replace, files, listing and uploads without Spark in a folder and on Azurite (ADLS), URIs joined as strings."""

import fsspec
import pytest
from pyspark.sql import functions as F

from movierec_dagster.resources import Lake, LocalLake
from movierec_dagster.resources.lake import CURRENT_FOLDER


def test_write_replaces_and_reads_back(spark, lake):
    assert lake.uri().startswith("file:///")
    first = lake.write_table(spark.range(3), "numbers")
    second = lake.write_table(spark.range(5), "numbers")
    assert second.version == first.version + 1 and (first.rows, second.rows) == (3, 5)
    assert lake.table_version("numbers") == second
    assert lake.read_table(spark, "numbers").count() == 5
    assert lake.read_table(spark, "numbers").columns == ["id"]


def test_a_missing_table_is_named_or_none(spark, lake):
    with pytest.raises(FileNotFoundError, match="materialize the asset 'numbers'"):
        lake.read_table(spark, "numbers")
    assert lake.read_table_if_exists(spark, "numbers") is None
    lake.write_table(spark.range(2), "numbers")
    assert lake.read_table_if_exists(spark, "numbers").count() == 2


def test_failed_write_leaves_the_previous_table(spark, lake):
    committed = lake.write_table(spark.range(3), "numbers")
    failing = spark.range(10).withColumn("boom", F.when(F.col("id") == 7, F.raise_error(F.lit("killed"))).otherwise(F.col("id")))
    with pytest.raises(Exception, match="killed"):
        lake.write_table(failing, "numbers")
    assert lake.table_version("numbers") == committed
    assert sorted(r.id for r in lake.read_table(spark, "numbers").collect()) == [0, 1, 2]


def test_a_reader_that_started_before_a_replace_finishes_on_the_old_version(spark, lake):
    lake.write_table(spark.range(3), "numbers")
    before = lake.read_table(spark, "numbers")  # planned now, read later
    lake.write_table(spark.range(100, 110), "numbers")
    assert sorted(r.id for r in before.collect()) == [0, 1, 2]
    assert lake.read_table(spark, "numbers").count() == 10


def test_a_part_replaces_only_itself(spark, lake):
    lake.write_table(spark.range(2), "daily", part="date=2026-01-01")
    lake.write_table(spark.range(3), "daily", part="date=2026-01-02")
    lake.write_table(spark.range(4), "daily", part="date=2026-01-01")
    counts = {str(r.date): r["count"] for r in lake.read_table(spark, "daily").groupBy("date").count().collect()}
    assert counts == {"2026-01-01": 4, "2026-01-02": 3}
    # The rows of each part, from the Parquet footers of the files its commit names.
    assert lake.table_version("daily").parts == {"date=2026-01-01": 4, "date=2026-01-02": 3}


def test_partitioned_writes_keep_their_partition_columns(spark, lake):
    frame = spark.range(6).withColumn("year", (F.col("id") % 2 + 2000).cast("int"))
    lake.write_table(frame, "ratings", partition_by=["year"])
    table = lake.read_table(spark, "ratings")
    assert table.columns == ["id", "year"]
    assert {r.year: r["count"] for r in table.groupBy("year").count().collect()} == {2000: 3, 2001: 3}


def test_properties_travel_with_the_commit(spark, lake):
    lake.write_table(spark.range(1), "training", properties={"streamed_rows": 12})
    table = lake.table("training")
    assert table.properties(table.current()) == {"streamed_rows": "12"}
    lake.write_table(spark.range(2), "training")
    assert table.properties(table.current()) == {}, "a commit without properties keeps none of the one before"


def test_a_local_lake_takes_a_folder_or_a_file_uri(tmp_path):
    assert LocalLake(root=str(tmp_path)).uri("tables", "t") == f"{tmp_path.as_uri()}/tables/t"
    assert LocalLake(root=tmp_path.as_uri()).fs_path("tables", "t") == str(tmp_path / "tables" / "t")


def test_adls_uris_are_joined_as_strings():
    lake = Lake(root="abfss://lake@account.dfs.core.windows.net/movierec/")
    assert lake.uri("tables", "ratings") == "abfss://lake@account.dfs.core.windows.net/movierec/tables/ratings"
    assert lake.table_uri("ratings", area="quarantine") == "abfss://lake@account.dfs.core.windows.net/movierec/quarantine/ratings"


def test_json_listing_and_deleting(fsspec_lake):
    lake = fsspec_lake
    assert lake.read_json("models", "champion.json") is None
    lake.write_json({"version": "v1"}, "models", "champion.json")
    lake.write_json({"version": "v2"}, "models", "v2", "model.json")
    assert lake.read_json("models", "champion.json") == {"version": "v1"}
    assert lake.list_names("models") == ["champion.json", "v2"]
    assert lake.glob("models", "*", "model.json") == ["models/v2/model.json"]
    lake.delete("models")
    assert lake.list_names("models") == [] and not lake.exists("models", "champion.json")


def test_json_is_replaced_whole(fsspec_lake):
    fsspec_lake.write_json({"n": 1}, "state.json")
    fsspec_lake.write_json({"n": 2}, "state.json")
    assert fsspec_lake.read_json("state.json") == {"n": 2}
    assert fsspec_lake.list_names() == ["state.json"], "no temporary file is left behind"


def test_an_uploaded_folder_becomes_the_current_folder(fsspec_lake, tmp_path):
    """The MovieLens archive's CSVs reach the lake this way: each upload replaces the one before, which stays
    for a reader still on it, while older ones are deleted."""
    with pytest.raises(FileNotFoundError, match="materialize the asset"):
        fsspec_lake.current_location("movielens", "raw")
    locations = []
    for marker in ("first", "second", "third"):
        folder = tmp_path / marker
        (folder / "ml-latest-small").mkdir(parents=True)
        (folder / "ml-latest-small" / "movies.csv").write_text(f"movieId,title\n1,{marker}\n")
        locations.append(fsspec_lake.put_directory(folder, "movielens"))
    first, second, third = locations
    assert fsspec_lake.current_location("movielens", "raw") == third
    with fsspec.open(f"{third}/ml-latest-small/movies.csv", "rb", **fsspec_lake.storage_options()) as csv:
        assert csv.read() == b"movieId,title\n1,third\n"  # read as the ETL's archive asset reads it
    kept = [location.rsplit("/", 1)[1] for location in (second, third)]
    assert fsspec_lake.list_names("raw", "movielens") == sorted([*kept, CURRENT_FOLDER])
    assert fsspec_lake.exists("raw", "movielens", kept[0], "ml-latest-small", "movies.csv")
    assert not fsspec_lake.exists("raw", "movielens", first.rsplit("/", 1)[1])


def test_a_version_of_many_files_is_read_without_a_listing_job(spark, lake):
    """The reader names each file of the version; a local session lists them on the driver, not in a Spark job of its
    own at every read (which Spark starts above 32 paths by default)."""
    lake.write_table(spark.range(0, 40, 1, numPartitions=40), "many")  # a file per row
    assert len(lake.table_version("many").files) == 40
    tracker = spark.sparkContext.statusTracker()
    before = set(tracker.getJobIdsForGroup())
    table = lake.read_table(spark, "many")
    assert set(tracker.getJobIdsForGroup()) == before
    assert table.count() == 40
