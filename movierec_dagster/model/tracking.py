"""MLflow as the model's record: each retrain a run, each candidate a version of the registered model, the gate's aliases.

What a retrain leaves in MLflow (`ModelTracking.record_retrain`):

- one run, named after the lake's version name, in the experiment `experiment`: the parameters,
  the held-out metrics, the baselines (`baseline_<name>_<metric>`), the model card's numeric figures
  (`card_<path>`), tags for the gate's decision, the training data's version and the code's commit,
  and model.json, model_card.json and model_card.md as artifacts;
- in the run's `model/`, an MLflow model descriptor: an `MLmodel` file with the scorer's signature
  (`user_id` in; `movie_id`, `rank`, `score`, `predicted_rating` out) and, in its metadata, the
  version's folder in the lake and the lake's version name. It holds no weights: the model stays in
  the lake, which is what the readers load;
- a version of the registered model `registered_model` made from that `model/` (its source the run's
  artifact location of it, as `mlflow.register_model("runs:/<run id>/model", ...)` would resolve it),
  tagged `movierec.version`. A registry that wants an MLflow model with a signature (Unity Catalog),
  or a source inside the run's artifacts (a tracking server), accepts it;
- the alias `challenger` on that version, and `champion` too when the gate passed it.

The lake's champion.json stays what the readers follow (recommendations, the API, the dashboard
work without an MLflow server); the `champion` alias is written right after it from the same gate
decision, and `align_champion` moves the alias back in step when the two differ.

mlflow is imported inside the functions: the package imports without it, and a Databricks cluster
brings its own (mlflow-skinny 3.0.1 on runtime 17.3), so only APIs present in mlflow 3.0 are used.

Errors: every failure to record raises `TrackingError`; a store that cannot be reached raises its
subclass `TrackingUnavailableError`, whose message names the store and the fix. Nothing is logged from
the environment except `MOVIEREC_CODE_COMMIT`, and credentials in a store's URI are masked in messages.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from dagster import ConfigurableResource

MLFLOW_DB = "mlflow.db"  # the local tracking store, in $MOVIEREC_HOME
ARTIFACTS = "mlflow"  # the lake's folder for the runs' artifacts (locally)
CHAMPION_ALIAS = "champion"
CHALLENGER_ALIAS = "challenger"
CODE_COMMIT_ENV = "MOVIEREC_CODE_COMMIT"

# Tags on the run (and `VERSION_TAG` on the model version too).
VERSION_TAG = "movierec.version"
GATE_PASSED_TAG = "movierec.gate.passed"
GATE_SUMMARY_TAG = "movierec.gate.summary"
GATE_REASONS_TAG = "movierec.gate.reasons"
TRAINING_DATA_TAG = "movierec.training_data_version"
CODE_COMMIT_TAG = "movierec.code_commit"
GIT_COMMIT_TAG = "mlflow.source.git.commit"  # the same commit, where MLflow's UI shows it

MODEL_INFO_ARTIFACT = "model.json"
CARD_JSON_ARTIFACT = "model_card.json"
CARD_MARKDOWN_ARTIFACT = "model_card.md"
CARD_MARKDOWN_KEY = "markdown"

# The MLflow model descriptor logged into each run and registered: `model/MLmodel`.
MODEL_ARTIFACT_PATH = "model"
MLMODEL_FILE = "MLmodel"
LAKE_URI_METADATA = "movierec.lake_uri"  # in the MLmodel's metadata: the version's folder in the lake
# (and VERSION_TAG, the lake's version name, beside it)
SIGNATURE_INPUTS = (("user_id", "long"),)
SIGNATURE_OUTPUTS = (("movie_id", "long"), ("rank", "long"), ("score", "double"), ("predicted_rating", "double"))

_MAX_TAG_CHARS = 5000  # under every store's limit (MLflow 3.0's is 8000)
_MAX_PARAM_CHARS = 500  # the oldest limit still enforced by some stores
_BATCH = 100  # MLflow's limit on params (and tags) per log_batch
_NAME_UNSAFE = re.compile(r"[^\w\-./ ]")  # what a metric or param name may not hold
# What the card repeats from model.json (logged as metrics already), and its page (an artifact): not card_ metrics.
_CARD_REPEATS = frozenset({"metrics", "baselines", "gate", CARD_MARKDOWN_KEY})
_USERINFO = re.compile(r"//[^/@\s]+@")  # user:password@ (or token@) in any URL within a text


class TrackingError(RuntimeError):
    """Recording in MLflow failed: the model in the lake and its champion pointer are not affected."""


class TrackingUnavailableError(TrackingError):
    """The tracking store (or the registry) cannot be reached; the message names it and the fix."""


def default_tracking_uri(home: str | Path) -> str:
    """The local tracking store: SQLite in the movierec home (`sqlite:////abs/home/mlflow.db`)."""
    return f"sqlite:///{Path(home).expanduser().resolve() / MLFLOW_DB}"


def redact_uri(uri: str) -> str:
    """`uri` with its user information (a user and password, or a token) masked, for messages and logs."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<unparseable URI>"
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def redact_text(text: str) -> str:
    """`text` (an error message, which may quote a URL) with the user information of every URL in it masked."""
    return _USERINFO.sub("//***@", text)


