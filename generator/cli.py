"""`movierec-generate`: stream rating events into the landing folder or an Azure Event Hub.

Examples:
  movierec-generate --count 10000                       # synthetic, as fast as possible, into the landing folder
  movierec-generate --count 10000 --ratings random      # synthetic noise instead of learnable ratings
  movierec-generate --source movielens --rate 1 --timestamps now   # the seed's replay, one event a second
  movierec-generate --count 5000 --malformed 0.05 --seed 7         # reproducible, 5% bad events
  movierec-generate --sink eventhub --rate 100                     # EVENTHUB_CONNECTION_STRING + EVENTHUB_NAME
  movierec-generate dataset --ratings 1000000 --seed 1 --out ml-synthetic-1m.zip  # a MovieLens zip (see dataset --help)
"""

import argparse
import itertools
import os
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from generator.dataset import ML_25M, check_shape, default_movies, default_users, write_dataset
from generator.sinks import EventHubSink, LocalSink, Sink, eventhub_producer
from generator.events import Counts, encode_events
from generator.movielens import read_movielens_genres, read_movielens_ratings, replay
from generator.ratings import GeneratorInputError
from generator.streams import RATING_KINDS, planted, synthetic
from generator.tastes import Population, Tastes
from movierec_dagster.home import local_landing_folder

DEFAULT_MOVIELENS = "../shared/movielens/ml-latest-small.zip"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="movierec-generate",
        description="Generate rating events (MovieLens replay or synthetic) into the landing folder or Event Hubs; "
        "`movierec-generate dataset` writes a synthetic MovieLens zip instead (see `movierec-generate dataset --help`).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 2)[2],
    )
    source = parser.add_argument_group("source")
    source.add_argument("--source", choices=("synthetic", "movielens"), default="synthetic")
    source.add_argument(
        "--movielens",
        type=Path,
        default=None,
        help=f"MovieLens zip or folder to replay (and whose users/movies synthetic activity knows); "
        f"default $MOVIELENS_SOURCE when it is a local file, else {DEFAULT_MOVIELENS}",
    )
    source.add_argument("--order", choices=("shuffle", "time"), default="shuffle", help="replay order")
    source.add_argument("--timestamps", choices=("original", "now"), default="original", help="replay timestamps")
    source.add_argument(
        "--new-fraction", type=float, default=0.05, help="synthetic: share of users/movies the model has never seen"
    )
    source.add_argument(
        "--ratings",
        choices=RATING_KINDS,
        default="planted",
        help="synthetic: 'planted' draws ratings from tastes a recommender can learn (the MovieLens history's, "
        "when there is one), 'random' is noise",
    )
    source.add_argument("--malformed", type=float, default=0.0, help="share of malformed events to mix in (0-1)")
    source.add_argument("--seed", type=int, default=None, help="makes the run reproducible")
    sink = parser.add_argument_group("sink")
    sink.add_argument("--sink", choices=("local", "eventhub"), default="local")
    sink.add_argument("--landing", type=Path, default=None, help="local: folder (default $MOVIEREC_HOME/lake/landing/rating_events)")
    sink.add_argument("--roll-events", type=int, default=10_000, help="local: events per file")
    sink.add_argument("--roll-seconds", type=float, default=5.0, help="local: seconds before a file is published")
    pace = parser.add_argument_group("pace")
    pace.add_argument("--rate", type=float, default=0.0, help="events per second (0: as fast as possible)")
    pace.add_argument("--count", type=int, default=None, help="events to send (default: until Ctrl-C)")
    pace.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return parser


DATASET_EXAMPLES = f"""Examples:
  movierec-generate dataset --ratings 1000000 --seed 1 --out ml-synthetic-1m.zip
  movierec-generate dataset --ratings {ML_25M[0]} --users {ML_25M[1]} --movies {ML_25M[2]} --seed 1 --out ml-synthetic-25m.zip
  MOVIELENS_SOURCE=$PWD/ml-synthetic-1m.zip make demo      # the platform on it
"""


def build_dataset_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="movierec-generate dataset",
        description="Write a synthetic MovieLens dataset: an ml-latest-format zip (movies.csv, ratings.csv, tags.csv, "
        "links.csv) that MOVIELENS_SOURCE accepts, its ratings drawn from planted tastes a model can learn.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=DATASET_EXAMPLES,
    )
    parser.add_argument("--ratings", type=int, required=True, help="ratings to write, exactly")
    parser.add_argument(
        "--users", type=int, default=None, help="users 1..U (default: MovieLens-25M's ratings per user, about 154)"
    )
    parser.add_argument(
        "--movies", type=int, default=None, help="movies 1..M (default: grows as ratings^0.33, ml-latest-small to ML-25M)"
    )
    parser.add_argument("--seed", type=int, default=None, help="makes the zip reproducible, byte for byte (default: random)")
    parser.add_argument("--out", type=Path, required=True, help="the zip to write (replaced if it exists)")
    parser.add_argument("--compress-level", type=int, default=6, choices=range(0, 10), metavar="0-9", help="deflate level")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return parser


