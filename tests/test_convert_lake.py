"""A lake written before Delta Lake: refused with the fix named, then converted in place by one command."""

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from movierec_dagster.convert_lake import convert_lake
from movierec_dagster.resources import LocalLake
from movierec_dagster.tables import CONVERT_COMMAND, OldTableFormat, arrow_dataset

ROOT = Path(__file__).resolve().parents[1]
RATED_AT = datetime(2026, 1, 1, 12, 30, tzinfo=UTC)


def _old_table(folder: Path, parts: dict[str, tuple[str, dict[str, pa.Table]]]) -> None:
    """A table in the old format: `parts` maps each part to its snapshot and its files (path inside the part -> rows)."""
    for part, (snapshot, files) in parts.items():
        for inside, rows in files.items():
            path = folder / f"snapshot={snapshot}" / part / inside
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(rows, path, use_deprecated_int96_timestamps=True)  # as Spark wrote timestamps
    commit = {
        "version": 0,
        "committed_at": 0.0,
        "parts": {part: {"snapshot": snapshot, "rows": None} for part, (snapshot, _) in parts.items()},
        "properties": {},
    }
    (folder / "_log").mkdir(parents=True)
    (folder / "_log" / f"{0:020d}.json").write_text(json.dumps(commit))


def _ratings(users: list[int]) -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array(users, pa.int32()),
            "rating": pa.array([4.0] * len(users)),
            "rated_at": pa.array([RATED_AT] * len(users), pa.timestamp("us", tz="UTC")),
        }
    )


@pytest.fixture
def old_lake(tmp_path) -> LocalLake:
    tables = tmp_path / "lake" / "tables"
    # Written whole, in Spark's year= folders; an older snapshot the log no longer names stays on disk.
    _old_table(
        tables / "ratings",
        {"": ("new", {"year=1995/part-0.parquet": _ratings([1, 2]), "year=2001/part-0.parquet": _ratings([3])})},
    )
    (tables / "ratings" / "snapshot=stale" / "year=1995").mkdir(parents=True)
    pq.write_table(_ratings([99]), tables / "ratings" / "snapshot=stale" / "year=1995" / "part-0.parquet")
    # Written in parts, one snapshot each.
    _old_table(
        tables / "user_recommendations",
        {
            "date=2026-01-01": ("a", {"part-0.parquet": _ratings([1])}),
            "date=2026-01-02": ("b", {"part-0.parquet": _ratings([2, 3])}),
        },
    )
    raw = tmp_path / "lake" / "raw" / "movielens"
    (raw / "snapshot=r1").mkdir(parents=True)
    (raw / "snapshot=r1" / "movies.csv").write_text("movieId,title,genres\n")
    (raw / "_log").mkdir()
    (raw / "_log" / f"{0:020d}.json").write_text(json.dumps({"version": 0, "parts": {"": {"snapshot": "r1"}}}))
    return LocalLake(root=str(tmp_path / "lake"))


def test_an_old_table_is_refused_with_the_conversion_named(old_lake):
    with pytest.raises(OldTableFormat, match=CONVERT_COMMAND):
        old_lake.table_version("ratings")


def test_conversion_keeps_the_committed_rows_only(old_lake):
    converted = convert_lake(old_lake.root, log=lambda _: None)

    assert converted == {"tables/ratings": 3, "tables/user_recommendations": 3}
    ratings = old_lake.table("ratings")
    rows = arrow_dataset(ratings, ratings.current()).to_table().sort_by("user_id")
    assert rows.column("user_id").to_pylist() == [1, 2, 3]
    assert rows.column("year").to_pylist() == [1995, 1995, 2001]
    assert rows.column("rated_at").to_pylist() == [RATED_AT] * 3
    assert ratings.current().partition_columns == ("year",)
    assert set(old_lake.table_version("user_recommendations").parts) == {"date=2026-01-01", "date=2026-01-02"}
    assert old_lake.list_names("tables", "ratings")[0] == "_delta_log"
    assert not any(name.startswith(("snapshot=", "_log")) for name in old_lake.list_names("tables", "ratings"))
    assert old_lake.current_location("movielens", "raw").endswith("/raw/movielens/snapshot=r1")
    assert convert_lake(old_lake.root, log=lambda _: None) == {}, "a converted lake has nothing left to convert"


def test_spark_reads_a_converted_table_beside_parts_written_after(spark, old_lake):
    convert_lake(old_lake.root, log=lambda _: None)
    newer = spark.createDataFrame([(4, 5.0, RATED_AT)], "user_id int, rating double, rated_at timestamp")
    old_lake.write_table(newer, "user_recommendations", part="date=2026-01-03")

    rows = old_lake.read_table(spark, "user_recommendations").orderBy("user_id").collect()

    assert [(row.user_id, row.date) for row in rows] == [
        (1, "2026-01-01"), (2, "2026-01-02"), (3, "2026-01-02"), (4, "2026-01-03"),
    ]


def test_the_command_converts_the_lake_it_is_given(old_lake):
    done = subprocess.run(
        [sys.executable, "-m", "movierec_dagster.convert_lake", old_lake.root],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    assert "tables/ratings: 3 rows, now a Delta table" in done.stdout
    assert old_lake.table_version("ratings").rows == 3
