"""Tiny lakes laid out as the pipeline writes them (Spark's part files and partition folders), made with pyarrow."""

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

GENRES = ("Action", "Comedy", "Drama", "Sci-Fi", "Romance", "Thriller")
NEWEST_DATE = "2026-03-02"
OLDER_DATE = "2026-03-01"
MODEL_VERSION = "als-20260302T060000"


@dataclass
class TinyLake:
    root: Path
    users: list[int]
    cold_start_users: set[int]
    movies: dict[int, dict] = field(default_factory=dict)
    recommended: dict[int, list[int]] = field(default_factory=dict)  # the newest partition's movie ids, in rank order


def _write_spark_table(table: pa.Table, folder: Path, partition: str | None = None) -> None:
    """Parquet part files like Spark's, `<partition>=<value>/` folders, and a `_SUCCESS` marker."""
    folder.mkdir(parents=True, exist_ok=True)
    if partition is None:
        pq.write_table(table, folder / f"part-00000-{uuid.uuid4()}-c000.snappy.parquet")
    else:
        values = table.column(partition).to_pylist()
        for value in sorted(set(values)):
            mask = pa.array([v == value for v in values])
            part = folder / f"{partition}={value}"
            part.mkdir(parents=True, exist_ok=True)
            rows = table.filter(mask).drop_columns([partition])
            pq.write_table(rows, part / f"part-00000-{uuid.uuid4()}.c000.snappy.parquet")
    (folder / "_SUCCESS").write_bytes(b"")


def movies_table(count: int = 40) -> tuple[pa.Table, dict[int, dict]]:
    movies = {}
    for movie_id in range(1, count + 1):
        genres = [] if movie_id % 13 == 0 else [GENRES[movie_id % 6], GENRES[(movie_id * 5) % 6]]
        movies[movie_id] = {
            "movie_id": movie_id,
            "title": f"Movie {movie_id}",
            "year": None if movie_id % 11 == 0 else 1980 + movie_id,
            "genres": sorted(set(genres)),
        }
    schema = pa.schema(
        [("movie_id", pa.int32()), ("title", pa.string()), ("year", pa.int32()), ("genres", pa.list_(pa.string()))]
    )
    return pa.Table.from_pylist(list(movies.values()), schema=schema), movies


def build_lake(
    root: Path,
    *,
    users: int = 6,
    recommendations: bool = True,
    models: bool = True,
    training_ratings: bool = False,
) -> TinyLake:
    """A lake with movies, ratings (by year), and optionally two recommendation batches and three models."""
    lake = TinyLake(root=root, users=list(range(1, users + 1)), cold_start_users={users})
    movies, lake.movies = movies_table()
    _write_spark_table(movies, root / "tables" / "movies")

    start = datetime(2019, 6, 1)
    ratings = []
    for user in lake.users:
        for step, movie_id in enumerate(range(user, user + 8)):
            rated_at = start + timedelta(days=200 * step + user)
            ratings.append(
                {"user_id": user, "movie_id": movie_id, "rating": 0.5 + (user + step) % 10 * 0.5, "rated_at": rated_at}
            )
    schema = pa.schema(
        [("user_id", pa.int32()), ("movie_id", pa.int32()), ("rating", pa.float64()), ("rated_at", pa.timestamp("us"))]
    )
    history = pa.Table.from_pylist(ratings, schema=schema)
    _write_spark_table(
        history.append_column("year", pa.array([r["rated_at"].year for r in ratings], pa.int32())),
        root / "tables" / "ratings",
        partition="year",
    )
    if training_ratings:
        streamed = pa.Table.from_pylist(
            [{"user_id": 1, "movie_id": 40, "rating": 5.0, "rated_at": datetime(2026, 3, 1, 12)}], schema=schema
        )
        _write_spark_table(pa.concat_tables([history, streamed]), root / "tables" / "training_ratings")

    if recommendations:
        _write_recommendations(lake)
    if models:
        _write_models(root)
    return lake


def _write_recommendations(lake: TinyLake) -> None:
    rows = []
    for date, offset in ((OLDER_DATE, 20), (NEWEST_DATE, 10)):
        for user in lake.users:
            ids = [(user + offset + k) % 40 + 1 for k in range(10)]
            if date == NEWEST_DATE:
                lake.recommended[user] = ids
            for rank, movie_id in enumerate(ids, start=1):
                rows.append(
                    {
                        "user_id": user,
                        "movie_id": movie_id,
                        "rank": rank,
                        "predicted_rating": 4.9 - rank * 0.1,
                        "model_version": MODEL_VERSION if date == NEWEST_DATE else "als-20260301T060000",
                        "generated_at": datetime.fromisoformat(date).replace(hour=6),
                        "source": "popularity" if user in lake.cold_start_users else "model",
                        "date": date,
                    }
                )
    schema = pa.schema(
        [
            ("user_id", pa.int32()),
            ("movie_id", pa.int32()),
            ("rank", pa.int32()),
            ("predicted_rating", pa.float64()),
            ("model_version", pa.string()),
            ("generated_at", pa.timestamp("us")),
            ("source", pa.string()),
            ("date", pa.string()),
        ]
    )
    _write_spark_table(
        pa.Table.from_pylist(rows, schema=schema), lake.root / "tables" / "user_recommendations", partition="date"
    )


MODEL_METRICS = {  # version: (rmse, ndcg@10)
    "als-20260228T060000": (0.93, 0.22),
    "als-20260301T060000": (0.88, 0.27),
    "als-20260302T060000": (0.86, 0.29),
}
CHAMPION = "als-20260302T060000"


def _write_models(root: Path) -> None:
    models = root / "models" / "als"
    for version, (rmse, ndcg) in MODEL_METRICS.items():
        trained_at = datetime.strptime(version, "als-%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc)
        (models / version).mkdir(parents=True)
        (models / version / "model.json").write_text(
            json.dumps(
                {
                    "version": version,
                    "trained_at": trained_at.isoformat(),
                    "training_rows": 48,
                    "params": {"rank": 8, "regParam": 0.1},
                    "metrics": {
                        "rmse": rmse,
                        "mae": rmse * 0.8,
                        "precision_at_10": ndcg / 2,
                        "recall_at_10": ndcg / 3,
                        "ndcg_at_10": ndcg,
                    },
                    "baselines": {
                        "bias": {"rmse": 0.9, "mae": 0.7},
                        "most_popular": {"precision_at_10": 0.1, "recall_at_10": 0.05, "ndcg_at_10": 0.15},
                    },
                }
            )
        )
    (models / "versions.json").write_text(json.dumps({"versions": list(MODEL_METRICS)}))
    (models / "champion.json").write_text(
        json.dumps({"version": CHAMPION, "trained_at": "2026-03-02T06:00:00+00:00", "promoted_at": "2026-03-02T06:10:00+00:00"})
    )
