"""Schedules and the after-retrain sensor, through Dagster's test contexts; settings from the environment."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from dagster import DagsterInstance, build_run_status_sensor_context, build_schedule_context

from movierec_dagster.model.definitions import build_defs as build_model_defs
from movierec_dagster.model.schedules import ScheduleSettings
from movierec_dagster.recommendations.definitions import build_defs as build_recommendation_defs
from movierec_dagster.recommendations.schedules import today_partition


def _schedule(defs, name):
    """A domain's schedule, without resolving the domain (its resources come from the top-level definitions)."""
    return next(schedule for schedule in defs.schedules if schedule.name == name)


def test_settings_default_to_22_melbourne_and_reject_nonsense():
    assert ScheduleSettings.from_environ({}) == ScheduleSettings("Australia/Victoria", 22, 22)
    custom = ScheduleSettings.from_environ(
        {"MOVIEREC_SCHEDULE_TIMEZONE": "Europe/Paris", "MOVIEREC_RETRAIN_HOUR": "3", "MOVIEREC_RECOMMEND_HOUR": "5"}
    )
    assert custom == ScheduleSettings("Europe/Paris", 3, 5)
    with pytest.raises(ValueError, match="MOVIEREC_RETRAIN_HOUR"):
        ScheduleSettings.from_environ({"MOVIEREC_RETRAIN_HOUR": "25"})
    with pytest.raises(ValueError, match="IANA"):
        ScheduleSettings.from_environ({"MOVIEREC_SCHEDULE_TIMEZONE": "Mars/Olympus"})


def test_nightly_retrain_schedule_follows_the_settings():
    defs = build_model_defs({"MOVIEREC_SCHEDULE_TIMEZONE": "Europe/Paris", "MOVIEREC_RETRAIN_HOUR": "3"})
    schedule = _schedule(defs, "nightly_retrain")
    assert schedule.cron_schedule == "0 3 * * *"
    assert schedule.execution_timezone == "Europe/Paris"
    assert schedule.job_name == "retrain_model"


def test_daily_recommendations_scores_the_local_day():
    defs = build_recommendation_defs({})
    schedule = _schedule(defs, "daily_recommendations")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 22 * * *", "Australia/Victoria")
    # 22:00 in Melbourne on 1 March is still 1 March there (11:00 UTC).
    tick = datetime(2025, 3, 1, 22, 0, tzinfo=ZoneInfo("Australia/Victoria"))
    request = schedule(build_schedule_context(scheduled_execution_time=tick))
    assert request.partition_key == "2025-03-01"
    assert today_partition("Australia/Victoria", datetime(2025, 3, 1, 14, 0, tzinfo=ZoneInfo("UTC"))) == "2025-03-02"


def test_a_successful_retrain_requests_todays_recommendations():
    from movierec_dagster.definitions import build_definitions

    defs = build_definitions("local", {"MOVIEREC_HOME": "/tmp/unused-movierec-home"})
    sensor = defs.resolve_sensor_def("recommendations_after_retrain")
    # Today where the schedules run (Melbourne by default), which is not always today in UTC; read
    # before and after, as the day may turn during the test.
    melbourne = ZoneInfo("Australia/Victoria")
    days = {f"{datetime.now(melbourne):%Y-%m-%d}"}
    with DagsterInstance.ephemeral() as instance:
        run = instance.create_run_for_job(defs.resolve_job_def("retrain_model"))
        event = _success_event(instance, run)
        context = build_run_status_sensor_context(
            sensor_name=sensor.name, dagster_event=event, dagster_instance=instance, dagster_run=run
        )
        request = sensor(context)
    days.add(f"{datetime.now(melbourne):%Y-%m-%d}")
    assert request.run_key == f"after-{run.run_id}"
    assert request.partition_key in days


def _success_event(instance, run):
    from dagster import DagsterEvent, DagsterEventType

    # The context wants the event that fired the sensor: a bare RUN_SUCCESS event of the run's job.
    return DagsterEvent(event_type_value=DagsterEventType.RUN_SUCCESS.value, job_name=run.job_name)
