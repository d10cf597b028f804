"""Forecast metrics: hand-checked small cases, DM test properties, NaN policy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.metrics import (
    Comoments,
    LossDifferential,
    aggregate_over_seeds,
    cumulative_ic,
    diebold_mariano,
    forecast_metrics,
    student_t_two_sided_pvalue,
)

BASE_KEYS = {
    "n",
    "n_nan_target",
    "mae",
    "rmse",
    "rmse_ratio_vs_zero",
    "directional_accuracy",
    "majority_rate",
    "n_directional",
    "ic",
    "rank_ic",
    "dm_stat_vs_zero",
    "dm_pvalue_vs_zero",
}


def overlapping_sums(rng: np.random.Generator, n: int, horizon: int) -> np.ndarray:
    """n sums of `horizon` consecutive iid shocks: the overlap of h-step targets and errors."""
    return np.convolve(rng.standard_normal(n + horizon - 1), np.ones(horizon), "valid")


def test_error_metrics_by_hand():
    y = np.array([0.01, -0.02, 0.03, 0.0])
    pred = np.array([0.02, -0.01, -0.01, 0.01])
    m = forecast_metrics(y, pred)
    assert set(m) == BASE_KEYS
    # Errors: -0.01, -0.01, 0.04, -0.01.
    assert m["mae"] == pytest.approx(0.0175)
    assert m["rmse"] == pytest.approx(math.sqrt(19e-4 / 4))
    assert m["rmse_ratio_vs_zero"] == pytest.approx(math.sqrt(19 / 14))
    assert m["n"] == 4 and m["n_nan_target"] == 0


def test_directional_accuracy_excludes_ties_and_reports_majority():
    y = np.array([1.0, -1.0, 2.0, 0.0, 3.0, -2.0, 4.0, 5.0])
    pred = np.array([1.0, 1.0, 1.0, 1.0, 0.0, -1.0, -1.0, 2.0])
    m = forecast_metrics(y, pred)
    # Point 3 (outcome 0) and point 4 (forecast 0) call no direction; 4 hits out of 6 calls.
    assert m["n_directional"] == 6
    assert m["directional_accuracy"] == pytest.approx(4 / 6)
    # Outcome signs on those 6 calls: + - + - + +.
    assert m["majority_rate"] == pytest.approx(4 / 6)


def test_majority_rate_is_what_always_guessing_up_scores():
    rng = np.random.default_rng(0)
    y = rng.normal(0.3, 1.0, 1000)
    always_up = forecast_metrics(y, np.ones_like(y))
    assert always_up["directional_accuracy"] == pytest.approx(always_up["majority_rate"])
    assert always_up["majority_rate"] > 0.5


def test_ic_and_rank_ic_by_hand():
    m = forecast_metrics(np.array([1.0, 3.0, 2.0]), np.array([1.0, 2.0, 3.0]))
    assert m["ic"] == pytest.approx(0.5)
    assert m["rank_ic"] == pytest.approx(0.5)
    # A monotone but nonlinear relation: rank IC is exactly 1, IC is not.
    pred = np.array([-2.0, -1.0, 0.5, 1.0, 3.0])
    m = forecast_metrics(pred**3, pred)
    assert m["rank_ic"] == pytest.approx(1.0)
    assert m["ic"] < 0.99
    # Tied predictions share their average rank: ranks (1.5, 1.5, 3) against (1, 2, 3).
    m = forecast_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 2.0]))
    assert m["rank_ic"] == pytest.approx(1.5 / math.sqrt(1.5 * 2.0))


def test_zero_forecast_has_no_ic_no_direction_and_no_dm_test():
    y = np.random.default_rng(1).standard_normal(100)
    m = forecast_metrics(y, np.zeros_like(y))
    assert m["rmse_ratio_vs_zero"] == 1.0
    for key in ("ic", "rank_ic", "directional_accuracy", "majority_rate", "dm_stat_vs_zero", "dm_pvalue_vs_zero"):
        assert math.isnan(m[key]), key
    assert m["n_directional"] == 0


def test_constant_nonzero_forecast_has_nan_ic_but_a_dm_test():
    y = np.random.default_rng(2).standard_normal(200)
    m = forecast_metrics(y, np.full_like(y, 0.01))
    assert math.isnan(m["ic"]) and math.isnan(m["rank_ic"])
    assert np.isfinite(m["dm_stat_vs_zero"])


def test_quantile_coverage_and_pinball_by_hand():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    quantile_preds = np.array([[0.0, 2.0]] * 4)
    m = forecast_metrics(y, np.full(4, 2.0), quantile_preds, [0.1, 0.5])
    assert m["coverage_q0.1"] == 0.0
    assert m["coverage_q0.5"] == 0.5
    # q=0.1 misses 1..4 from below: 0.1 * 2.5; q=0.5 misses -1, 0, 1, 2: 0.5 * mean(|miss|).
    assert m["pinball_q0.1"] == pytest.approx(0.25)
    assert m["pinball_q0.5"] == pytest.approx(0.5)
    assert m["pinball"] == pytest.approx(0.375)
    assert set(m) == BASE_KEYS | {"coverage_q0.1", "coverage_q0.5", "pinball_q0.1", "pinball_q0.5", "pinball"}


def test_calibrated_quantiles_cover_their_level():
    rng = np.random.default_rng(3)
    y = rng.standard_normal(20_000)
    z = {0.1: -1.2815515655446004, 0.5: 0.0, 0.9: 1.2815515655446004}
    m = forecast_metrics(y, np.zeros_like(y), np.tile(list(z.values()), (y.size, 1)), list(z))
    for q in z:
        assert m[f"coverage_q{q:g}"] == pytest.approx(q, abs=0.01)


def test_nan_targets_are_dropped_from_every_metric_and_counted():
    rng = np.random.default_rng(4)
    y = rng.standard_normal(300)
    pred = 0.3 * y + rng.standard_normal(300)
    quantile_preds = np.column_stack([pred - 1, pred + 1])
    y_nan = y.copy()
    y_nan[[0, 50, 298, 299]] = np.nan
    pred_nan = pred.copy()
    pred_nan[[298, 299]] = np.nan  # no target there, so no forecast is needed either
    kept = ~np.isnan(y_nan)

    with_nan = forecast_metrics(y_nan, pred_nan, quantile_preds, [0.2, 0.8], horizon=3)
    clean = forecast_metrics(y[kept], pred[kept], quantile_preds[kept], [0.2, 0.8], horizon=3)
    assert with_nan.pop("n_nan_target") == 4 and clean.pop("n_nan_target") == 0
    assert with_nan == pytest.approx(clean, nan_ok=True)
    assert with_nan["n"] == 296


def test_nan_forecast_at_a_target_is_an_error():
    y = np.array([0.1, -0.2, 0.3])
    with pytest.raises(ValueError, match="y_pred"):
        forecast_metrics(y, np.array([0.1, np.nan, 0.2]))
    with pytest.raises(ValueError, match="quantile_preds"):
        forecast_metrics(y, np.zeros(3), np.array([[0.0], [np.nan], [0.0]]), [0.5])
    with pytest.raises(ValueError, match="every y_true is NaN"):
        forecast_metrics(np.full(3, np.nan), np.zeros(3))


def test_student_t_pvalue_against_closed_forms_and_tables():
    for t in (0.3, 1.0, 4.0):
        # df=1 is the Cauchy distribution; df=2 has a closed-form CDF.
        assert student_t_two_sided_pvalue(t, 1) == pytest.approx(1 - 2 / math.pi * math.atan(t), rel=1e-12)
        assert student_t_two_sided_pvalue(-t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-12)
    # Printed tables: t(0.975, 10) = 2.228139, t(0.995, 30) = 2.749996.
    assert student_t_two_sided_pvalue(2.228139, 10) == pytest.approx(0.05, abs=1e-6)
    assert student_t_two_sided_pvalue(2.749996, 30) == pytest.approx(0.01, abs=1e-6)
    # Many degrees of freedom: the normal distribution.
    for t in (0.5, 2.0, 5.0):
        assert student_t_two_sided_pvalue(t, 1e7) == pytest.approx(math.erfc(t / math.sqrt(2)), rel=1e-4)
    assert student_t_two_sided_pvalue(0.0, 5) == 1.0


def test_dm_at_horizon_one_is_the_paired_t_test():
    # With h=1 the HLN-corrected DM statistic is mean(d) / (sd(d) / sqrt(n)), sd with ddof=1.
    y = np.array([0.5, -1.0, 2.0])
    pred_a = np.array([0.0, -0.5, 1.0])
    pred_b = np.array([1.0, 0.5, 0.0])
    d = (y - pred_a) ** 2 - (y - pred_b) ** 2
    t = d.mean() / (d.std(ddof=1) / math.sqrt(3))
    stat, pvalue = diebold_mariano(y, pred_a, pred_b, horizon=1)
    assert stat == pytest.approx(t)
    assert pvalue == pytest.approx(1 - abs(t) / math.sqrt(2 + t * t))  # t with 2 degrees of freedom


def test_dm_identical_forecasts_give_zero_and_one():
    y = np.random.default_rng(5).standard_normal(50)
    pred = 0.1 * y
    assert diebold_mariano(y, pred, pred.copy(), horizon=3) == (0.0, 1.0)


def test_dm_detects_a_clearly_better_forecast():
    rng = np.random.default_rng(6)
    signal = 0.3 * rng.standard_normal(5000)
    y = signal + rng.standard_normal(5000)
    m = forecast_metrics(y, signal)
    assert m["dm_pvalue_vs_zero"] < 0.01
    assert m["dm_stat_vs_zero"] < 0  # negative: the forecast's loss is lower
    worse = forecast_metrics(y, -signal)
    assert worse["dm_stat_vs_zero"] > 0 and worse["dm_pvalue_vs_zero"] < 0.01


@pytest.mark.parametrize("horizon", [1, 5])
def test_dm_rejects_at_its_nominal_rate_under_equal_accuracy(horizon):
    # Two noise forecasts of equal accuracy; overlapping targets and errors, as h-step forecasts have.
    rejections = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        y, a, b = (overlapping_sums(rng, 1000, horizon) for _ in range(3))
        rejections += diebold_mariano(y, a, b, horizon)[1] < 0.05
    assert 0.02 <= rejections / 200 <= 0.09


def test_dm_overrejects_when_the_overlap_is_ignored():
    # The same h=5 data tested as if h were 1: the HAC lags are what keeps the level honest.
    rejections = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        y, a, b = (overlapping_sums(rng, 1000, 5) for _ in range(3))
        rejections += diebold_mariano(y, a, b, horizon=1)[1] < 0.05
    assert rejections / 200 > 0.15


def test_dm_falls_back_to_bartlett_when_the_uniform_variance_is_not_positive():
    # Alternating losses: the lag-1 autocovariance is so negative that DM's uniform sum is < 0.
    y = np.zeros(40)
    pred_a = np.tile([1.1, 0.0], 20)
    pred_b = np.tile([0.0, 1.0], 20)
    stat, pvalue = diebold_mariano(y, pred_a, pred_b, horizon=2)
    assert stat > 0 and 0 <= pvalue <= 1


def test_dm_needs_enough_points_for_the_correction():
    y = np.random.default_rng(8).standard_normal(9)
    assert all(math.isnan(v) for v in diebold_mariano(y, np.zeros(9), np.ones(9), horizon=5))
    assert all(np.isfinite(diebold_mariano(np.append(y, 0.5), np.zeros(10), np.ones(10), horizon=5)))


def test_cumulative_ic_runs_over_folds():
    folds = [{"n": 100, "ic": 0.1, "rank_ic": 0.05}, {"n": 80, "ic": math.nan, "rank_ic": math.nan}, {"n": 90, "ic": -0.02, "rank_ic": 0.01}]
    table = cumulative_ic(folds)
    assert list(table.columns) == ["fold", "n", "ic", "rank_ic", "cumulative_ic", "cumulative_rank_ic"]
    assert table["cumulative_ic"].to_numpy() == pytest.approx([0.1, 0.1, 0.08])
    assert table["cumulative_rank_ic"].to_numpy() == pytest.approx([0.05, 0.05, 0.06])


def test_aggregate_over_seeds():
    runs = [{"rmse": 1.0, "ic": 0.1}, {"rmse": 2.0, "ic": 0.3}, {"rmse": 3.0, "ic": 0.2}]
    summary = aggregate_over_seeds(runs)
    assert summary["rmse"] == pytest.approx({"mean": 2.0, "std": 1.0})
    assert summary["ic"] == pytest.approx({"mean": 0.2, "std": 0.1})
    collapsed = aggregate_over_seeds(runs + [{"rmse": 2.0, "ic": math.nan}])
    assert math.isnan(collapsed["ic"]["mean"])
    assert math.isnan(aggregate_over_seeds(runs[:1])["rmse"]["std"])
    with pytest.raises(ValueError, match="different metrics"):
        aggregate_over_seeds([{"rmse": 1.0}, {"mae": 1.0}])


def test_aggregate_over_seeds_takes_forecast_metrics_dicts():
    rng = np.random.default_rng(7)
    y = rng.standard_normal(100)
    runs = [forecast_metrics(y, 0.1 * y + rng.standard_normal(100), horizon=2) for _ in range(3)]
    summary = aggregate_over_seeds(runs)
    assert set(summary) == BASE_KEYS
    assert summary["n"] == {"mean": 100.0, "std": 0.0}


def chunks(values: np.ndarray, seed: int) -> list[np.ndarray]:
    """``values`` cut at random places, some pieces empty or of one value."""
    cuts = np.sort(np.random.default_rng(seed).integers(0, values.size, size=12))
    return np.split(values, cuts)


@pytest.mark.parametrize("horizon", [1, 2, 5])
def test_a_loss_differential_given_in_chunks_is_tested_as_the_whole(horizon):
    rng = np.random.default_rng(horizon)
    d = 1e-6 * (rng.standard_normal(400) + 0.2)  # a loss differential's scale and a small mean
    centered, n = d - d.mean(), d.size
    # Its autocovariances by their definition, and the HLN-corrected statistic of DM's uniform sum.
    autocov = np.array([centered[k:] @ centered[: n - k] / n for k in range(horizon)])
    correction = (n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n
    expected = d.mean() / math.sqrt((autocov[0] + 2 * autocov[1:].sum()) / n) * math.sqrt(correction)
    summed = LossDifferential(horizon)
    for piece in chunks(d, horizon):
        summed.add(piece)
    np.testing.assert_allclose(summed.autocovariances(), autocov, rtol=1e-9, atol=1e-25)
    statistic, pvalue = summed.test()
    assert statistic == pytest.approx(expected, rel=1e-9)
    assert pvalue == pytest.approx(student_t_two_sided_pvalue(expected, n - 1), rel=1e-9)


def test_comoments_in_chunks_give_the_whole_correlation():
    rng = np.random.default_rng(11)
    x = 1e-4 * rng.standard_normal(500) + 3e-5
    y = 0.1 * x + 1e-4 * rng.standard_normal(500)
    moments = Comoments()
    for a, b in zip(chunks(x, 1), chunks(y, 1)):
        moments.add(a, b)
    assert moments.pearson() == pytest.approx(np.corrcoef(x, y)[0, 1], rel=1e-12)
    assert math.isnan(Comoments().add(x, np.full(500, 0.1)).pearson())  # a constant side: no correlation
