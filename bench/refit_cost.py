"""What the refit on all ratings costs a retrain: `evaluate` alone against `evaluate_and_refit`, alternated.

The als_model step's Spark work on ml-latest-small in one process (a first round warms
the JVM up and is not counted): `evaluate_and_refit` is what every retrain does (the
evaluation on the held-out split, and beside it both models fitted again on all ratings,
the ones saved and served); `evaluate` alone is the same without the refit.

    .venv/bin/python -m bench.refit_cost [--rounds 3]
"""

import argparse
import os
import statistics
import time

from bench.model_data import movielens_ratings, session
from movierec_dagster.model import evaluation, training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ratings = movielens_ratings(session())
    params = training.ModelParams()
    train, test = evaluation.split(ratings, 0.2, seed=params.seed)
    work = {
        "evaluate alone": lambda: evaluation.evaluate(train, test, params)[1],
        "evaluate_and_refit (the retrain)": lambda: evaluation.evaluate_and_refit(train, test, ratings, params)[1],
    }
    times = {label: [] for label in work}
    for round_ in range(args.rounds + 1):
        for label, run in work.items():
            load = os.getloadavg()[0]
            started = time.perf_counter()
            run().release()
            seconds = time.perf_counter() - started
            if round_:
                times[label].append(seconds)
            print(f"round {round_}{' (warm-up)' if not round_ else ''}: {label:<44} {seconds:5.1f} s  load {load:.1f}", flush=True)
    medians = {label: statistics.median(values) for label, values in times.items()}
    alone, refit = medians.values()
    print(f"\nmedians: evaluate alone {alone:.1f} s, evaluate_and_refit {refit:.1f} s ({refit / alone:.2f}x)")


if __name__ == "__main__":
    main()
