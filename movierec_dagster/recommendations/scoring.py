"""Each user's daily top-10: the champion's ranking, its star predictions, a popularity fallback. No Dagster.

Every list is in the order of its `score`, from 0 to 1, which the readers show beside the rank: for
the model's lists (source "model") the ranking model's score, its estimate of how much the user
will want the movie (1: as much as a movie they rated highly), clipped to 0-1; for the popularity
fallback the share of users who rated the movie. The predicted stars are the rating model's, a
second opinion that need not follow the order.
"""

from datetime import datetime

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from movierec_dagster.model.ease import EaseModel
from movierec_dagster.model.training import TOP_K, ModelBundle, most_popular_top_k, predict_ratings, ranking_lists
from movierec_dagster.names import MAX_RATING, MIN_RATING, MODEL_SOURCE, POPULARITY_SOURCE

MODEL, POPULARITY = MODEL_SOURCE, POPULARITY_SOURCE


def match_score(score: F.Column) -> F.Column:
    """The ranking model's score as a match from 0 to 1 (implicit ALS estimates a preference of 0 or 1)."""
    return F.least(F.greatest(score, F.lit(0.0)), F.lit(1.0))


def _batch_columns(frame: DataFrame, model_version: str | None, generated_at: datetime) -> DataFrame:
    return frame.select(
        F.col("user_id").cast("int"),
        F.col("movie_id").cast("int"),
        F.col("rank").cast("int"),
        F.col("score").cast("double"),
        F.col("predicted_rating").cast("double"),
        F.lit(model_version).cast("string").alias("model_version"),
        F.lit(generated_at).cast("timestamp").alias("generated_at"),
        F.col("source"),
    )


def build_recommendations(
    bundle: ModelBundle,
    ratings: DataFrame,
    *,
    model_version: str,
    generated_at: datetime,
    min_ratings: int,
    k: int = TOP_K,
) -> DataFrame:
    """user_id, movie_id, rank, score, predicted_rating, model_version, generated_at, source for every user in `ratings`.

    Users with at least `min_ratings` ratings whom the ranking model knows get its top-k
    unseen movies (source "model", score: the match); the others get the k most-rated movies
    they have not rated (source "popularity", score: the share of users who rated it).
    Predicted ratings come from the rating model, clipped to 0.5-5.0.
    """
    if min_ratings < 0:
        raise ValueError(f"min_ratings must not be negative, got {min_ratings}")
    seen = ratings.select("user_id", "movie_id")
    counts = seen.groupBy("user_id").count()
    enough = counts.where(F.col("count") >= min_ratings).select("user_id")
    known = enough.join(scorable_users(bundle, seen), "user_id", "left_semi")
    personal = ranking_lists(bundle.ranking_model, ratings, k, users=known).select(
        "user_id", "movie_id", "rank", match_score(F.col("score")).alias("score"), F.lit(MODEL).alias("source")
    )
    others = counts.select("user_id").join(known, "user_id", "left_anti")
    # Only the fallback users' ratings go to the fallback: a model leaves it few users (22 at 25M ratings, where all
    # the ratings took it 12-14 s). Their ids are broadcast, one int a user; the popularity still counts every rating.
    others_seen = seen.join(F.broadcast(others), "user_id", "left_semi")
    fallback = _popularity_share(most_popular_top_k(ratings, others, k, seen=others_seen), counts).withColumn(
        "source", F.lit(POPULARITY)
    )
    chosen = personal.unionByName(fallback)
    return _batch_columns(predict_ratings(bundle, chosen), model_version, generated_at)


def scorable_users(bundle: ModelBundle, seen: DataFrame) -> DataFrame:
    """user_id of the users the ranking model can score: ALS's with factors, EASE's with a rating of a movie it knows."""
    model = bundle.ranking_model
    if isinstance(model, EaseModel):
        return seen.join(model.movies(seen.sparkSession), "movie_id", "left_semi").select("user_id").distinct()
    return model.userFactors.select(F.col("id").alias("user_id"))


