"""The demo's closing lines: the champion's metrics beside the baselines, and one user's ten movies.

Read the way the dashboard reads them (DuckDB on the committed Parquet, `dashboard.data`), without Spark:
a printout needs no Spark jobs.
"""

import pandas as pd

from movierec_dagster.dashboard.data import Lake as LakeReader
from movierec_dagster.dashboard.data import TableNotFound
from movierec_dagster.model import registry
from movierec_dagster.model.comparison import comparison_lines
from movierec_dagster.recommendations.scoring import MODEL, POPULARITY
from movierec_dagster.resources import Lake

# What each kind of list is ordered by, and the heading of that number's column.
ORDER_EXPLAINED = {
    MODEL: "In order of match: how much the ranking model expects the user to want the movie. "
    "The stars are the rating model's prediction of their rating, a second opinion.",
    POPULARITY: "Most-rated movies first (popular, not personal picks): the share of users who rated each. "
    "The stars are the predicted rating.",
}
SCORE_HEADING = {MODEL: "match", POPULARITY: "rated by"}


def print_summary(lake: Lake, user_id: int | None = None, date: str | None = None) -> None:
    """Print the champion's metrics and `user_id`'s recommendations of `date` (defaults: lowest user id, latest day)."""
    champion = registry.read_champion(lake)
    print()
    if champion is None:
        print("No model has passed the gate yet, so every user gets the popularity baseline (most-rated unseen movies).")
    else:
        print("\n".join(comparison_lines(registry.read_model_info(lake, champion["version"]))))
    reader = LakeReader(lake.uri())
    try:
        date = date or reader.newest_recommendation_date()
        if user_id is None:
            users = reader.recommended_users(date)
            if not users:
                print(f"The batch of {date} recommends nothing.")
                return
            user_id = users[0]
        rows = reader.recommendations(date, user_id).rows
    except TableNotFound as missing:
        print(f"{missing} Run the job score_recommendations.")
        return
    if rows.empty:
        print(f"User {user_id} has no recommendations on {date}.")
        return
    first = rows.iloc[0]
    made_by = "no model yet" if pd.isna(first["model_version"]) else f"model {first['model_version']}"
    print(f"\nRecommendations for user {user_id} on {date} ({made_by}, {first['source']}):")
    print(f"   {ORDER_EXPLAINED[first['source']]}")
    print(f"   {'#':>2}  {'movie':<50} {SCORE_HEADING[first['source']]:>8}  {'predicted stars':>15}   genres")
    for row in rows.itertuples():
        title = str(row.title) if pd.isna(row.year) else f"{row.title} ({int(row.year)})"
        genres = ", ".join(row.genres) or "-"
        print(f"   {row.rank:>2}. {title[:50]:<50} {row.score:>8.0%}  {row.predicted_rating:>15.1f}   {genres}")
