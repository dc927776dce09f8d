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

ETL_ASSETS = ["movielens_archive", "movies", "ratings", "tags", "links"]


def plain(home: Path, source: str) -> None:
    """The same work as the ETL assets, with no Dagster: unpack, parse, write, quarantine."""
    from movierec_dagster.movielens import archive, transforms
    from movierec_dagster.resources import LocalLake, LocalSpark
    from movierec_dagster.resources.lake import QUARANTINE

    lake = LocalLake(root=str(home / "lake"))
    spark = LocalSpark().session()
    with tempfile.TemporaryDirectory() as folder:
        unpacked = archive.unpack(source, Path(folder))
        lake.put_directory(unpacked.folder, "raw", "movielens")
    tables = {
        "movies": ("movies.csv", transforms.MOVIES_COLUMNS, transforms.parse_movies, ()),
        "ratings": ("ratings.csv", transforms.RATINGS_COLUMNS, transforms.parse_ratings, ("year",)),
        "tags": ("tags.csv", transforms.TAGS_COLUMNS, transforms.parse_tags, ()),
        "links": ("links.csv", transforms.LINKS_COLUMNS, transforms.parse_links, ()),
    }
    for key, (file_name, columns, parse, partition_by) in tables.items():
        parsed = parse(transforms.read_csv(spark, lake.uri("raw", "movielens", file_name), columns)).cache()
        valid, rejected = transforms.split_valid(parsed)
        lake.write_table(valid, key, partition_by=partition_by)
        lake.write_table(rejected, key, area=QUARANTINE)
        parsed.unpersist()
        print(key, lake.read_table(spark, key).count(), lake.read_table(spark, key, area=QUARANTINE).count())
    spark.stop()


def dagster(home: Path, source: str, with_checks: bool) -> None:
    """The ETL assets (and optionally their checks) materialized in one Dagster run."""
    from dagster import AssetSelection, DagsterEventType, DagsterInstance, Definitions, define_asset_job

    from movierec_dagster.definitions import build_definitions

    selection = AssetSelection.assets(*ETL_ASSETS)
    if not with_checks:
        selection = selection.without_checks()
    defs = Definitions.merge(
        build_definitions("local", {"MOVIEREC_HOME": str(home), "MOVIELENS_SOURCE": source}),
        Definitions(jobs=[define_asset_job("benchmark_etl", selection=selection)]),
    )
    with DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("benchmark_etl").execute_in_process(
            instance=instance, run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        )
    assert result.success
    checks = [event for event in result.all_events if event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION]
    assert bool(checks) == with_checks, "the benchmark must run the checks exactly when asked"


def _timed(variant: str, source: str) -> float:
    with tempfile.TemporaryDirectory() as home:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bench.etl_overhead", "--run", variant, "--home", home, "--source", source], check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default=str(MOVIELENS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--run", choices=["plain", "dagster", "dagster+checks"], help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        home = Path(args.home)
        if args.run == "plain":
            plain(home, args.source)
        else:
            dagster(home, args.source, with_checks=args.run == "dagster+checks")
        return
    timings: dict[str, list[float]] = {"plain": [], "dagster": [], "dagster+checks": []}
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
