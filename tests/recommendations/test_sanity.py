"""The recommendation sanity counts: each planted problem is counted once, a sane list counts nothing."""

from movierec_dagster.recommendations.scoring import sanity_counts

RECOMMENDATIONS = "user_id int, movie_id int, rank int, score double, predicted_rating double"


def test_each_problem_is_counted(spark):
    # Catalogue: movies 1-4. User 1 rated movie 1, user 2 movies 1-2, user 3 movie 3, user 4 movie 4,
    # user 5 movie 2 (and has no recommendations at all), user 6 movie 1, user 7 movie 2.
    ratings = spark.createDataFrame(
        [(1, 1, 4.0), (2, 1, 3.0), (2, 2, 5.0), (3, 3, 2.0), (4, 4, 1.0), (5, 2, 4.0), (6, 1, 3.0), (7, 2, 3.0)],
        "user_id int, movie_id int, rating double",
    )
    recommendations = spark.createDataFrame(
        [
            (1, 2, 1, 0.9, 4.0), (1, 3, 2, 0.8, 3.5),  # sane, but user 1 has 3 unseen movies and got 2: short
            (2, 3, 1, 0.9, 4.0), (2, 4, 2, 0.8, 5.5),  # 5.5 stars: off the scale
            (3, 1, 1, 0.9, 3.0), (3, 3, 2, 0.8, 3.0), (3, 4, 3, 0.7, 3.0),  # movie 3 is one user 3 rated
            (4, 1, 1, 0.9, 3.0), (4, 2, 1, 0.9, 3.0), (4, 3, 3, 0.7, 3.0),  # rank 1 twice, no rank 2
            (6, 2, 1, 1.2, 3.0), (6, 3, 2, 0.9, 3.0), (6, 4, 3, None, 3.0),  # a score above 1, and a missing one
            (7, 1, 1, 0.5, 3.0), (7, 3, 2, 0.4, 3.0), (7, 4, 3, 0.6, 3.0),  # rank 3 scores more than rank 2
        ],
        RECOMMENDATIONS,
    )
    assert sanity_counts(recommendations, ratings, k=3) == {
        "users": 7,
        "users_with_recommendations": 6,
        "users_short_of_recommendations": 2,
        "users_with_bad_ranks": 1,
        "already_rated": 1,
        "predictions_off_scale": 1,
        "scores_off_range": 2,
        "users_with_scores_out_of_rank_order": 1,
    }


def test_a_sane_list_counts_no_problem(spark):
    ratings = spark.createDataFrame([(1, 1, 4.0), (2, 2, 3.0), (3, 1, 2.0)], "user_id int, movie_id int, rating double")
    recommendations = spark.createDataFrame(
        # Equal scores may follow each other; stars need not follow the order.
        [(1, 2, 1, 1.0, 4.0), (1, 3, 2, 1.0, 4.5), (2, 1, 1, 0.0, 0.5), (3, 3, 2, 0.2, 5.0), (3, 2, 1, 0.3, 3.0)],
        RECOMMENDATIONS,
    )
    assert sanity_counts(recommendations, ratings, k=2) == {
        "users": 3,
        "users_with_recommendations": 3,
        "users_short_of_recommendations": 0,
        "users_with_bad_ranks": 0,
        "already_rated": 0,
        "predictions_off_scale": 0,
        "scores_off_range": 0,
        "users_with_scores_out_of_rank_order": 0,
    }
