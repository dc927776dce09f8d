"""What the HTTP service serves, read from the lake without Spark: one immutable `Served` at a time.

`current_source` names what the lake holds now (the newest committed `date=` part of
`user_recommendations`, the champion, the `movies` version), cheaply enough to ask every few seconds;
`load` reads it all into memory (numpy arrays and JSON fragments), so that answering a request is a
dictionary look-up and a string join. A `Served` is never changed once built: the service swaps the
whole object when the source changes, so a request sees the old data or the new, never a mix.
"""

import dataclasses
import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from movierec_dagster.model.ease import EaseModel
from movierec_dagster.model.foldin import ImplicitAls, ItemSide, Stars
from movierec_dagster.tables import LakeFiles, Table, TableVersion, arrow_dataset, arrow_filesystem, join

# The pipeline's names (names.py imports nothing). The service needs no Dagster and no JVM: the EASE scorer's module
# imports pyspark's Python package, never a Spark session.
from movierec_dagster.names import (
    BIASES_ONLY,
    CHAMPION,
    DEFAULT_MIN_RATINGS,
    EASE_FOLDER,
    EVENTS,
    MAX_RATING,
    MIN_RATING,
    MODEL_INFO,
    MOVIES,
    RECOMMENDATIONS,
    TABLES,
    TRAINING_RATINGS,
)
from movierec_dagster.names import MODEL_SOURCE as MODEL
from movierec_dagster.names import MODEL_REGISTRY as MODELS
from movierec_dagster.names import FOLD_IN_SOURCE as FOLD_IN
from movierec_dagster.names import POPULARITY_SOURCE as POPULARITY

MAX_K = 100  # the most recommendations or similar movies one request may ask for
MAKE_RECOMMENDATIONS = "make demo (or materialize user_recommendations: the score_recommendations job)"
MAKE_CHAMPION = "make demo (or run the retrain_model job until a model passes the gate)"

_DATE_PART = re.compile(r"date=(\d{4}-\d{2}-\d{2})")


class NotServable(Exception):
    """The lake has nothing to serve yet (or not this); the message says what to run."""


@dataclass(frozen=True)
class Source:
    """What one `Served` was loaded from: when any of it changes, the service loads again."""

    date: str
    table_version: int  # user_recommendations' Delta version: a batch made again on the same day is a new one
    champion: str | None
    movies_version: int


