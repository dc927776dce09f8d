"""Run failures, told to a person: `run_failure_alert` posts each failed run to a webhook.

The webhook (Slack's incoming webhooks, Microsoft Teams' workflows, or any HTTP endpoint that takes
JSON) comes from MOVIEREC_ALERT_WEBHOOK_URL when the definitions are built. With it, the sensor runs
by default; without it, the sensor is there but stopped, and the UI says why. The URL is a secret of
sorts (whoever has it can post): it is never logged.
"""

import json
import urllib.request
from typing import Any

from dagster import DefaultSensorStatus, RunFailureSensorContext, SensorDefinition, run_failure_sensor

ALERT_TIMEOUT_SECONDS = 10


def failure_message(context: RunFailureSensorContext, ui_url: str) -> dict[str, Any]:
    """The alert's JSON: `text` (what chat webhooks show) and the run's fields for other receivers."""
    run = context.dagster_run
    error = context.failure_event.message or "no message"
    link = f"{ui_url.rstrip('/')}/runs/{run.run_id}" if ui_url else run.run_id
    return {
        "text": f"movierec: run of {run.job_name} failed: {error} ({link})",
        "job": run.job_name,
        "run_id": run.run_id,
        "error": error,
        "run_url": link,
    }


def build_run_failure_alert(webhook_url: str, ui_url: str = "") -> SensorDefinition:
    """The sensor, posting to `webhook_url` (running by default when it is set); `ui_url` links the run in the UI."""

    @run_failure_sensor(
        name="run_failure_alert",
        description="Posts every failed run of this code location to MOVIEREC_ALERT_WEBHOOK_URL.",
        default_status=DefaultSensorStatus.RUNNING if webhook_url else DefaultSensorStatus.STOPPED,
    )
    def run_failure_alert(context: RunFailureSensorContext) -> None:
        if not webhook_url:
            context.log.info("MOVIEREC_ALERT_WEBHOOK_URL is not set: nothing to post to.")
            return
        request = urllib.request.Request(
            webhook_url,
            data=json.dumps(failure_message(context, ui_url)).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=ALERT_TIMEOUT_SECONDS) as answer:
            context.log.info(f"Alerted the webhook about run {context.dagster_run.run_id}: HTTP {answer.status}")

    return run_failure_alert
