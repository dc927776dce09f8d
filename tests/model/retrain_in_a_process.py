"""`python -m tests.model.retrain_in_a_process HOME MOVIELENS DAGSTER_HOME`: one retrain_model run, as a run worker runs it."""

import sys
from pathlib import Path

from dagster import DagsterInstance

from tests.conftest import local_definitions
from tests.pipeline import SMALL

if __name__ == "__main__":
    home, movielens, dagster_home = sys.argv[1:]
    defs = local_definitions(Path(home), movielens)
    with DagsterInstance.from_config(dagster_home) as instance:
        result = defs.resolve_job_def("retrain_model").execute_in_process(
            instance=instance, run_config={"ops": {"als_model": {"config": SMALL}}}
        )
    print(result.run_id)
    sys.exit(0 if result.success else 1)
