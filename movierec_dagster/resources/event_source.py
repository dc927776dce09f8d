"""Where rating events come from: a landing folder locally, Azure Event Hubs on Azure.

Both sources give the ingest the same stream of raw lines (`value`: the event's
text, `source`: where it came from, `landed_at`: when it arrived), and answer the
sensor the same question: what do you hold that the ingest's checkpoint has not taken in?
"""

import hashlib
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import fsspec

from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from movierec_dagster.resources.stream_checkpoint import StreamCheckpoint

EVENTHUB_KAFKA_PORT = 9093
EVENTHUB_SUFFIX = "servicebus.windows.net"
# A landing-folder micro-batch's most bytes: about 1.1M generator events (~118 bytes each), and under
# transforms.MAX_BROADCAST_IDS events even of the shortest valid lines.
MAX_BATCH_BYTES = 128 * 2**20


@dataclass(frozen=True)
class PendingEvents:
    """What the source holds that the ingest's checkpoint has not taken in: how much, and a description."""

    count: int
    description: str


class EventSource(ConfigurableResource):
    """A source of rating events: a stream for Spark, and for the sensor "what have you that the checkpoint lacks?"."""

    def read_stream(self, spark: SparkSession, checkpoint: StreamCheckpoint) -> DataFrame:
        """The stream of raw lines, for the ingest whose checkpoint is `checkpoint`."""
        raise NotImplementedError

    def checkpoint_name(self) -> str:
        """The name of this source's ingest checkpoint: each source (and each landing folder) has its own."""
        raise NotImplementedError

    def pending_events(self, checkpoint: StreamCheckpoint) -> PendingEvents:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


