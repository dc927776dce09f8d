"""Event sources: what the landing folder and an Event Hub hold that the ingest's checkpoint has not taken in, and the Event Hubs options for Spark's Kafka source."""

import os
from pathlib import Path

import pytest

from movierec_dagster.resources import EventHubsSource, LandingFolderSource, LocalLake
from movierec_dagster.resources.event_source import events_past_offsets, parse_connection_string
from movierec_dagster.resources.stream_checkpoint import StreamCheckpoint
from movierec_dagster.stream.ingest import ingest_checkpoint, ingest_rating_events
from tests.stream.events import event, write_lines

CONNECTION = "Endpoint=sb://movierec-ns.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=s3cr=t"


def _source(lake: LocalLake) -> LandingFolderSource:
    return LandingFolderSource(folder=lake.fs_path("landing", "rating_events"))


def _pending(lake: LocalLake, source: LandingFolderSource) -> int:
    return source.pending_events(ingest_checkpoint(lake, source)).count


def _ingest(spark, lake: LocalLake, source: LandingFolderSource) -> None:
    ingest_rating_events(spark, lake, source, log=lambda _: None)


def test_landing_folder_pending_files_against_the_ingest_checkpoint(spark, lake):
    source = _source(lake)
    landing = Path(source.folder)
    assert _pending(lake, source) == 0, "no folder yet: nothing pending"

    write_lines(landing, "a.jsonl", [event("a1").encode(), event("a2").encode()])
    write_lines(landing, "b.jsonl", [event("b1").encode()])
    write_lines(landing, "empty.jsonl", [])  # Spark takes in an empty file too: it must not stay pending
    (landing / ".c.jsonl.tmp").write_text(event("c1") + "\n")  # being written: not landed yet
    (landing / "_SUCCESS").write_text("")  # Spark ignores `_` files: so must the sensor
    before = source.pending_events(ingest_checkpoint(lake, source))
    assert (before.count, before.description) == (3, f"3 file(s) in {source.folder} wait for an ingest")

    _ingest(spark, lake, source)
    after = source.pending_events(ingest_checkpoint(lake, source))
    assert (after.count, after.description) == (0, f"no file in {source.folder} waits for an ingest")

    write_lines(landing, "d.jsonl", [event("d1").encode()])
    assert _pending(lake, source) == 1
    (landing / "d.jsonl").unlink()
    assert _pending(lake, source) == 0, "the pending file was d.jsonl, not one the ingest took in"

    write_lines(landing, "d.jsonl", [event("d1").encode()])
    _ingest(spark, lake, source)
    assert _pending(lake, source) == 0
    assert lake.table_version("rating_events").rows == 4  # a1, a2, b1, d1: the hidden file was not read either


def test_a_planned_but_uncommitted_batch_is_still_pending(spark, lake):
    """A run killed after Spark planned a batch but before it committed: that batch's file waits for the next run."""
    source = LandingFolderSource(folder=lake.fs_path("landing", "rating_events"), max_files_per_batch=1)
    write_lines(Path(source.folder), "1.jsonl", [event("e1").encode()])
    write_lines(Path(source.folder), "2.jsonl", [event("e2").encode()])
    _ingest(spark, lake, source)
    assert _pending(lake, source) == 0

    checkpoint = ingest_checkpoint(lake, source)
    last = checkpoint.last_committed_batch()
    assert last == 1
    Path(checkpoint.path, "commits", str(last)).unlink()
    assert _pending(lake, source) == 1