def _popularity_share(popular: DataFrame, users: DataFrame) -> DataFrame:
    """`most_popular_top_k`'s rows with their score, a movie's number of ratings, as the share of `users` (one row a
    user) who rated it. The users are counted in the same query, not by a job of their own."""
    total = users.agg(F.count("*").alias("_users"))
    return popular.crossJoin(total).withColumn("score", F.col("score") / F.col("_users")).drop("_users")


def popularity_for_everyone(ratings: DataFrame, *, generated_at: datetime, k: int = TOP_K) -> DataFrame:
    """The day's recommendations before any model has passed the gate: every user's k most-rated unseen movies.

    Same columns as `build_recommendations`: the score is the share of users who rated the movie,
    the predicted rating is the movie's mean rating, `model_version` is null and `source` is "popularity".
    """
    users = ratings.select("user_id").distinct()
    means = ratings.groupBy("movie_id").agg(F.avg("rating").alias("predicted_rating"))
    popular = _popularity_share(most_popular_top_k(ratings, users, k), users)
    return _batch_columns(popular.join(means, "movie_id").withColumn("source", F.lit(POPULARITY)), None, generated_at)


def sanity_counts(recommendations: DataFrame, ratings: DataFrame, k: int = TOP_K) -> dict[str, int]:
    """What the recommendation check counts; every count but `users` and `users_with_recommendations` should be 0.

    Beside the movies and their ranks, the numbers shown with them: stars on the scale, a score
    from 0 to 1 on every row, and each list's scores never rising down the ranks (the order and
    the number a reader sees agree).

    `ratings` holds one row per (user, movie), as training_ratings and `merge_ratings` do. One
    aggregate per user (joined with what the user rated), then one over the users. (Making the
    pairs distinct first took 2.7-2.9x the check's time at 25M ratings: an aggregation over 25M
    keys that are already unique.)
    """
    pairs = ratings.select("user_id", "movie_id")
    seen = pairs.withColumn("_rated", F.lit(True))
    predicted, score = F.col("predicted_rating"), F.col("score")
    per_user = (
        recommendations.join(seen, ["user_id", "movie_id"], "left")
        .groupBy("user_id")
        .agg(
            F.count("*").alias("n"), F.countDistinct("movie_id").alias("movies"), F.countDistinct("rank").alias("ranks"),
            F.min("rank").alias("first"), F.max("rank").alias("last"), F.count("_rated").alias("already_rated"),
            F.count_if(predicted.isNull() | (predicted < MIN_RATING) | (predicted > MAX_RATING)).alias("off_scale"),
            F.count_if(score.isNull() | (score < 0.0) | (score > 1.0)).alias("scores_off_range"),
            F.array_sort(F.collect_list(F.struct("rank", "score"))).alias("by_rank"),
        )
    )
    catalogue = ratings.select("movie_id").distinct().count()
    unseen = pairs.groupBy("user_id").agg((F.lit(catalogue) - F.count("*")).alias("unseen"))
    n = F.col("n")
    bad_ranks = (n > k) | (F.col("movies") != n) | (F.col("ranks") != n) | (F.col("first") != 1) | (F.col("last") != n)
    by_rank = F.col("by_rank")
    score_rises = F.exists(
        F.transform(F.slice(by_rank, 2, F.size(by_rank)), lambda next_, i: next_["score"] > by_rank[i]["score"]),
        lambda rises: rises,
    )
    totals = (
        unseen.join(per_user, "user_id", "full")
        .agg(
            F.count("unseen").alias("users"),
            F.count("n").alias("users_with_recommendations"),
            F.count_if(F.coalesce(n, F.lit(0)) < F.least(F.col("unseen"), F.lit(k))).alias("users_short_of_recommendations"),
            F.count_if(bad_ranks).alias("users_with_bad_ranks"),
            F.coalesce(F.sum("already_rated"), F.lit(0)).alias("already_rated"),
            F.coalesce(F.sum("off_scale"), F.lit(0)).alias("predictions_off_scale"),
            F.coalesce(F.sum("scores_off_range"), F.lit(0)).alias("scores_off_range"),
            F.count_if(score_rises).alias("users_with_scores_out_of_rank_order"),
        )
        .first()
    )
    return {name: int(value) for name, value in totals.asDict().items()}
