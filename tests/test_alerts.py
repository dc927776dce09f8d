"""A failed run is posted to the webhook named by MOVIEREC_ALERT_WEBHOOK_URL; without one the sensor stays stopped."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from dagster import DagsterEventType, DagsterInstance, DefaultSensorStatus, build_run_status_sensor_context, job, op

from movierec_dagster.alerts import build_run_failure_alert
from movierec_dagster.definitions import build_definitions


@op
def breaks() -> None:
    raise ValueError("the lake is unreachable")


@job
def nightly() -> None:
    breaks()


def _failure_context(instance: DagsterInstance):
    result = nightly.execute_in_process(instance=instance, raise_on_error=False)
    failure = next(event for event in result.all_events if event.event_type == DagsterEventType.RUN_FAILURE)
    run = instance.get_run_by_id(result.run_id)
    return build_run_status_sensor_context("run_failure_alert", failure, instance, run).for_run_failure()


class _Webhook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:
        self.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_a_failed_run_is_posted_to_the_webhook():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        webhook = f"http://127.0.0.1:{server.server_address[1]}/hook"
        sensor = build_run_failure_alert(webhook, "http://dagster.example:3000")
        with DagsterInstance.ephemeral() as instance:
            context = _failure_context(instance)
            sensor(context)
    finally:
        server.shutdown()
    (alert,) = _Webhook.received
    assert alert["job"] == "nightly" and alert["run_id"] == context.dagster_run.run_id
    assert alert["run_url"] == f"http://dagster.example:3000/runs/{context.dagster_run.run_id}"
    assert alert["text"].startswith("movierec: run of nightly failed:") and "breaks" in alert["error"]
    assert sensor.default_status == DefaultSensorStatus.RUNNING


def test_without_a_webhook_the_alert_is_stopped_and_posts_nothing(home):
    defs = build_definitions("local", {"MOVIEREC_HOME": str(home)})
    sensor = defs.get_repository_def().get_sensor_def("run_failure_alert")
    assert sensor.default_status == DefaultSensorStatus.STOPPED
    with DagsterInstance.ephemeral() as instance:
        sensor(_failure_context(instance))  # nothing to post to: no error
