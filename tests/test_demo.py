"""The demo's run helper: a failed run stops the demo with the reason; a rejected candidate is reported, not a failure."""

import pytest
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    Definitions,
    MaterializeResult,
    asset,
    define_asset_job,
)

from movierec_dagster.demo import print_gate_outcome, run_job
from movierec_dagster.model.assets import MODEL_GATE


@asset(check_specs=[AssetCheckSpec(MODEL_GATE, asset="candidate")])
def candidate() -> MaterializeResult:
    rejected = AssetCheckResult(
        check_name=MODEL_GATE, passed=False, severity=AssetCheckSeverity.WARN, description="Model v2 is not promoted: worse"
    )
    return MaterializeResult(check_results=[rejected])


@asset(check_specs=[AssetCheckSpec("sane", asset="checked", blocking=True)])
def checked() -> MaterializeResult:
    return MaterializeResult(check_results=[AssetCheckResult(check_name="sane", passed=False, description="ranks repeat")])


@asset
def broken() -> None:
    raise ValueError("the input is corrupt")


DEFS = Definitions(
    assets=[candidate, checked, broken],
    jobs=[
        define_asset_job("gated", selection=[candidate]),
        define_asset_job("checked_job", selection=[checked]),
        define_asset_job("broken_job", selection=[broken]),
    ],
)


def test_a_rejected_candidate_is_reported_and_the_demo_goes_on(instance, capsys):
    result = run_job(DEFS, instance, "gated")
    assert result.success
    print_gate_outcome(result)
    assert "Model v2 is not promoted: worse (the champion stays)" in capsys.readouterr().out


def test_a_failed_blocking_check_stops_the_demo(instance, capsys):
    with pytest.raises(SystemExit) as stopped:
        run_job(DEFS, instance, "checked_job")
    assert stopped.value.code == 1
    assert "check sane on checked failed" in capsys.readouterr().err


def test_a_failed_step_stops_the_demo_with_its_error(instance, capsys):
    with pytest.raises(SystemExit):
        run_job(DEFS, instance, "broken_job")
    assert "broken: ValueError: the input is corrupt" in capsys.readouterr().err
