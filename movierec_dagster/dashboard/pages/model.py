"""The champion model and the metric history of every model version (RMSE, NDCG@10) against the baselines."""

import altair as alt
import pandas as pd
import streamlit as st

from movierec_dagster.dashboard import state
from movierec_dagster.dashboard.data import ModelHistory, lake_location

CHAMPION_COLOR = "#f28e2b"


def _metric_chart(
    versions: pd.DataFrame, metric: str, name: str, better: str, baseline: str, baseline_name: str
) -> alt.Chart:
    """The metric per version in training order, the baseline dashed, the champion a labelled diamond."""
    frame = versions.assign(role=versions["champion"].map({True: "champion", False: "challenger"}))
    x = alt.X("version:N", title="Model version (oldest first)", sort=list(frame["version"]), axis=alt.Axis(labelAngle=-20, labelLimit=200))
    tooltip = [
        alt.Tooltip("version:N", title="Version"),
        alt.Tooltip("trained_at:T", title="Trained at", format="%Y-%m-%d %H:%M"),
        alt.Tooltip(f"{metric}:Q", title=name, format=".4f"),
        alt.Tooltip(f"{baseline}:Q", title=baseline_name, format=".4f"),
        alt.Tooltip("role:N", title="Role"),
    ]
    line = alt.Chart(frame).mark_line(point=True).encode(
        x=x, y=alt.Y(f"{metric}:Q", title=name, scale=alt.Scale(zero=False)), tooltip=tooltip
    )
    base = (
        alt.Chart(frame)
        .mark_line(strokeDash=[6, 4], color="gray")
        .encode(x=x, y=f"{baseline}:Q", tooltip=tooltip)
    )
    champion = frame[frame["champion"]]
    star = (
        alt.Chart(champion)
        .mark_point(shape="diamond", size=260, filled=True, color=CHAMPION_COLOR)
        .encode(x=x, y=f"{metric}:Q", tooltip=tooltip)
    )
    label = (
        alt.Chart(champion)
        .mark_text(dy=-16, fontWeight="bold", color=CHAMPION_COLOR)
        .encode(x=x, y=f"{metric}:Q", text=alt.value("champion"))
    )
    return (base + line + star + label).properties(
        height=320, title=f"{name} ({better} is better; dashed: {baseline_name})"
    )


def _champion_summary(history: ModelHistory) -> None:
    champion = history.champion
    if champion is None:
        st.warning("No model has been promoted to champion yet: recommendations need a champion.")
        return
    rows = history.versions[history.versions["champion"]]
    if rows.empty:
        state.show_fix(f"champion.json names {champion.get('version')}, which is not among the model versions.", error=True)
        return
    row = rows.iloc[0]
    st.subheader(f"Champion: {row['version']}")
    trained = f"Trained {row['trained_at']:%Y-%m-%d %H:%M} UTC"
    if pd.notna(row["training_rows"]):
        trained += f" on {int(row['training_rows']):,} ratings"
    promoted = pd.to_datetime(champion.get("promoted_at"), utc=True, errors="coerce")
    if pd.notna(promoted):
        trained += f" · promoted {promoted:%Y-%m-%d %H:%M} UTC"
    st.caption(trained)
    columns = st.columns(5)
    columns[0].metric(
        "RMSE", f"{row['rmse']:.4f}", _delta(row["rmse"], row["bias_rmse"], "bias baseline"), delta_color="inverse"
    )
    columns[1].metric("MAE", f"{row['mae']:.4f}")
    columns[2].metric(
        "NDCG@10", f"{row['ndcg_at_10']:.4f}", _delta(row["ndcg_at_10"], row["most_popular_ndcg_at_10"], "most popular")
    )
    columns[3].metric("Precision@10", f"{row['precision_at_10']:.4f}")
    columns[4].metric("Recall@10", f"{row['recall_at_10']:.4f}")


def _delta(value: float, baseline: float, name: str) -> str | None:
    return None if pd.isna(baseline) else f"{value - baseline:+.4f} vs {name}"


def render() -> None:
    location = lake_location()
    state.check_lake(location)
    history = state.model_history(location)
    st.title("Model")
    for problem in history.unreadable:
        st.warning(f"Skipped an unreadable model file: {problem}")
    versions = history.versions
    if versions.empty:
        state.show_fix("No model has been trained yet. The demo pipeline trains one:")
        return
    _champion_summary(history)
    st.subheader(f"Metrics across {len(versions)} model versions")
    left, right = st.columns(2, gap="large")
    with left:
        st.altair_chart(
            _metric_chart(versions, "rmse", "RMSE", "lower", "bias_rmse", "bias baseline"), width="stretch"
        )
    with right:
        st.altair_chart(
            _metric_chart(versions, "ndcg_at_10", "NDCG@10", "higher", "most_popular_ndcg_at_10", "most popular"),
            width="stretch",
        )
    st.dataframe(
        versions.sort_values("trained_at", ascending=False)[
            ["champion", "version", "trained_at", "training_rows", "rmse", "mae", "ndcg_at_10", "precision_at_10",
             "recall_at_10", "params"]
        ],
        hide_index=True,
        column_config={
            "champion": st.column_config.CheckboxColumn("Champion"),
            "version": "Version",
            "trained_at": st.column_config.DatetimeColumn("Trained at (UTC)", format="YYYY-MM-DD HH:mm"),
            "training_rows": st.column_config.NumberColumn("Training rows", format="localized"),
            "rmse": st.column_config.NumberColumn("RMSE", format="%.4f"),
            "mae": st.column_config.NumberColumn("MAE", format="%.4f"),
            "ndcg_at_10": st.column_config.NumberColumn("NDCG@10", format="%.4f"),
            "precision_at_10": st.column_config.NumberColumn("Precision@10", format="%.4f"),
            "recall_at_10": st.column_config.NumberColumn("Recall@10", format="%.4f"),
            "params": "Parameters",
        },
    )


with state.shown_problems():
    render()
