"""The demo's closing lines: the champion's metrics beside the baselines, and one user's ten movies."""

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from movierec_dagster.model import registry
from movierec_dagster.recommendations.assets import TABLE
from movierec_dagster.resources import LocalLake
from movierec_dagster.resources.lake import TABLES


def metrics_lines(info: dict) -> list[str]:
    metrics, bias, popular = info["metrics"], info["baselines"]["bias"], info["baselines"]["most_popular"]
    blank = "      -"
    lines = [
        f"Model {info['version']} (trained on {info['training_rows']:,} ratings; held-out {info.get('test_rows', 0):,})",
        f"   {'':<17}{'RMSE':>7}{'MAE':>7}{'P@10':>7}{'R@10':>7}{'NDCG@10':>8}",
        f"   {'ours':<17}{metrics['rmse']:>7.3f}{metrics['mae']:>7.3f}{metrics['precision_at_10']:>7.3f}"
        f"{metrics['recall_at_10']:>7.3f}{metrics['ndcg_at_10']:>8.3f}",
        f"   {'user+movie bias':<17}{bias['rmse']:>7.3f}{bias['mae']:>7.3f}{blank}{blank}{blank:>8}",
        f"   {'most popular':<17}{blank}{blank}{popular['precision_at_10']:>7.3f}{popular['recall_at_10']:>7.3f}"
        f"{popular['ndcg_at_10']:>8.3f}",
    ]
    return lines


def print_summary(lake: LocalLake, spark: SparkSession, user_id: int | None = None, date: str | None = None) -> None:
    """Print the champion's metrics and `user_id`'s recommendations of `date` (defaults: lowest user id, latest day)."""
    champion = registry.read_champion(lake)
    if champion is None:
        print("No champion model yet: run the job retrain_model.")
        return
    print()
    print("\n".join(metrics_lines(registry.read_model_info(lake, champion["version"]))))
    if not lake.table_exists(TABLE):
        print("No recommendations yet: run the job score_recommendations.")
        return
    recommendations = spark.read.parquet(lake.table_uri(TABLE))
    date = date or recommendations.agg(F.max("date")).first()[0].strftime("%Y-%m-%d")
    day = spark.read.parquet(lake.uri(TABLES, TABLE, f"date={date}"))
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
    print(f"\nRecommendations for user {user_id} on {date} (model {rows[0].model_version}, {rows[0].source}):")
    for row in rows:
        title = f"{row.title} ({row.year})" if row.year else str(row.title)
        genres = ", ".join(row.genres or []) or "-"
        print(f"   {row.rank:>2}. {title[:50]:<50} {row.predicted_rating:4.1f} stars   {genres}")