def _name(entry: dict[str, Any]) -> str:
    """A file's name, from fsspec's detail of it."""
    return os.path.basename(entry["name"].rstrip("/"))


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class LandingFolderSource(EventSource):
    """JSON-lines files dropped into a folder (`lake/landing/rating_events/`); hidden files (`.x`, `_x`) are ignored.

    `folder` and `archive_folder` are URIs (or paths) of this machine's filesystem.
    """

    folder: str
    max_files_per_batch: int = 1000
    max_bytes_per_batch: int = Field(
        default=MAX_BATCH_BYTES,
        description="Fewer files a micro-batch when they are large: as many of the largest waiting as fit in this.",
    )
    archive_folder: str | None = Field(
        default=None,
        description="Where processed files are moved, each under its full path (None: they stay in the folder).",
    )

    def describe(self) -> str:
        return f"landing folder {self.folder}"

    def checkpoint_name(self) -> str:
        # Spark's file-source checkpoint holds the files' absolute paths: a folder that moved (a copied lake)
        # gets a checkpoint of its own instead of failing with "Wrong basePath".
        return f"landing-{_short_hash(self.folder.rstrip('/'))}"

    def _filesystem(self) -> tuple[fsspec.AbstractFileSystem, str]:
        return fsspec.core.url_to_fs(self.folder)

    def read_stream(self, spark: SparkSession, checkpoint: StreamCheckpoint) -> DataFrame:
        fs, path = self._filesystem()
        fs.makedirs(path, exist_ok=True)
        reader = (
            spark.readStream.format("text")
            .option("maxFilesPerTrigger", self.files_per_batch(checkpoint))
            # Spark skips files more than maxFileAge older than the newest it saw (7 days by
            # default): a file copied in with an old modification time must still be read.
            .option("maxFileAge", "36500d")
        )
        if self.archive_folder:
            # Spark moves a batch's files once the batch is committed, when the next batch starts
            # (so a run's last batch moves at the start of the next run): the folder, which the
            # sensor and every batch list, stays small. Best effort: a file Spark fails to move
            # stays, and is never read twice.
            reader = reader.option("cleanSource", "archive").option("sourceArchiveDir", self.archive_folder)
        return (
            reader.load(self.folder)
            .select(
                F.col("value"),
                F.col("_metadata.file_path").alias("source"),
                F.col("_metadata.file_modification_time").alias("landed_at"),
            )
        )

    def files_per_batch(self, checkpoint: StreamCheckpoint) -> int:
        """How many files a micro-batch of this run takes: `max_files_per_batch`, or fewer when the largest file
        waiting for `checkpoint` is large, so that a batch holds at most `max_bytes_per_batch` (one file at least).

        Spark's file source takes one limit, on files or on bytes, not both. The file limit keeps a batch of many
        small files (posted ratings) to a listing and a checkpoint entry of bounded size; the byte limit keeps a
        backlog of large files in batches the ingest checks without a shuffle (`transforms.MAX_BROADCAST_IDS`).
        """
        largest = max((entry["size"] for entry in self._pending_entries(checkpoint)), default=0)
        if largest == 0:
            return self.max_files_per_batch
        return max(1, min(self.max_files_per_batch, self.max_bytes_per_batch // largest))

    def _landed_entries(self) -> list[dict[str, Any]]:
        """The folder's files now (fsspec's detail), hidden ones left out."""
        fs, path = self._filesystem()
        try:
            entries = fs.ls(path, detail=True)
        except FileNotFoundError:
            return []
        return [entry for entry in entries if entry["type"] == "file" and not _name(entry).startswith((".", "_"))]

    def _pending_entries(self, checkpoint: StreamCheckpoint) -> list[dict[str, Any]]:
        """The folder's files that no committed batch of the checkpoint read (compared by name: the folder is flat)."""
        # Spark records each file as a URI, so a name with a space or a % in it is escaped there.
        taken_in = {unquote(os.path.basename(path)) for path in checkpoint.committed_files()}
        return [entry for entry in self._landed_entries() if _name(entry) not in taken_in]

    def pending_events(self, checkpoint: StreamCheckpoint) -> PendingEvents:
        """Files in the folder that no committed batch of the checkpoint read."""
        pending = self._pending_entries(checkpoint)
        if not pending:
            return PendingEvents(0, f"no file in {self.folder} waits for an ingest")
        return PendingEvents(len(pending), f"{len(pending)} file(s) in {self.folder} wait for an ingest")


def parse_connection_string(connection_string: str) -> dict[str, str]:
    """The `Key=Value;...` parts of an Event Hubs connection string."""
    parts = {}
    for part in connection_string.strip().strip(";").split(";"):
        key, separator, value = part.partition("=")
        if not separator:
            raise ValueError("The Event Hubs connection string is not a list of Key=Value parts separated by ';'.")
        parts[key.strip()] = value.strip()
    if "Endpoint" not in parts:
        raise ValueError("The Event Hubs connection string has no Endpoint=sb://<namespace>.servicebus.windows.net/.")
    return parts


class EventHubsSource(EventSource):
    """An Azure Event Hub, read by Spark through its Kafka endpoint and asked for news with azure-eventhub.

    Authentication: `connection_string` (a shared access policy; EVENTHUB_CONNECTION_STRING)
    or, when it is empty, a service principal (`tenant_id`, `client_id`,
    `client_secret`) for Spark and DefaultAzureCredential for the sensor.
    """

    namespace: str = ""  # e.g. "movierec-events" or "movierec-events.servicebus.windows.net"
    eventhub: str = ""
    connection_string: str = ""
    tenant_id: str = ""
    client_id: str = ""
    client_secret: str = ""
    consumer_group: str = "$Default"
    # As a landing-folder batch (MAX_BATCH_BYTES): each batch scans the id index once, so larger batches spread
    # that scan over more events, up to what the ingest still checks without a shuffle.
    max_events_per_batch: int = 1_000_000
    starting_offsets: str = "earliest"
    # Databricks ships the Kafka client shaded under `kafkashaded.`; open-source Spark does not.
    kafka_class_prefix: str = "kafkashaded."

    _consumer: Any = PrivateAttr(default=None)

    def describe(self) -> str:
        return f"Event Hub {self.eventhub_name()} in {self.host()}"

    def host(self) -> str:
        if self.connection_string:
            endpoint = parse_connection_string(self.connection_string)["Endpoint"]
            return endpoint.removeprefix("sb://").rstrip("/")
        if not self.namespace:
            raise ValueError("EventHubsSource needs `namespace` (EVENTHUB_NAMESPACE) or `connection_string`.")
        return self.namespace if "." in self.namespace else f"{self.namespace}.{EVENTHUB_SUFFIX}"

    def eventhub_name(self) -> str:
        name = self.eventhub
        if not name and self.connection_string:
            name = parse_connection_string(self.connection_string).get("EntityPath", "")
        if not name:
            raise ValueError("EventHubsSource needs `eventhub` (EVENTHUB_NAME) or an EntityPath in the connection string.")
        return name

    def kafka_options(self) -> dict[str, str]:
        """Spark's Kafka source options for this hub (they hold the secret: never log them)."""
        prefix = self.kafka_class_prefix
        options = {
            "kafka.bootstrap.servers": f"{self.host()}:{EVENTHUB_KAFKA_PORT}",
            "subscribe": self.eventhub_name(),
            "kafka.group.id": self.consumer_group,
            "startingOffsets": self.starting_offsets,
            "maxOffsetsPerTrigger": str(self.max_events_per_batch),
            "kafka.security.protocol": "SASL_SSL",
            "kafka.request.timeout.ms": "60000",
            "kafka.session.timeout.ms": "30000",
            # Event Hubs keeps events for a retention period; events that expired before an
            # ingest ran cannot be read again, and the query must go on rather than stop.
            "failOnDataLoss": "false",
        }
        if self.connection_string:
            password = self.connection_string.replace('"', '\\"')
            options["kafka.sasl.mechanism"] = "PLAIN"
            options["kafka.sasl.jaas.config"] = (
                f"{prefix}org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'username="$ConnectionString" password="{password}";'
            )
        elif self.tenant_id and self.client_id and self.client_secret:
            options["kafka.sasl.mechanism"] = "OAUTHBEARER"
            options["kafka.sasl.jaas.config"] = (
                f"{prefix}org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
                f'clientId="{self.client_id}" clientSecret="{self.client_secret}" '
                f'scope="https://{self.host()}/.default" ssl.protocol="SSL";'
            )
            options["kafka.sasl.oauthbearer.token.endpoint.url"] = (
                f"https://login.microsoftonline.com/{self.tenant_id}/oauth2/v2.0/token"
            )
            options["kafka.sasl.login.callback.handler.class"] = (
                f"{prefix}org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerLoginCallbackHandler"
            )
        else:
            raise ValueError(
                "EventHubsSource needs a connection string (EVENTHUB_CONNECTION_STRING) or a service principal "
                "(tenant_id, client_id, client_secret) for Spark to read the hub."
            )
        return options

    def read_stream(self, spark: SparkSession, checkpoint: StreamCheckpoint) -> DataFrame:
        return (
            spark.readStream.format("kafka")
            .options(**self.kafka_options())
            .load()
            .select(
                F.col("value").cast("string").alias("value"),
                F.concat_ws(":", F.col("topic"), F.col("partition").cast("string"), F.col("offset").cast("string")).alias(
                    "source"
                ),
                F.col("timestamp").alias("landed_at"),
            )
        )

    def consumer(self) -> Any:
        """An azure-eventhub consumer client (reused across calls)."""
        if self._consumer is None:
            from azure.eventhub import EventHubConsumerClient

            if self.connection_string:
                self._consumer = EventHubConsumerClient.from_connection_string(
                    self.connection_string, consumer_group=self.consumer_group, eventhub_name=self.eventhub_name()
                )
            else:
                from azure.identity import DefaultAzureCredential

                self._consumer = EventHubConsumerClient(
                    fully_qualified_namespace=self.host(),
                    eventhub_name=self.eventhub_name(),
                    consumer_group=self.consumer_group,
                    credential=DefaultAzureCredential(),
                )
        return self._consumer

    def partition_positions(self) -> dict[str, int]:
        """The last enqueued sequence number of every partition (-1 for an empty partition)."""
        client = self.consumer()
        return {
            pid: int(client.get_partition_properties(pid)["last_enqueued_sequence_number"])
            for pid in client.get_partition_ids()
        }

    def checkpoint_name(self) -> str:
        return f"eventhub-{_short_hash(self.host() + '/' + self.eventhub_name())}"

    def pending_events(self, checkpoint: StreamCheckpoint) -> PendingEvents:
        offsets = checkpoint.committed_offsets() or {}
        return events_past_offsets(offsets.get(self.eventhub_name(), {}), self.partition_positions())


def events_past_offsets(offsets: dict[str, int], positions: dict[str, int]) -> PendingEvents:
    """Events on each partition past the next offset the checkpoint would read (Kafka offsets of an
    Event Hub are its sequence numbers); a partition the checkpoint has not seen counts from its start."""
    pending = {pid: position + 1 - int(offsets.get(pid, 0)) for pid, position in positions.items()}
    pending = {pid: n for pid, n in pending.items() if n > 0}
    if not pending:
        return PendingEvents(0, "the checkpoint has taken in every event on every partition")
    count = sum(pending.values())
    described = ", ".join(f"partition {pid}: {n}" for pid, n in sorted(pending.items()))
    return PendingEvents(count, f"{count} event(s) wait for an ingest ({described})")