@dataclass(frozen=True, eq=False)
class Served:
    """Everything the endpoints answer from, for one `Source`."""

    source: Source
    batch_model_version: str | None  # the model that made the batch (None: the popularity baseline, no champion then)
    generated_at: str
    user_index: dict[int, int]  # user -> position in `offsets`
    offsets: np.ndarray  # a user's rows are offsets[i]:offsets[i + 1], by rank
    movie_ids: np.ndarray
    ranks: np.ndarray
    scores: np.ndarray  # what each list is ordered by: the match, or a movie's share of raters (docs/model.md)
    predicted: np.ndarray
    popularity_users: np.ndarray  # bool per user: the batch gave them the popularity fallback
    fallback_movies: list[int]  # the most-rated movies, for a user the batch did not know
    fallback_scores: list[float]
    fallback_predicted: list[float]
    movies: dict[int, str]  # movie -> its JSON object, without the closing brace
    titles: list[tuple[int, str]]  # (movie, its title case-folded), by movie id: what /movies?q= searches
    loaded_at: str
    load_seconds: float
    ratings: "UserRatings"  # every user's ratings as loaded: training_ratings merged with rating_events
    # user -> their ratings newer than the batch and not in `ratings`, (movie, rating, rated_at in µs), oldest first:
    # rating_events rows read after the load, and ratings posted to this service. A user with ratings newer than the
    # batch is a key, even with none to add (those read at the load are in `ratings`).
    fresh: dict[int, tuple[tuple[int, float, int], ...]]
    events_files: frozenset[str]  # the rating_events files read, so that a poll reads only the new ones
    ranker: "ImplicitAls | EaseModel | None"  # the champion's ranking model, for fold-in and /similar
    stars: Stars | None  # the champion's rating model, for fold-in
    min_ratings: int  # fewer ratings than this: the popularity list, as in the batch

    @property
    def users(self) -> int:
        return len(self.user_index)

    @property
    def rows(self) -> int:
        return len(self.movie_ids)

    def _movie(self, movie_id: int) -> str:
        return self.movies.get(movie_id) or _movie_json(movie_id, None, None, [])

    def search_json(self, query: str, k: int) -> str:
        """Up to `k` movies whose title holds every word of `query` (any case), titles that start with its first word
        first, then by movie id."""
        words = query.casefold().split()
        found = [(not title.startswith(words[0]), movie) for movie, title in self.titles if all(w in title for w in words)]
        found.sort()
        items = ",".join(f"{self._movie(movie)}}}" for _, movie in found[:k])
        return f'{{"query":{json.dumps(query)},"matches":{len(found)},"movies":[{items}]{_fewer_note(k, len(found))}}}'

    def with_fresh(self, ratings: Iterable[tuple[int, int, float, int]], events_files: frozenset[str] | None = None) -> "Served":
        """This data plus (user, movie, rating, rated_at µs) ratings newer than the batch (and the events files read)."""
        fresh = dict(self.fresh)
        for user, movie, rating, rated_at in ratings:
            fresh[user] = (*fresh.get(user, ()), (movie, rating, rated_at))
        return dataclasses.replace(self, fresh=fresh, events_files=self.events_files if events_files is None else events_files)

    def user_ratings(self, user_id: int) -> dict[int, tuple[float, int]]:
        """movie -> (rating, rated_at µs): the user's latest rating of each movie, the fresh ones included."""
        movies, ratings, rated_at = self._rated(user_id)
        return dict(zip(movies.tolist(), zip(ratings.tolist(), rated_at.tolist(), strict=True), strict=True))

    def _rated(self, user_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(movies, ratings, rated_at µs) of `user_ratings`: a fresh rating replaces the one before it of the same movie,
        and of two given at the same instant the later one received wins."""
        movies, ratings, rated_at = self.ratings.arrays(user_id)
        fresh = self.fresh.get(user_id)
        if not fresh:
            return movies, ratings, rated_at
        fresh_movies, fresh_ratings, fresh_at = zip(*fresh, strict=True)
        movies = np.r_[movies, np.array(fresh_movies, dtype=movies.dtype)]
        ratings = np.r_[ratings, np.array(fresh_ratings, dtype=ratings.dtype)]
        rated_at = np.r_[rated_at, np.array(fresh_at, dtype=rated_at.dtype)]
        order = np.lexsort((np.arange(len(movies)), rated_at, movies))
        by_movie = movies[order]
        latest = order[np.r_[by_movie[1:] != by_movie[:-1], True]]
        return movies[latest], ratings[latest], rated_at[latest]

    def recommendations_json(self, user_id: int, k: int) -> str:
        """The user's first `k` recommendations: of the batch, by fold-in for a user with ratings newer than the batch,
        the popularity fallback for a user with too few ratings or none."""
        if user_id in self.fresh:
            return self._fold_in_json(user_id, k)
        newest = self.ratings.newest(user_id)
        index = self.user_index.get(user_id)
        if index is None:
            source, known = POPULARITY, False
            movies, scores, predicted = self.fallback_movies[:k], self.fallback_scores[:k], self.fallback_predicted[:k]
            ranks = range(1, len(movies) + 1)
        else:
            start, end = int(self.offsets[index]), int(self.offsets[index + 1])
            end = min(end, start + k)
            source, known = (POPULARITY if self.popularity_users[index] else MODEL), True
            movies, ranks = self.movie_ids[start:end].tolist(), self.ranks[start:end].tolist()
            scores, predicted = self.scores[start:end].tolist(), self.predicted[start:end].tolist()
        return self._list_json(user_id, source, known, newest, k, movies, ranks, scores, predicted, self.batch_model_version)

    def _fold_in_json(self, user_id: int, k: int) -> str:
        """The user's list from all their ratings, the newest included, over the champion (or popularity)."""
        movies, values, rated_at = self._rated(user_id)
        newest = int(rated_at.max())
        best = self.ranker.score_user(movies, values, k=k) if self.ranker and len(movies) >= self.min_ratings else []
        if best:  # a ranker comes with its champion's stars
            source = FOLD_IN
            chosen = [movie for movie, _ in best]
            scores = [round(min(max(score, 0.0), 1.0), 4) for _, score in best]
            predicted = self.stars.predict(movies, values, chosen)
        else:
            source = POPULARITY
            rated = set(movies.tolist())
            unrated = [i for i, movie in enumerate(self.fallback_movies) if movie not in rated][:k]
            chosen = [self.fallback_movies[i] for i in unrated]
            scores = [self.fallback_scores[i] for i in unrated]
            # Without a champion, the popularity list's own stars.
            stars = self.stars
            predicted = stars.predict(movies, values, chosen) if stars else [self.fallback_predicted[i] for i in unrated]
        ranks = range(1, len(chosen) + 1)
        known = user_id in self.user_index
        return self._list_json(user_id, source, known, newest, k, chosen, ranks, scores, predicted, self.source.champion)

    def _list_json(self, user_id, source, known, newest, k, movies, ranks, scores, predicted, model_version) -> str:
        items = ",".join(
            f'{self._movie(movie)},"rank":{rank},"score":{score!r},"predicted_rating":{rating!r}}}'
            for movie, rank, score, rating in zip(movies, ranks, scores, predicted, strict=True)
        )
        newest_text = "null" if newest is None else f'"{_iso_micros(newest)}"'
        return (
            f'{{"user_id":{user_id},"source":"{source}","known_user":{"true" if known else "false"},'
            f'"date":"{self.source.date}","model_version":{json.dumps(model_version)},'
            f'"generated_at":"{self.generated_at}","newest_rating_at":{newest_text},'
            f'"recommendations":[{items}]{_fewer_note(k, len(movies))}}}'
        )

    def similar_json(self, movie_id: int, k: int) -> str:
        """The `k` movies most like `movie_id` by the champion's ranking model (`similar`: cosine of implicit ALS's item
        factors, or EASE's weights from this movie), itself excluded."""
        if self.ranker is None:
            raise NotServable(f"There is no champion model yet, so no model to compare movies by: run {MAKE_CHAMPION}.")
        similar = self.ranker.similar(movie_id, k)
        if similar is None:
            known = "is in the catalogue but" if movie_id in self.movies else "is not in the catalogue and"
            raise KeyError(f"Movie {movie_id} {known} is not in the champion model {self.source.champion}.")
        items = ",".join(f'{self._movie(movie)},"similarity":{round(score, 4)!r}}}' for movie, score in similar)
        note = _fewer_note(k, len(similar))
        return f'{self._movie(movie_id)},"model_version":"{self.source.champion}","similar":[{items}]{note}}}'


def _fewer_note(asked: int, given: int) -> str:
    """A `note` member when fewer than `k` answers exist, so a client is not left to guess why."""
    if given >= asked:
        return ""
    return f',"note":"k={asked} asked, {given} available"'


def _title(movie_id: int, title: str | None) -> str:
    return title or f"movie {movie_id}"


def _movie_json(movie_id: int, title: str | None, year: int | None, genres: list[str] | None) -> str:
    document = {"movie_id": movie_id, "title": _title(movie_id, title), "year": year, "genres": list(genres or [])}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)[:-1]


