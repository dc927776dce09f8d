"""The MovieLens ETL as a plain PySpark script and through Dagster, side by side in one run.

Each variant runs in a fresh Python process (so Spark start-up and imports are
counted, as a user meets them) on its own empty MOVIEREC_HOME, alternating, and
the medians are compared. Target (issue 2): Dagster at most 1.3x the plain script.

    .venv/bin/python -m bench.etl_overhead [--source PATH] [--repeats N]
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.paths import MOVIELENS

def plain(home: Path, source: str) -> None:
    """The same work as the ETL assets, with no Dagster and no checks: unpack, parse, write, quarantine."""
    from movierec_dagster.movielens import archive, transforms
    from movierec_dagster.movielens.assets import ARCHIVE_KEY, SOURCE_TABLES, raw_csv_uri
    from movierec_dagster.resources import LocalLake, LocalSpark
    from movierec_dagster.resources.lake import QUARANTINE, RAW

    lake = LocalLake(root=str(home / "lake"))
    spark = LocalSpark().session()
    with tempfile.TemporaryDirectory() as folder:
        unpacked = archive.unpack(source, Path(folder))
        lake.put_directory(unpacked.folder, ARCHIVE_KEY, RAW)
    for key, table in SOURCE_TABLES.items():
        parsed = table.parse(transforms.read_csv(spark, raw_csv_uri(lake, table.file_name), table.columns)).cache()
        valid, rejected = transforms.split_valid(parsed)
        lake.write_table(valid, key, partition_by=table.partition_by)
        lake.write_table(rejected, key, area=QUARANTINE)
        parsed.unpersist()
        print(key, lake.read_table(spark, key).count(), lake.read_table(spark, key, area=QUARANTINE).count())
    spark.stop()


def dagster(home: Path, source: str) -> None:
    """The ETL job materialized in one Dagster run; its checks run in the tables' step."""
    from dagster import DagsterInstance

    from movierec_dagster.definitions import build_definitions

    defs = build_definitions("local", {"MOVIEREC_HOME": str(home), "MOVIELENS_SOURCE": source})
    with DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("movielens_etl").execute_in_process(
            instance=instance, run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        )
    assert result.success


def _timed(variant: str, source: str) -> float:
    with tempfile.TemporaryDirectory() as home:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bench.etl_overhead", "--run", variant, "--home", home, "--source", source], check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default=str(MOVIELENS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--run", choices=["plain", "dagster"], help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        home = Path(args.home)
        if args.run == "plain":
            plain(home, args.source)
        else:
            dagster(home, args.source)
        return
    timings: dict[str, list[float]] = {"plain": [], "dagster": []}
    for repeat in range(args.repeats):
        for variant in timings:
            timings[variant].append(_timed(variant, args.source))
            print(f"run {repeat + 1} {variant:<15} {timings[variant][-1]:6.1f} s", flush=True)
    medians = {variant: statistics.median(values) for variant, values in timings.items()}
    print("\nmedian wall time (fresh process, Spark start-up included)")
    for variant, median in medians.items():
        print(f"  {variant:<15} {median:6.1f} s   {median / medians['plain']:.2f}x plain")


if __name__ == "__main__":
    main()
