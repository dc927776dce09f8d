"""`make demo`: run the pipeline locally into $MOVIEREC_HOME and print what it made.

The runs go into the same Dagster instance (`$DAGSTER_HOME`) that `make dev`
opens, so the UI shows them afterwards.
"""

import contextlib
import os
import sys
import threading
import time

from dagster import DagsterEventType, DagsterInstance, Definitions, ExecuteInProcessResult

from movierec_dagster.dashboard.summary import print_dashboard_summary
from movierec_dagster.definitions import build_definitions
from movierec_dagster.home import movierec_home
from movierec_dagster.metadata import ROW_COUNT
from movierec_dagster.model.assets import MODEL_GATE
from movierec_dagster.recommendations.summary import print_summary
from movierec_dagster.resources import SparkResource
from movierec_dagster.demo_stream import land_burst, print_ingest_summary

ETL_TABLES = ("movies", "ratings", "tags", "links")
BURST_EVENTS = 5_000
BURST_MALFORMED_SHARE = 0.05
# Show the steps' own progress (INFO) on the console, not Dagster's per-event DEBUG lines.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def _failure_messages(result: ExecuteInProcessResult) -> list[str]:
    messages = []
    for event in result.all_events:
        if event.event_type == DagsterEventType.STEP_FAILURE:
            failure = event.step_failure_data
            if failure.user_failure_data and failure.user_failure_data.description:
                reason = failure.user_failure_data.description
            else:
                error = failure.error
                while error.cause is not None:
                    error = error.cause
                reason = error.message.strip()
            messages.append(f"{event.step_key}: {reason}")
        elif event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION and not event.event_specific_data.passed:
            evaluation = event.event_specific_data
            messages.append(f"check {evaluation.check_name} on {evaluation.asset_key.to_user_string()} failed")
    return messages


def run_job(defs: Definitions, instance: DagsterInstance, name: str) -> ExecuteInProcessResult:
    """Run a job; on failure print why and exit."""
    started = time.perf_counter()
    print(f"\n== {name}", flush=True)
    result = defs.resolve_job_def(name).execute_in_process(
        instance=instance, raise_on_error=False, run_config=QUIET_RUN_CONFIG
    )
    if not result.success:
        print(f"\nThe {name} run failed (run id {result.run_id}):", file=sys.stderr)
        for message in _failure_messages(result):
            print(f"  - {message}", file=sys.stderr)
        print("Open `make dev` to see the whole run log.", file=sys.stderr)
        sys.exit(1)
    print(f"   done in {time.perf_counter() - started:.1f} s (run {result.run_id})")
    return result


def print_gate_outcome(result: ExecuteInProcessResult) -> None:
    """The gate's decision on the run's candidate: promoted, or rejected with its reasons (a rejection is no failure)."""
    for event in result.all_events:
        if event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION and event.event_specific_data.check_name == MODEL_GATE:
            evaluation = event.event_specific_data
            outcome = "now the champion" if evaluation.passed else "the champion stays"
            print(f"   {evaluation.description} ({outcome})")


def print_etl_counts(result: ExecuteInProcessResult) -> None:
    """The tables' counts as the ETL run recorded them (its materializations' metadata)."""
    metadata = {
        event.asset_key.to_user_string(): event.materialization.metadata
        for event in result.get_asset_materialization_events()
    }
    print("\nMovieLens tables")
    for table in ETL_TABLES:
        rows, rejected = metadata[table][ROW_COUNT].value, metadata[table]["rejected_rows"].value
        print(f"   {table:<8} {rows:>9,} rows   {rejected:>4} rejected")


def _start_spark_early(spark: SparkResource) -> None:
    """Start Spark's JVM (about 5 s) while Dagster opens its instance and starts the first run.

    The first step then finds the session there. A failure is left to that step, which reports it.
    """

    def start() -> None:
        with contextlib.suppress(Exception):
            spark.session()

    threading.Thread(target=start, name="spark-start", daemon=True).start()


def main() -> None:
    home = movierec_home(dict(os.environ))
    os.environ.setdefault("DAGSTER_HOME", str(home / "dagster_home"))
    os.makedirs(os.environ["DAGSTER_HOME"], exist_ok=True)
    defs = build_definitions()
    print(f"movierec demo: state in {home}; MovieLens from {defs.resources['movielens'].location}")
    started = time.perf_counter()
    _start_spark_early(defs.resources["spark"])
    with DagsterInstance.get() as instance:
        print_etl_counts(run_job(defs, instance, "movielens_etl"))
        print(f"\n== a burst of {BURST_EVENTS:,} generated rating events")
        land_burst(
            defs.resources["event_source"].folder, lake=defs.resources["lake"], count=BURST_EVENTS, malformed=BURST_MALFORMED_SHARE
        )
        print_ingest_summary(run_job(defs, instance, "ingest_rating_events"))
        # A candidate that fails the gate is kept but not promoted; scoring then uses the champion.
        print_gate_outcome(run_job(defs, instance, "retrain_model"))
        run_job(defs, instance, "score_recommendations")
    lake = defs.resources["lake"]
    print_summary(lake)
    print_dashboard_summary(lake.uri())
    print(
        f"\nWhole pipeline: {time.perf_counter() - started:.1f} s. `make dev` shows these runs in the Dagster UI, "
        "`make mlflow` the retrain's record and model card in MLflow."
    )


if __name__ == "__main__":
    main()
