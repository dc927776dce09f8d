"""The Spark session resources: the contract assets ask for, and the local implementation behind it."""

import os
import sys
from pathlib import Path

from dagster import ConfigurableResource
from pyspark.sql import SparkSession

LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties")

# Settings that change what the pipeline computes, given to every session wherever it runs. The time
# zone decides how offset-less ISO timestamps are read and which year a rating falls in.
RESULT_SETTINGS = {"spark.sql.session.timeZone": "UTC"}
# Settings for speed, also given to every session. Arrow batches to Python (the scorer's mapInArrow) are
# capped by rows alone: the cap in bytes (Spark 4.1+) measures the batch after every row, which grows
# with the batch and made scoring MovieLens-25M's 24M seen pairs several times slower. Int.MaxValue
# turns that measurement off; Spark versions without the setting ignore it.
SPEED_SETTINGS = {"spark.sql.execution.arrow.maxBytesPerBatch": str(2**31 - 1)}
# Paths a local session lists on the driver before it lists them in a Spark job (Spark's default: 32).
LOCAL_LISTING_THRESHOLD = 100_000


class SparkResource(ConfigurableResource):
    """A Spark session for a step: `session()` returns it with the settings that decide results applied."""

    def session(self) -> SparkSession:
        spark = self.get_or_start()
        for key, value in (RESULT_SETTINGS | SPEED_SETTINGS).items():
            spark.conf.set(key, value)
        return spark

    def get_or_start(self) -> SparkSession:
        """The session this implementation provides (a cluster's own, or one it starts)."""
        raise NotImplementedError


class LocalSpark(SparkResource):
    """A local PySpark session, shared by every step of a run.

    `session()` returns the process's active session when there is one, so with
    the in-process executor a whole run starts exactly one JVM.
    """

    master: str = "local[*]"
    shuffle_partitions: int = 4
    driver_memory: str = "4g"
    ui_enabled: bool = False
    app_name: str = "movierec"
    # Tuned for a JVM that lives about a minute on ml-latest-small-sized data: the JVM's quick compiler (C1)
    # alone, since C2 compiling on one of the two cores costs more than its code saves, and no adaptive query
    # execution, whose re-planning at every shuffle costs more than it can win on 100k rows. From about 1M
    # ratings ALS's arithmetic needs C2 (docs/architecture.md, "Local Spark").
    small_data: bool = False

    def get_or_start(self) -> SparkSession:
        # Local Spark binds to loopback; without this it warns about the host name on every start.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        # Python workers (mapInArrow in the scorer) need this interpreter's numpy and pyarrow;
        # PySpark reads the variable, not a Spark setting, when it starts them.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        # The parallel collector: less CPU than the default G1 for these short batch jobs.
        java_options = f"-Dlog4j2.configurationFile={LOG4J_CONFIG.as_uri()} -XX:+UseParallelGC"
        if self.small_data:
            java_options += " -XX:TieredStopAtLevel=1"
        builder = (
            SparkSession.builder.master(self.master)
            .appName(self.app_name)
            .config("spark.driver.memory", self.driver_memory)
            .config("spark.driver.extraJavaOptions", java_options)
            .config("spark.sql.shuffle.partitions", str(self.shuffle_partitions))
            # Cached frames here are short-lived (an ingest batch, a training split) and spill to disk when
            # memory runs short; without compression the ingest takes less CPU.
            .config("spark.sql.inMemoryColumnarStorage.compressed", "false")
            .config("spark.ui.enabled", str(self.ui_enabled).lower())
            .config("spark.ui.showConsoleProgress", "false")
            # The lake's readers name every file of a table's version. Above this many paths Spark lists them in a
            # Spark job of its own, at every read; on a local disk the driver lists thousands in less time.
            .config("spark.sql.sources.parallelPartitionDiscovery.threshold", str(LOCAL_LISTING_THRESHOLD))
        )
        if self.small_data:
            builder = builder.config("spark.sql.adaptive.enabled", "false")
        for key, value in RESULT_SETTINGS.items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
        spark.sparkContext.setLogLevel("WARN")
        return spark
