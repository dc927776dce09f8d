"""The demo's closing lines: the champion's metrics beside the baselines, and one user's ten movies."""

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from movierec_dagster.model import registry
from movierec_dagster.model.comparison import comparison_lines
from movierec_dagster.recommendations.assets import TABLE
from movierec_dagster.resources import Lake


def print_summary(lake: Lake, spark: SparkSession, user_id: int | None = None, date: str | None = None) -> None:
    """Print the champion's metrics and `user_id`'s recommendations of `date` (defaults: lowest user id, latest day)."""
    champion = registry.read_champion(lake)
    print()
    if champion is None:
        print("No model has passed the gate yet, so every user gets the popularity baseline (most-rated unseen movies).")
    else:
        print("\n".join(comparison_lines(registry.read_model_info(lake, champion["version"]))))
    if not lake.table_exists(TABLE):
        print("No recommendations yet: run the job score_recommendations.")
        return
    recommendations = lake.read_table(spark, TABLE)
    date = date or recommendations.agg(F.max("date")).first()[0].strftime("%Y-%m-%d")
    day = recommendations.where(F.col("date") == F.lit(date).cast("date"))
    user_id = user_id if user_id is not None else day.agg(F.min("user_id")).first()[0]
    rows = (
        day.where(F.col("user_id") == user_id)
        .join(lake.read_table(spark, "movies"), "movie_id", "left")
        .orderBy("rank")
        .collect()
    )
    if not rows:
        print(f"User {user_id} has no recommendations on {date}.")
        return
    made_by = f"model {rows[0].model_version}" if rows[0].model_version else "no model yet"
    print(f"\nRecommendations for user {user_id} on {date} ({made_by}, {rows[0].source}):")
    for row in rows:
        title = f"{row.title} ({row.year})" if row.year else str(row.title)
        genres = ", ".join(row.genres or []) or "-"
        print(f"   {row.rank:>2}. {title[:50]:<50} {row.predicted_rating:4.1f} stars   {genres}")
