"""Event sources: the landing folder's "what is new" cursor, and the Event Hubs options for Spark's Kafka source."""

import json
import os

import pytest

from movierec_dagster.resources import EventHubsSource, LandingFolderSource
from movierec_dagster.resources.event_source import new_events_past, parse_connection_string

CONNECTION = "Endpoint=sb://movierec-ns.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=s3cr=t"


def test_landing_folder_reports_each_new_file_once(tmp_path):
    source = LandingFolderSource(folder=str(tmp_path))
    assert source.new_events(None).count == 0
    (tmp_path / "a.jsonl").write_text("{}\n")
    (tmp_path / ".b.jsonl.tmp").write_text("{}\n")  # being written: not yet landed
    first = source.new_events(None)
    assert (first.count, first.description) == (1, f"1 new file(s) in {tmp_path}")
    assert source.new_events(first.cursor).count == 0

    (tmp_path / "c.jsonl").write_text("{}\n")
    # Same change time as the cursor's newest file: still new, by name.
    stat = os.stat(tmp_path / "a.jsonl")
    os.utime(tmp_path / "c.jsonl", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = source.new_events(first.cursor)
    assert second.count == 1 and second.run_key != first.run_key
    assert source.new_events(second.cursor).count == 0


def test_event_hub_positions_past_the_cursor():
    assert new_events_past({}, {"0": -1, "1": -1}).count == 0
    found = new_events_past({}, {"0": 4, "1": -1})
    assert (found.count, json.loads(found.cursor)) == (5, {"0": 4, "1": -1})
    assert new_events_past(json.loads(found.cursor), {"0": 4, "1": -1}).count == 0
    more = new_events_past(json.loads(found.cursor), {"0": 6, "1": 0})
    assert (more.count, more.description) == (3, "3 new event(s) (partition 0: +2, partition 1: +1)")


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
def test_live_event_hub_reports_partition_positions():
    """Needs EVENTHUB_CONNECTION_STRING (+ EVENTHUB_NAME) for a real hub: `pytest -m azure tests/stream`."""
    connection = os.environ.get("EVENTHUB_CONNECTION_STRING")
    if not connection:
        pytest.skip("EVENTHUB_CONNECTION_STRING is not set")
    source = EventHubsSource(connection_string=connection, eventhub=os.environ.get("EVENTHUB_NAME", ""))
    positions = source.partition_positions()
    assert positions and all(isinstance(value, int) for value in positions.values())
    found = source.new_events(None)
    assert found.count >= sum(position + 1 for position in positions.values())
