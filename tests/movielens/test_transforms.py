"""The MovieLens parsing functions on tiny files: titles, years, genres, bad rows, headers."""

from pathlib import Path

import pytest

from movierec_dagster import validation
from movierec_dagster.movielens import transforms as t


def _csv(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _parse(spark, tmp_path, name, text, columns, parse):
    parsed = parse(t.read_csv(spark, _csv(tmp_path, name, text), columns))
    valid, rejected = t.split_valid(parsed)
    return {row["movie_id"]: row.asDict() for row in valid.collect()} if "movie_id" in valid.columns else valid, rejected


MOVIES = (
    "movieId,title,genres\n"
    "1,Toy Story (1995),Adventure|Animation|Children\n"
    '2,"American President, The (1995)",Comedy|Drama\n'
    '3,"Thing ""quoted"" (2001) ",(no genres listed)\n'
    "40697,Babylon 5,Sci-Fi\n"
    "7,Fawlty Towers (1975\u20131979),Comedy\n"
)


def test_movies_titles_years_and_genres(spark, tmp_path):
    movies, rejected = _parse(spark, tmp_path, "movies.csv", MOVIES, t.MOVIES_COLUMNS, t.parse_movies)
    assert rejected.count() == 0
    assert movies[1] == {"movie_id": 1, "title": "Toy Story", "year": 1995, "genres": ["Adventure", "Animation", "Children"]}
    assert (movies[2]["title"], movies[2]["year"]) == ("American President, The", 1995)
    assert (movies[3]["title"], movies[3]["year"], movies[3]["genres"]) == ('Thing "quoted"', 2001, [])
    assert (movies[40697]["title"], movies[40697]["year"]) == ("Babylon 5", None)
    assert (movies[7]["title"], movies[7]["year"]) == ("Fawlty Towers", 1975)


def test_malformed_movie_rows_are_quarantined_with_reason_and_text(spark, tmp_path):
    text = "movieId,title,genres\n1,Good (2000),Drama\nabc,Bad id,Drama\n5,Too,many,fields\n6\n-3,Negative (1990),Drama\n"
    movies, rejected = _parse(spark, tmp_path, "movies.csv", text, t.MOVIES_COLUMNS, t.parse_movies)
    assert list(movies) == [1]
    reasons = {row.raw: row.reject_reason for row in rejected.collect()}
    assert reasons["abc,Bad id,Drama"] == "movieId is not a positive integer"
    assert reasons["-3,Negative (1990),Drama"] == "movieId is not a positive integer"
    assert reasons["5,Too,many,fields"].startswith("malformed CSV row")
    assert reasons["6"].startswith("malformed CSV row")


def test_ratings_validation(spark, tmp_path):
    text = (
        "userId,movieId,rating,timestamp\n"
        "1,10,4.5,964982703\n"
        "1,11,0.5,964982703\n"
        "2,10,0,964982703\n"
        "2,11,5.5,964982703\n"
        "2,12,3.25,964982703\n"
        "2,13,NaN,964982703\n"
        "2,14,good,964982703\n"
        "0,15,3.0,964982703\n"
        "3,16,3.0,yesterday\n"
        "3,1.5,3.0,964982703\n"
    )
    parsed = t.parse_ratings(t.read_csv(spark, _csv(tmp_path, "ratings.csv", text), t.RATINGS_COLUMNS))
    valid, rejected = t.split_valid(parsed)
    rows = sorted((r.user_id, r.movie_id, r.rating, r.year) for r in valid.collect())
    assert rows == [(1, 10, 4.5, 2000), (1, 11, 0.5, 2000)]
    reasons = {row.raw: row.reject_reason for row in rejected.collect()}
    assert reasons == {
        "2,10,0,964982703": "rating is outside 0.5-5.0",
        "2,11,5.5,964982703": "rating is outside 0.5-5.0",
        "2,12,3.25,964982703": "rating is not a multiple of 0.5",
        "2,13,NaN,964982703": "rating is not a number",
        "2,14,good,964982703": "rating is not a number",
        "0,15,3.0,964982703": "userId is not a positive integer",
        "3,16,3.0,yesterday": "timestamp is not a non-negative integer",
        "3,1.5,3.0,964982703": "movieId is not a positive integer",
    }


def test_tags_and_links(spark, tmp_path):
    tags_text = 'userId,movieId,tag,timestamp\n2,60756,"funny, really",1445714994\n2,60756,,1445714994\n'
    tags = t.parse_tags(t.read_csv(spark, _csv(tmp_path, "tags.csv", tags_text), t.TAGS_COLUMNS))
    valid, rejected = t.split_valid(tags)
    assert [r.tag for r in valid.collect()] == ["funny, really"]
    assert [r.reject_reason for r in rejected.collect()] == ["tag is empty"]

    links_text = "movieId,imdbId,tmdbId\n1,0114709,862\n2,0113497,\n3,tt01,5\n"
    links = t.parse_links(t.read_csv(spark, _csv(tmp_path, "links.csv", links_text), t.LINKS_COLUMNS))
    valid, rejected = t.split_valid(links)
    assert sorted((r.movie_id, r.imdb_id, r.tmdb_id) for r in valid.collect()) == [(1, "0114709", 862), (2, "0113497", None)]
    assert [r.reject_reason for r in rejected.collect()] == ["imdbId is not a number"]


def test_wrong_header_names_the_file(spark, tmp_path):
    path = _csv(tmp_path, "ratings.csv", "user,movie,stars,when\n1,2,3.0,4\n")
    with pytest.raises(t.MovieLensFormatError, match=r"ratings.csv has the header user,movie,stars,when; expected userId"):
        t.read_csv(spark, path, t.RATINGS_COLUMNS)


def test_empty_file_names_the_file(spark, tmp_path):
    with pytest.raises(t.MovieLensFormatError, match="movies.csv is empty"):
        t.read_csv(spark, _csv(tmp_path, "movies.csv", ""), t.MOVIES_COLUMNS)


def test_check_helpers(spark):
    ratings = spark.createDataFrame([(1, 10, 4.0), (2, 99, 5.5), (None, 10, 3.0)], "user_id int, movie_id int, rating double")
    movies = spark.createDataFrame([(10,)], "movie_id int")
    assert validation.invalid_rating_count(ratings) == 1
    assert validation.null_key_count(ratings, ["user_id", "movie_id"]) == 1
    assert [r.movie_id for r in t.orphan_movie_ids(ratings, movies).collect()] == [99]


def test_a_header_read_by_the_caller_is_checked_the_same_way(spark, tmp_path):
    path = _csv(tmp_path, "links.csv", "movieId,imdbId,tmdbId\n1,0114709,862\n")
    assert t.read_csv(spark, path, t.LINKS_COLUMNS, first_line="\ufeffmovieId,imdbId,tmdbId").count() == 1
    with pytest.raises(t.MovieLensFormatError, match="links.csv has the header movieId,imdb"):
        t.read_csv(spark, path, t.LINKS_COLUMNS, first_line="movieId,imdb")
    with pytest.raises(t.MovieLensFormatError, match="links.csv is empty"):
        t.read_csv(spark, path, t.LINKS_COLUMNS, first_line="")
