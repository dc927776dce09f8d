"""What the dashboard reads from the lake, through fsspec as the pipeline does: no Spark, no Dagster, no Streamlit.

The lake is `$MOVIEREC_LAKE` when set (a folder, or a URI: `file://`, or the ADLS lake's
`abfss://<container>@<account>.dfs.core.windows.net/<path>`), else the local deployment's
`$MOVIEREC_HOME/lake` (`movierec_dagster.home`). Files (the model registry) are read through one fsspec
filesystem for that location (adlfs for ADLS); tables through delta-rs:

- a table `tables/<name>/` is a Delta table: its newest committed version names its Parquet files, and
  only those are read, never a replaced or uncommitted file still on disk. delta-rs gives them as a
  pyarrow dataset (`tables.arrow_dataset`, partition columns such as `date` included) and DuckDB runs
  the queries on those datasets;
- the newest recommendation date is the newest committed `date=` part of `user_recommendations`;
- the model registry `models/als/`: every `<version>/model.json` is a version, `champion.json` the champion.
"""

import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass

import duckdb
import pandas as pd
import pyarrow.dataset as ds

from movierec_dagster.tables import (
    LakeFiles,
    LakeUnreadable,
    Table,
    TableVersion,
    arrow_dataset,
    join,
    lake_location,  # noqa: F401 - the pages read it from here
)

# The pipeline's names (names.py imports nothing, so the dashboard still starts without Dagster or PySpark).
from movierec_dagster.names import (
    CHAMPION,
    EVENTS,
    MODEL_INFO,
    MOVIES,
    NO_GENRES,
    RATINGS,
    RECOMMENDATIONS,
    TABLES,
    TRAINING_RATINGS,
)
from movierec_dagster.names import MODEL_REGISTRY as MODELS
from movierec_dagster.names import POPULARITY_SOURCE as COLD_START_SOURCE

FIX_COMMAND = "make demo"

_DATE_PART = re.compile(r"date=(\d{4}-\d{2}-\d{2})")


class LakeError(Exception):
    """Something the dashboard needs is not in the lake; the message says what to run."""


class LakeNotFound(LakeError):
    pass


class TableNotFound(LakeError):
    pass


def _open(location: str, credentials: Mapping[str, str] | None) -> LakeFiles:
    try:
        return LakeFiles(location, credentials)
    except LakeUnreadable as error:
        raise LakeNotFound(str(error)) from error


