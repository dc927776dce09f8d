"""The whole graph with every Spark step in a process and JVM of its own, through a step launcher, as Databricks runs it.

A launched step sees an ephemeral Dagster instance and a fresh JVM: it has only its
resources, its config and the lake. Its outputs must equal those of the same jobs run
in one process, so a step that read the instance (its row counts, its metadata)
would differ here: `streamed_rows` would be lost and scoring would see other ratings.
"""

from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, execute_job
from dagster._core.definitions.reconstruct import ReconstructableRepository

from tests.conftest import local_definitions
from tests.pipeline import graph_outputs, run_graph, today
from tests.remote_steps import definitions

SPARK_STEPS = {"movielens_tables", "rating_events", "training_ratings", "als_model", "user_recommendations"}


@pytest.mark.slow
def test_every_spark_step_runs_in_a_process_of_its_own_with_the_samegraph_outputs(
    spark, graph_run, synthetic_zip, tmp_path, monkeypatch
):
    expected = graph_outputs(graph_run.defs.resources["lake"], spark)

    remote_home = tmp_path / "launched"
    scratch = tmp_path / "steps"
    # The step's process rebuilds the code location from the environment, as `dagster dev` does.
    monkeypatch.setenv("MOVIEREC_HOME", str(remote_home))
    monkeypatch.setenv("MOVIELENS_SOURCE", str(synthetic_zip))
    monkeypatch.setenv(definitions.SCRATCH_ENV, str(scratch))
    remote = local_definitions(remote_home, synthetic_zip)
    repository = ReconstructableRepository.for_file(definitions.__file__, "defs")
    launched: set[str] = set()
    with DagsterInstance.ephemeral() as instance:

        def run_launched(name, run_config=None):
            result = execute_job(repository.get_reconstructable_job(name), instance, run_config=run_config)
            assert result.success, name
            launched.update(
                event.step_key
                for event in result.all_events
                if event.event_type == DagsterEventType.STEP_SUCCESS
                and (scratch / result.run_id / event.step_key / "events.pkl").exists()
            )

        run_graph(run_launched, Path(remote.resources["event_source"].folder), graph_run.new_user)

    assert launched == SPARK_STEPS
    assert graph_outputs(remote.resources["lake"], spark) == expected
    assert expected["streamed_rows"] == 2 and expected["events"] == ["a", "b", "c"]
    assert (today(), "popularity", 10) in expected["per_day_and_source"], "the user new in the stream is served"
