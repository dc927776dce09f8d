"""The demo's run helper: a failed run stops the demo with the reason; a tolerated failed gate does not."""

import pytest
from dagster import AssetCheckResult, AssetCheckSpec, Definitions, MaterializeResult, asset, define_asset_job

from movierec_dagster.demo import run_job


@asset(check_specs=[AssetCheckSpec("gate", asset="candidate", blocking=True)])
def candidate() -> MaterializeResult:
    return MaterializeResult(check_results=[AssetCheckResult(check_name="gate", passed=False, description="worse than the champion")])


@asset
def broken() -> None:
    raise ValueError("the input is corrupt")


DEFS = Definitions(
    assets=[candidate, broken],
    jobs=[define_asset_job("gated", selection=[candidate]), define_asset_job("broken_job", selection=[broken])],
)


def test_a_tolerated_gate_failure_is_reported_and_the_demo_goes_on(instance, capsys):
    result = run_job(DEFS, instance, "gated", tolerated_check="gate")
    assert not result.success
    assert "gate did not pass: worse than the champion" in capsys.readouterr().out


def test_a_failed_check_stops_the_demo_when_not_tolerated(instance, capsys):
    with pytest.raises(SystemExit) as stopped:
        run_job(DEFS, instance, "gated")
    assert stopped.value.code == 1
    assert "check gate on candidate failed" in capsys.readouterr().err


def test_a_failed_step_stops_the_demo_with_its_error(instance, capsys):
    with pytest.raises(SystemExit):
        run_job(DEFS, instance, "broken_job", tolerated_check="gate")
    assert "broken: ValueError: the input is corrupt" in capsys.readouterr().err
