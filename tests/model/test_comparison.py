"""The model-against-baselines table, as console lines and as Markdown, from a model's info."""

from movierec_dagster.model.comparison import comparison_lines, comparison_markdown

INFO = {
    "version": "als-20260301T060000",
    "training_rows": 1234,
    "test_rows": 99,
    "metrics": {"rmse": 0.851, "mae": 0.652, "precision_at_10": 0.231, "recall_at_10": 0.212, "ndcg_at_10": 0.305},
    "baselines": {
        "bias": {"rmse": 0.871, "mae": 0.672},
        "most_popular": {"precision_at_10": 0.119, "recall_at_10": 0.098, "ndcg_at_10": 0.157},
    },
}


def test_console_lines_put_each_model_on_a_row_and_dash_what_a_baseline_lacks():
    title, header, ours, bias, popular = comparison_lines(INFO)
    assert "als-20260301T060000" in title and "1,234" in title
    assert header.split() == ["RMSE", "MAE", "P@10", "R@10", "NDCG@10"]
    assert ours.split() == ["ours", "0.851", "0.652", "0.231", "0.212", "0.305"]
    assert bias.split() == ["user+movie", "bias", "0.871", "0.672", "-", "-", "-"]
    assert popular.split() == ["most", "popular", "-", "-", "0.119", "0.098", "0.157"]


def test_markdown_has_the_same_rows():
    lines = comparison_markdown(INFO).splitlines()
    assert lines[0] == "| model | RMSE | MAE | P@10 | R@10 | NDCG@10 |"
    assert lines[2] == "| ours | 0.8510 | 0.6520 | 0.2310 | 0.2120 | 0.3050 |"
    assert lines[3] == "| user+movie bias | 0.8710 | 0.6720 |  |  |  |"
    assert lines[4] == "| most popular |  |  | 0.1190 | 0.0980 | 0.1570 |"


def test_a_biases_only_rating_model_says_why_it_ties_the_bias_baseline():
    info = {
        **INFO,
        "metrics": {**INFO["metrics"], "rmse": 0.871, "mae": 0.672},
        "rating_model": "biases",
        "residual_als": {"rmse": 0.8734, "mae": 0.6801},
    }
    note = comparison_lines(info)[-1]
    assert "biases alone" in note and "0.8734" in note
    assert comparison_markdown(info).endswith(note.strip())
    assert len(comparison_lines(INFO)) == 5  # a model that kept its residual ALS has no note


def test_a_rating_model_without_residual_als_says_so():
    info = {**INFO, "rating_model": "biases", "residual_als": None}
    assert "rating_rank 0" in comparison_lines(info)[-1]
