"""The retrain's Spark work on ml-latest-small, part by part, with EASE as the ranking model and with implicit ALS.

    .venv/bin/python -m bench.retrain_parts

One process, one session: an EASE fit and its scoring of every user (twice: the second without the
first's warm-up), the ranker's choice, then `evaluate_and_refit` with each ranking model, as
`als_model` runs them on bench.model_quality's split.
"""

import time
from functools import partial
from dataclasses import replace

from bench.model_data import movielens_ratings, session
from movierec_dagster.model import ease, evaluation, training


def timed(label: str, work):
    started = time.perf_counter()
    result = work()
    print(f"{label:<44} {time.perf_counter() - started:6.1f} s", flush=True)
    return result


def main() -> None:
    ratings = movielens_ratings(session())
    params = training.ModelParams()
    train, test = (frame.cache() for frame in evaluation.split(ratings, 0.2, 42))
    train.count(), test.count()
    model = timed("EASE fit on the training split", lambda: ease.fit_ease(train, params.ease_params()))
    for round_ in (1, 2):
        timed(f"EASE scoring of every user ({round_})", lambda: ease.ease_top_k_unseen(model, train).count())
    chosen, figures = timed("the ranker's choice", lambda: evaluation.choose_ranker(train, params))
    print(f"   {figures}")
    for ranked in (chosen, replace(params, ranker=training.ALS_RANKER)):
        timed(f"evaluate_and_refit, {ranked.ranker}", partial(evaluation.evaluate_and_refit, train, test, ratings, ranked))


if __name__ == "__main__":
    main()
