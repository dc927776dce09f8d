"""MLflow as the model's record: a retrain's run, its registered model version and the gate's aliases, on a real SQLite store."""

import json
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from mlflow.models import Model
from mlflow.tracking import MlflowClient

from movierec_dagster.model import tracking
from movierec_dagster.model.tracking import ModelTracking, TrackingError, TrackingUnavailableError

# MLflow's own settings for every test here: no telemetry, nothing under ~/ or in the repository.
QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    """One SQLite store for the module (creating its tables takes seconds); each test uses its own names in it."""
    root = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in QUIET.items():
            patch.setenv(name, value)
        patch.setenv("HOME", str(root / "home"))
        patch.setenv("MLFLOW_TRACKING_URI", tracking.default_tracking_uri(root))
        patch.chdir(root)
        MlflowClient(tracking_uri=tracking.default_tracking_uri(root)).search_experiments()  # creates the tables
        yield root


@pytest.fixture
def model_tracking(store: Path, monkeypatch: pytest.MonkeyPatch) -> ModelTracking:
    """The resource on the module's store, with an experiment and a registered model of this test's own."""
    for name, value in QUIET.items():
        monkeypatch.setenv(name, value)
    name = f"movierec-{uuid.uuid4().hex[:8]}"
    return ModelTracking(
        tracking_uri=tracking.default_tracking_uri(store),
        registered_model=name,
        experiment=name,
        artifact_location=(store / "lake" / tracking.ARTIFACTS).as_uri(),
    )


def _client(model_tracking: ModelTracking) -> MlflowClient:
    return MlflowClient(tracking_uri=model_tracking.tracking_uri)


def _info(version: str, passed: bool) -> dict:
    """A model.json as als_model writes it (the keys tracking reads, and some it only stores)."""
    return {
        "version": version,
        "trained_at": "2026-12-07T08:00:00+00:00",
        "training_rows": 100_836,
        "params": {"rating_rank": 10, "rating_reg_param": 0.1, "alpha": 20.0, "num_blocks": 1, "nested": {"x": [1, 2]}},
        "metrics": {"rmse": 0.87, "mae": 0.67, "ndcg_at_10": 0.31, "precision_at_10": 0.12},
        "baselines": {"bias": {"rmse": 0.88, "mae": 0.68}, "most_popular": {"ndcg_at_10": 0.2, "precision_at_10": 0.08}},
        "residual_als": None,
        "gate": {
            "passed": passed,
            "reasons": [] if passed else ["RMSE 0.870 worse than the champion's 0.850 by more than 0.01"],
            "summary": "Promoted." if passed else "Rejected: RMSE.",
        },
    }


CARD = {
    "title": "movierec ALS",
    "figures": {"users": 610, "movies": 9_742, "coverage": 0.25, "flag": True, "note": "text", "nan": float("nan")},
    "evaluation": {"held_out_ratings": 20_000, "metrics": {"rmse": 0.87}, "baselines": {"bias": {"rmse": 0.88}}},
    "gate": {"passed": True, "reasons": []},
    "markdown": "# Model card\n\nIt ranks movies.",
}


def _record(model_tracking: ModelTracking, version: str, passed: bool, data_version: int | None = 7) -> dict:
    return model_tracking.record_retrain(
        _info(version, passed),
        CARD,
        model_uri=f"file:///lake/models/als/{version}",
        training_data_version=data_version,
        passed=passed,
    )


