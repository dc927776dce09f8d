"""Tiny lakes in the pipeline's layout, made with pyarrow and committed through `movierec_dagster.tables`.

A table is a Delta table: Parquet files in write folders (`<table>/write_id=<id>/<part>/`), and its
`_delta_log/` naming the files of each version. As in a real lake, replaced files stay on disk until a
vacuum: `movies`, `ratings` and the newest `user_recommendations` part each had an earlier version with
other rows ("Old movie N", an extra 5-star rating per user, an extra user and other movies), and a Parquet
file no commit names (a killed writer's) holds a newer `date=` part. Only the committed rows may show up
in the dashboard.
"""

import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import unquote

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from movierec_dagster.tables import (
    WHOLE,
    DataFile,
    LakeFiles,
    Table,
    TableVersion,
    adls_credentials,
    arrow_filesystem,
    join,
    new_write_folder,
    part_name,
    write_arrow,
)

GENRES = ("Action", "Comedy", "Drama", "Sci-Fi", "Romance", "Thriller")
NEWEST_DATE = "2026-03-02"
OLDER_DATE = "2026-03-01"
UNCOMMITTED_DATE = "2026-03-03"
STALE_USER = 99  # only in the replaced version of the newest recommendations
MODEL_VERSION = "20260302T060000Z-c3c3c3"
OLDER_MODEL_VERSION = "20260301T060000Z-b2b2b2"

TIMESTAMP = pa.timestamp("us", tz="UTC")  # as the pipeline's tables hold them (Spark's timestamps, in UTC)
RATINGS_SCHEMA = pa.schema([("user_id", pa.int32()), ("movie_id", pa.int32()), ("rating", pa.float64()), ("rated_at", TIMESTAMP)])
EVENTS_SCHEMA = pa.schema([("event_id", pa.string()), *zip(RATINGS_SCHEMA.names, RATINGS_SCHEMA.types), ("ingested_at", TIMESTAMP)])
RECOMMENDATIONS_SCHEMA = pa.schema(
    [
        ("user_id", pa.int32()),
        ("movie_id", pa.int32()),
        ("rank", pa.int32()),
        ("score", pa.float64()),
        ("predicted_rating", pa.float64()),
        ("model_version", pa.string()),
        ("generated_at", TIMESTAMP),
        ("source", pa.string()),
    ]
)


@dataclass
class TinyLake:
    location: str  # what MOVIEREC_LAKE names: a folder or a URI
    credentials: dict[str, str]  # ADLS's, as the dashboard's entry point reads them from the environment
    fs: fsspec.AbstractFileSystem
    root: str  # the location in `fs`'s path form
    users: list[int]
    cold_start_users: set[int]
    movies: dict[int, dict] = field(default_factory=dict)
    recommended: dict[int, list[int]] = field(default_factory=dict)  # the newest part's movie ids, in rank order

    def path(self, *parts: str) -> str:
        return join(self.root, *parts)

    def table(self, name: str) -> Table:
        """The table as the dashboard and the service open it."""
        return LakeFiles(self.location, self.credentials).table("tables", name)

    def committed_files(self, name: str) -> list[str]:
        """The Parquet files (in `fs`'s path form) the table's newest version names."""
        table = self.table(name)
        return sorted(join(table.path, unquote(file.path)) for file in table.current().files)

    def parquet_on_disk(self, name: str) -> list[str]:
        """Every Parquet file under the table's folder, committed or not (the Delta log's own files aside)."""
        table = self.table(name)
        return sorted(path for path in self.fs.find(table.path) if path.endswith(".parquet") and "/_delta_log/" not in path)


def write_uncommitted(lake: TinyLake, name: str, rows: pa.Table, part: str = WHOLE) -> str:
    """A killed writer's file: Parquet in a write folder of its own under the table, that no commit names."""
    path = lake.path("tables", name, new_write_folder(), part, f"part-00000-{uuid.uuid4().hex}.parquet")
    lake.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    pq.write_table(rows, path, filesystem=arrow_filesystem(lake.fs))
    return path