def test_large_files_make_smaller_batches_and_every_event_is_taken_in_once(spark, lake):
    """A batch takes as many files as fit in max_bytes_per_batch, judged by the largest waiting: six files of 40
    events, two fitting, make three batches. Files taken in before do not count."""
    lines = {f"{number}.jsonl": [event(f"f{number}-{i}").encode() for i in range(40)] for number in range(6)}
    largest = max(len(b"\n".join(batch)) + 1 for batch in lines.values())
    source = LandingFolderSource(folder=lake.fs_path("landing", "rating_events"), max_bytes_per_batch=2 * largest + 1)
    checkpoint = ingest_checkpoint(lake, source)
    assert source.files_per_batch(checkpoint) == 1000, "nothing waits"
    for name, batch in lines.items():
        write_lines(Path(source.folder), name, batch)
    assert source.files_per_batch(checkpoint) == 2
    result = ingest_rating_events(spark, lake, source, log=lambda _: None)
    assert (result.stats.batches, result.stats.accepted) == (3, 240)
    assert lake.table_version("rating_events").rows == 240

    small = write_lines(Path(source.folder), "small.jsonl", [event("s1").encode()])
    expected = (2 * largest + 1) // small.stat().st_size
    assert source.files_per_batch(checkpoint) == expected, "the large files were taken in: only the small one waits"
    one_byte = LandingFolderSource(folder=source.folder, max_bytes_per_batch=1)
    assert one_byte.files_per_batch(ingest_checkpoint(lake, one_byte)) == 1, "one file at least"


def test_a_file_whose_name_a_uri_escapes_is_not_pending_once_ingested(spark, lake):
    source = _source(lake)
    write_lines(Path(source.folder), "ratings 1.jsonl", [event("s1").encode()])
    write_lines(Path(source.folder), "100%.jsonl", [event("s2").encode()])
    _ingest(spark, lake, source)
    assert lake.table_version("rating_events").rows == 2
    assert _pending(lake, source) == 0


def test_checkpoint_name_is_one_per_folder(tmp_path):
    one = LandingFolderSource(folder=str(tmp_path / "one"))
    assert one.checkpoint_name() == LandingFolderSource(folder=str(tmp_path / "one")).checkpoint_name()
    assert one.checkpoint_name() == LandingFolderSource(folder=str(tmp_path / "one") + "/").checkpoint_name()
    assert one.checkpoint_name() != LandingFolderSource(folder=str(tmp_path / "two")).checkpoint_name()
    assert one.checkpoint_name().startswith("landing-")

    hub = EventHubsSource(connection_string=CONNECTION, eventhub="ratings")
    assert hub.checkpoint_name() == EventHubsSource(connection_string=CONNECTION, eventhub="ratings").checkpoint_name()
    assert hub.checkpoint_name() != EventHubsSource(connection_string=CONNECTION, eventhub="other").checkpoint_name()
    assert hub.checkpoint_name() != one.checkpoint_name()


def test_event_hub_events_past_the_checkpoints_offsets():
    # No checkpoint yet: every event counts, from sequence number 0.
    fresh = events_past_offsets({}, {"0": 4, "1": 2})
    assert (fresh.count, fresh.description) == (8, "8 event(s) wait for an ingest (partition 0: 5, partition 1: 3)")
    # Spark's committed offset is the next one it would read: last sequence number + 1.
    caught_up = events_past_offsets({"0": 5, "1": 3}, {"0": 4, "1": 2})
    assert (caught_up.count, caught_up.description) == (0, "the checkpoint has taken in every event on every partition")
    assert events_past_offsets({"0": 5, "1": 3}, {"0": 6, "1": 2}).count == 2
    assert events_past_offsets({"0": 4, "1": 3}, {"0": 4, "1": 2}).count == 1  # the last event is not taken in yet
    # A partition the checkpoint has not seen counts from its start.
    added = events_past_offsets({"0": 5}, {"0": 4, "1": 2})
    assert (added.count, added.description) == (3, "3 event(s) wait for an ingest (partition 1: 3)")
    # An empty partition (last sequence number -1) holds nothing, seen or not.
    assert events_past_offsets({}, {"0": -1, "1": -1}).count == 0
    assert events_past_offsets({"0": 0}, {"0": -1, "1": 0}).count == 1