def test_a_retrain_is_recorded_as_a_run_and_a_model_version(model_tracking: ModelTracking, store: Path, tmp_path: Path):
    result = _record(model_tracking, "20261207T080000Z-aaaaaa", passed=True)
    assert set(result) == {"run_id", "run_url", "model_version", "experiment_id"}
    assert result["run_url"] is None  # a local store has no UI address of its own
    assert result["model_version"] == "1"

    client = _client(model_tracking)
    run = client.get_run(result["run_id"])
    assert run.info.run_name == "20261207T080000Z-aaaaaa"
    assert run.info.status == "FINISHED"
    assert run.info.experiment_id == result["experiment_id"]
    assert run.data.params == {
        "rating_rank": "10", "rating_reg_param": "0.1", "alpha": "20.0", "num_blocks": "1", "nested.x": "[1, 2]"
    }
    assert run.data.metrics == {
        "rmse": 0.87, "mae": 0.67, "ndcg_at_10": 0.31, "precision_at_10": 0.12,
        "baseline_bias_rmse": 0.88, "baseline_bias_mae": 0.68,
        "baseline_most_popular_ndcg_at_10": 0.2, "baseline_most_popular_precision_at_10": 0.08,
        "card_figures_users": 610.0, "card_figures_movies": 9742.0, "card_figures_coverage": 0.25,
        "card_evaluation_held_out_ratings": 20000.0,  # the card's copies of the metrics and baselines are not repeated
    }
    tags = run.data.tags
    assert tags[tracking.VERSION_TAG] == "20261207T080000Z-aaaaaa"
    assert tags[tracking.GATE_PASSED_TAG] == "true"
    assert tags[tracking.GATE_SUMMARY_TAG] == "Promoted."
    assert tags[tracking.GATE_REASONS_TAG] == "none"
    assert tags[tracking.TRAINING_DATA_TAG] == "7"
    assert tags["mlflow.note.content"] == CARD["markdown"]
    head = subprocess.run(["git", "-C", str(Path(tracking.__file__).parent), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:  # this checkout is a git repository: its commit is recorded
        assert tags[tracking.CODE_COMMIT_TAG] == tags[tracking.GIT_COMMIT_TAG] == head.stdout.strip()

    # The artifacts, in the experiment's artifact location (the lake's mlflow/ folder locally).
    experiment = client.get_experiment(result["experiment_id"])
    assert experiment.artifact_location == model_tracking.artifact_location
    artifacts = store / "lake" / tracking.ARTIFACTS / result["run_id"] / "artifacts"
    assert sorted(path.name for path in artifacts.iterdir()) == ["model", "model.json", "model_card.json", "model_card.md"]
    assert sorted(path.name for path in (artifacts / "model").iterdir()) == ["MLmodel"]  # a descriptor: no weights, no code
    assert json.loads((artifacts / "model.json").read_text()) == json.loads(json.dumps(_info("20261207T080000Z-aaaaaa", True)))
    card = json.loads((artifacts / "model_card.json").read_text())
    assert card["title"] == "movierec ALS" and "markdown" not in card
    assert (artifacts / "model_card.md").read_text() == CARD["markdown"]

    # The registered model version: the run's model/ as its source (where mlflow.register_model("runs:/<run>/model")
    # would point it), the run, the lake's version name.
    version = client.get_model_version(model_tracking.registered_model, "1")
    assert version.source == f"{run.info.artifact_uri}/model"
    assert version.source == (artifacts / "model").as_uri()
    assert version.run_id == result["run_id"]
    # What a registry downloads from that source: an MLflow model whose signature has inputs and outputs
    # (Unity Catalog refuses one without), naming the version's folder in the lake.
    downloaded = client.download_artifacts(result["run_id"], "model", str(tmp_path))
    mlmodel = Model.load(downloaded)
    assert mlmodel.signature.inputs.to_dict() == [{"type": "long", "name": "user_id", "required": True}]
    assert [(spec["name"], spec["type"]) for spec in mlmodel.signature.outputs.to_dict()] == [
        ("movie_id", "long"), ("rank", "long"), ("score", "double"), ("predicted_rating", "double")
    ]
    assert mlmodel.metadata == {
        tracking.LAKE_URI_METADATA: "file:///lake/models/als/20261207T080000Z-aaaaaa",
        tracking.VERSION_TAG: "20261207T080000Z-aaaaaa",
    }
    assert mlmodel.run_id == result["run_id"]
    assert mlmodel.flavors == {}
    assert version.tags == {tracking.VERSION_TAG: "20261207T080000Z-aaaaaa"}
    assert {alias: str(number) for alias, number in client.get_registered_model(model_tracking.registered_model).aliases.items()} == {
        "champion": "1", "challenger": "1"
    }


def test_challenger_moves_on_every_record_and_champion_only_when_passed(model_tracking: ModelTracking):
    client = _client(model_tracking)
    assert model_tracking.champion_version() is None  # no registered model yet

    def aliases() -> dict:
        return {alias: str(number) for alias, number in client.get_registered_model(model_tracking.registered_model).aliases.items()}

    _record(model_tracking, "v1", passed=False)  # the very first candidate rejected: no champion at all
    assert aliases() == {"challenger": "1"}
    assert model_tracking.champion_version() is None

    _record(model_tracking, "v2", passed=True)
    assert aliases() == {"challenger": "2", "champion": "2"}
    assert model_tracking.champion_version() == "v2"

    rejected = _record(model_tracking, "v3", passed=False, data_version=None)
    assert aliases() == {"challenger": "3", "champion": "2"}
    assert model_tracking.champion_version() == "v2"
    tags = client.get_run(rejected["run_id"]).data.tags
    assert tags[tracking.GATE_PASSED_TAG] == "false"
    assert tags[tracking.GATE_REASONS_TAG] == "RMSE 0.870 worse than the champion's 0.850 by more than 0.01"
    assert tracking.TRAINING_DATA_TAG not in tags

    # The lake's pointer is what serves; a retrain puts the alias back in step when it was moved by hand.
    client.set_registered_model_alias(model_tracking.registered_model, "champion", "1")
    assert model_tracking.champion_version() == "v1"
    assert model_tracking.align_champion("v2") == "2"
    assert model_tracking.champion_version() == "v2"
    assert model_tracking.align_champion("v2") is None  # already in step
    assert model_tracking.align_champion("never-registered") is None
    assert model_tracking.align_champion(None) is None  # nothing promoted in the lake: the alias is left alone
    assert aliases() == {"challenger": "3", "champion": "2"}


def test_align_champion_without_a_registered_model_or_alias(model_tracking: ModelTracking):
    assert model_tracking.align_champion("v1") is None
    assert model_tracking.champion_version() is None
    _record(model_tracking, "v1", passed=False)
    assert model_tracking.champion_version() is None
    assert model_tracking.align_champion("v1") == "1"  # the lake promoted it (say, before tracking recorded the gate)
    assert model_tracking.champion_version() == "v1"


def test_a_retried_record_reuses_the_run_and_the_model_version(model_tracking: ModelTracking):
    first = _record(model_tracking, "v1", passed=True)
    # A new resource, as a retried step gets: the experiment and the registered model exist already.
    again = ModelTracking(**{**model_tracking.model_dump()})
    assert _record(again, "v1", passed=True) == first
    client = _client(model_tracking)
    assert len(client.search_runs([first["experiment_id"]])) == 1
    assert len(client.search_model_versions(f"name = '{model_tracking.registered_model}'")) == 1
    assert _record(again, "v2", passed=False)["model_version"] == "2"


def test_a_run_without_the_model_descriptor_gets_it_before_registering(model_tracking: ModelTracking, tmp_path: Path):
    # A finished run of this lake version with no model/ (recorded before runs carried one) and no model version.
    client = _client(model_tracking)
    first = _record(model_tracking, "v0", passed=False)
    experiment_id = first["experiment_id"]
    old = client.create_run(experiment_id, run_name="v1", tags={tracking.VERSION_TAG: "v1"})
    client.set_terminated(old.info.run_id, "FINISHED")
    result = _record(model_tracking, "v1", passed=True)
    assert result["run_id"] == old.info.run_id  # reused, not recorded again
    version = client.get_model_version(model_tracking.registered_model, result["model_version"])
    assert version.source == f"{old.info.artifact_uri}/model"
    mlmodel = Model.load(client.download_artifacts(old.info.run_id, "model", str(tmp_path)))
    assert mlmodel.metadata[tracking.LAKE_URI_METADATA] == "file:///lake/models/als/v1"
    assert mlmodel.signature.outputs is not None


def test_a_deleted_experiment_is_restored(model_tracking: ModelTracking):
    first = _record(model_tracking, "v1", passed=True)
    _client(model_tracking).delete_experiment(first["experiment_id"])
    assert _record(model_tracking, "v2", passed=True)["experiment_id"] == first["experiment_id"]


def test_the_code_commit_falls_back_to_the_environment(monkeypatch: pytest.MonkeyPatch):
    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(tracking.subprocess, "run", no_git)
    monkeypatch.delenv(tracking.CODE_COMMIT_ENV, raising=False)
    assert tracking.code_commit() is None
    assert tracking.CODE_COMMIT_TAG not in tracking.retrain_tags(_info("v1", True), passed=True, training_data_version=1)
    monkeypatch.setenv(tracking.CODE_COMMIT_ENV, "0123abc")
    assert tracking.code_commit() == "0123abc"
    assert tracking.retrain_tags(_info("v1", True), passed=True, training_data_version=1)[tracking.CODE_COMMIT_TAG] == "0123abc"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_store_is_named_with_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    for name, value in QUIET.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    monkeypatch.chdir(tmp_path)
    port = _closed_port()
    unreachable = ModelTracking(tracking_uri=f"http://movierec:s3cret@127.0.0.1:{port}")
    started = time.perf_counter()
    with pytest.raises(TrackingUnavailableError) as raised:
        _record(unreachable, "v1", passed=True)
    message = str(raised.value)
    assert f"http://***@127.0.0.1:{port}" in message and "cannot be reached" in message
    assert "make mlflow" in message and "MLFLOW_TRACKING_URI" in message
    assert "s3cret" not in message
    assert raised.value.__cause__ is None or "s3cret" not in str(raised.value.__cause__)  # no traceback shows it
    assert isinstance(raised.value, TrackingError)
    with pytest.raises(TrackingUnavailableError):
        unreachable.champion_version()
    with pytest.raises(TrackingUnavailableError):
        unreachable.align_champion("v1")
    # Three refusals without retries; MLflow's default retries (with backoff) would take minutes.
    assert time.perf_counter() - started < 20


def test_an_unopenable_sqlite_store_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name, value in QUIET.items():
        monkeypatch.setenv(name, value)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the home's folder should be")
    with pytest.raises(TrackingError) as raised:
        ModelTracking(tracking_uri=tracking.default_tracking_uri(blocker / "home")).champion_version()
    assert str(blocker) in str(raised.value)


def test_disabled_tracking_records_nothing(tmp_path: Path):
    off = ModelTracking(tracking_uri=tracking.default_tracking_uri(tmp_path), enabled=False)
    assert _record(off, "v1", passed=True) == {"run_id": None, "run_url": None, "model_version": None, "experiment_id": None}
    assert off.champion_version() is None and off.align_champion("v1") is None
    assert not (tmp_path / tracking.MLFLOW_DB).exists()


def test_databricks_names_are_checked_before_any_call():
    unity = ModelTracking(tracking_uri="databricks", registry_uri="databricks-uc", experiment="/Shared/movierec")
    with pytest.raises(TrackingError, match="<catalog>.<schema>.<model>"):
        _record(unity, "v1", passed=True)
    workspace = ModelTracking(tracking_uri="databricks", registry_uri="databricks-uc", registered_model="main.ml.movierec")
    with pytest.raises(TrackingError, match="/Shared/movierec"):
        workspace.champion_version()


def test_uris_and_names():
    assert tracking.default_tracking_uri("/srv/movierec") == "sqlite:////srv/movierec/mlflow.db"
    assert tracking.redact_uri("https://token@example.com/x") == "https://***@example.com/x"
    assert tracking.redact_uri("postgresql://user:pw@db:5432/mlflow") == "postgresql://***@db:5432/mlflow"
    assert tracking.redact_uri("sqlite:////srv/movierec/mlflow.db") == "sqlite:////srv/movierec/mlflow.db"
    metrics = tracking.retrain_metrics({"metrics": {"rmse": 1, "ok": True, "odd name!": 2.0}, "baselines": {"bias": "n/a"}}, {"a": {"b": 3}})
    assert metrics == {"rmse": 1.0, "odd name_": 2.0, "card_a_b": 3.0}
    assert tracking.redact_text("API request to http://u:p@host:5000/api failed") == "API request to http://***@host:5000/api failed"
