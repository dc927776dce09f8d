"""What the dashboard reads from the lake, with DuckDB over the Parquet tables: no Spark, no Streamlit.

The lake is `$MOVIEREC_LAKE` when set (a folder, or an `abfss://` URL of the ADLS lake), else
`$MOVIEREC_HOME/lake` (default `./.movierec/lake`), laid out as `LocalLake` writes it:
`tables/<name>/**/*.parquet` (Spark's partition folders, e.g. `date=2026-11-26/`) and
`models/als/versions.json`, `models/als/<version>/model.json` and `models/als/champion.json`.
"""

import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

# Copies of the pipeline's names (deployment, model registry, MovieLens transforms, recommendations),
# not imported from there: those modules load Dagster and PySpark, and the dashboard should start in
# well under a second. tests/dashboard/test_data.py holds them equal.
DEFAULT_HOME = ".movierec"
MODELS = "models/als"
NO_GENRES = "(no genres listed)"
COLD_START_SOURCE = "popularity"
FIX_COMMAND = "make demo"

_DATE_PARTITION = re.compile(r"/date=(\d{4}-\d{2}-\d{2})/")
# Spark's form: abfss://<container>@<account>.dfs.core.windows.net/<path>
_SPARK_ABFSS = re.compile(r"^abfss://(?P<container>[^@/]+)@(?P<account>[^./]+)\.dfs\.core\.windows\.net(?P<path>/.*)?$")


class LakeError(Exception):
    """Something the dashboard needs is not in the lake; the message says what to run."""


class LakeNotFound(LakeError):
    pass


class TableNotFound(LakeError):
    pass


def lake_location(environ: dict[str, str] | None = None) -> str:
    """`MOVIEREC_LAKE`, else `$MOVIEREC_HOME/lake` as an absolute path."""
    environ = dict(os.environ if environ is None else environ)
    override = environ.get("MOVIEREC_LAKE", "").strip()
    if override:
        return override.rstrip("/") if _is_remote(override) else str(Path(override).expanduser().resolve())
    home = Path(environ.get("MOVIEREC_HOME", "").strip() or DEFAULT_HOME).expanduser().resolve()
    return str(home / "lake")


def _is_remote(location: str) -> bool:
    return "://" in location


def duckdb_url(location: str) -> str:
    """The URL DuckDB's azure extension reads for a lake location (Spark's abfss form rewritten)."""
    match = _SPARK_ABFSS.match(location)
    if not match:
        return location
    return f"abfss://{match['account']}.dfs.core.windows.net/{match['container']}{match['path'] or ''}"


def _connect(location: str) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    if not _is_remote(location):
        return connection
    connection.execute("INSTALL azure; LOAD azure;")
    connection_string = os.environ.get("AZURE_STORAGE_CONNECTION_STRING", "").strip()
    if connection_string:
        connection.execute(f"CREATE SECRET lake (TYPE azure, CONNECTION_STRING {_sql_string(connection_string)})")
    else:
        match = _SPARK_ABFSS.match(location) or re.match(r"^abfss://(?P<account>[^./]+)\.dfs\.", location)
        if not match:
            raise LakeNotFound(
                f"MOVIEREC_LAKE={location} is not an ADLS URL of the form "
                "abfss://<container>@<account>.dfs.core.windows.net/<path>."
            )
        # Service principal from AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET, else managed identity or az CLI.
        connection.execute(
            f"CREATE SECRET lake (TYPE azure, PROVIDER credential_chain, ACCOUNT_NAME {_sql_string(match['account'])})"
        )
    return connection


def _sql_string(value: str) -> str:
    """A SQL string literal (CREATE SECRET takes no query parameters)."""
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class Recommendations:
    """One user's recommendations from the newest `date=` partition, joined with `movies`."""

    date: str
    rows: pd.DataFrame  # rank, movie_id, title, year, genres, predicted_rating, model_version, generated_at, source

    @property
    def model_version(self) -> str:
        return str(self.rows["model_version"].iloc[0])

    @property
    def generated_at(self) -> pd.Timestamp:
        return pd.Timestamp(self.rows["generated_at"].max())

    @property
    def cold_start(self) -> bool:
        return bool((self.rows["source"] == COLD_START_SOURCE).any())