def test_event_hub_pending_events_read_the_offsets_of_its_hub(tmp_path):
    """The checkpoint's offsets are by topic (the hub's name): another hub's offsets do not count."""

    class Positions(EventHubsSource):
        def partition_positions(self) -> dict[str, int]:
            return {"0": 9, "1": 4}

    checkpoint = tmp_path / "checkpoint"
    (checkpoint / "offsets").mkdir(parents=True)
    (checkpoint / "commits").mkdir()
    (checkpoint / "metadata").write_text('{"id":"6b0f2a4e-0000-4000-8000-000000000000"}\n')
    (checkpoint / "offsets" / "0").write_text('v1\n{"batchWatermarkMs":0}\n{"ratings":{"0":10,"1":3}}')
    (checkpoint / "commits" / "0").write_text('v1\n{"nextBatchWatermarkMs":0}')
    at = StreamCheckpoint.at(str(checkpoint))

    assert Positions(connection_string=CONNECTION, eventhub="ratings").pending_events(at).count == 2
    assert Positions(connection_string=CONNECTION, eventhub="other").pending_events(at).count == 15


def test_kafka_options_with_a_connection_string():
    source = EventHubsSource(connection_string=CONNECTION, eventhub="ratings", kafka_class_prefix="")
    options = source.kafka_options()
    assert options["kafka.bootstrap.servers"] == "movierec-ns.servicebus.windows.net:9093"
    assert options["subscribe"] == "ratings"
    assert (options["kafka.security.protocol"], options["kafka.sasl.mechanism"]) == ("SASL_SSL", "PLAIN")
    assert options["kafka.sasl.jaas.config"] == (
        'org.apache.kafka.common.security.plain.PlainLoginModule required username="$ConnectionString" '
        f'password="{CONNECTION}";'
    )
    assert options["startingOffsets"] == "earliest"
    assert options["maxOffsetsPerTrigger"] == "1000000", "a batch as large as a landing-folder batch"
    smaller = EventHubsSource(connection_string=CONNECTION, eventhub="ratings", max_events_per_batch=5_000)
    assert smaller.kafka_options()["maxOffsetsPerTrigger"] == "5000"


def test_kafka_options_take_the_hub_from_entity_path_and_shade_for_databricks():
    source = EventHubsSource(connection_string=CONNECTION + ";EntityPath=events")
    options = source.kafka_options()
    assert options["subscribe"] == "events"
    assert options["kafka.sasl.jaas.config"].startswith("kafkashaded.org.apache.kafka.common.security.plain.")


def test_kafka_options_with_a_service_principal():
    source = EventHubsSource(namespace="movierec-ns", eventhub="ratings", tenant_id="t", client_id="c", client_secret="s")
    options = source.kafka_options()
    assert options["kafka.sasl.mechanism"] == "OAUTHBEARER"
    assert options["kafka.sasl.oauthbearer.token.endpoint.url"] == "https://login.microsoftonline.com/t/oauth2/v2.0/token"
    assert 'scope="https://movierec-ns.servicebus.windows.net/.default"' in options["kafka.sasl.jaas.config"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (EventHubsSource(eventhub="ratings"), "namespace"),
        (EventHubsSource(namespace="ns"), "eventhub"),
        (EventHubsSource(namespace="ns", eventhub="ratings"), "connection string"),
    ],
)
def test_kafka_options_say_what_is_missing(source, message):
    with pytest.raises(ValueError, match=message):
        source.kafka_options()


def test_connection_string_must_have_an_endpoint():
    with pytest.raises(ValueError, match="Endpoint"):
        parse_connection_string("SharedAccessKeyName=x;SharedAccessKey=y")


@pytest.mark.azure
def test_live_event_hub_reports_what_a_new_checkpoint_lacks(tmp_path):
    """Needs EVENTHUB_CONNECTION_STRING (+ EVENTHUB_NAME) for a real hub: `pytest -m azure tests/stream`."""
    connection = os.environ.get("EVENTHUB_CONNECTION_STRING")
    if not connection:
        pytest.skip("EVENTHUB_CONNECTION_STRING is not set")
    source = EventHubsSource(connection_string=connection, eventhub=os.environ.get("EVENTHUB_NAME", ""))
    positions = source.partition_positions()
    assert positions and all(isinstance(value, int) for value in positions.values())
    # A checkpoint no query has written: every event on the hub is pending (more may arrive meanwhile).
    found = source.pending_events(StreamCheckpoint.at(str(tmp_path / "no-checkpoint")))
    assert found.count >= sum(position + 1 for position in positions.values() if position >= 0)