class LakeReader:
    """Reads one lake for the service."""

    def __init__(self, files: LakeFiles):
        self.files = files
        self.fs, self.root, self.location = files.fs, files.root, files.location

    def _table(self, name: str) -> Table:
        return self.files.table(TABLES, name)

    def _version(self, name: str) -> TableVersion | None:
        return self._table(name).current()

    def _read_json(self, *parts: str) -> dict | None:
        try:
            return json.loads(self.fs.cat_file(join(self.root, *parts)))
        except FileNotFoundError:
            return None

    def current_source(self) -> tuple[Source, TableVersion]:
        """What the lake holds now, and the committed `user_recommendations` version it names."""
        version = self._version(RECOMMENDATIONS)
        dates = [match[1] for part in (version.parts if version else {}) if (match := _DATE_PART.fullmatch(part))]
        if not dates:
            raise NotServable(f"No recommendations have been made yet in the lake at {self.location}: run {MAKE_RECOMMENDATIONS}.")
        movies = self._version(MOVIES)
        if movies is None:
            raise NotServable(f"The lake at {self.location} has no movies table: run make demo (the movielens_etl job).")
        date = max(dates)
        champion = (self._read_json(MODELS, CHAMPION) or {}).get("version")
        return Source(date, version.version, champion, movies.version), version

    def events_version(self) -> TableVersion | None:
        return self._version(EVENTS)

    def _events(self, version: TableVersion | None, files: Iterable[str] | None = None) -> pa.Table:
        """rating_events' user_id, movie_id, rating, rated_at and ingested_at (µs) of `version` (only `files`, if given)."""
        if version is None:
            return pa.table({name: pa.array([], pa.int64()) for name in _EVENT_COLUMNS})
        if files is not None:
            wanted = set(files)
            version = dataclasses.replace(version, files=tuple(f for f in version.files if f.path in wanted))
        rows = arrow_dataset(self._table(EVENTS), version).to_table(columns=list(_EVENT_COLUMNS))
        return pa.table({name: _as_int64(rows.column(name)) for name in _EVENT_COLUMNS})

    def new_events(self, served: Served, version: TableVersion) -> tuple[list[tuple[int, int, float, int]], frozenset[str]]:
        """The (user, movie, rating, rated_at µs) rows of `version` of rating_events that `served` has not read, all
        newer than its batch, and the files of `version`: what `Served.with_fresh` takes."""
        files = frozenset(f.path for f in version.files)
        added = self._events(version, files - served.events_files)
        return list(zip(*(added.column(c).to_pylist() for c in ("user_id", "movie_id", "rating", "rated_at")), strict=True)), files

    def load(self) -> Served:
        started = time.perf_counter()
        source, version = self.current_source()
        recommendations = arrow_dataset(self._table(RECOMMENDATIONS), version, [f"date={source.date}"])
        if "score" not in recommendations.schema.names:
            raise NotServable(
                f"The recommendations of {source.date} were made before each list carried its score: run "
                f"{MAKE_RECOMMENDATIONS} again."
            )
        batch = (
            recommendations.to_table(
                columns=["user_id", "movie_id", "rank", "score", "predicted_rating", "model_version", "generated_at", "source"]
            )
            .sort_by([("user_id", "ascending"), ("rank", "ascending")])
        )
        if batch.num_rows == 0:
            raise NotServable(f"The recommendations of {source.date} are empty: run {MAKE_RECOMMENDATIONS}.")
        users = batch.column("user_id").to_numpy()
        firsts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
        user_ids = users[firsts].tolist()
        batch_version = batch.column("model_version")[0].as_py()
        generated_at = pc.max(batch.column("generated_at")).as_py()
        model = self._model(source.champion)
        training = self._version(TRAINING_RATINGS)
        if training is None:
            raise NotServable(f"The lake at {self.location} has no training_ratings: run {MAKE_RECOMMENDATIONS}.")
        history = arrow_dataset(self._table(TRAINING_RATINGS), training).to_table(columns=["user_id", "movie_id", "rating", "rated_at"])
        history = pa.table({name: _as_int64(history.column(name)) for name in history.column_names})
        events_version = self.events_version()
        events = self._events(events_version)
        fallback_movies, fallback_scores, fallback_predicted = self._popularity_fallback(model, history, events)
        movies, titles = self._movies()
        # Events ingested once the batch was being made are newer than it: those users' lists are folded in. Their
        # ratings are in `ratings` already, so only the users are kept.
        newer = pc.filter(events.column("user_id"), pc.greater_equal(events.column("ingested_at"), micros(generated_at)))
        fresh: dict[int, tuple[tuple[int, float, int], ...]] = dict.fromkeys(pc.unique(newer).to_pylist(), ())
        return Served(
            source=source,
            batch_model_version=batch_version,
            generated_at=_iso(generated_at),
            user_index=dict(zip(user_ids, range(len(user_ids)), strict=True)),
            offsets=np.r_[firsts, len(users)],
            movie_ids=batch.column("movie_id").to_numpy(),
            ranks=batch.column("rank").to_numpy(),
            scores=np.round(batch.column("score").to_numpy(), 4),
            predicted=np.round(batch.column("predicted_rating").to_numpy(), 4),
            popularity_users=(pc.equal(batch.column("source"), POPULARITY).to_numpy(zero_copy_only=False))[firsts],
            fallback_movies=fallback_movies,
            fallback_scores=fallback_scores,
            fallback_predicted=fallback_predicted,
            movies=movies,
            titles=titles,
            loaded_at=_iso(datetime.now(UTC)),
            load_seconds=round(time.perf_counter() - started, 3),
            ratings=UserRatings.merged(history, events),
            fresh=fresh,
            events_files=frozenset(f.path for f in events_version.files) if events_version else frozenset(),
            ranker=model.ranker if model else None,
            stars=model.stars if model else None,
            min_ratings=DEFAULT_MIN_RATINGS,
        )

    def _movies(self) -> tuple[dict[int, str], list[tuple[int, str]]]:
        """Each movie's JSON object (without its closing brace), and (movie, title case-folded) by movie id."""
        rows = arrow_dataset(self._table(MOVIES), self._version(MOVIES)).to_table(
            columns=["movie_id", "title", "year", "genres"]
        )
        movies, titles = {}, []
        for movie, title, year, genres in zip(*(rows.column(c).to_pylist() for c in rows.column_names), strict=True):
            movies[movie] = _movie_json(movie, title, year, genres)
            titles.append((movie, _title(movie, title).casefold()))
        return movies, sorted(titles)

    def _model(self, version: str | None) -> "_Model | None":
        """The champion's ranking model and its rating model (for fold-in and /similar), or None without a champion."""
        if version is None:
            return None
        info = self._read_json(MODELS, version, MODEL_INFO)
        if info is None:
            raise NotServable(f"The champion {version} has no {MODEL_INFO} in the lake at {self.location}.")
        params = info.get("params") or {}
        ranker: ImplicitAls | EaseModel
        if info.get("ranking_model") == "EASE":
            ranker = EaseModel.load(self.fs, join(self.root, MODELS, version, EASE_FOLDER))
        else:
            item_ids, vectors = self._factors(MODELS, version, "ranking")
            ranker = ImplicitAls.of(
                item_ids, vectors, alpha=float(params.get("alpha", 1.0)),
                reg_param=float(params.get("ranking_reg_param", 0.1)), neutral_rating=float(params.get("neutral_rating", 3.0)),
            )
        biases = self._spark_parquet(MODELS, version, "item_bias").to_table(columns=["movie_id", "item_bias"])
        item_bias = dict(zip(biases.column("movie_id").to_pylist(), biases.column("item_bias").to_pylist(), strict=True))
        # Versions saved before the residual ALS could be dropped have no `rating_model`: they all kept it.
        residual = None if info.get("rating_model") == BIASES_ONLY else ItemSide(*self._factors(MODELS, version, "rating"))
        stars = Stars(
            float(info["global_mean"]), item_bias, float(params.get("user_bias_reg", 15.0)), residual,
            float(params.get("rating_reg_param", 0.1)),
        )
        return _Model(ranker=ranker, stars=stars)

    def _factors(self, *parts: str) -> tuple[np.ndarray, np.ndarray]:
        """A saved Spark ALS model's item ids and factors (float32, a row each)."""
        factors = self._spark_parquet(*parts, "itemFactors").to_table(columns=["id", "features"])
        item_ids = factors.column("id").to_numpy().astype(np.int64)
        features = factors.column("features").combine_chunks()
        return item_ids, features.flatten().to_numpy().astype(np.float32).reshape(len(item_ids), -1)

    def _spark_parquet(self, *parts: str) -> ds.Dataset:
        """A Parquet folder Spark wrote once (a model's factors, its biases): every part file in it."""
        folder = join(self.root, *parts)
        files = sorted(f for f in self.fs.find(folder) if f.endswith(".parquet") and not f.rsplit("/", 1)[-1].startswith("."))
        if not files:
            raise NotServable(f"There is no Parquet data at {join(self.location, *parts)}.")
        return ds.dataset(files, filesystem=arrow_filesystem(self.fs), format="parquet")

    def _popularity_fallback(
        self, model: "_Model | None", ratings: pa.Table, events: pa.Table
    ) -> tuple[list[int], list[float], list[float]]:
        """The MAX_K most-rated movies (ties to the smaller id), as the daily batch ranks them for a user without ratings,
        with their score (the share of users who rated the movie) and predicted rating.

        The ratings are `training_ratings` and the streamed `rating_events`, one per (user, movie).
        The predicted rating is the champion's for a user it never saw (global mean + the movie's
        bias), or without a champion the movie's mean rating, as in the batch.
        """
        pairs = ratings.select(["user_id", "movie_id"])
        if events.num_rows:
            streamed = events.select(["user_id", "movie_id"])
            pairs = pa.concat_tables([pairs, streamed.cast(pairs.schema)]).group_by(["user_id", "movie_id"]).aggregate([])
        counts = pairs.group_by("movie_id").aggregate([("user_id", "count")])
        raters = counts.column("user_id_count").to_numpy()
        order = np.lexsort((counts.column("movie_id").to_numpy(), -raters))[:MAX_K]
        movies = counts.column("movie_id").to_numpy()[order].tolist()
        users = max(pc.count_distinct(pairs.column("user_id")).as_py(), 1)
        scores = [round(float(count) / users, 4) for count in raters[order]]
        if model is not None:
            predicted = [model.stars.global_mean + model.stars.item_bias.get(movie, 0.0) for movie in movies]
        else:
            means = ratings.group_by("movie_id").aggregate([("rating", "mean")])
            mean_of = dict(zip(means.column("movie_id").to_pylist(), means.column("rating_mean").to_pylist(), strict=True))
            predicted = [mean_of.get(movie, MIN_RATING) for movie in movies]  # a streamed-only movie: no rating yet
        return movies, scores, [round(min(max(value, MIN_RATING), MAX_RATING), 4) for value in predicted]


