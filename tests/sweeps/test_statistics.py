"""Deflated Sharpe ratio and probability of backtest overfitting against cases worked by hand from
the papers' formulas (sweeps/statistics.py names the papers)."""

import math

import numpy as np
import pytest
from scipy import stats

from sweeps.statistics import (
    SURVIVAL_PROBABILITY,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
    sharpe_ratios,
)

DAYS_PER_YEAR = 250  # the DSR paper's example annualizes over 250 trading days


def test_the_dsr_papers_numerical_example():
    # Bailey & López de Prado (2014), "A numerical example": N = 100 trials whose annualized Sharpe
    # ratios have variance 1/2; the winner's annualized Sharpe is 2.5 over T = 1250 daily returns
    # with skewness -3 and kurtosis 10. The paper reports E[max SR] = 0.1132 (per day) and DSR = 0.9004.
    sharpe = 2.5 / math.sqrt(DAYS_PER_YEAR)
    benchmark = expected_max_sharpe(100, 0.5 / DAYS_PER_YEAR)
    assert benchmark == pytest.approx(0.1132, abs=5e-5)
    assert probabilistic_sharpe_ratio(sharpe, benchmark, 1250, -3.0, 10.0) == pytest.approx(0.9004, abs=5e-5)


def test_expected_max_sharpe_is_close_to_the_simulated_maximum_of_null_trials():
    # The formula approximates E[max] of N normal Sharpe estimates with mean 0 and variance V.
    rng = np.random.default_rng(7)
    for trials, variance in ((10, 1.0), (1000, 0.04)):
        simulated = rng.normal(scale=math.sqrt(variance), size=(20_000, trials)).max(axis=1).mean()
        assert expected_max_sharpe(trials, variance) == pytest.approx(simulated, rel=0.03)
    assert expected_max_sharpe(1, 0.3) == 0.0  # one trial selects nothing
    assert expected_max_sharpe(50, 0.0) == 0.0  # trials that agree exactly inflate nothing


def test_expected_max_sharpe_rejects_bad_input():
    with pytest.raises(ValueError, match="trials"):
        expected_max_sharpe(0, 1.0)
    with pytest.raises(ValueError, match="sharpe_variance"):
        expected_max_sharpe(10, -0.1)


def test_psr_of_normal_returns_by_hand():
    # Normal returns (skewness 0, kurtosis 3): the variance term is 1 + SR^2 / 2.
    # SR = 0.1, SR* = 0, T = 101: z = 0.1 * sqrt(100) / sqrt(1.005) = 0.997509...
    z = 1.0 / math.sqrt(1.005)
    assert z == pytest.approx(0.997509336, abs=1e-9)
    assert probabilistic_sharpe_ratio(0.1, 0.0, 101, 0.0, 3.0) == pytest.approx(stats.norm.cdf(z), abs=1e-12)
    assert stats.norm.cdf(z) == pytest.approx(0.84074, abs=1e-5)
    assert probabilistic_sharpe_ratio(0.2, 0.2, 50, 0.0, 3.0) == pytest.approx(0.5)  # at the benchmark: a coin
    # Negative skew and fat tails widen the Sharpe estimate's spread, so the same Sharpe convinces less.
    assert probabilistic_sharpe_ratio(0.1, 0.0, 101, -2.0, 9.0) < probabilistic_sharpe_ratio(0.1, 0.0, 101, 0.0, 3.0)


def test_psr_rejects_impossible_moments_and_too_few_observations():
    with pytest.raises(ValueError, match="observations"):
        probabilistic_sharpe_ratio(0.1, 0.0, 1, 0.0, 3.0)
    with pytest.raises(ValueError, match="kurtosis"):
        probabilistic_sharpe_ratio(1.0, 0.0, 100, 4.0, 1.0)  # 1 - 4 + 0 < 0


