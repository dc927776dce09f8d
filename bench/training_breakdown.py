"""Where a retrain's time goes at scale: each part of `evaluation.evaluate`, one after another, on a synthetic zip.

`fit_bundle` runs the ranking model beside the biases and the rating model; here each
part runs alone, so their seconds add up to more than the retrain's and say what each
costs: the biases, the residual ALS (the default rank 50, and a cheaper rank 10 beside
it; `--residual-ranks 10,50` swaps their order), the ranking model, and the evaluation's
scoring (every test user's top 10 from the ranking model and from most-popular, and the
metrics). `--evaluate-rounds N` then times the whole `evaluation.evaluate` with the defaults
and with `rating_rank` 0 (no residual ALS), alternated; with `--evaluate-blocks 1,2,10`, with
the defaults at each of these ALS block counts instead (`--skip-parts`: only these rounds).

    .venv/bin/python -m bench.training_breakdown --ratings 5000000
    .venv/bin/python -m bench.training_breakdown --ratings 5000000 --evaluate-rounds 2
    .venv/bin/python -m bench.training_breakdown --ratings 5000000 --skip-parts --evaluate-rounds 2 --evaluate-blocks 1,2,10
"""

import argparse
import time
from dataclasses import replace
from pathlib import Path

from bench.model_data import SYNTHETIC_CACHE, movielens_ratings, session, synthetic_archive
from movierec_dagster.model import evaluation, training


def timed(label: str, work):
    started = time.perf_counter()
    result = work()
    print(f"   {label:<52} {time.perf_counter() - started:6.1f} s", flush=True)
    return result


def time_each_part(train, test, params: training.ModelParams, residual_ranks: str) -> None:
    def fit_biases():
        biases = training.fit_biases(train, params.user_bias_reg, params.item_bias_reg, params.bias_iterations)
        biases.user_bias.count(), biases.item_bias.count()  # they are lazy until read
        return biases

    biases = timed(f"biases, {params.bias_iterations} iterations", fit_biases)
    for rank in [int(rank) for rank in residual_ranks.split(",")]:
        rating_model = timed(
            f"residual ALS, rank {rank}, {params.rating_max_iter} iterations",
            lambda rank=rank: training.fit_rating_model(train, biases, replace(params, rating_rank=rank)),
        )
    ranking_model = timed(
        f"ranking ALS, rank {params.ranking_rank}, {params.ranking_max_iter} iterations",
        lambda: training.fit_ranking_model(train, params),
    )
    bundle = training.ModelBundle(biases, rating_model, ranking_model)
    timed(
        "held-out RMSE (the last residual ALS)",
        lambda: evaluation.rating_errors(training.predict_ratings(bundle, test), "predicted_rating"),
    )
    seen = train.select("user_id", "movie_id")
    timed(
        "ranking model's top 10 for every user, and the metrics",
        lambda: evaluation.ranking_metrics(training.recommend_top_k(bundle, seen), test),
    )
    test_users = test.select("user_id").distinct()
    timed(
        "most-popular top 10 for every test user, and the metrics",
        lambda: evaluation.ranking_metrics(training.most_popular_top_k(train, test_users), test),
    )
    bundle.release()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ratings", type=int, default=5_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--evaluate-rounds", type=int, default=0, metavar="N",
        help="also time the whole `evaluation.evaluate` N times with the defaults and with rating_rank 0, alternated",
    )
    parser.add_argument(
        "--residual-ranks", default="50,10", help="ranks of the residual ALS, fitted in this order (the last is evaluated)"
    )
    parser.add_argument("--num-blocks", type=int, default=training.ModelParams().num_blocks, help="ALS user and item blocks")
    parser.add_argument(
        "--evaluate-blocks", default="", metavar="LIST",
        help="the evaluate rounds compare these ALS block counts (with the defaults) instead of rating_rank 0",
    )
    parser.add_argument("--skip-parts", action="store_true", help="only the evaluate rounds")
    parser.add_argument("--data", type=Path, default=SYNTHETIC_CACHE)
    args = parser.parse_args()
    archive = synthetic_archive(args.data, args.ratings, args.seed)
    spark = session()
    ratings = movielens_ratings(spark, archive)
    params = training.ModelParams(num_blocks=args.num_blocks)
    train, test = evaluation.split(ratings, 0.2, seed=params.seed)
    train, test = train.cache(), test.cache()
    print(
        f"{train.count():,} training and {test.count():,} held-out ratings, {spark.sparkContext.defaultParallelism} cores, "
        f"ALS in {params.num_blocks} block(s)"
    )
    if not args.skip_parts:
        time_each_part(train, test, params, args.residual_ranks)
    if args.evaluate_blocks:
        variants = [(f"{blocks} block(s)", replace(params, num_blocks=int(blocks))) for blocks in args.evaluate_blocks.split(",")]
    else:
        variants = [("defaults", params), ("rating_rank 0", replace(params, rating_rank=0))]
    for round_ in range(1, args.evaluate_rounds + 1):
        for label, evaluated in variants:
            measured, fitted = timed(
                f"round {round_}: evaluation.evaluate, {label}", lambda evaluated=evaluated: evaluation.evaluate(train, test, evaluated)
            )
            fitted.release()
            metrics = measured.metrics
            print(
                f"      RMSE {metrics['rmse']:.5f}, NDCG@10 {metrics['ndcg_at_10']:.4f}, "
                f"rating model: {fitted.rating_model_kind}"
            )


if __name__ == "__main__":
    main()
