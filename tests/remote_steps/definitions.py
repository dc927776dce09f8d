"""The local deployment with every Spark step run in a process of its own, through a step launcher.

This is how dagster-databricks runs a step on a cluster: the plan process pickles
a reference to the step, another process rebuilds the code location from it and
runs the step there, and the events come back. `OutOfProcessSpark` is the local
Spark resource and a step launcher in one, so no asset names a launcher: as on
Azure, only the resources know where a step runs. Dagster's own local launcher
(`LocalExternalStepLauncher`, in its private API) does the launching.
"""

import os

from dagster._core.definitions.step_launcher import StepLauncher
from dagster._core.execution.plan.external_step import LocalExternalStepLauncher

from movierec_dagster.definitions import build_definitions
from movierec_dagster.resources import LocalSpark

SCRATCH_ENV = "MOVIEREC_TEST_STEP_SCRATCH"


class OutOfProcessSpark(LocalSpark, StepLauncher):
    """Local Spark for a step that runs in a new process: its own JVM, nothing shared with the plan process.

    The launcher passes files to the step's process through the folder in `MOVIEREC_TEST_STEP_SCRATCH`.
    """

    def launch_step(self, step_context):
        return LocalExternalStepLauncher(os.environ[SCRATCH_ENV]).launch_step(step_context)


defs = build_definitions(
    "local",
    resources={
        "spark": OutOfProcessSpark(master="local[2]", shuffle_partitions=2, driver_memory="1g")
    },
)
