"""The model gate: may a freshly trained model replace the champion? Plain Python, no Dagster."""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reasons: tuple[str, ...]  # every rule that failed; empty when passed
    summary: str


def decide(
    candidate: dict[str, Any], champion: dict[str, Any] | None, *, rmse_tolerance: float, ndcg_tolerance: float
) -> GateDecision:
    """Judge `candidate` (a model.json) against `champion` ({"version", "metrics"}, or None).

    Every number is measured on the same held-out data, which none of the models was
    fitted on: the candidate's and the baselines', and the champion's (its parameters
    fitted on the candidate's training split). The candidate must be no worse than the
    bias baseline on RMSE (a rating model that is the biases alone ties it), beat
    most-popular on NDCG@10, and be no worse than the champion by
    more than the tolerances (absolute: RMSE may rise by `rmse_tolerance`, NDCG@10 fall
    by `ndcg_tolerance`).
    """
    if rmse_tolerance < 0 or ndcg_tolerance < 0:
        raise ValueError("gate tolerances must not be negative")
    metrics, baselines = candidate["metrics"], candidate["baselines"]
    rmse, ndcg = metrics["rmse"], metrics["ndcg_at_10"]
    bias_rmse, popular_ndcg = baselines["bias"]["rmse"], baselines["most_popular"]["ndcg_at_10"]
    reasons = []
    if not rmse <= bias_rmse:
        reasons.append(f"RMSE {rmse:.4f} is worse than the bias baseline's {bias_rmse:.4f}")
    if not ndcg > popular_ndcg:
        reasons.append(f"NDCG@10 {ndcg:.4f} does not beat most-popular's {popular_ndcg:.4f}")
    if champion is not None:
        name = f"champion {champion['version']}"
        champion_rmse, champion_ndcg = champion["metrics"]["rmse"], champion["metrics"]["ndcg_at_10"]
        if rmse > champion_rmse + rmse_tolerance:
            reasons.append(f"RMSE {rmse:.4f} is worse than the {name}'s {champion_rmse:.4f} by more than {rmse_tolerance}")
        if ndcg < champion_ndcg - ndcg_tolerance:
            reasons.append(
                f"NDCG@10 {ndcg:.4f} is worse than the {name}'s {champion_ndcg:.4f} by more than {ndcg_tolerance}"
            )
    against = f"champion {champion['version']}" if champion else "no champion yet"
    if reasons:
        summary = f"Model {candidate['version']} is not promoted ({against}): " + "; ".join(reasons) + "."
    else:
        summary = f"Model {candidate['version']} passes the gate ({against}): RMSE {rmse:.4f}, NDCG@10 {ndcg:.4f}."
    return GateDecision(passed=not reasons, reasons=tuple(reasons), summary=summary)
