"""Model quality on ml-latest-small: fixed 80/20 split (seed 42), defaults beside both baselines, and a grid.

    .venv/bin/python -m bench.model_quality            # the defaults
    .venv/bin/python -m bench.model_quality --grid     # plus rank x regParam x alpha on the same split
    .venv/bin/python -m bench.model_quality --timing 2 # plus the retrain's work (evaluate + refit), timed, 2 rounds

--timing alternates the defaults with the earlier, heavier setting (both models rank 50,
15 iterations, 2 ALS blocks, evaluation then refit), so both see the same machine load.
"""

import argparse
import time
from dataclasses import replace
from itertools import product

from bench.model_data import movielens_ratings, session
from movierec_dagster.model import evaluation, training


def row(name: str, figures: dict[str, float], seconds: float | None = None) -> str:
    cells = [f"{figures.get(m, float('nan')):.4f}" if m in figures else "-" for m in ("rmse", "mae", "precision_at_10", "recall_at_10", "ndcg_at_10")]
    return f"| {name} | " + " | ".join(cells) + (f" | {seconds:.0f} s |" if seconds is not None else " | |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--grid", action="store_true", help="also evaluate rank x regParam x alpha")
    parser.add_argument("--timing", type=int, default=0, metavar="ROUNDS", help="also time evaluate + refit")
    args = parser.parse_args()
    spark = session()
    ratings = movielens_ratings(spark)
    train, test = evaluation.split(ratings, 0.2, seed=42)
    train, test = train.cache(), test.cache()
    print(f"ml-latest-small: {ratings.count():,} ratings; train {train.count():,}, test {test.count():,} (seed 42)\n")
    print("| model | RMSE | MAE | P@10 | R@10 | NDCG@10 | fit+eval |")
    print("|---|---|---|---|---|---|---|")
    params = training.ModelParams()
    started = time.perf_counter()
    measured, _ = evaluation.evaluate(train, test, params)
    seconds = time.perf_counter() - started
    print(row("ours, defaults", measured.metrics, seconds))
    print(row("user+movie bias", measured.baselines["bias"]))
    print(row("most popular", measured.baselines["most_popular"]), flush=True)
    if args.grid:
        for rank, reg_param, alpha in product((20, 50, 100), (0.05, 0.1, 0.2), (0.3, 1.0, 3.0)):
            point = replace(params, rating_rank=rank, ranking_rank=rank, rating_reg_param=reg_param,
                            ranking_reg_param=reg_param, alpha=alpha)
            started = time.perf_counter()
            measured, _ = evaluation.evaluate(train, test, point)
            print(row(f"rank {rank}, reg {reg_param}, alpha {alpha}", measured.metrics, time.perf_counter() - started), flush=True)
    print(f"\ndefaults: {params}")
    if args.timing:
        time_retrain(ratings, params, args.timing)


def time_retrain(ratings, params: training.ModelParams, rounds: int) -> None:
    """The als_model asset's Spark work on ml-latest-small: the held-out evaluation and the refit on all ratings."""
    heavy = replace(
        params, rating_rank=50, rating_max_iter=15, ranking_rank=50, ranking_max_iter=15, num_blocks=2, ranker=training.ALS_RANKER
    )

    def sequential():
        train, test = evaluation.split(ratings, 0.2, seed=42)
        evaluation.evaluate(train, test, heavy)
        training.fit_bundle(ratings, heavy)

    def side_by_side():
        train, test = evaluation.split(ratings, 0.2, seed=42)
        evaluation.evaluate_and_refit(train, test, ratings, params)

    print("\nevaluate + refit on all ratings (the retrain's Spark work):")
    for round_ in range(1, rounds + 1):
        for label, work in (("rank 50, 15 iterations, 2 blocks, evaluation then refit", sequential),
                            ("defaults, evaluation and refit side by side", side_by_side)):
            started = time.perf_counter()
            work()
            print(f"   round {round_}: {label:<56} {time.perf_counter() - started:6.1f} s", flush=True)


if __name__ == "__main__":
    main()