@dataclass(frozen=True)
class _Model:
    ranker: ImplicitAls | EaseModel
    stars: Stars


_EVENT_COLUMNS = ("user_id", "movie_id", "rating", "rated_at", "ingested_at")


@dataclass(frozen=True, eq=False)
class UserRatings:
    """Each user's latest rating of each movie, grouped by user: user `users[i]`'s are rows offsets[i]:offsets[i + 1]."""

    users: np.ndarray
    offsets: np.ndarray
    movie_ids: np.ndarray
    ratings: np.ndarray
    rated_at: np.ndarray  # µs since the epoch, UTC

    @classmethod
    def merged(cls, history: pa.Table, events: pa.Table) -> "UserRatings":
        """training_ratings' rows and rating_events', the latest rating of each (user, movie) kept as the pipeline keeps
        it (`training.merge_ratings`): the later rating, an event over a historical rating of the same instant, the
        later ingested event."""
        def column(name: str, fill: int) -> np.ndarray:
            parts = [history.column(name).to_numpy() if name in history.column_names else np.full(history.num_rows, fill)]
            return np.concatenate([*parts, events.column(name).to_numpy()])

        users, movies, ratings = column("user_id", 0), column("movie_id", 0), column("rating", 0).astype(np.float64)
        rated_at, ingested = column("rated_at", 0), column("ingested_at", -1)
        from_events = np.r_[np.zeros(history.num_rows, dtype=np.int8), np.ones(events.num_rows, dtype=np.int8)]
        order = np.lexsort((ingested, from_events, rated_at, movies, users))
        users, movies, ratings, rated_at = users[order], movies[order], ratings[order], rated_at[order]
        last = np.r_[(users[1:] != users[:-1]) | (movies[1:] != movies[:-1]), True] if len(users) else np.array([], bool)
        users, movies, ratings, rated_at = users[last], movies[last], ratings[last], rated_at[last]
        firsts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(users) else np.array([], np.int64)
        # Ids are 32-bit and ratings half stars in every table: held as such, a rating takes 16 bytes.
        return cls(users[firsts], np.r_[firsts, len(users)], movies.astype(np.int32), ratings.astype(np.float32), rated_at)

    def _range(self, user_id: int) -> tuple[int, int] | None:
        place = int(np.searchsorted(self.users, user_id))
        if place == len(self.users) or self.users[place] != user_id:
            return None
        return int(self.offsets[place]), int(self.offsets[place + 1])

    def arrays(self, user_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(movies, ratings, rated_at µs) of the user, by movie; empty for a user without ratings."""
        start, end = self._range(user_id) or (0, 0)
        return self.movie_ids[start:end], self.ratings[start:end], self.rated_at[start:end]

    def newest(self, user_id: int) -> int | None:
        """When the user's newest rating was given (µs), None for a user without ratings."""
        found = self._range(user_id)
        return None if found is None else int(self.rated_at[found[0] : found[1]].max())


def _as_int64(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Ids as int64 and times as µs since the epoch (int64); ratings as they are."""
    if pa.types.is_timestamp(column.type):
        return column.cast(pa.timestamp("us", column.type.tz)).cast(pa.int64())
    if pa.types.is_integer(column.type):
        return column.cast(pa.int64())
    return column


def micros(moment: datetime) -> int:
    """µs since the epoch, as the service holds times; a naive time is UTC, as the tables' are."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return int(moment.timestamp() * 1_000_000)


def _iso_micros(micros: int) -> str:
    return _iso(datetime.fromtimestamp(micros / 1_000_000, UTC))


def _iso(moment: datetime) -> str:
    """UTC, ISO 8601 with a Z; a naive timestamp (Spark's Parquet) is UTC already."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat().replace("+00:00", "Z")