def commit(lake: TinyLake, name: str, rows: pa.Table, part: str = WHOLE, partition: str | None = None) -> TableVersion:
    """Write `rows` and commit them: as the whole table, as its `part` (a `date=` part's column not in `rows`),
    or, with `partition` (a column of `rows`), as the whole table in one file per value, as Spark's partitionBy."""
    table = lake.table(name)
    if partition is None:
        return write_arrow(table, rows, part=part)
    write_id, files = new_write_folder(), []
    for value in sorted(set(rows.column(partition).to_pylist())):
        value_part = part_name({partition: value})
        relative = join(write_id, value_part, f"part-00000-{uuid.uuid4().hex}.c000.snappy.parquet")
        path = join(table.path, relative)
        lake.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        group = rows.filter(pc.equal(rows[partition], value)).drop_columns([partition])
        pq.write_table(group, path, filesystem=arrow_filesystem(lake.fs))
        files.append(DataFile(relative, value_part, group.num_rows, lake.fs.size(path)))
    return table.commit(files, schema=rows.schema, partition_columns=[partition])


def movies_table(count: int = 40, title: str = "Movie {}") -> tuple[pa.Table, dict[int, dict]]:
    movies = {}
    for movie_id in range(1, count + 1):
        genres = [] if movie_id % 13 == 0 else [GENRES[movie_id % 6], GENRES[(movie_id * 5) % 6]]
        movies[movie_id] = {
            "movie_id": movie_id,
            "title": title.format(movie_id),
            "year": None if movie_id % 11 == 0 else 1980 + movie_id,
            "genres": sorted(set(genres)),
        }
    schema = pa.schema([("movie_id", pa.int32()), ("title", pa.string()), ("year", pa.int32()), ("genres", pa.list_(pa.string()))])
    return pa.Table.from_pylist(list(movies.values()), schema=schema), movies


def build_lake(
    location: str | Path,
    *,
    users: int = 6,
    recommendations: bool = True,
    models: bool = True,
    training_ratings: bool = False,
    streamed_since: bool = False,
) -> TinyLake:
    """A lake with movies, ratings (by year), and optionally two days of recommendations and three models."""
    credentials = adls_credentials(os.environ)  # as the dashboard's entry point reads them
    files = LakeFiles(str(location), credentials)
    lake = TinyLake(str(location), credentials, files.fs, files.root, list(range(1, users + 1)), {users})
    commit(lake, "movies", movies_table(title="Old movie {}")[0])
    movies, lake.movies = movies_table()
    commit(lake, "movies", movies)

    start = datetime(2019, 6, 1)
    ratings = [
        {
            "user_id": user,
            "movie_id": movie_id,
            "rating": 0.5 + (user + step) % 10 * 0.5,
            "rated_at": start + timedelta(days=200 * step + user),
        }
        for user in lake.users
        for step, movie_id in enumerate(range(user, user + 8))
    ]
    extra = [{"user_id": user, "movie_id": 39, "rating": 5.0, "rated_at": datetime(2026, 1, 1)} for user in lake.users]
    for rows in (ratings + extra, ratings):
        history = pa.Table.from_pylist(rows, schema=RATINGS_SCHEMA)
        years = pa.array([r["rated_at"].year for r in rows], pa.int32())
        commit(lake, "ratings", history.append_column("year", years), partition="year")
    if training_ratings:
        streamed = {"user_id": 1, "movie_id": 40, "rating": 5.0, "rated_at": datetime(2026, 3, 1, 12)}
        commit(lake, "training_ratings", pa.Table.from_pylist([*ratings, streamed], schema=RATINGS_SCHEMA))
    if streamed_since:
        # rating_events: the rating training_ratings merged, and user 1's 5 stars for movie 3 (2 stars in the
        # history), streamed since the retrain.
        events = [
            {"event_id": "e1", "user_id": 1, "movie_id": 40, "rating": 5.0, "rated_at": datetime(2026, 3, 1, 12)},
            {"event_id": "e2", "user_id": 1, "movie_id": 3, "rating": 5.0, "rated_at": datetime(2026, 3, 5, 9)},
        ]
        for event in events:
            event["ingested_at"] = event["rated_at"] + timedelta(seconds=30)
        commit(lake, "rating_events", pa.Table.from_pylist(events, schema=EVENTS_SCHEMA))

    if recommendations:
        _write_recommendations(lake)
    if models:
        _write_models(lake)
    return lake


