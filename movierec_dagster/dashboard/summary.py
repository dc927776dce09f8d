"""The demo's closing lines about the dashboard: where to open it, and what it will show first."""

import pandas as pd

from movierec_dagster.dashboard.data import Lake, LakeError

DEFAULT_URL = "http://localhost:8501"


def dashboard_summary(lake_location: str, url: str = DEFAULT_URL) -> list[str]:
    """Lines telling a person how to open the dashboard on a real user, or what is still missing."""
    try:
        lake = Lake(lake_location)
        lake.check_exists()
        date = lake.newest_recommendation_date()
        users = lake.recommended_users(date)
    except LakeError as problem:
        return [f"Dashboard: {problem}"]
    if not users:
        return [f"Dashboard: the newest batch of recommendations ({date}) is empty."]
    user = users[0]
    recs = lake.recommendations(date, user)
    top = recs.rows.iloc[0]
    year = "" if pd.isna(top["year"]) else f" ({int(top['year'])})"
    return [
        f"Dashboard: `make dashboard`, then open {url}/?user={user}",
        f"   {len(users):,} users have recommendations from {recs.made_by} (batch of {date}); "
        f"user {user}'s first pick: {top['title']}{year}",
    ]


def print_dashboard_summary(lake_location: str) -> None:
    print()
    for line in dashboard_summary(lake_location):
        print(line)
