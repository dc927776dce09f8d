"""Where the benchmarks find the genuine MovieLens archive: ../shared beside the checkout."""

from pathlib import Path

MOVIELENS = Path(__file__).resolve().parents[2] / "shared" / "movielens" / "ml-latest-small.zip"
