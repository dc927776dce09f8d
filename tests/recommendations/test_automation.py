"""What runs by itself: the nightly retrain, the sensors, and today's recommendations once per champion and day."""

import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from dagster import (
    AssetMaterialization,
    AssetObservation,
    DagsterInstance,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    evaluate_automation_conditions,
)

from movierec_dagster.definitions import build_definitions
from movierec_dagster.model.definitions import build_defs as build_model_defs
from movierec_dagster.model.schedules import ScheduleSettings
from movierec_dagster.recommendations.assets import local_day

README = Path(__file__).resolve().parents[2] / "README.md"
MELBOURNE = ZoneInfo("Australia/Victoria")


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


def test_a_batch_is_for_the_local_day():
    # 14:00 UTC on 1 March is already 2 March in Melbourne.
    assert local_day("Australia/Victoria", datetime(2025, 3, 1, 14, 0, tzinfo=ZoneInfo("UTC"))) == "2025-03-02"
    assert local_day("Europe/Paris", datetime(2025, 3, 1, 14, 0, tzinfo=ZoneInfo("UTC"))) == "2025-03-01"


def _readme_automation() -> dict[str, bool]:
    """The README's automation table: name -> on by default."""
    section = README.read_text().split("### Automation", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| [^|]+ \| (yes|no) \|", section, flags=re.MULTILINE)
    return {name: on == "yes" for name, on in rows}


def test_what_runs_by_default_is_what_the_readme_says(tmp_path):
    defs = build_definitions("local", {"MOVIEREC_HOME": str(tmp_path)})
    repository = defs.get_repository_def()
    running = {s.name: s.default_status == DefaultScheduleStatus.RUNNING for s in repository.schedule_defs}
    running |= {s.name: s.default_status == DefaultSensorStatus.RUNNING for s in repository.sensor_defs}
    documented = _readme_automation()
    assert documented == running
    # The alert runs once it has a webhook to post to (tests/test_alerts.py); everything else runs by default.
    assert all(on for name, on in documented.items() if name != "run_failure_alert"), "the README promises it"


def _requested(defs, instance, at: datetime, cursor) -> tuple[set[str], object]:
    """The assets one evaluation of the automation conditions at `at` requests, and the cursor for the next."""
    result = evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=at, cursor=cursor)
    return {r.key.to_user_string() for r in result.results if r.true_subset.size}, result.cursor


def test_todays_recommendations_are_made_once_per_champion_and_day(tmp_path):
    defs = build_definitions("local", {"MOVIEREC_HOME": str(tmp_path)})
    day = datetime(2025, 3, 1, tzinfo=MELBOURNE)
    with DagsterInstance.ephemeral() as instance:
        requested, cursor = _requested(defs, instance, day.replace(hour=10), None)
        assert requested == set()
        instance.report_runless_asset_event(AssetMaterialization("training_ratings"))
        requested, cursor = _requested(defs, instance, day.replace(hour=21), cursor)
        assert requested == set(), "before the day's hour, without a new champion: nothing"

        # The day's hour passes: today's batch, once (no champion yet: the popularity baseline for everyone).
        requested, cursor = _requested(defs, instance, day.replace(hour=22, minute=1), cursor)
        assert requested == {"user_recommendations"}
        requested, cursor = _requested(defs, instance, day.replace(hour=22, minute=5), cursor)
        assert requested == set()

        # A new champion: the batch again, once.
        instance.report_runless_asset_event(AssetMaterialization("champion_model"))
        requested, cursor = _requested(defs, instance, day.replace(hour=22, minute=10), cursor)
        assert requested == {"user_recommendations"}
        requested, cursor = _requested(defs, instance, day.replace(hour=22, minute=15), cursor)
        assert requested == set()

        # A rejected candidate (the champion observed, not materialized) and new ingests change nothing.
        instance.report_runless_asset_event(AssetObservation("champion_model", metadata={"kept": "v1"}))
        instance.report_runless_asset_event(AssetMaterialization("rating_events"))
        requested, cursor = _requested(defs, instance, day.replace(hour=23), cursor)
        assert requested == set()

        # The next day's hour.
        requested, cursor = _requested(defs, instance, day.replace(day=2, hour=22, minute=1), cursor)
        assert requested == {"user_recommendations"}


def test_there_are_no_past_days_to_backfill(tmp_path):
    defs = build_definitions("local", {"MOVIEREC_HOME": str(tmp_path)})
    assert defs.resolve_assets_def("user_recommendations").partitions_def is None
    job = defs.resolve_job_def("score_recommendations")
    assert job.partitions_def is None
    with DagsterInstance.ephemeral() as instance, pytest.raises(Exception, match="no PartitionsDefinition"):
        job.execute_in_process(instance=instance, partition_key="2025-01-01")