def dataset_main(argv: list[str]) -> int:
    args = build_dataset_parser().parse_args(argv)
    users = args.users if args.users is not None else default_users(args.ratings)
    movies = args.movies if args.movies is not None else default_movies(args.ratings)
    out = None if args.quiet else sys.stderr

    def progress(written: int, seconds: float) -> None:
        if out is not None:
            print(f"movierec-generate dataset: {written:,} / {args.ratings:,} ratings in {seconds:.1f} s", file=out, flush=True)

    try:
        check_shape(args.ratings, users, movies)
        summary = write_dataset(
            args.out, ratings=args.ratings, users=users, movies=movies, seed=args.seed,
            compresslevel=args.compress_level, progress=progress,
        )
    except GeneratorInputError as error:
        print(f"movierec-generate dataset: {error}", file=sys.stderr)
        return 2
    if out is not None:
        print(
            f"movierec-generate dataset: {summary.path}: {summary.ratings:,} ratings, {summary.users:,} users, "
            f"{summary.movies:,} movies, {summary.tags:,} tags, seed {summary.seed}, {summary.seconds:.1f} s",
            file=out,
        )
    return 0


def _movielens_path(argument: Path | None, environ: dict[str, str]) -> Path | None:
    if argument is not None:
        return argument
    configured = environ.get("MOVIELENS_SOURCE", "").strip()
    if configured and not configured.startswith(("http://", "https://")):
        return Path(configured).expanduser()
    fallback = Path(DEFAULT_MOVIELENS)
    return fallback if fallback.exists() else None


def build_lines(args: argparse.Namespace, environ: dict[str, str], counts: Counts) -> Iterator[bytes]:
    rng = random.Random(args.seed)
    movielens = _movielens_path(args.movielens, environ)
    if args.source == "movielens":
        if movielens is None or not movielens.exists():
            raise GeneratorInputError(
                f"--source movielens needs a MovieLens zip: pass --movielens PATH (looked for {movielens or DEFAULT_MOVIELENS})."
            )
        ratings = replay(read_movielens_ratings(movielens), rng, order=args.order, timestamps=args.timestamps)
    else:
        history = read_movielens_ratings(movielens) if movielens is not None and movielens.exists() else None
        if history and args.ratings == "planted":
            tastes = Tastes.from_history(history, rng, genres=read_movielens_genres(movielens))
            ratings = planted(tastes, rng, new_fraction=args.new_fraction)
        else:
            population = Population.from_ratings(history) if history else Population.default()
            ratings = synthetic(population, rng, new_fraction=args.new_fraction, ratings=args.ratings)
    return encode_events(ratings, rng, malformed_fraction=args.malformed, counts=counts)


def build_sink(args: argparse.Namespace, environ: dict[str, str]) -> Sink:
    if args.sink == "eventhub":
        return EventHubSink(eventhub_producer(environ))
    landing = args.landing or local_landing_folder(environ)
    return LocalSink(landing, roll_events=args.roll_events, roll_seconds=args.roll_seconds)


@dataclass
class Progress:
    """A line on stderr every `every` seconds, and a last one at the end."""

    counts: Counts
    out: TextIO | None
    every: float = 2.0

    def __post_init__(self) -> None:
        self.started = self.last = time.monotonic()

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.out is None or (not force and now - self.last < self.every):
            return
        self.last = now
        elapsed = max(now - self.started, 1e-9)
        c = self.counts
        print(
            f"movierec-generate: {c.total:,} events ({c.malformed:,} malformed) in {elapsed:.1f} s, "
            f"{c.total / elapsed:,.0f}/s",
            file=self.out,
            flush=True,
        )


def pump(lines: Iterator[bytes], sink: Sink, *, count: int | None, rate: float, progress: Progress) -> None:
    """Write `count` lines (all when None) at `rate` per second (0: unpaced); the sink is always closed."""
    stream = lines if count is None else itertools.islice(lines, count)
    started = time.monotonic()
    try:
        for sent, line in enumerate(stream, start=1):
            sink.write(line)
            if rate > 0:
                delay = started + sent / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            if sent & 1023 == 0 or rate > 0:
                progress.tick()
    finally:
        sink.close()
        progress.tick(force=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["dataset"]:  # a subcommand; without one, the arguments are the event stream's (as they always were)
        return dataset_main(argv[1:])
    args = build_parser().parse_args(argv)
    environ = dict(os.environ)
    if args.rate < 0 or (args.count is not None and args.count < 0):
        print("movierec-generate: --rate and --count must not be negative", file=sys.stderr)
        return 2
    counts = Counts()
    try:
        lines = build_lines(args, environ, counts)
        sink = build_sink(args, environ)
    except (GeneratorInputError, ValueError) as error:
        print(f"movierec-generate: {error}", file=sys.stderr)
        return 2
    progress = Progress(counts, None if args.quiet else sys.stderr)
    try:
        pump(lines, sink, count=args.count, rate=args.rate, progress=progress)
    except KeyboardInterrupt:
        print("movierec-generate: stopped; everything generated so far was delivered.", file=sys.stderr)
        return 130
    if isinstance(sink, LocalSink) and not args.quiet:
        print(f"movierec-generate: {len(sink.files)} file(s) in {sink.folder}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
