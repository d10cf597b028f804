"""Volatility target, baselines and metrics: hand-computed cases, parameter recovery on simulated
series, no look-ahead, and a sanity run on real 1-minute BTC."""

from __future__ import annotations

import math

import numpy as np
import pytest

from marketdata.klines import read_klines
from models.metrics import diebold_mariano
from models.volatility import (
    RETURN_FLOOR,
    VOLATILITY_BASELINES,
    EWMAVolatility,
    GARCHVolatility,
    HARVolatility,
    bar_log_returns,
    dm_pvalue,
    log_realized_vol,
    qlike_loss,
    volatility_metrics,
)
from tests.conftest import FIXTURE_7D


def close_from_returns(returns: np.ndarray) -> np.ndarray:
    return 100 * np.exp(np.concatenate([[0.0], np.cumsum(returns)]))


def simulate_garch(omega: float, alpha: float, beta: float, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shocks = rng.standard_normal(n + 500)
    returns = np.zeros_like(shocks)
    variance = omega / (1 - alpha - beta)
    for t in range(shocks.size):
        returns[t] = math.sqrt(variance) * shocks[t]
        variance = omega + alpha * returns[t] ** 2 + beta * variance
    return returns[500:]  # past the burn-in


def test_log_realized_vol_by_hand():
    returns = np.array([0.01, -0.02, 0.0, 0.03])
    target = log_realized_vol(close_from_returns(returns), 2)
    expected = [0.5 * math.log(0.01**2 + 0.02**2), 0.5 * math.log(0.02**2), 0.5 * math.log(0.03**2), math.nan, math.nan]
    np.testing.assert_allclose(target, expected, rtol=1e-12)


def test_a_flat_run_is_floored_not_minus_infinity():
    close = np.array([100.0, 100.0, 100.0, 100.0, 101.0])
    target = log_realized_vol(close, 2)
    floor = math.log(RETURN_FLOOR * math.sqrt(2))
    np.testing.assert_allclose(target[:2], [floor, floor])
    assert target[2] == pytest.approx(0.5 * math.log(math.log(1.01) ** 2))


def test_ewma_by_hand():
    returns = np.array([np.nan, 0.02, -0.01])
    model = EWMAVolatility(3, decay=0.9).fit(returns, None)
    assert model.initial_variance_ == pytest.approx((0.02**2 + 0.01**2) / 2)
    first = 0.9 * model.initial_variance_ + 0.1 * 0.02**2
    second = 0.9 * first + 0.1 * 0.01**2
    np.testing.assert_allclose(model.predict(returns), [math.nan, 0.5 * math.log(3 * first), 0.5 * math.log(3 * second)])


def test_qlike_and_metrics_by_hand():
    target = np.array([0.0, math.log(2), math.nan])
    forecast = np.array([0.0, 0.0, 5.0])
    # Variance ratio 1 at the first point, 4 at the second: 4 - log 4 - 1.
    np.testing.assert_allclose(qlike_loss(target[:2], forecast[:2]), [0.0, 3 - math.log(4)])
    metrics = volatility_metrics(target, forecast)
    assert metrics["n"] == 2 and metrics["n_nan_target"] == 1
    assert metrics["qlike"] == pytest.approx((3 - math.log(4)) / 2)
    assert metrics["rmse_log"] == pytest.approx(math.log(2) / math.sqrt(2))
    assert math.isnan(metrics["mz_r2"])  # a constant forecast explains nothing


def test_mincer_zarnowitz_by_hand():
    forecast = np.array([0.0, 1.0, 2.0, 3.0])
    target = 1.0 + 2.0 * forecast + np.array([0.1, -0.1, -0.1, 0.1])
    metrics = volatility_metrics(target, forecast)
    assert metrics["mz_slope"] == pytest.approx(2.0) and metrics["mz_intercept"] == pytest.approx(1.0)
    residual = target - (1.0 + 2.0 * forecast)
    assert metrics["mz_r2"] == pytest.approx(1 - residual @ residual / np.sum((target - target.mean()) ** 2))


def test_a_nan_forecast_where_a_target_exists_is_refused():
    with pytest.raises(ValueError, match="NaN"):
        volatility_metrics(np.array([0.0, 1.0]), np.array([0.0, math.nan]))


def test_dm_pvalue_is_diebold_mariano_on_the_qlike_differential():
    rng = np.random.default_rng(1)
    target = rng.standard_normal(400)
    good, bad = target + 0.1 * rng.standard_normal(400), target + 0.5 * rng.standard_normal(400)
    # The same test as a squared-error DM on a stand-in whose squared "error" is the QLIKE loss.
    stand_in = diebold_mariano(np.zeros(400), np.sqrt(qlike_loss(target, good)), np.sqrt(qlike_loss(target, bad)), 3)[1]
    assert dm_pvalue(target, good, bad, 3) == pytest.approx(stand_in)
    assert dm_pvalue(target, good, bad, 3) < 1e-6
    assert dm_pvalue(np.append(target, math.nan), np.append(good, 0.0), np.append(bad, 0.0), 3) == pytest.approx(stand_in)


def test_har_recovers_its_coefficients():
    """Simulated log vol that follows HAR exactly (h = 1, random-sign returns so that log|r| = log σ)."""
    intercept, coef = -1.5, np.array([0.3, 0.3, 0.2])
    rng = np.random.default_rng(2)
    n, month = 30_000, 22
    returns = np.full(n, 1e-3) * rng.choice([-1.0, 1.0], n)
    for t in range(month, n - 1):
        squares = returns[t - month + 1 : t + 1] ** 2
        x = 0.5 * np.log([squares[-1], squares[-5:].mean(), squares.mean()])
        returns[t + 1] = math.exp(intercept + coef @ x + 0.3 * rng.standard_normal()) * np.sign(returns[t + 1])
    returns[0] = np.nan
    target = log_realized_vol(close_from_returns(returns[1:]), 1)
    model = HARVolatility(1).fit(returns, target)
    assert model.windows == (1, 5, 22)
    np.testing.assert_allclose(model.coef_, coef, atol=0.02)
    assert model.intercept_ == pytest.approx(intercept, abs=0.3)


def test_har_windows_scale_with_the_day():
    assert HARVolatility(10).windows == (10, 50, 220)
    assert HARVolatility(10, day_bars=1440).windows == (1440, 7200, 31680)


@pytest.fixture(scope="module")
def garch_series() -> np.ndarray:
    return np.concatenate([[np.nan], 1e-3 * simulate_garch(0.05, 0.1, 0.85, 20_000, seed=3)])


def test_garch_recovers_its_parameters(garch_series):
    model = GARCHVolatility(5).fit(garch_series, None)
    assert model.alpha_ == pytest.approx(0.1, abs=0.02)
    assert model.beta_ == pytest.approx(0.85, abs=0.03)
    assert model.omega_ == pytest.approx(0.05e-6, rel=0.3)


@pytest.mark.parametrize("horizon", [1, 5])
def test_garch_forecasts_equal_arch_on_the_training_rows(garch_series, horizon):
    train = garch_series[:5000]
    model = GARCHVolatility(horizon).fit(train, None)
    arch_variance = model.result_.forecast(horizon=horizon, start=0, reindex=False).variance.to_numpy().sum(axis=1)
    ours = model.predict(garch_series)
    # Row 0 has no return; arch's rows are the training returns, ours 1..4999 of the whole series.
    np.testing.assert_allclose(ours[1:5000], 0.5 * np.log(arch_variance * model.scale_**2), rtol=0, atol=1e-10)
    assert np.isnan(ours[0]) and np.isfinite(ours[5000:]).all()


@pytest.mark.parametrize("horizon", [1, 4])
def test_the_target_reads_only_the_bars_of_its_window(horizon):
    close = close_from_returns(1e-3 * np.random.default_rng(4).standard_normal(600))
    t = 400
    later, window, earlier = close.copy(), close.copy(), close.copy()
    later[t + horizon + 1 :] *= 1.05
    window[t + horizon] *= 1.05
    earlier[: t] *= 1.05
    target = log_realized_vol(close, horizon)
    assert log_realized_vol(later, horizon)[t] == target[t]
    assert log_realized_vol(earlier, horizon)[t] == target[t]
    assert log_realized_vol(window, horizon)[t] != target[t]


@pytest.mark.parametrize("name", list(VOLATILITY_BASELINES))
@pytest.mark.parametrize("horizon", [1, 4])
def test_no_look_ahead(name, horizon):
    returns = np.concatenate([[np.nan], 1e-3 * simulate_garch(0.05, 0.1, 0.85, 3000, seed=5)])
    t = 2500
    altered = returns.copy()
    altered[t + 1 :] = 1e-2 * np.random.default_rng(6).standard_normal(returns.size - t - 1)
    close, close_alt = close_from_returns(returns[1:]), close_from_returns(altered[1:])
    target, target_alt = log_realized_vol(close, horizon), log_realized_vol(close_alt, horizon)

    # A fitted model held fixed: forecasts at t and before ignore every bar after t.
    train = slice(0, 2000 - horizon)
    model = VOLATILITY_BASELINES[name](horizon).fit(returns[train], target[train])
    np.testing.assert_array_equal(model.predict(returns)[: t + 1], model.predict(altered)[: t + 1])

    # Fitted on what is known at t (the last closed target is row t-h), on either series.
    known = slice(0, t - horizon + 1)
    at_t = [VOLATILITY_BASELINES[name](horizon).fit(r[known], y[known]).predict(r[: t + 1])[t]
            for r, y in ((returns, target), (altered, target_alt))]
    assert at_t[0] == at_t[1]


def test_all_baselines_beat_a_constant_on_real_bars(shared_data):
    """Volatility clusters: out of sample on real 1-minute BTC, each baseline has a lower QLIKE
    than the training mean. h = 10 bars; at h = 1 a tenth of the targets are floored flat bars."""
    horizon = 10
    close = read_klines(shared_data / FIXTURE_7D)["close"].to_numpy()
    returns, target = bar_log_returns(close), log_realized_vol(close, horizon)
    split = int(0.7 * close.size)
    train, test = slice(0, split - horizon), slice(split, close.size - horizon)
    scores = {name: volatility_metrics(target[test], make(horizon).fit(returns[train], target[train]).predict(returns)[test])
              for name, make in VOLATILITY_BASELINES.items()}
    for name in ("ewma", "har", "garch"):
        assert scores[name]["qlike"] < scores["constant"]["qlike"], scores
        assert scores[name]["mz_r2"] > 0.1, scores


def test_ewma_a_chunk_at_a_time_gives_the_whole_rows_forecasts():
    returns = np.random.default_rng(4).normal(0, 1e-3, 300)
    returns[[0, 50, 51]] = np.nan  # the first bar has no return; NaN rows leave the filter as it was
    model = EWMAVolatility(3).fit(returns, None)
    parts, variance = [], model.initial_variance_
    for piece in np.split(returns, [1, 51, 52, 200]):
        forecast, variance = model.predict_from(piece, variance)
        parts.append(forecast)
    np.testing.assert_array_equal(np.concatenate(parts), model.predict(returns))
