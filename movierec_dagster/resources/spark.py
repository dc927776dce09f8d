"""The Spark session resource for the local deployment."""

import os
import sys
from pathlib import Path

from dagster import ConfigurableResource
from pyspark.sql import SparkSession

LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties")


class LocalSpark(ConfigurableResource):
    """A local PySpark session, shared by every step of a run.

    `session()` returns the process's active session when there is one, so with
    the in-process executor a whole run starts exactly one JVM.
    """

    master: str = "local[*]"
    shuffle_partitions: int = 4
    driver_memory: str = "4g"
    ui_enabled: bool = False
    app_name: str = "movierec"

    def session(self) -> SparkSession:
        # Local Spark binds to loopback; without this it warns about the host name on every start.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        # Python workers (mapInArrow in the scorer) need this interpreter's numpy and pyarrow;
        # PySpark reads the variable, not a Spark setting, when it starts them.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        # The parallel collector: about 10% less CPU than the default G1 for these batch jobs (docs/benchmarks.md).
        java_options = f"-Dlog4j2.configurationFile={LOG4J_CONFIG.as_uri()} -XX:+UseParallelGC"
        spark = (
            SparkSession.builder.master(self.master)
            .appName(self.app_name)
            .config("spark.driver.memory", self.driver_memory)
            .config("spark.driver.extraJavaOptions", java_options)
            .config("spark.sql.shuffle.partitions", str(self.shuffle_partitions))
            # Cached frames here are short-lived (an ingest batch, a training split) and spill to disk when
            # memory runs short; without compression the ingest takes about 9% less CPU (docs/benchmarks.md).
            .config("spark.sql.inMemoryColumnarStorage.compressed", "false")
            .config("spark.ui.enabled", str(self.ui_enabled).lower())
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
            .getOrCreate()
        )
        spark.sparkContext.setLogLevel("WARN")
        return spark