def _picks(user: int, offset: int) -> list[int]:
    return [(user + offset + k) % 40 + 1 for k in range(10)]


def _recommendation_rows(lake: TinyLake, date: str, users: list[int], offset: int, model_version: str) -> pa.Table:
    rows = []
    for user in users:
        rows += [
            {
                "user_id": user,
                "movie_id": movie_id,
                "rank": rank,
                "score": round(0.95 - rank * 0.05, 2),
                "predicted_rating": round(4.0 + (rank * 7 % 10) / 10, 1),  # stars that, like the rating model's, need not follow the rank
                "model_version": model_version,
                "generated_at": datetime.fromisoformat(date).replace(hour=6),
                "source": "popularity" if user in lake.cold_start_users else "model",
            }
            for rank, movie_id in enumerate(_picks(user, offset), start=1)
        ]
    return pa.Table.from_pylist(rows, schema=RECOMMENDATIONS_SCHEMA)


def _write_recommendations(lake: TinyLake) -> None:
    """Two committed days, the newest replaced once; a newer day's file written but never committed."""
    table = "user_recommendations"
    older = _recommendation_rows(lake, OLDER_DATE, lake.users, 20, OLDER_MODEL_VERSION)
    commit(lake, table, older, f"date={OLDER_DATE}")
    stale = _recommendation_rows(lake, NEWEST_DATE, [*lake.users, STALE_USER], 30, OLDER_MODEL_VERSION)
    commit(lake, table, stale, f"date={NEWEST_DATE}")
    commit(lake, table, _recommendation_rows(lake, NEWEST_DATE, lake.users, 10, MODEL_VERSION), f"date={NEWEST_DATE}")
    lake.recommended = {user: _picks(user, 10) for user in lake.users}
    write_uncommitted(lake, table, stale, f"date={UNCOMMITTED_DATE}")


MODEL_METRICS = {  # version: (rmse, ndcg@10)
    "20260228T060000Z-a1a1a1": (0.93, 0.22),
    OLDER_MODEL_VERSION: (0.88, 0.27),
    MODEL_VERSION: (0.86, 0.29),
}
CHAMPION = MODEL_VERSION


def model_info(version: str, rmse: float, ndcg: float) -> dict:
    """A model.json as the registry writes it."""
    trained_at = datetime.strptime(version.split("-")[0], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    return {
        "version": version,
        "trained_at": trained_at.isoformat(),
        "training_rows": 48,
        "global_mean": 3.5,
        "params": {"rank": 8, "regParam": 0.1},
        "metrics": {"rmse": rmse, "mae": rmse * 0.8, "precision_at_10": ndcg / 2, "recall_at_10": ndcg / 3, "ndcg_at_10": ndcg},
        "baselines": {
            "bias": {"rmse": 0.9, "mae": 0.7},
            "most_popular": {"precision_at_10": 0.1, "recall_at_10": 0.05, "ndcg_at_10": 0.15},
        },
    }


def put(lake: TinyLake, data: bytes, *parts: str) -> None:
    """Write a file in the lake (its folders made first: a local filesystem does not make them)."""
    path = lake.path(*parts)
    lake.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    lake.fs.pipe_file(path, data)


def _write_models(lake: TinyLake) -> None:
    for version, (rmse, ndcg) in MODEL_METRICS.items():
        put(lake, json.dumps(model_info(version, rmse, ndcg)).encode(), "models", "als", version, "model.json")
    champion = {"version": CHAMPION, "trained_at": "2026-03-02T06:00:00+00:00", "promoted_at": "2026-03-02T06:10:00+00:00"}
    put(lake, json.dumps(champion).encode(), "models", "als", "champion.json")
