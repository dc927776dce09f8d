"""A model's held-out metrics beside its baselines' (from the model's info), for the console and for Dagster."""

from movierec_dagster.metadata import markdown_table
from movierec_dagster.model.training import BIASES_ONLY

COLUMNS = {"rmse": "RMSE", "mae": "MAE", "precision_at_10": "P@10", "recall_at_10": "R@10", "ndcg_at_10": "NDCG@10"}


def comparison_rows(info: dict) -> list[tuple[str, dict[str, float | None]]]:
    """(model, metric -> value) for ours and each baseline; None where a baseline has no such metric."""
    baselines = info["baselines"]
    ours = f"ours, {info['ranking_model']}" if info.get("ranking_model") else "ours"
    models = {ours: info["metrics"], "user+movie bias": baselines["bias"], "most popular": baselines["most_popular"]}
    return [(name, {metric: values.get(metric) for metric in COLUMNS}) for name, values in models.items()]


def rating_model_note(info: dict) -> str | None:
    """Why "ours" ties the bias baseline on RMSE and MAE, when its star ratings are the biases alone."""
    if info.get("rating_model") != BIASES_ONLY:
        return None
    if info["residual_als"] is None:
        return "Star ratings: the biases alone (rating_rank 0: no residual ALS fitted)."
    return (
        f"Star ratings: the biases alone (the residual ALS's held-out RMSE, {info['residual_als']['rmse']:.4f}, "
        "did not beat them)."
    )


def comparison_lines(info: dict) -> list[str]:
    """The comparison as fixed-width console lines, under a title line."""
    lines = [
        f"Model {info['version']} (trained on {info['training_rows']:,} ratings; held-out {info.get('test_rows', 0):,})",
        f"   {'':<20}" + "".join(f"{label:>8}" for label in COLUMNS.values()),
    ]
    for name, values in comparison_rows(info):
        cells = ("-" if value is None else f"{value:.3f}" for value in values.values())
        lines.append(f"   {name:<20}" + "".join(f"{cell:>8}" for cell in cells))
    note = rating_model_note(info)
    return lines + [f"   {note}"] if note else lines


def comparison_markdown(info: dict) -> str:
    rows = [
        {"model": name, **{COLUMNS[metric]: "" if value is None else f"{value:.4f}" for metric, value in values.items()}}
        for name, values in comparison_rows(info)
    ]
    note = rating_model_note(info)
    return markdown_table(rows) + (f"\n\n{note}" if note else "")