def test_deflated_sharpe_ratio_of_a_small_series_by_hand():
    # returns 0.02, -0.01, 0.03, 0.00, 0.01: mean 0.01, deviations 0.01, -0.02, 0.02, -0.01, 0;
    # sum of squares 0.001, so std (n - 1) = sqrt(0.00025) and SR = 0.01 / sqrt(0.00025) = 0.632456.
    # Third moment 0 (skewness 0); m2 = 0.0002, m4 = 34e-8 / 5 = 6.8e-8, kurtosis = 6.8e-8 / 4e-8 = 1.7.
    returns = np.array([0.02, -0.01, 0.03, 0.00, 0.01])
    trial_sharpes = np.array([0.632456, 0.1, -0.2, 0.3])  # mean 0.208114, variance (n - 1) below
    variance = sum((s - 0.208114) ** 2 for s in trial_sharpes) / 3
    result = deflated_sharpe_ratio(returns, trial_sharpes)
    assert result["sharpe"] == pytest.approx(0.632456, abs=1e-6)
    assert result["skewness"] == pytest.approx(0.0, abs=1e-9)
    assert result["kurtosis"] == pytest.approx(1.7, abs=1e-9)
    assert result["observations"] == 5 and result["trials"] == 4
    assert result["sharpe_variance"] == pytest.approx(variance, rel=1e-5)
    assert result["expected_max_sharpe"] == pytest.approx(expected_max_sharpe(4, variance), rel=1e-5)
    # PSR against E[max]: z = (SR - E[max]) sqrt(4) / sqrt(1 - 0 + (1.7 - 1) / 4 SR^2)
    z = (0.632456 - result["expected_max_sharpe"]) * 2 / math.sqrt(1 + 0.7 / 4 * 0.632456 ** 2)
    assert result["deflated_sharpe"] == pytest.approx(stats.norm.cdf(z), abs=1e-5)
    assert result["survives"] is bool(result["deflated_sharpe"] >= SURVIVAL_PROBABILITY)


def test_a_real_edge_survives_deflation_and_the_best_of_many_coin_flips_does_not():
    rng = np.random.default_rng(3)
    noise = rng.normal(scale=0.01, size=(1000, 200))  # 200 trials with no edge
    sharpes = sharpe_ratios(noise)
    lucky = deflated_sharpe_ratio(noise[:, np.argmax(sharpes)], sharpes)
    assert lucky["sharpe"] == pytest.approx(sharpes.max())
    assert lucky["sharpe"] > 0.05 and not lucky["survives"]  # a good-looking Sharpe, explained by the search
    edge = noise[:, 0] + 0.003  # per-period Sharpe about 0.3 over 1000 periods
    real = deflated_sharpe_ratio(edge, np.append(sharpes, sharpe_ratios(edge)))
    assert real["survives"] and real["deflated_sharpe"] > 0.99


def test_deflated_sharpe_ratio_rejects_bad_input():
    with pytest.raises(ValueError, match="vary"):
        deflated_sharpe_ratio(np.full(10, 0.01), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="trial_sharpes has a non-finite value .* index 1"):
        deflated_sharpe_ratio(np.array([0.01, -0.02, 0.03]), np.array([0.1, np.nan]))
    with pytest.raises(ValueError, match="returns must be a non-empty 1-D"):
        deflated_sharpe_ratio(np.ones((3, 2)), np.array([0.1]))


def test_sharpe_ratios_per_column_and_of_constant_columns():
    matrix = np.array([[0.01, 0.0, 0.02], [0.03, 0.0, 0.02], [0.02, 0.0, 0.02]])
    assert sharpe_ratios(matrix).tolist() == pytest.approx([0.02 / 0.01, 0.0, math.inf])
    assert sharpe_ratios(matrix[:, 0]) == pytest.approx(2.0)


def _mirrored_trials() -> np.ndarray:
    """Three trials over 4 groups of two rows. Trial 0 has group means 5, 1, -2, -4 (they sum to 0 and
    no two of them do); trial 1 is its mirror; trial 2 has mean 0 in every group."""
    group_means = [5.0, 1.0, -2.0, -4.0]
    trial = np.array([mean + wiggle for mean in group_means for wiggle in (1.0, -1.0)])
    flat = np.array([0.5, -0.5] * 4)
    return np.column_stack([trial, -trial, flat])


def test_pbo_is_one_when_the_in_sample_winner_is_always_last_out_of_sample():
    # Whichever half is in-sample, the winner is the trial (0 or its mirror) with a positive mean there.
    # The halves' sums cancel, so its out-of-sample mean is negative: below the flat trial's 0 and the
    # mirror's positive Sharpe, rank 1 of 3, w = 1/4, logit ln(1/3) in all C(4, 2) = 6 combinations.
    result = probability_of_backtest_overfitting(_mirrored_trials(), splits=4)
    assert result["combinations"] == 6 and result["splits"] == 4
    assert result["logits"] == pytest.approx([math.log(1 / 3)] * 6)
    assert result["pbo"] == 1.0
    assert result["probability_of_loss"] == 1.0


def test_pbo_is_zero_when_one_trial_dominates_everywhere():
    rng = np.random.default_rng(5)
    returns = rng.normal(scale=0.01, size=(160, 5))
    returns[:, 3] = returns[:, 1] + 0.05  # same spread, higher mean in every row: best in any half
    result = probability_of_backtest_overfitting(returns, splits=8)
    assert result["combinations"] == math.comb(8, 4)
    assert result["logits"] == pytest.approx([math.log(5)] * math.comb(8, 4))  # rank 5 of 5: w = 5/6
    assert result["pbo"] == 0.0


