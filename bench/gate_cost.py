"""What the fair gate costs a retrain on ml-latest-small: the als_model step with and without judging the champion again.

When the champion's parameters are the candidate's, the candidate's own evaluation stands
for the champion's on the same data: no extra fit. When they differ (a changed config, a
grid search), the champion's parameters are fitted once more on the candidate's training
split. This trains a champion, then alternates retrains with the same parameters and with
another `ranking_reg_param`, each after a retrain that restores the champion's parameters
(judged on unchanged data, both pass), and reports the als_model step's time.

    .venv/bin/python -m bench.gate_cost [--rounds 2] [--source PATH]
"""

import argparse
import statistics
import tempfile
from pathlib import Path

from dagster import DagsterInstance

from bench.paths import MOVIELENS
from movierec_dagster.definitions import build_definitions
from movierec_dagster.model import registry

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--source", default=str(MOVIELENS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, DagsterInstance.ephemeral() as instance:
        defs = build_definitions("local", {"MOVIEREC_HOME": str(Path(folder)), "MOVIELENS_SOURCE": args.source})
        lake = defs.resources["lake"]
        assert defs.resolve_job_def("movielens_etl").execute_in_process(instance=instance, run_config=QUIET).success

        def retrain(**config) -> float:
            run_config = {**QUIET, "ops": {"als_model": {"config": config}}}
            result = defs.resolve_job_def("retrain_model").execute_in_process(instance=instance, run_config=run_config)
            assert result.success
            stats = [s for s in instance.get_run_step_stats(result.run_id) if s.step_key == "als_model"]
            return stats[0].end_time - stats[0].start_time

        retrain()  # the champion, and the JVM warmed up
        seconds: dict[str, list[float]] = {"same parameters (no extra fit)": [], "other parameters (champion fitted again)": []}
        for _ in range(args.rounds):
            seconds["same parameters (no extra fit)"].append(retrain())
            seconds["other parameters (champion fitted again)"].append(retrain(ranking_reg_param=0.12))
            retrain()  # the default parameters back as the champion's
        print(f"champion {registry.read_champion(lake)['version']}; als_model step, {args.rounds} rounds alternated:")
        for name, values in seconds.items():
            print(f"  {name:<42} median {statistics.median(values):5.1f} s   {', '.join(f'{v:.1f}' for v in values)}")


if __name__ == "__main__":
    main()
