"""Model quality on ml-latest-small: fixed 80/20 split (seed 42), defaults beside both baselines, and a grid.

    .venv/bin/python -m bench.model_quality            # the defaults
    .venv/bin/python -m bench.model_quality --grid     # plus rank x regParam x alpha on the same split
"""

import argparse
import time
from dataclasses import replace
from itertools import product

from bench.model_data import movielens_ratings, session
from movierec_dagster.model import training


def row(name: str, figures: dict[str, float], seconds: float | None = None) -> str:
    cells = [f"{figures.get(m, float('nan')):.4f}" if m in figures else "-" for m in ("rmse", "mae", "precision_at_10", "recall_at_10", "ndcg_at_10")]
    return f"| {name} | " + " | ".join(cells) + (f" | {seconds:.0f} s |" if seconds is not None else " | |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--grid", action="store_true", help="also evaluate rank x regParam x alpha")
    args = parser.parse_args()
    spark = session()
    ratings = movielens_ratings(spark)
    train, test = training.split(ratings, 0.2, seed=42)
    train, test = train.cache(), test.cache()
    print(f"ml-latest-small: {ratings.count():,} ratings; train {train.count():,}, test {test.count():,} (seed 42)\n")
    print("| model | RMSE | MAE | P@10 | R@10 | NDCG@10 | fit+eval |")
    print("|---|---|---|---|---|---|---|")
    params = training.ModelParams()
    started = time.perf_counter()
    evaluation, _ = training.evaluate(train, test, params)
    seconds = time.perf_counter() - started
    print(row("ours, defaults", evaluation.metrics, seconds))
    print(row("user+movie bias", evaluation.baselines["bias"]))
    print(row("most popular", evaluation.baselines["most_popular"]), flush=True)
    if args.grid:
        for rank, reg_param, alpha in product((20, 50, 100), (0.05, 0.1, 0.2), (0.3, 1.0, 3.0)):
            point = replace(params, rating_rank=rank, ranking_rank=rank, rating_reg_param=reg_param,
                            ranking_reg_param=reg_param, alpha=alpha)
            started = time.perf_counter()
            evaluation, _ = training.evaluate(train, test, point)
            print(row(f"rank {rank}, reg {reg_param}, alpha {alpha}", evaluation.metrics, time.perf_counter() - started), flush=True)
    print(f"\ndefaults: {params}")


if __name__ == "__main__":
    main()