@dataclass(frozen=True)
class Recommendations:
    """One user's recommendations from one `date=` part, joined with `movies`."""

    date: str
    rows: pd.DataFrame  # rank, movie_id, title, year, genres, score, predicted_rating, model_version, generated_at, source

    @property
    def model_version(self) -> str | None:
        """The champion that made the batch; None when there was none and every user got the popularity baseline."""
        version = self.rows["model_version"].iloc[0]
        return None if pd.isna(version) else str(version)

    @property
    def made_by(self) -> str:
        """Who made the batch, in words: a model version, or the popularity baseline before any champion."""
        return f"model {self.model_version}" if self.model_version else "the popularity baseline (no champion model yet)"

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

    def __init__(self, location: str, credentials: Mapping[str, str] | None = None):
        """The lake at `location`, reached with ADLS `credentials` (adlfs's option names) when it is on ADLS."""
        self.location = location
        self._files = _open(location, credentials)
        self._fs, self._root = self._files.fs, self._files.root
        self._connection = duckdb.connect()
        self._lock = threading.Lock()

    def _query(self, sql: str, parameters: list, **tables: ds.Dataset) -> pd.DataFrame:
        """Run `sql` with each of `tables` as a view of that name."""
        with self._lock:
            cursor = self._connection.cursor()
        try:
            for name, dataset in tables.items():
                cursor.register(name, dataset)
            return cursor.execute(sql, parameters).df()
        finally:
            cursor.close()

    def _table(self, name: str) -> Table:
        return self._files.table(TABLES, name)

    def _version(self, name: str) -> TableVersion | None:
        return self._table(name).current()

    def _dataset(self, name: str, version: TableVersion | None = None, part: str | None = None) -> ds.Dataset:
        """The rows of table `name` as committed (in `version`, when given), or of its one `part`."""
        table = self._table(name)
        version = version or table.current()
        if version is None:
            raise TableNotFound(f"The table '{name}' is not in the lake at {self.location} yet.")
        return arrow_dataset(table, version, None if part is None else [part])

    def check_exists(self) -> None:
        """Raise `LakeNotFound` when there is no lake (or no MovieLens tables in it) at the location."""
        if not self._fs.isdir(self._root):
            raise LakeNotFound(f"There is no lake at {self.location} yet.")
        if not self.has_table(MOVIES):
            raise LakeNotFound(f"The lake at {self.location} has no MovieLens tables yet.")

    def has_table(self, name: str) -> bool:
        return self._version(name) is not None

    def newest_recommendation_date(self) -> str:
        version = self._version(RECOMMENDATIONS)
        dates = [match[1] for part in (version.parts if version else {}) if (match := _DATE_PART.fullmatch(part))]
        if not dates:
            raise TableNotFound(f"There are no recommendations in the lake at {self.location} yet.")
        return max(dates)

    def _recommendations(self, date: str) -> ds.Dataset:
        version, part = self._version(RECOMMENDATIONS), f"date={date}"
        if version is None or part not in version.parts:
            raise TableNotFound(f"There are no recommendations for {date} in the lake at {self.location}.")
        return self._dataset(RECOMMENDATIONS, version, part)

    def recommended_users(self, date: str) -> list[int]:
        """The users with recommendations in the `date` part, ascending."""
        recommendations = self._recommendations(date)
        frame = self._query("SELECT DISTINCT user_id FROM r ORDER BY user_id", [], r=recommendations)
        return [int(user) for user in frame["user_id"]]

    def recommendations(self, date: str, user_id: int) -> Recommendations:
        rows = self._query(
            """
            SELECT r.rank, r.movie_id, coalesce(m.title, 'movie ' || r.movie_id) AS title, m.year,
                   coalesce(m.genres, []::VARCHAR[]) AS genres, r.score, r.predicted_rating,
                   r.model_version, r.generated_at, r.source
            FROM recommendations AS r LEFT JOIN movies AS m USING (movie_id)
            WHERE r.user_id = $1
            ORDER BY r.rank
            """,
            [user_id],
            recommendations=self._recommendations(date),
            movies=self._dataset(MOVIES),
        )
        return Recommendations(date=date, rows=rows)

    def own_ratings_tables(self) -> list[str]:
        """Where a user's own ratings are: `training_ratings` (else `ratings`), and `rating_events` when it exists."""
        return [name for name, _ in self._own_ratings()]

    def _own_ratings(self) -> list[tuple[str, ds.Dataset]]:
        """(table, rows) of the users' own ratings: the trained-on ratings, then the stream, each table's log read once."""
        version = self._version(TRAINING_RATINGS)
        trained = (TRAINING_RATINGS, self._dataset(TRAINING_RATINGS, version)) if version else (RATINGS, self._dataset(RATINGS))
        events = self._version(EVENTS)
        return [trained, (EVENTS, self._dataset(EVENTS, events))] if events else [trained]

    def top_rated(self, user_id: int, limit: int = 10) -> tuple[list[str], pd.DataFrame]:
        """The user's own highest-rated movies (newest first among equals), and the tables they came from.

        Ratings streamed since the last retrain are in `rating_events` but not yet in
        `training_ratings`; for each movie the latest rating counts, as in training.
        """
        tables = self._own_ratings()
        streamed = len(tables) > 1
        events_sql = (
            "UNION ALL SELECT movie_id, rating, rated_at, 1, ingested_at FROM events WHERE user_id = $1" if streamed else ""
        )
        rows = self._query(
            f"""
            WITH own AS (
                SELECT movie_id, rating, rated_at, 0 AS streamed, NULL::TIMESTAMP AS ingested_at
                FROM ratings WHERE user_id = $1
                {events_sql}
            ), latest AS (
                SELECT * FROM own
                QUALIFY row_number() OVER (
                    PARTITION BY movie_id ORDER BY rated_at DESC, streamed DESC, ingested_at DESC NULLS LAST
                ) = 1
            )
            SELECT coalesce(m.title, 'movie ' || t.movie_id) AS title, m.year,
                   coalesce(m.genres, []::VARCHAR[]) AS genres, t.rating, t.rated_at
            FROM latest AS t LEFT JOIN movies AS m USING (movie_id)
            ORDER BY t.rating DESC, t.rated_at DESC, t.movie_id
            LIMIT $2
            """,
            [user_id, limit],
            ratings=tables[0][1],
            movies=self._dataset(MOVIES),
            **({"events": tables[1][1]} if streamed else {}),
        )
        return [name for name, _ in tables], rows

    def rated_after(self, user_id: int, moment: pd.Timestamp) -> tuple[int, pd.Timestamp | None]:
        """How many of the user's ratings reached `rating_events` at or after `moment` (a batch's making), and when the
        newest of them was given: the API answers such a user with a fresh list (fold-in), the batch cannot."""
        version = self._version(EVENTS)
        if version is None:
            return 0, None
        since = pd.Timestamp(moment).value // 1_000  # µs since the epoch; a naive time is UTC, as the tables' are
        rows = self._query(
            "SELECT count(*) AS ratings, max(rated_at) AS newest FROM events WHERE user_id = $1 AND epoch_us(ingested_at) >= $2",
            [user_id, since],
            events=self._dataset(EVENTS, version),
        )
        count = int(rows["ratings"].iloc[0])
        return count, (pd.Timestamp(rows["newest"].iloc[0]) if count else None)

    def model_history(self) -> ModelHistory:
        """Every model version (a `<version>/model.json`; metrics, oldest first) and the champion pointer.

        A folder without model.json (a prune interrupted after deleting it) is not a version.
        """
        models = join(self._root, MODELS)
        records, unreadable = [], []
        for file in sorted(self._fs.glob(join(models, "*", MODEL_INFO))):
            try:
                records.append(_model_record(json.loads(self._fs.cat_file(file))))
            except FileNotFoundError:
                continue  # pruned since the listing
            except (ValueError, KeyError, TypeError, OSError) as error:
                unreadable.append(f"{file}: {error}")
        try:
            champion = json.loads(self._fs.cat_file(join(models, CHAMPION)))
        except FileNotFoundError:
            champion = None
        versions = pd.DataFrame.from_records(records, columns=list(_MODEL_COLUMNS))
        if not versions.empty:
            versions["trained_at"] = pd.to_datetime(versions["trained_at"], utc=True)
            versions = versions.sort_values(["trained_at", "version"], ignore_index=True)
        versions["champion"] = versions["version"] == (champion or {}).get("version")
        return ModelHistory(versions=versions, champion=champion, unreadable=unreadable)


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