def _cause(error: BaseException) -> BaseException | None:
    """`error` to chain to ours, or None when its message holds a URL's user information (a traceback would show it)."""
    return error if redact_text(str(error)) == str(error) else None


def code_commit() -> str | None:
    """The git commit of the checkout this package was imported from, else `$MOVIEREC_CODE_COMMIT`, else None.

    The checkout counts only when it tracks the package, so a package installed into some other
    repository's folder does not borrow that repository's commit.
    """
    package = Path(__file__).resolve().parents[1]  # movierec_dagster/
    try:
        tracked = subprocess.run(
            ["git", "-C", str(package), "ls-files", "--error-unmatch", "__init__.py"],
            capture_output=True,
            timeout=10,
            check=False,
        )
        if tracked.returncode == 0:
            head = subprocess.run(
                ["git", "-C", str(package), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
            )
            commit = head.stdout.strip()
            if head.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", commit):
                return commit
    except (OSError, subprocess.SubprocessError):
        pass
    return os.environ.get(CODE_COMMIT_ENV, "").strip() or None


def _flatten(value: Any, prefix: str = "", sep: str = ".") -> Iterator[tuple[str, Any]]:
    """(path, leaf) for each leaf of nested dicts; lists and scalars are leaves."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}{sep}{key}" if prefix else str(key), sep)
    else:
        yield prefix, value


def _number(value: Any) -> float | None:
    """A finite float for an int or float (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _safe_name(name: str) -> str:
    return _NAME_UNSAFE.sub("_", name)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def retrain_params(info: dict) -> dict[str, str]:
    """info["params"] flattened (`a.b` for nested keys), every value as text."""
    params = {}
    for key, value in _flatten(info.get("params") or {}):
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        params[_safe_name(key)] = _clip(text, _MAX_PARAM_CHARS)
    return params


def retrain_metrics(info: dict, card: dict) -> dict[str, float]:
    """The held-out metrics, the baselines as `baseline_<name>_<metric>` and the card's other numbers as `card_<path>`.

    The card's own copies of the metrics, baselines and gate are left out: they are logged from `info`.
    """
    metrics: dict[str, float] = {}
    for key, value in (info.get("metrics") or {}).items():
        if (number := _number(value)) is not None:
            metrics[_safe_name(str(key))] = number
    for baseline, figures in (info.get("baselines") or {}).items():
        for key, value in (figures or {}).items() if isinstance(figures, Mapping) else ():
            if (number := _number(value)) is not None:
                metrics[_safe_name(f"baseline_{baseline}_{key}")] = number
    for path, value in _flatten(_without(card, _CARD_REPEATS), sep="_"):
        if (number := _number(value)) is not None:
            metrics[_safe_name(f"card_{path}")] = number
    return metrics


def _without(value: Any, keys: frozenset[str]) -> Any:
    """Nested dicts without the entries named `keys`, at any depth."""
    if isinstance(value, Mapping):
        return {key: _without(item, keys) for key, item in value.items() if key not in keys}
    return value


def retrain_tags(info: dict, *, passed: bool, training_data_version: str | int | None) -> dict[str, str]:
    gate = info.get("gate") or {}
    reasons = gate.get("reasons") or []
    tags = {
        VERSION_TAG: str(info["version"]),
        GATE_PASSED_TAG: "true" if passed else "false",
        GATE_SUMMARY_TAG: _clip(str(gate.get("summary", "")), _MAX_TAG_CHARS),
        GATE_REASONS_TAG: _clip("; ".join(str(reason) for reason in reasons) or "none", _MAX_TAG_CHARS),
    }
    if training_data_version is not None:
        tags[TRAINING_DATA_TAG] = str(training_data_version)
    if commit := code_commit():
        tags[CODE_COMMIT_TAG] = commit
        tags[GIT_COMMIT_TAG] = commit
    return tags


def model_signature():
    """The scorer's contract as an MLflow signature: a user in, that user's ranked movies out."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec(kind, name) for name, kind in SIGNATURE_INPUTS]),
        outputs=Schema([ColSpec(kind, name) for name, kind in SIGNATURE_OUTPUTS]),
    )


def _json_text(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def _error_code(error: BaseException) -> str | None:
    return getattr(error, "error_code", None)


def _quoted(value: str) -> str:
    """A value for a search filter, in single quotes."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class ModelTracking(ConfigurableResource):
    """Where retrains are recorded: an MLflow tracking store and model registry.

    Locally: `tracking_uri` is `default_tracking_uri(home)` (or `$MLFLOW_TRACKING_URI`, as the
    definitions choose), the registry is the same store, and `artifact_location` is the lake's
    `mlflow/` folder. On Databricks: `tracking_uri="databricks"`, `registry_uri="databricks-uc"`,
    `registered_model="<catalog>.<schema>.movierec"` and `experiment` a workspace path
    (`/Shared/movierec`). `enabled=False` records nothing.
    """

    tracking_uri: str
    registry_uri: str | None = None
    registered_model: str = "movierec"
    experiment: str = "movierec"
    artifact_location: str | None = None
    enabled: bool = True

    # Connecting

    def _registry_is_unity_catalog(self) -> bool:
        return (self.registry_uri or "").startswith("databricks-uc")

    def _tracking_is_databricks(self) -> bool:
        return self.tracking_uri == "databricks" or self.tracking_uri.startswith("databricks://")

    def _check_names(self) -> None:
        if self._registry_is_unity_catalog() and len(self.registered_model.split(".")) != 3:
            raise TrackingError(
                f"The Unity Catalog registry ({self.registry_uri}) names a model <catalog>.<schema>.<model>, "
                f"got '{self.registered_model}': set the registered model to e.g. 'main.movierec.movierec'."
            )
        if self._tracking_is_databricks() and not self.experiment.startswith("/"):
            raise TrackingError(
                f"A Databricks workspace names an experiment by its workspace path, got '{self.experiment}': "
                "use e.g. '/Shared/movierec' or '/Users/<service principal application id>/movierec'."
            )

    def _fix_hint(self) -> str:
        uri = self.tracking_uri
        if uri.startswith("sqlite:"):
            return "check that the database's folder exists and is writable (or set MLFLOW_TRACKING_URI to another store)"
        if self._tracking_is_databricks() or self._registry_is_unity_catalog():
            return (
                "check DATABRICKS_HOST and the service principal's credentials (DATABRICKS_CLIENT_ID/SECRET), "
                "and its grants on the experiment and the registered model's schema"
            )
        return (
            "start the tracking server (e.g. `make mlflow`) or set MLFLOW_TRACKING_URI to a reachable store; "
            "unset, the local default is sqlite:///$MOVIEREC_HOME/mlflow.db. "
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES and MLFLOW_HTTP_REQUEST_TIMEOUT bound how long a dead server is retried"
        )

    def _where(self) -> str:
        where = f"tracking store {redact_uri(self.tracking_uri)}"
        if self.registry_uri and self.registry_uri != self.tracking_uri:
            where += f", registry {redact_uri(self.registry_uri)}"
        return where

    def _unavailable(self, error: BaseException) -> TrackingUnavailableError:
        text = redact_text(str(error)).strip()
        detail = _clip(text.splitlines()[0] if text else type(error).__name__, 400)
        return TrackingUnavailableError(
            f"The MLflow tracking store {redact_uri(self.tracking_uri)} cannot be reached ({detail}): {self._fix_hint()}."
        )

    def _client(self):
        from mlflow.tracking import MlflowClient

        if self.tracking_uri.startswith("sqlite:///"):
            # SQLite creates the file, not its folder (the home exists once anything ran; a test's may not).
            path = self.tracking_uri.removeprefix("sqlite:///").split("?", 1)[0]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)

    def _experiment(self, client, *, create: bool):
        """The experiment (created, or restored from deleted, when `create`); None when absent and not `create`.

        The first call to the store: failing here means the store cannot be reached.
        """
        from mlflow.exceptions import MlflowException

        try:
            experiment = client.get_experiment_by_name(self.experiment)
        except Exception as error:  # connection refused, timeout, unopenable database, denied credentials
            raise self._unavailable(error) from _cause(error)
        if experiment is not None and experiment.lifecycle_stage == "deleted":
            if not create:
                return None
            client.restore_experiment(experiment.experiment_id)
            return client.get_experiment(experiment.experiment_id)
        if experiment is not None or not create:
            return experiment
        try:
            client.create_experiment(self.experiment, artifact_location=self.artifact_location)
        except MlflowException as error:
            if _error_code(error) != "RESOURCE_ALREADY_EXISTS":  # another retrain created it meanwhile
                raise
        return client.get_experiment_by_name(self.experiment)

    def _registered_model(self, client, *, create: bool):
        from mlflow.exceptions import MlflowException

        try:
            return client.get_registered_model(self.registered_model)
        except MlflowException as error:
            if _error_code(error) not in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
                raise
        if not create:
            return None
        try:
            client.create_registered_model(
                self.registered_model,
                description="movierec's ALS models; the `champion` alias follows the lake's champion.json.",
            )
        except MlflowException as error:
            if _error_code(error) != "RESOURCE_ALREADY_EXISTS":
                raise
        return client.get_registered_model(self.registered_model)

    @contextmanager
    def _recording(self, what: str) -> Iterator[None]:
        """Any failure inside (MLflow's, the store's, the artifacts' filesystem's) as TrackingError naming `what` and the store."""
        try:
            yield
        except TrackingError:
            raise
        except Exception as error:
            raise TrackingError(
                f"{what} in MLflow ({self._where()}, registered model '{self.registered_model}') failed: "
                f"{_clip(redact_text(str(error)), 1000)}"
            ) from _cause(error)

    # Finding what a lake version left

    def _runs_of(self, client, experiment_id: str, lake_version: str) -> list:
        """The finished runs recorded for `lake_version`, newest first."""
        runs = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{VERSION_TAG}` = {_quoted(lake_version)} and attributes.status = 'FINISHED'",
            max_results=10,
            order_by=["attributes.start_time DESC"],
        )
        return list(runs)

    def _model_version_of_run(self, client, run_id: str):
        """This registered model's version made from `run_id` (the newest), or None.

        Searched by run_id alone: the one filter both the MLflow registry and Unity Catalog's support.
        """
        found = [
            version
            for version in client.search_model_versions(f"run_id = {_quoted(run_id)}")
            if str(version.name).lower() == self.registered_model.lower()
        ]
        return max(found, key=lambda version: int(version.version), default=None)

    def _model_version_of(self, client, lake_version: str):
        experiment = self._experiment(client, create=False)
        if experiment is None:
            return None
        for run in self._runs_of(client, experiment.experiment_id, lake_version):
            if (version := self._model_version_of_run(client, run.info.run_id)) is not None:
                return version
        return None

    def _run_url(self, experiment_id: str, run_id: str) -> str | None:
        uri = self.tracking_uri
        if uri.startswith(("http://", "https://")):
            return f"{redact_uri(uri).rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
        if self._tracking_is_databricks():
            try:
                from mlflow.utils.databricks_utils import get_databricks_run_url

                return get_databricks_run_url(uri, run_id)
            except Exception:
                return None
        return None

    # The API

    def record_retrain(
        self, info: dict, card: dict, *, model_uri: str, training_data_version: str | int | None, passed: bool
    ) -> dict[str, Any]:
        """Record one retrain as a run, register its model version and move the aliases.

        `info` is the version's model.json (its "version" names the run), `card` the model card
        (JSON-able; an optional "markdown" string becomes model_card.md), `model_uri` the version's
        folder in the lake (named in the metadata of the run's `model/MLmodel`, the model version's
        source). `challenger` moves to the new version
        every time; `champion` too when `passed`. Called again for the same lake version (a retried
        step), it reuses the finished run and its model version instead of making new ones.

        Returns {"run_id", "run_url" (None for a local store), "model_version", "experiment_id"};
        all None when tracking is disabled. Raises TrackingError on any failure (its subclass
        TrackingUnavailableError when the store cannot be reached): the model's folder and the lake's
        champion.json are never touched here, so the trained model is not lost.
        """
        if not self.enabled:
            return {"run_id": None, "run_url": None, "model_version": None, "experiment_id": None}
        self._check_names()
        version_name = str(info["version"])
        with self._recording(f"Recording model {version_name}"):
            client = self._client()
            experiment_id = self._experiment(client, create=True).experiment_id
            existing = self._runs_of(client, experiment_id, version_name)
            if existing:
                run_id = existing[0].info.run_id
            else:
                run_id = self._log_run(client, experiment_id, info, card, passed, training_data_version, model_uri)
            model_version = self._register(client, run_id, model_uri, version_name)
            client.set_registered_model_alias(self.registered_model, CHALLENGER_ALIAS, model_version)
            if passed:
                client.set_registered_model_alias(self.registered_model, CHAMPION_ALIAS, model_version)
        return {
            "run_id": run_id,
            "run_url": self._run_url(experiment_id, run_id),
            "model_version": str(model_version),
            "experiment_id": str(experiment_id),
        }

    def _log_run(self, client, experiment_id: str, info: dict, card: dict, passed: bool, training_data_version, model_uri: str) -> str:
        from mlflow.entities import Metric, Param, RunTag

        tags = retrain_tags(info, passed=passed, training_data_version=training_data_version)
        run = client.create_run(experiment_id, run_name=str(info["version"]), tags=tags)
        run_id = run.info.run_id
        try:
            now = int(time.time() * 1000)
            params = [Param(key, value) for key, value in retrain_params(info).items()]
            metrics = [Metric(key, value, now, 0) for key, value in retrain_metrics(info, card).items()]
            for start in range(0, max(len(params), len(metrics)), _BATCH):
                client.log_batch(run_id, metrics=metrics[start : start + _BATCH], params=params[start : start + _BATCH])
            client.log_text(run_id, _json_text(info), MODEL_INFO_ARTIFACT)
            client.log_text(run_id, _json_text({k: v for k, v in card.items() if k != CARD_MARKDOWN_KEY}), CARD_JSON_ARTIFACT)
            if isinstance(markdown := card.get(CARD_MARKDOWN_KEY), str):
                client.log_text(run_id, markdown, CARD_MARKDOWN_ARTIFACT)
                # The run's description in MLflow's UI.
                client.log_batch(run_id, tags=[RunTag("mlflow.note.content", _clip(markdown, _MAX_TAG_CHARS))])
            self._log_model(client, run_id, model_uri, str(info["version"]))
        except BaseException:
            try:
                client.set_terminated(run_id, "FAILED")
            except Exception:  # the store went away mid-run: the original error says more
                pass
            raise
        client.set_terminated(run_id, "FINISHED")
        return run_id

    def _log_model(self, client, run_id: str, model_uri: str, version_name: str) -> None:
        """Log the run's `model/`: an MLmodel with the scorer's signature and the lake's folder in its metadata.

        A descriptor, not the model: no flavor, no code, no requirements. What a registry checks is
        that `model/MLmodel` loads and has a signature with inputs and outputs (Unity Catalog's
        store, `_validate_model_signature`); no flavor is needed for that.
        """
        from mlflow.models import Model

        descriptor = Model(
            artifact_path=MODEL_ARTIFACT_PATH,
            run_id=run_id,
            signature=model_signature(),
            metadata={LAKE_URI_METADATA: model_uri, VERSION_TAG: version_name},
        )
        with tempfile.TemporaryDirectory(prefix="movierec-mlmodel-") as folder:
            descriptor.save(str(Path(folder) / MLMODEL_FILE))
            client.log_artifacts(run_id, folder, MODEL_ARTIFACT_PATH)

    def _has_model(self, client, run_id: str) -> bool:
        wanted = f"{MODEL_ARTIFACT_PATH}/{MLMODEL_FILE}"
        return any(entry.path == wanted for entry in client.list_artifacts(run_id, MODEL_ARTIFACT_PATH))

    def _register(self, client, run_id: str, model_uri: str, version_name: str) -> str:
        """The model version for `run_id`, registered now unless a retried step registered it already.

        Its source is the run's `model/` where the run's artifacts are, which is what
        `mlflow.register_model("runs:/<run id>/model", ...)` sends (MLflow 3.0 and later) to every
        registry, Unity Catalog included. A run recorded before runs carried `model/` gets it first.
        """
        from mlflow.utils.uri import append_to_uri_path

        self._registered_model(client, create=True)
        if (existing := self._model_version_of_run(client, run_id)) is not None:
            return str(existing.version)
        if not self._has_model(client, run_id):
            self._log_model(client, run_id, model_uri, version_name)
        source = append_to_uri_path(client.get_run(run_id).info.artifact_uri, MODEL_ARTIFACT_PATH)
        created = client.create_model_version(
            self.registered_model, source=source, run_id=run_id, tags={VERSION_TAG: version_name}
        )
        return str(created.version)

    def champion_version(self) -> str | None:
        """The lake version name the `champion` alias points at; None without the model, the alias or the tag."""
        if not self.enabled:
            return None
        self._check_names()
        with self._recording("Reading the champion alias"):
            client = self._client()
            self._experiment(client, create=False)  # the first call: an unreachable store fails here, named
            model = self._registered_model(client, create=False)
            number = (model.aliases or {}).get(CHAMPION_ALIAS) if model is not None else None
            if number is None:
                return None
            version = client.get_model_version(self.registered_model, str(number))
            if name := (version.tags or {}).get(VERSION_TAG):
                return name
            if version.run_id:  # a version whose tag was removed: its run says
                return client.get_run(version.run_id).data.tags.get(VERSION_TAG)
            return None

    def align_champion(self, lake_version: str | None) -> str | None:
        """Point `champion` at the registered version of `lake_version` (the lake's champion) if it is elsewhere.

        Returns the model version the alias was moved to, or None when nothing moved: the alias
        already there, no `lake_version` (nothing is promoted in the lake; the alias is left as
        it is), or `lake_version` not registered (trained before tracking, or its record failed).
        """
        if not self.enabled or lake_version is None:
            return None
        self._check_names()
        with self._recording(f"Aligning the champion alias with {lake_version}"):
            client = self._client()
            self._experiment(client, create=False)  # the first call: an unreachable store fails here, named
            model = self._registered_model(client, create=False)
            if model is None:
                return None
            target = self._model_version_of(client, lake_version)
            if target is None:
                return None
            current = (model.aliases or {}).get(CHAMPION_ALIAS)
            if current is not None and str(current) == str(target.version):
                return None
            client.set_registered_model_alias(self.registered_model, CHAMPION_ALIAS, str(target.version))
            return str(target.version)