def test_pbo_of_a_four_split_case_enumerated_by_hand():
    # One row per group, three trials A, C, D; the metric is the mean, so a half's figure is the sum
    # of its two groups / 2. Group values: A = 4,0,0,0; C = 0,3,1,0; D = 3,1.5,2,3.5.
    # IS groups -> IS sums (A, C, D) -> winner -> OOS sums -> winner's OOS rank of 3 -> logit
    #   {0,1}: 4, 3,   4.5 -> D -> 0, 1, 5.5 -> 3 -> ln 3
    #   {0,2}: 4, 1,   5   -> D -> 0, 3, 5   -> 3 -> ln 3
    #   {0,3}: 4, 0,   6.5 -> D -> 0, 4, 3.5 -> 2 -> ln 1 = 0 (at the median: counted as overfit)
    #   {1,2}: 0, 4,   3.5 -> C -> 4, 0, 6.5 -> 1 -> ln(1/3)
    #   {1,3}: 0, 3,   5   -> D -> 4, 1, 5   -> 3 -> ln 3
    #   {2,3}: 0, 1,   5.5 -> D -> 4, 3, 4.5 -> 3 -> ln 3
    # PBO = 2 of 6 logits <= 0 = 1/3.
    returns = np.array([[4.0, 0.0, 3.0], [0.0, 3.0, 1.5], [0.0, 1.0, 2.0], [0.0, 0.0, 3.5]])
    result = probability_of_backtest_overfitting(returns, splits=4, metric=lambda half: half.mean(axis=0))
    ln3 = math.log(3)
    assert result["logits"] == pytest.approx([ln3, ln3, 0.0, -ln3, ln3, ln3])
    assert result["pbo"] == pytest.approx(1 / 3)
    assert result["in_sample_best"] == pytest.approx([4.5 / 2, 5 / 2, 6.5 / 2, 4 / 2, 5 / 2, 5.5 / 2])
    assert result["out_of_sample_of_best"] == pytest.approx([5.5 / 2, 5 / 2, 3.5 / 2, 0.0, 5 / 2, 4.5 / 2])
    assert result["probability_of_loss"] == 0.0


def test_pbo_of_trials_without_skill_is_about_one_half_on_average():
    # With no skill the IS winner's OOS rank is uniform, so PBO is 1/2 in expectation; one matrix's
    # PBO scatters widely (its combinations share rows), so average 40 independent ones.
    rng = np.random.default_rng(11)
    results = [probability_of_backtest_overfitting(rng.normal(size=(120, 10)), splits=6) for _ in range(40)]
    assert {result["combinations"] for result in results} == {math.comb(6, 3)}
    assert 0.35 < np.mean([result["pbo"] for result in results]) < 0.65


def test_the_default_sharpe_of_halves_equals_the_sharpe_of_their_rows():
    # The default metric is computed from group moments; any other metric sees the rows themselves.
    rng = np.random.default_rng(2)
    returns = rng.normal(0.001, 0.01, size=(203, 7))  # 203 rows: groups of unequal size
    returns[:, 4] = 0.002  # a trial that never varies: +inf in both ways
    fast = probability_of_backtest_overfitting(returns, splits=6)
    rows = probability_of_backtest_overfitting(returns, splits=6, metric=lambda half: sharpe_ratios(half))
    assert fast["logits"] == pytest.approx(rows["logits"], abs=1e-12)
    assert fast["in_sample_best"] == pytest.approx(rows["in_sample_best"], rel=1e-9)
    assert fast["out_of_sample_of_best"] == pytest.approx(rows["out_of_sample_of_best"], rel=1e-9)
    assert math.inf in fast["in_sample_best"]


@pytest.mark.parametrize(("returns", "splits", "message"), [
    (np.zeros((10, 3)), 5, "even"),
    (np.zeros((6, 3)), 8, "6 rows .* fewer than the 8 splits"),
    (np.zeros((20, 1)), 4, "at least 2"),
    (np.zeros(20), 4, "periods x trials"),
    (np.zeros((3, 2)), 2, "halves of at least 2 rows"),
    (np.where(np.eye(20, 3) == 1, np.nan, 0.0), 4, "row 0, column 0"),
])
def test_pbo_rejects_bad_input(returns, splits, message):
    with pytest.raises(ValueError, match=message):
        probability_of_backtest_overfitting(returns, splits=splits)
