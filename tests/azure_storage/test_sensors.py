"""The sensors on a lake in Azurite (ADLS through adlfs): the retrain sensor's counts and champion, the ingest sensor's checkpoint."""

from pathlib import Path

import pytest
from dagster import EnvVar, RunRequest, build_sensor_context

from movierec_dagster.resources import LandingFolderSource
from movierec_dagster.resources.lake import CHECKPOINTS, AdlsLake
from movierec_dagster.stream.ingest import ingest_rating_events
from movierec_dagster.stream.sensors import build_rating_events_sensor
from movierec_dagster.tables import ADLS_CREDENTIALS
from tests.azure_storage.azurite import upload
from tests.model.test_sensors import _batch, _champion, _retrain, _skip_message
from tests.stream.events import event, write_lines


def test_the_retrain_sensor_counts_ratings_on_adls(instance, azurite, monkeypatch):
    """The sensor's lake takes its connection string as an EnvVar, resolved by Dagster, as a deployment gives it."""
    variable = ADLS_CREDENTIALS["connection_string"]
    monkeypatch.setenv(variable, azurite.connection_string)
    root = azurite.new_lake_uri()
    writer = AdlsLake(root=root, connection_string=azurite.connection_string)
    deployed = AdlsLake(root=root, connection_string=EnvVar(variable))

    _batch(writer, 500)
    _champion(writer, "v1", streamed_rows=500)
    _batch(writer, 60)
    below = _retrain(100, instance, deployed)
    assert "60 of 100 new ratings since champion v1" in _skip_message(below)
    _batch(writer, 50)
    above = _retrain(100, instance, deployed, below.cursor)
    assert [request.run_key for request in above.run_requests] == ["retrain-v1-610"]


@pytest.mark.slow  # a Structured Streaming ingest
def test_the_ingest_sensor_reads_the_checkpoint_spark_wrote_from_adls(spark, instance, lake, adls_lake, tmp_path: Path):
    """Spark's checkpoint, written by a real ingest on a local lake and copied to ADLS, where the sensor reads it."""
    source = LandingFolderSource(folder=str(tmp_path / "landing"))
    write_lines(Path(source.folder), "a.jsonl", [event("e1").encode(), event("e2").encode()])
    ingest_rating_events(spark, lake, source, log=lambda _: None)
    upload(Path(lake.fs_path(CHECKPOINTS)), adls_lake.filesystem(), adls_lake.fs_path(CHECKPOINTS))

    def tick():
        resources = {"lake": adls_lake, "event_source": source}
        return build_rating_events_sensor()(build_sensor_context(instance=instance, resources=resources))

    assert tick().skip_message == f"no file in {source.folder} waits for an ingest"
    write_lines(Path(source.folder), "b.jsonl", [event("e3").encode()])
    requested = tick()
    assert isinstance(requested, RunRequest) and "1 file(s)" in requested.tags["movierec/pending_events"]
