"""The recommendation sanity check, evaluated where the partition is made."""

from dagster import AssetCheckResult, AssetCheckSpec
from pyspark.sql import DataFrame

from movierec_dagster.model.training import TOP_K
from movierec_dagster.recommendations.scoring import sanity_counts

RECOMMENDATION_SANITY = "recommendation_sanity"

recommendation_sanity_spec = AssetCheckSpec(
    RECOMMENDATION_SANITY,
    asset="user_recommendations",
    description=(
        f"Every user gets {TOP_K} movies (fewer only when fewer are unseen), ranked 1..n without repeats, "
        "none already rated, every predicted rating within 0.5-5.0, every score within 0-1 and never higher "
        "than the score of the rank above."
    ),
)


def recommendation_sanity(recommendations: DataFrame, ratings: DataFrame) -> AssetCheckResult:
    counts = sanity_counts(recommendations, ratings, TOP_K)
    problems = {name: value for name, value in counts.items() if name not in ("users", "users_with_recommendations")}
    return AssetCheckResult(
        check_name=RECOMMENDATION_SANITY,
        passed=not any(problems.values()),
        metadata=counts,
        description=", ".join(f"{name}: {value}" for name, value in problems.items() if value) or "all sane",
    )
