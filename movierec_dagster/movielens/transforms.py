"""MovieLens CSVs to typed tables: plain PySpark functions, no Dagster.

Each `parse_*` function takes the CSV read as strings (`read_csv`) and returns
the typed rows with a `reject_reason` column, null for a valid row; `split_valid`
separates the two so that no malformed row is silently dropped.
"""

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from movierec_dagster.names import NO_GENRES
from movierec_dagster.validation import RAW, REASON, first_failure, rating_value_failure

MOVIES_COLUMNS = ("movieId", "title", "genres")
RATINGS_COLUMNS = ("userId", "movieId", "rating", "timestamp")
TAGS_COLUMNS = ("userId", "movieId", "tag", "timestamp")
LINKS_COLUMNS = ("movieId", "imdbId", "tmdbId")

MALFORMED = "malformed_line"
# "Toy Story (1995)", "Fawlty Towers (1975-1979)" with an en dash, trailing blanks allowed.
_TITLE_WITH_YEAR = r"^(.*?)\s*\((\d{4})(?:\s*[-\u2013]\s*\d{4})?\)\s*$"


class MovieLensFormatError(ValueError):
    """A MovieLens file is not in the expected format; the message names the file."""


def read_csv(spark: SparkSession, path: str, columns: tuple[str, ...], first_line: str | None = None) -> DataFrame:
    """Read a MovieLens CSV as strings, plus `malformed_line`: the text of a row Spark could not parse.

    Fails with `MovieLensFormatError` when the file is empty or its header is not `columns`.
    `first_line` is the file's first line when the caller has read it ("" for an empty file);
    left out, Spark reads it.
    """
    name = path.rsplit("/", 1)[-1]
    if first_line is None:
        first = spark.read.text(path).first()
        first_line = "" if first is None else first.value
    check_header(name, first_line, columns)
    schema = StructType(
        [StructField(column, StringType()) for column in columns] + [StructField(MALFORMED, StringType())]
    )
    return (
        spark.read.option("header", True)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", MALFORMED)
        .option("quote", '"')
        .option("escape", '"')
        .schema(schema)
        .csv(path)
    )


def check_header(name: str, first_line: str, columns: tuple[str, ...]) -> None:
    """Fail with `MovieLensFormatError`, naming the file, unless `first_line` is the header `columns`."""
    if not first_line.strip():
        raise MovieLensFormatError(f"{name} is empty: expected the header {','.join(columns)}.")
    header = tuple(field.strip() for field in first_line.lstrip("\ufeff").split(","))
    if header != columns:
        raise MovieLensFormatError(
            f"{name} has the header {','.join(header)}; expected {','.join(columns)}. "
            "Is MOVIELENS_SOURCE a MovieLens archive?"
        )


def _positive_int(column: str) -> Column:
    return F.expr(f"try_cast(trim(`{column}`) as int)")


def _bad_id(value: Column) -> Column:
    return value.isNull() | (value <= 0)


def _epoch_seconds(column: str) -> Column:
    return F.expr(f"try_cast(trim(`{column}`) as bigint)")


def _malformed_checks() -> list[tuple[Column, str]]:
    return [(F.col(MALFORMED).isNotNull(), "malformed CSV row (wrong number of fields or bad quoting)")]


def _raw_line(columns: tuple[str, ...]) -> Column:
    """The row's text, so that every rejected row carries it."""
    return F.coalesce(F.col(MALFORMED), F.concat_ws(",", *[F.col(c) for c in columns])).alias(RAW)


def parse_movies(raw: DataFrame) -> DataFrame:
    """movie_id, title (year removed), year, genres (array; empty for '(no genres listed)')."""
    movie_id = _positive_int("movieId")
    title = F.trim(F.col("title"))
    year_text = F.regexp_extract(title, _TITLE_WITH_YEAR, 2)
    genres_text = F.trim(F.col("genres"))
    reason = first_failure(
        _malformed_checks()
        + [
            (_bad_id(movie_id), "movieId is not a positive integer"),
            (title.isNull() | (title == ""), "title is empty"),
        ]
    )
    return raw.select(
        movie_id.alias("movie_id"),
        F.when(year_text != "", F.regexp_extract(title, _TITLE_WITH_YEAR, 1)).otherwise(title).alias("title"),
        F.when(year_text != "", year_text.cast("int")).alias("year"),
        F.when(genres_text.isNull() | (genres_text == "") | (genres_text == NO_GENRES), F.array().cast("array<string>"))
        .otherwise(F.split(genres_text, r"\|"))
        .alias("genres"),
        reason.alias(REASON),
        _raw_line(MOVIES_COLUMNS),
    )