@dataclass(frozen=True)
class ModelHistory:
    versions: pd.DataFrame  # one row per model version, oldest first, `champion` flag
    champion: dict | None
    unreadable: list[str]  # model.json files that could not be parsed


class Lake:
    """Read-only queries on one lake; safe to share between Streamlit sessions (a cursor per query)."""

    def __init__(self, location: str):
        self.location = location
        self.url = duckdb_url(location)
        self._connection = _connect(location)
        # DuckDB's error for a glob that matches nothing, on one of this lake's tables.
        self._missing_table = re.compile(
            'No files found that match the pattern "' + re.escape(self.url) + '/tables/(?P<table>[^/"]+)/'
        )
        self._lock = threading.Lock()

    def _query(self, sql: str, parameters: list | None = None) -> pd.DataFrame:
        with self._lock:
            cursor = self._connection.cursor()
        try:
            return cursor.execute(sql, parameters or []).df()
        except duckdb.IOException as error:
            # A query names its tables' globs without listing them first (a network call each on ADLS).
            missing = self._missing_table.search(str(error))
            if missing:
                raise TableNotFound(f"The table '{missing['table']}' is not in the lake at {self.location} yet.") from error
            raise
        finally:
            cursor.close()

    def _files(self, pattern: str) -> list[str]:
        if not _is_remote(self.location):
            return sorted(str(path) for path in Path(self.location).glob(pattern))
        return sorted(self._query("SELECT file FROM glob($1)", [f"{self.url}/{pattern}"])["file"])

    def _location_of(self, relative: str) -> str:
        return str(Path(self.location) / relative) if not _is_remote(self.location) else f"{self.url}/{relative}"

    def _glob(self, name: str) -> str:
        return f"{self.url}/tables/{name}/**/*.parquet"

    def check_exists(self) -> None:
        """Raise `LakeNotFound` when there is no lake (or no MovieLens tables in it) at the location."""
        if not _is_remote(self.location) and not Path(self.location).is_dir():
            raise LakeNotFound(f"There is no lake at {self.location} yet.")
        if not self.has_table("movies"):
            raise LakeNotFound(f"The lake at {self.location} has no MovieLens tables yet.")

    def has_table(self, name: str) -> bool:
        return bool(self._files(f"tables/{name}/**/*.parquet"))

    def newest_recommendation_date(self) -> str:
        files = self._files("tables/user_recommendations/date=*/*.parquet")
        dates = {match[1] for file in files if (match := _DATE_PARTITION.search(file.replace("\\", "/")))}
        if not dates:
            raise TableNotFound(f"There are no recommendations in the lake at {self.location} yet.")
        return max(dates)

    def _recommendations_glob(self, date: str) -> str:
        return f"{self.url}/tables/user_recommendations/date={date}/*.parquet"

    def recommended_users(self, date: str) -> list[int]:
        """The users with recommendations in the `date` partition, ascending."""
        frame = self._query(
            "SELECT DISTINCT user_id FROM read_parquet($1, hive_partitioning = false) ORDER BY user_id",
            [self._recommendations_glob(date)],
        )
        return [int(user) for user in frame["user_id"]]

    def recommendations(self, date: str, user_id: int) -> Recommendations:
        rows = self._query(
            """
            SELECT r.rank, r.movie_id, coalesce(m.title, 'movie ' || r.movie_id) AS title, m.year,
                   coalesce(m.genres, []::VARCHAR[]) AS genres, r.predicted_rating,
                   r.model_version, r.generated_at, r.source
            FROM read_parquet($1, hive_partitioning = false) AS r
            LEFT JOIN read_parquet($2, hive_partitioning = false) AS m USING (movie_id)
            WHERE r.user_id = $3
            ORDER BY r.rank
            """,
            [self._recommendations_glob(date), self._glob("movies"), user_id],
        )
        return Recommendations(date=date, rows=rows)

    def own_ratings_table(self) -> str:
        """Where a user's own ratings are: `training_ratings` (history plus stream) when it exists, else `ratings`."""
        return self._own_ratings()[0]

    def _own_ratings(self) -> tuple[str, str]:
        """(table, glob) of the user's own ratings, listing `training_ratings` once (a network call on ADLS)."""
        if self.has_table("training_ratings"):
            return "training_ratings", self._glob("training_ratings")
        return "ratings", self._glob("ratings")

    def top_rated(self, user_id: int, limit: int = 10) -> tuple[str, pd.DataFrame]:
        """The user's own highest-rated movies (newest first among equals), from `training_ratings` if there."""
        table, ratings = self._own_ratings()
        rows = self._query(
            """
            SELECT coalesce(m.title, 'movie ' || t.movie_id) AS title, m.year,
                   coalesce(m.genres, []::VARCHAR[]) AS genres, t.rating, t.rated_at
            FROM (SELECT user_id, movie_id, rating, rated_at
                  FROM read_parquet($1, hive_partitioning = true, union_by_name = true)) AS t
            LEFT JOIN read_parquet($2, hive_partitioning = false) AS m USING (movie_id)
            WHERE t.user_id = $3
            ORDER BY t.rating DESC, t.rated_at DESC, t.movie_id
            LIMIT $4
            """,
            [ratings, self._glob("movies"), user_id, limit],
        )
        return table, rows

    def model_history(self) -> ModelHistory:
        """Every model version the registry lists (metrics, oldest first) and the champion pointer.

        The registry's `versions.json` is the list: a folder it no longer names (a prune
        interrupted before deleting it) is not a version.
        """
        records, unreadable, listed = [], [], []
        for index in self._files(f"{MODELS}/versions.json"):
            try:
                listed = list(json.loads(self._read_text(index))["versions"])
            except (ValueError, KeyError, TypeError) as error:
                unreadable.append(f"{index}: {error}")
        for version in listed:
            file = self._location_of(f"{MODELS}/{version}/model.json")
            try:
                records.append(_model_record(json.loads(self._read_text(file))))
            except (ValueError, KeyError, TypeError, OSError, duckdb.Error) as error:
                unreadable.append(f"{file}: {error}")
        champion_files = self._files(f"{MODELS}/champion.json")
        champion = json.loads(self._read_text(champion_files[0])) if champion_files else None
        versions = pd.DataFrame.from_records(records, columns=list(_MODEL_COLUMNS))
        if not versions.empty:
            versions["trained_at"] = pd.to_datetime(versions["trained_at"], utc=True)
            versions = versions.sort_values(["trained_at", "version"], ignore_index=True)
        versions["champion"] = versions["version"] == (champion or {}).get("version")
        return ModelHistory(versions=versions, champion=champion, unreadable=unreadable)

    def _read_text(self, file: str) -> str:
        if not _is_remote(self.location):
            return Path(file).read_text()
        return str(self._query("SELECT content FROM read_text($1)", [file])["content"].iloc[0])


