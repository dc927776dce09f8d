"""The retrain job, its nightly schedule, and the schedule settings both domains share."""

from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dagster import AssetSelection, DefaultScheduleStatus, ScheduleDefinition, define_asset_job

from movierec_dagster.model.assets import als_model, training_ratings

DEFAULT_TIMEZONE = "Australia/Victoria"
DEFAULT_HOUR = 22

retrain_model = define_asset_job(
    "retrain_model",
    selection=AssetSelection.assets(training_ratings, als_model),
    description=(
        "Rebuild training_ratings, train and evaluate a candidate (als_model), and make it the champion "
        "(champion_model) if it passes the gate."
    ),
)


@dataclass(frozen=True)
class ScheduleSettings:
    """When the nightly work runs: MOVIEREC_SCHEDULE_TIMEZONE, MOVIEREC_RETRAIN_HOUR, MOVIEREC_RECOMMEND_HOUR."""

    timezone: str = DEFAULT_TIMEZONE
    retrain_hour: int = DEFAULT_HOUR
    recommend_hour: int = DEFAULT_HOUR

    @classmethod
    def from_environ(cls, environ: dict[str, str]) -> "ScheduleSettings":
        timezone = environ.get("MOVIEREC_SCHEDULE_TIMEZONE", "").strip() or DEFAULT_TIMEZONE
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"MOVIEREC_SCHEDULE_TIMEZONE={timezone!r} is not an IANA time zone (e.g. Europe/Paris).") from error
        return cls(
            timezone=timezone,
            retrain_hour=_hour(environ, "MOVIEREC_RETRAIN_HOUR"),
            recommend_hour=_hour(environ, "MOVIEREC_RECOMMEND_HOUR"),
        )


def _hour(environ: dict[str, str], name: str) -> int:
    text = environ.get(name, "").strip()
    if not text:
        return DEFAULT_HOUR
    if not text.isdigit() or not 0 <= int(text) <= 23:
        raise ValueError(f"{name}={text!r} is not an hour of the day (0-23).")
    return int(text)


def nightly_retrain(settings: ScheduleSettings) -> ScheduleDefinition:
    return ScheduleDefinition(
        name="nightly_retrain",
        job=retrain_model,
        cron_schedule=f"0 {settings.retrain_hour} * * *",
        execution_timezone=settings.timezone,
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"Retrain every day at {settings.retrain_hour}:00 {settings.timezone}.",
    )
