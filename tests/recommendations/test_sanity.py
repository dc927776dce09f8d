"""The recommendation sanity counts: each planted problem is counted once, a sane list counts nothing."""

from movierec_dagster.recommendations.scoring import sanity_counts


def test_each_problem_is_counted(spark):
    # Catalogue: movies 1-4. User 1 rated movie 1, user 2 movies 1-2, user 3 movie 3, user 4 movie 4,
    # user 5 movie 2 (and has no recommendations at all).
    ratings = spark.createDataFrame(
        [(1, 1, 4.0), (2, 1, 3.0), (2, 2, 5.0), (3, 3, 2.0), (4, 4, 1.0), (5, 2, 4.0)],
        "user_id int, movie_id int, rating double",
    )
    recommendations = spark.createDataFrame(
        [
            (1, 2, 1, 4.0), (1, 3, 2, 3.5),  # sane, but user 1 has 3 unseen movies and got 2: short
            (2, 3, 1, 4.0), (2, 4, 2, 5.5),  # 5.5 stars: off the scale
            (3, 1, 1, 3.0), (3, 3, 2, 3.0), (3, 4, 3, 3.0),  # movie 3 is one user 3 rated
            (4, 1, 1, 3.0), (4, 2, 1, 3.0), (4, 3, 3, 3.0),  # rank 1 twice, no rank 2
        ],
        "user_id int, movie_id int, rank int, predicted_rating double",
    )
    assert sanity_counts(recommendations, ratings, k=3) == {
        "users": 5,
        "users_with_recommendations": 4,
        "users_short_of_recommendations": 2,
        "users_with_bad_ranks": 1,
        "already_rated": 1,
        "predictions_off_scale": 1,
    }


def test_a_sane_list_counts_no_problem(spark):
    ratings = spark.createDataFrame([(1, 1, 4.0), (2, 2, 3.0)], "user_id int, movie_id int, rating double")
    recommendations = spark.createDataFrame([(1, 2, 1, 4.0), (2, 1, 1, 0.5)], "user_id int, movie_id int, rank int, predicted_rating double")
    assert sanity_counts(recommendations, ratings, k=10) == {
        "users": 2,
        "users_with_recommendations": 2,
        "users_short_of_recommendations": 0,
        "users_with_bad_ranks": 0,
        "already_rated": 0,
        "predictions_off_scale": 0,
    }