def parse_ratings(raw: DataFrame) -> DataFrame:
    """user_id, movie_id, rating, rated_at (UTC timestamp), year (of rated_at)."""
    user_id, movie_id = _positive_int("userId"), _positive_int("movieId")
    rating = F.expr("try_cast(trim(rating) as double)")
    seconds = _epoch_seconds("timestamp")
    reason = F.coalesce(
        first_failure(
            _malformed_checks()
            + [
                (_bad_id(user_id), "userId is not a positive integer"),
                (_bad_id(movie_id), "movieId is not a positive integer"),
            ]
        ),
        rating_value_failure(rating),
        first_failure([(seconds.isNull() | (seconds < 0), "timestamp is not a non-negative integer")]),
    )
    rated_at = F.timestamp_seconds(seconds)
    return raw.select(
        user_id.alias("user_id"),
        movie_id.alias("movie_id"),
        rating.alias("rating"),
        rated_at.alias("rated_at"),
        F.year(rated_at).alias("year"),
        reason.alias(REASON),
        _raw_line(RATINGS_COLUMNS),
    )


def parse_tags(raw: DataFrame) -> DataFrame:
    """user_id, movie_id, tag, tagged_at (UTC timestamp)."""
    user_id, movie_id = _positive_int("userId"), _positive_int("movieId")
    seconds = _epoch_seconds("timestamp")
    tag = F.trim(F.col("tag"))
    reason = first_failure(
        _malformed_checks()
        + [
            (_bad_id(user_id), "userId is not a positive integer"),
            (_bad_id(movie_id), "movieId is not a positive integer"),
            (tag.isNull() | (tag == ""), "tag is empty"),
            (seconds.isNull() | (seconds < 0), "timestamp is not a non-negative integer"),
        ]
    )
    return raw.select(
        user_id.alias("user_id"),
        movie_id.alias("movie_id"),
        tag.alias("tag"),
        F.timestamp_seconds(seconds).alias("tagged_at"),
        reason.alias(REASON),
        _raw_line(TAGS_COLUMNS),
    )


def parse_links(raw: DataFrame) -> DataFrame:
    """movie_id, imdb_id (kept as text: it has leading zeros), tmdb_id (null where MovieLens has none)."""
    movie_id = _positive_int("movieId")
    imdb_id = F.trim(F.col("imdbId"))
    tmdb_text = F.trim(F.col("tmdbId"))
    tmdb_id = F.expr("try_cast(trim(tmdbId) as int)")
    reason = first_failure(
        _malformed_checks()
        + [
            (_bad_id(movie_id), "movieId is not a positive integer"),
            (imdb_id.isNull() | ~imdb_id.rlike(r"^\d+$"), "imdbId is not a number"),
            (tmdb_text.isNotNull() & (tmdb_text != "") & tmdb_id.isNull(), "tmdbId is not an integer"),
        ]
    )
    return raw.select(
        movie_id.alias("movie_id"),
        imdb_id.alias("imdb_id"),
        tmdb_id.alias("tmdb_id"),
        reason.alias(REASON),
        _raw_line(LINKS_COLUMNS),
    )


def split_valid(parsed: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(valid typed rows, rejected rows as `raw` and `reject_reason`)."""
    valid = parsed.where(F.col(REASON).isNull()).drop(REASON, RAW)
    rejected = parsed.where(F.col(REASON).isNotNull()).select(RAW, REASON)
    return valid, rejected


def orphan_movie_ids(df: DataFrame, movies: DataFrame) -> DataFrame:
    """Distinct movie_ids in `df` that `movies` does not have."""
    return df.select("movie_id").distinct().join(movies.select("movie_id"), "movie_id", "left_anti")
