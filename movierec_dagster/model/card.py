"""A model card: what a trained model saw, how it did beside the baselines, what its lists show, and its limits.

Built from the model's info (model.json) and a profile of its training data; als_model puts it in
the materialization's metadata (its figures plotted over materializations by Dagster), in
model.json and in the MLflow run. Plain Python, no Dagster; `data_profile` is the one Spark query.
"""

from datetime import datetime
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from movierec_dagster.metadata import markdown_table
from movierec_dagster.model.comparison import comparison_markdown

KNOWN_LIMITS = (
    "Users with fewer ratings than the scoring's `min_ratings`, and users the ranking model cannot score, "
    "get the most-popular fallback, not a personal list.",
    "A movie nobody has rated is never recommended: the models learn only from ratings.",
    "The held-out split is random over ratings, not a split in time: it measures how well a user's other "
    "ratings predict a rating, which is kinder than predicting next week's.",
    "Relevance is a held-out rating of 4 or more; a movie a user would like but never rated counts as a miss.",
    "The predicted stars come from the rating model, a second opinion beside the ranking: they need not fall "
    "down the list.",
)


def data_profile(ratings: DataFrame) -> dict[str, Any]:
    """ratings, users, movies and the first and last rating time of training data with `rated_at`."""
    row = ratings.agg(
        F.count("*").alias("ratings"),
        F.count_distinct("user_id").alias("users"),
        F.count_distinct("movie_id").alias("movies"),
        F.min("rated_at").alias("first"),
        F.max("rated_at").alias("last"),
    ).first()

    def iso(moment: datetime | None) -> str | None:
        return None if moment is None else moment.isoformat()

    return {
        "ratings": int(row["ratings"]),
        "users": int(row["users"]),
        "movies": int(row["movies"]),
        "first_rated_at": iso(row["first"]),
        "last_rated_at": iso(row["last"]),
    }


def model_card(info: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """The card of the model `info` describes (its model.json, gate included), trained on data profiled as `data`.

    Returns a JSON-able dict; `markdown` holds the same as a page.
    """
    beyond = info["beyond_accuracy"]
    card = {
        "version": info["version"],
        "trained_at": info["trained_at"],
        "ranking_model": info["ranking_model"],
        "rating_model": info["rating_model"],
        "data": {**data, "training_data_version": info.get("training_data_version"), "streamed_rows": info.get("streamed_rows", 0)},
        "evaluation": {
            "held_out_ratings": info["test_rows"],
            "evaluated_users": info["evaluated_users"],
            "metrics": info["metrics"],
            "baselines": info["baselines"],
        },
        "beyond_accuracy": beyond,
        "gate": info.get("gate"),
        "known_limits": list(KNOWN_LIMITS),
    }
    card["markdown"] = _markdown(card, info)
    return card


def _markdown(card: dict[str, Any], info: dict[str, Any]) -> str:
    data, gate = card["data"], card["gate"] or {}
    beyond_rows = [
        {
            "lists": name,
            "catalogue coverage": f"{figures['catalog_coverage']:.1%}",
            "mean popularity (share of users who rated)": f"{figures['mean_popularity']:.1%}",
        }
        for name, figures in (("ours", card["beyond_accuracy"]["model"]), ("most popular", card["beyond_accuracy"]["most_popular"]))
    ]
    lines = [
        f"## Model card: {card['version']}",
        "",
        f"**Ranking:** {card['ranking_model']}. **Star ratings:** {card['rating_model']}. Trained {card['trained_at']}.",
        "",
        "### Data seen",
        "",
        f"- training_ratings version {data['training_data_version']}: {data['ratings']:,} ratings "
        f"({data['streamed_rows']:,} of them streamed rating events) by {data['users']:,} users of {data['movies']:,} movies",
        f"- rated from {data['first_rated_at']} to {data['last_rated_at']}",
        f"- the saved models were fitted on all of them; the figures below on a held-out {info['evaluated_on']['test_fraction']:.0%} "
        f"({card['evaluation']['held_out_ratings']:,} ratings, {card['evaluation']['evaluated_users']:,} users with a rating of 4 or more)",
        "",
        "### Held-out metrics beside the baselines",
        "",
        comparison_markdown(info),
        "",
        "### Beyond accuracy (the evaluated users' top-10 lists)",
        "",
        markdown_table(beyond_rows),
        "",
        f"**Gate:** {gate.get('summary', 'not decided')}",
        "",
        "### Known limits",
        "",
        *(f"- {limit}" for limit in card["known_limits"]),
    ]
    return "\n".join(lines)
