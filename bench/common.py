"""What the benchmarks share: where the genuine MovieLens archive is, a Spark session set up like the local
deployment's, ml-latest-small's ratings, synthetic zips made once and cached, a fresh home for `make demo`'s
pipeline, and the subcommands' command line.

Little is imported at the top: a benchmark that times a fresh process running `python -m bench.<family>`
(the pipeline's `etl-overhead`), or reports a process's peak memory (the stream's `generator-throughput`),
counts what its module imports, so pyspark, pandas, Dagster and the heavier parts of the standard library are
imported in the functions that need them.
"""

from __future__ import annotations

import argparse
import inspect
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

ROOT = Path(__file__).resolve().parents[1]  # the checkout
# The genuine ml-latest-small: ../shared beside the checkout (docs/testing.md).
MOVIELENS = ROOT.parent / "shared" / "movielens" / "ml-latest-small.zip"
SYNTHETIC_CACHE = Path(tempfile.gettempdir()) / "rating-floor"  # synthetic zips (and a fitted model), kept between runs


# ---- the command line: one parser per family, one subparser per benchmark ----


def family_parser(prog: str, doc: str) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    """A family's parser (its module docstring as the description) and the action its subcommands are added to."""
    parser = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser, parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")


def subcommand(commands: argparse._SubParsersAction, name: str, run: Callable[[argparse.Namespace], None]) -> argparse.ArgumentParser:
    """The subparser `name` that runs `run(args)`, described by `run`'s docstring (the family's docstring lists them)."""
    parser = commands.add_parser(
        name, description=inspect.cleandoc(run.__doc__ or ""), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.set_defaults(benchmark=run)
    return parser


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """A family parser's subcommands by name (tests/test_bench.py holds the Makefile and the docs to them)."""
    return next(dict(action.choices) for action in parser._actions if isinstance(action, argparse._SubParsersAction))


def add_source(parser: argparse.ArgumentParser) -> None:
    """--source: the MovieLens zip a benchmark runs on, by default the genuine ml-latest-small."""
    parser.add_argument("--source", default=str(MOVIELENS), help="the MovieLens zip (default: the genuine ml-latest-small)")


# ---- Spark and the ratings (the model and scoring benchmarks) ----


def session() -> SparkSession:
    from movierec_dagster.resources import LocalSpark

    spark = LocalSpark().session()
    spark.sparkContext.setCheckpointDir(tempfile.mkdtemp(prefix="movierec-bench-checkpoints-"))
    return spark


def movielens_ratings(spark: SparkSession, archive: Path = MOVIELENS) -> DataFrame:
    """user_id, movie_id, rating of ml-latest-small (or another MovieLens zip), cached."""
    import zipfile

    import pandas as pd

    if not archive.is_file():
        sys.exit(f"ml-latest-small.zip is not at {archive}")
    with zipfile.ZipFile(archive) as bundle:
        name = next(n for n in bundle.namelist() if n.endswith("ratings.csv"))
        frame = pd.read_csv(bundle.open(name)).rename(columns={"userId": "user_id", "movieId": "movie_id"})
    ratings = spark.createDataFrame(frame[["user_id", "movie_id", "rating"]]).repartition(2).cache()
    ratings.count()
    return ratings


def synthetic_archive(folder: Path, ratings: int, seed: int) -> Path:
    """A synthetic MovieLens zip of `ratings` in the generator's default shape, written to `folder` once."""
    from generator.dataset import default_movies, default_users, write_dataset

    archive = folder / f"synthetic-{ratings}-seed{seed}.zip"
    if not archive.exists():
        folder.mkdir(parents=True, exist_ok=True)
        write_dataset(archive, ratings=ratings, users=default_users(ratings), movies=default_movies(ratings), seed=seed)
    return archive


# ---- `make demo`'s pipeline in a fresh process (the pipeline, stream and scale benchmarks) ----


def dagster_home(folder: Path) -> Path:
    """`folder`, made a Dagster home as `make dagster-home` makes one: the local deployment's dagster.yaml in it."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "infra" / "local" / "dagster.yaml", folder / "dagster.yaml")
    return folder


def demo_environment(home: Path, dagster: Path, source: str) -> dict[str, str]:
    """This process's environment with the demo pointed at `home`, the Dagster home `dagster` and the zip `source`."""
    return {**os.environ, "MOVIEREC_HOME": str(home), "DAGSTER_HOME": str(dagster), "MOVIELENS_SOURCE": source}


def run_demo(environment: dict[str, str]) -> str:
    """`python -m movierec_dagster.demo` in a fresh process, from the checkout; what it printed."""
    import subprocess

    command = [sys.executable, "-m", "movierec_dagster.demo"]
    return subprocess.run(command, env=environment, cwd=ROOT, check=True, capture_output=True, text=True).stdout


def free_port() -> int:
    """A free TCP port on loopback."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
