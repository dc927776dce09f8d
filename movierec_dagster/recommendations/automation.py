"""The scoring job, and the sensor that evaluates user_recommendations' automation condition."""

from dagster import AssetsDefinition, AutomationConditionSensorDefinition, DefaultSensorStatus, define_asset_job


def score_recommendations_job(user_recommendations: AssetsDefinition):
    return define_asset_job(
        "score_recommendations",
        selection=[user_recommendations],
        description="Score every user's top-10 unseen movies with the champion model: today's batch.",
    )


def recommendations_automation(user_recommendations: AssetsDefinition) -> AutomationConditionSensorDefinition:
    return AutomationConditionSensorDefinition(
        "recommendations_automation",
        target=[user_recommendations],
        default_status=DefaultSensorStatus.RUNNING,
        description="Makes today's recommendations once after the daily hour and once after every new champion.",
    )
