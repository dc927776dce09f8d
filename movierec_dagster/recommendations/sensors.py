"""New recommendations follow every successful retrain."""

from dagster import (
    DagsterRunStatus,
    RunRequest,
    RunStatusSensorContext,
    SensorDefinition,
    run_status_sensor,
)

from movierec_dagster.model.schedules import ScheduleSettings, retrain_model
from movierec_dagster.recommendations.schedules import today_partition


def recommendations_after_retrain(job, settings: ScheduleSettings) -> SensorDefinition:
    @run_status_sensor(
        name="recommendations_after_retrain",
        run_status=DagsterRunStatus.SUCCESS,
        monitored_jobs=[retrain_model],
        request_job=job,
        description="After a successful retrain_model run (the gate passed), rescore today's recommendations.",
    )
    def _recommendations_after_retrain(context: RunStatusSensorContext) -> RunRequest:
        partition = today_partition(settings.timezone)
        return RunRequest(run_key=f"after-{context.dagster_run.run_id}", partition_key=partition)

    return _recommendations_after_retrain
