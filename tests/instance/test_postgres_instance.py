"""infra/azure/dagster.yaml on a throwaway PostgreSQL: its config loads, and runs, event logs and schedules persist there."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import psycopg2
import pytest
import yaml
from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    Definitions,
    MaterializeResult,
    ScheduleDefinition,
    asset,
    define_asset_job,
    materialize,
)
from dagster._config import process_config
from dagster._config.field import resolve_to_config_type
from dagster._core.scheduler.instigation import InstigatorStatus, InstigatorType, TickData, TickStatus
from dagster._core.test_utils import in_process_test_workspace
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster_azure.blob.compute_log_manager import AzureBlobComputeLogManager
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from tests.instance.conftest import PostgresServer

REPO = Path(__file__).resolve().parents[2]
AZURE_YAML = REPO / "infra" / "azure" / "dagster.yaml"
LOCAL_YAML = REPO / "infra" / "local" / "dagster.yaml"


@asset
def numbers() -> list[int]:
    return [1, 2, 3]


@asset
def total(numbers: list[int]) -> MaterializeResult:
    return MaterializeResult(value=sum(numbers), metadata={"total": sum(numbers)})


numbers_job = define_asset_job("numbers_job", selection=[numbers, total])
defs = Definitions(
    assets=[numbers, total],
    jobs=[numbers_job],
    schedules=[ScheduleDefinition(name="nightly_numbers", job=numbers_job, cron_schedule="0 3 * * *")],
)


@pytest.fixture
def azure_env(postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> PostgresServer:
    """The variables infra/azure/dagster.yaml reads, pointed at the throwaway server and a made-up storage account."""
    for name, value in postgres_server.dagster_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT", "movierecteststorage")
    monkeypatch.setenv("MOVIEREC_COMPUTE_LOG_CONTAINER", "compute-logs")
    return postgres_server


def _home(tmp_path: Path, *, local_compute_logs: bool, socket_dir: str | None = None) -> Path:
    """A DAGSTER_HOME holding infra/azure/dagster.yaml, as is or with only compute_logs swapped for local files.

    With `socket_dir`, the storage connects over the server's Unix socket instead (libpq's `host`
    parameter; `sslmode` does not apply there). For tests that run Spark steps in threads beside the
    instance's connections: psycopg2-binary carries its own OpenSSL, and its TLS handshakes beside
    the process's other OpenSSL copies can crash it (a segfault seen in CI; psycopg/psycopg2#543).
    """
    home = tmp_path / "dagster_home"
    home.mkdir()
    if not local_compute_logs:
        assert socket_dir is None, "the file as is speaks TLS over TCP"
        shutil.copy(AZURE_YAML, home / "dagster.yaml")
        return home
    # Running a step uploads its logs to Azure Blob Storage, which these tests have no account for: the copy that runs
    # jobs keeps the file's storage, run queue and telemetry, and writes compute logs under the home instead.
    config = yaml.safe_load(AZURE_YAML.read_text())
    config["compute_logs"] = {
        "module": "dagster._core.storage.local_compute_log_manager",
        "class": "LocalComputeLogManager",
        "config": {"base_dir": str(home / "compute_logs")},
    }
    if socket_dir is not None:
        config["storage"]["postgres"]["postgres_db"]["params"]["host"] = socket_dir
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


def _tables(server: PostgresServer) -> set[str]:
    with server.connect() as connection, connection.cursor() as cursor:
        cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        return {name for (name,) in cursor.fetchall()}


def test_the_file_as_is_builds_a_postgres_instance_with_azure_compute_logs(azure_env: PostgresServer, tmp_path: Path):
    with DagsterInstance.from_config(str(_home(tmp_path, local_compute_logs=False))) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        # Built from the file's compute_logs section; nothing reaches Azure until a step's logs are uploaded.
        assert isinstance(instance.compute_log_manager, AzureBlobComputeLogManager)
        assert not instance.telemetry_enabled

        concurrency = instance.get_concurrency_config()
        assert concurrency.pool_config.default_pool_limit == 1
        assert concurrency.run_queue_config is not None
        assert [dict(limit) for limit in concurrency.run_queue_config.tag_concurrency_limits] == [
            {"key": "movierec/concurrency", "value": "rating_events_ingest", "limit": 1}
        ]

    # The storage created its tables in the server's database.
    assert {"runs", "event_logs", "jobs", "job_ticks", "instigators", "alembic_version"} <= _tables(azure_env)


def test_the_compute_log_section_resolves_from_the_environment():
    section = yaml.safe_load(AZURE_YAML.read_text())["compute_logs"]
    assert (section["module"], section["class"]) == ("dagster_azure.blob.compute_log_manager", "AzureBlobComputeLogManager")
    env = {"AZURE_STORAGE_ACCOUNT": "movierecteststorage", "MOVIEREC_COMPUTE_LOG_CONTAINER": "compute-logs"}
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        result = process_config(resolve_to_config_type(AzureBlobComputeLogManager.config_type()), section["config"])
    assert result.success, result.errors
    assert result.value["storage_account"] == "movierecteststorage"
    assert result.value["container"] == "compute-logs"
    assert result.value["default_azure_credential"] == {}
    assert not result.value.get("access_key_or_sas_token") and not result.value.get("secret_credential")


def test_the_run_queue_matches_the_local_instance():
    assert yaml.safe_load(AZURE_YAML.read_text())["concurrency"] == yaml.safe_load(LOCAL_YAML.read_text())["concurrency"]


def test_sslmode_require_reaches_a_tls_only_server(azure_env: PostgresServer):
    """The server takes TLS connections only, so every instance test that connected went through `sslmode: require`."""
    assert yaml.safe_load(AZURE_YAML.read_text())["storage"]["postgres"]["postgres_db"]["params"] == {"sslmode": "require"}
    with pytest.raises(psycopg2.OperationalError, match="no encryption"):
        psycopg2.connect(
            host=azure_env.host, port=azure_env.port, user=azure_env.user, password=azure_env.password,
            dbname=azure_env.db_name, sslmode="disable",
        )


def test_a_run_and_its_events_persist_in_postgres(azure_env: PostgresServer, tmp_path: Path):
    home = _home(tmp_path, local_compute_logs=True)
    with DagsterInstance.from_config(str(home)) as instance:
        result = materialize([numbers, total], instance=instance)
        assert result.success
        run_id = result.run_id

    # A new instance object on the same database reads back what the first one wrote.
    with DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.status == DagsterRunStatus.SUCCESS

        records = instance.get_records_for_run(run_id, limit=1000).records
        events = [record.event_log_entry.dagster_event for record in records if record.event_log_entry.is_dagster_event]
        succeeded = {event.step_key for event in events if event.event_type == DagsterEventType.STEP_SUCCESS}
        assert succeeded == {"numbers", "total"}
        assert DagsterEventType.RUN_SUCCESS in {event.event_type for event in events}
        materialized = {
            event.asset_key for event in events if event.event_type == DagsterEventType.ASSET_MATERIALIZATION
        }
        assert materialized == {AssetKey("numbers"), AssetKey("total")}

        latest = instance.get_latest_materialization_event(AssetKey("total"))
        assert latest is not None and latest.run_id == run_id
        assert latest.asset_materialization.metadata["total"].value == 6

    with azure_env.connect() as connection, connection.cursor() as cursor:
        cursor.execute("SELECT status FROM runs WHERE run_id = %s", [run_id])
        assert cursor.fetchall() == [("SUCCESS",)]
        cursor.execute("SELECT count(*) FROM event_logs WHERE run_id = %s", [run_id])
        assert cursor.fetchone()[0] == len(records)


def test_schedule_state_and_ticks_persist_in_postgres(azure_env: PostgresServer, tmp_path: Path):
    home = _home(tmp_path, local_compute_logs=True)
    origin = LoadableTargetOrigin(module_name=__name__, attribute="defs", working_directory=str(REPO))
    with DagsterInstance.from_config(str(home)) as instance, in_process_test_workspace(instance, origin) as workspace:
        (location,) = workspace.code_locations
        (repository,) = location.get_repositories().values()
        schedule = repository.get_schedule("nightly_numbers")
        origin_id, selector_id = schedule.get_remote_origin_id(), schedule.selector_id
        instance.start_schedule(schedule)
        instance.create_tick(
            TickData(
                instigator_origin_id=origin_id,
                instigator_name="nightly_numbers",
                instigator_type=InstigatorType.SCHEDULE,
                status=TickStatus.SKIPPED,
                timestamp=time.time(),
                selector_id=selector_id,
                skip_reason="test tick",
            )
        )

    with DagsterInstance.from_config(str(home)) as instance:
        state = instance.get_instigator_state(origin_id, selector_id)
        assert state is not None
        assert state.instigator_type == InstigatorType.SCHEDULE and state.status == InstigatorStatus.RUNNING
        assert state.instigator_data.cron_schedule == "0 3 * * *"
        ticks = instance.get_ticks(origin_id, selector_id)
        assert [(tick.status, tick.skip_reason) for tick in ticks] == [(TickStatus.SKIPPED, "test tick")]

    with azure_env.connect() as connection, connection.cursor() as cursor:
        cursor.execute("SELECT status FROM instigators WHERE selector_id = %s", [selector_id])
        assert cursor.fetchall() == [("RUNNING",)]
