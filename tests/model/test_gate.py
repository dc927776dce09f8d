"""The model gate's decisions."""

import pytest

from movierec_dagster.model.gate import decide


def _info(version, rmse, ndcg, bias_rmse=0.90, popular_ndcg=0.15):
    return {
        "version": version,
        "metrics": {"rmse": rmse, "ndcg_at_10": ndcg},
        "baselines": {"bias": {"rmse": bias_rmse}, "most_popular": {"ndcg_at_10": popular_ndcg}},
    }


def _decide(candidate, champion):
    return decide(candidate, champion, rmse_tolerance=0.01, ndcg_tolerance=0.01)


def test_first_model_that_beats_the_baselines_passes():
    decision = _decide(_info("new", 0.85, 0.30), None)
    assert decision.passed and decision.reasons == ()
    assert "no champion yet" in decision.summary


def test_better_than_the_champion_passes():
    assert _decide(_info("new", 0.84, 0.31), _info("old", 0.85, 0.30)).passed


def test_a_candidate_equal_to_the_champion_passes():
    # Unchanged data and parameters: the champion judged on the candidate's data is the candidate.
    assert _decide(_info("new", 0.85, 0.30), _info("old", 0.85, 0.30)).passed


def test_worse_within_tolerance_passes():
    assert _decide(_info("new", 0.855, 0.295), _info("old", 0.85, 0.30)).passed


def test_worse_beyond_tolerance_fails_and_says_why():
    decision = _decide(_info("new", 0.87, 0.25), _info("old", 0.85, 0.30))
    assert not decision.passed
    assert len(decision.reasons) == 2
    assert "champion old" in decision.reasons[0] and "RMSE" in decision.reasons[0]
    assert "NDCG@10" in decision.reasons[1]


def test_a_rating_model_that_is_the_bias_baseline_passes_on_its_ranking():
    # The residual ALS was dropped (evaluation.evaluate): the star ratings are the biases, RMSE ties them.
    assert _decide(_info("new", 0.90, 0.30, bias_rmse=0.90), None).passed


def test_worse_than_the_baselines_fails_even_without_champion():
    decision = _decide(_info("new", 0.95, 0.10), None)
    assert not decision.passed
    assert "bias baseline" in decision.reasons[0]
    assert "most-popular" in decision.reasons[1]


def test_negative_tolerance_is_an_error():
    with pytest.raises(ValueError):
        decide(_info("new", 0.8, 0.3), None, rmse_tolerance=-1, ndcg_tolerance=0)