_MODEL_COLUMNS = {
    "version": ("version",),
    "trained_at": ("trained_at",),
    "training_rows": ("training_rows",),
    "rmse": ("metrics", "rmse"),
    "mae": ("metrics", "mae"),
    "precision_at_10": ("metrics", "precision_at_10"),
    "recall_at_10": ("metrics", "recall_at_10"),
    "ndcg_at_10": ("metrics", "ndcg_at_10"),
    "bias_rmse": ("baselines", "bias", "rmse"),
    "most_popular_ndcg_at_10": ("baselines", "most_popular", "ndcg_at_10"),
    "params": ("params",),
}


def _model_record(document: dict) -> dict:
    record = {}
    for column, keys in _MODEL_COLUMNS.items():
        value = document
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        record[column] = value
    if not record["version"] or not record["trained_at"]:
        raise ValueError("model.json has no version or trained_at")
    record["params"] = json.dumps(record["params"] or {}, sort_keys=True)
    return record


def genre_counts(recommendations: pd.DataFrame) -> pd.DataFrame:
    """genre, movies (how many of the recommendations carry it), share of all genre labels; most frequent first.

    A movie without genres counts once as '(no genres listed)', so `movies` sums to the number of labels.
    """
    labels = [
        genre
        for genres in recommendations["genres"]
        for genre in (list(genres) if genres is not None and len(genres) else [NO_GENRES])
    ]
    counts = pd.Series(labels, dtype="string").value_counts()
    frame = pd.DataFrame({"genre": counts.index.astype(str), "movies": counts.to_numpy(dtype="int64")})
    frame["share"] = frame["movies"] / frame["movies"].sum() if len(frame) else pd.Series(dtype="float64")
    return frame.sort_values(["movies", "genre"], ascending=[False, True], ignore_index=True)
