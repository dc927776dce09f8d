"""Does the demo's stream cost the model anything? `make demo` twice on ml-latest-small, then the model judged on the history.

The demo's burst (5,000 events, 5% malformed) is planted on the history's tastes. After each
demo this fits the shipped model on the training split of what the demo trained on (history
plus stream) and measures it on the held-out history ratings; beside it the same model fitted
on the history alone and measured on the same rows, and the same model after 5,000 uniformly
random ratings (the demo's stream before issue 12). The split hashes (user, movie, seed),
so a history rating is held out in every variant or in none. Target (issue 12): the demo's
model no worse than the history's by more than 0.005 RMSE and 0.005 NDCG@10, and the second
demo no worse than the first.

    .venv/bin/python -m bench.demo_stream_quality [--source PATH]
"""

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
from itertools import islice
from pathlib import Path

from pyspark.sql import functions as F

from bench.paths import MOVIELENS
from generator.sources import Population, Rating, synthetic
from movierec_dagster.model import evaluation, training
from movierec_dagster.resources import LocalLake, LocalSpark

ROOT = Path(__file__).resolve().parents[1]


def run_demo(home: Path, source: str) -> str:
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "infra" / "local" / "dagster.yaml", dagster_home / "dagster.yaml")
    environment = {**os.environ, "MOVIEREC_HOME": str(home), "DAGSTER_HOME": str(dagster_home), "MOVIELENS_SOURCE": source}
    done = subprocess.run([sys.executable, "-m", "movierec_dagster.demo"], env=environment, cwd=ROOT, check=True, capture_output=True, text=True)
    return next((line.strip() for line in done.stdout.splitlines() if "the gate" in line), "")


def on_history(train, held_out_history, params) -> dict[str, float]:
    measured, bundle = evaluation.evaluate(train, held_out_history, params)
    bundle.release()
    return {"rmse": measured.metrics["rmse"], "ndcg_at_10": measured.metrics["ndcg_at_10"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default=str(MOVIELENS))
    args = parser.parse_args()
    params = training.ModelParams()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        spark = None
        for demo in (1, 2):
            gate = run_demo(home, args.source)
            spark = spark or LocalSpark(master="local[2]", shuffle_partitions=2).session()
            lake = LocalLake(root=str(home / "lake"))
            history = lake.read_table(spark, "ratings").select("user_id", "movie_id", "rating").cache()
            merged = lake.read_table(spark, "training_ratings").select("user_id", "movie_id", "rating").cache()
            history_train, history_test = evaluation.split(history, 0.2, params.seed)
            merged_train, _ = evaluation.split(merged, 0.2, params.seed)
            if demo == 1:
                rows.append(("history alone", history.count(), on_history(history_train, history_test, params)))
                noise = [r[:3] for r in islice(synthetic(Population.from_ratings([Rating(r.user_id, r.movie_id, r.rating, 0) for r in history.collect()]), random.Random(12), ratings="random"), 5_000)]
                noisy = history.unionByName(spark.createDataFrame(noise, "user_id int, movie_id int, rating double"))
                noisy = noisy.groupBy("user_id", "movie_id").agg(F.last("rating").alias("rating"))
                rows.append(("history + 5,000 random ratings", noisy.count(), on_history(evaluation.split(noisy, 0.2, params.seed)[0], history_test, params)))
            rows.append((f"after demo {demo} (history + planted stream)", merged.count(), on_history(merged_train, history_test, params)))
            print(f"demo {demo}: {gate}", flush=True)
            history.unpersist()
            merged.unpersist()
    base = rows[0][2]
    print("\n| trained on | ratings | RMSE on held-out history | NDCG@10 on held-out history | vs history alone |")
    print("|---|---|---|---|---|")
    for name, count, metrics in rows:
        delta = f"{metrics['rmse'] - base['rmse']:+.4f} RMSE, {metrics['ndcg_at_10'] - base['ndcg_at_10']:+.4f} NDCG@10"
        print(f"| {name} | {count:,} | {metrics['rmse']:.4f} | {metrics['ndcg_at_10']:.4f} | {delta} |")


if __name__ == "__main__":
    main()
