"""Baseline forecasters: known answers on generated series, no look-ahead, and a leakage guard on real bars."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from marketdata.klines import read_klines
from models.baselines import (
    AR_MAX_ORDER,
    BASELINES,
    PROPHET_MAX_POINTS,
    RIDGE_ALPHAS,
    AutoregressiveForecast,
    DriftForecast,
    LightGBMForecast,
    MomentumForecast,
    ProphetForecast,
    RidgeForecast,
    ZeroForecast,
    lagged_log_returns,
)
from models.metrics import forecast_metrics
from tests.conftest import FIXTURE_7D

N_LAGS = AR_MAX_ORDER + 1


def forward_log_return(close: np.ndarray, horizon: int) -> np.ndarray:
    """y_t = log(close[t+h] / close[t]); NaN for the last h bars."""
    log_close = np.log(close)
    target = np.full(close.size, np.nan)
    target[:-horizon] = log_close[horizon:] - log_close[:-horizon]
    return target


def causal_features(close: np.ndarray) -> np.ndarray:
    """A small feature matrix built from bars up to t only: the last 5 returns and a 30-bar volatility."""
    lags = lagged_log_returns(close, 5)
    volatility = pd.Series(lags[:, 0]).rolling(30).std().to_numpy()
    return np.column_stack([lags, volatility])


def series_inputs(close: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features, past_returns, target) over the whole series, as a walk-forward harness would build them."""
    return causal_features(close), lagged_log_returns(close, N_LAGS), forward_log_return(close, horizon)


def minute_closes(n: int) -> pd.DatetimeIndex:
    """Close times of n consecutive 1-minute bars, UTC."""
    return pd.date_range("2025-05-20 00:01", periods=n, freq="1min", tz="UTC")


def fitted(name: str, horizon: int, features, past, target, close, rows: slice):
    """BASELINES[name] fitted on ``rows``; a baseline that reads the price path also gets their close times and log closes."""
    model = BASELINES[name](horizon)
    path = {"times": minute_closes(close.size)[rows], "log_close": np.log(close[rows])} if model.reads_path else {}
    return model.fit(features[rows], past[rows], target[rows], **path)


def forecast_rows(model, features, past, rows: slice) -> np.ndarray:
    path = {"times": minute_closes(len(past))[rows]} if model.reads_path else {}
    return model.predict(features[rows], past[rows], **path)


def simulate_ar(phi: list[float], n: int, seed: int, scale: float = 1e-3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shocks = scale * rng.standard_normal(n + 500)
    returns = np.zeros_like(shocks)
    for t in range(len(phi), len(shocks)):
        returns[t] = sum(p * returns[t - 1 - i] for i, p in enumerate(phi)) + shocks[t]
    return returns[500:]  # past the burn-in


def random_walk_close(n: int, seed: int) -> np.ndarray:
    return 100 * np.exp(np.cumsum(1e-3 * np.random.default_rng(seed).standard_normal(n)))


def test_lagged_log_returns_by_hand():
    lags = lagged_log_returns(np.exp([0.0, 1.0, 3.0]), 2)
    np.testing.assert_allclose(lags, [[np.nan, np.nan], [1.0, np.nan], [2.0, 1.0]])


def test_registry_builds_every_baseline_for_a_horizon():
    assert list(BASELINES) == ["zero", "drift", "momentum", "ridge", "ar", "lightgbm", "prophet"]
    for name, make in BASELINES.items():
        assert make(3).horizon == 3, name
    with pytest.raises(ValueError, match="horizon"):
        ZeroForecast(0)


def test_zero_and_drift():
    past = np.zeros((4, 0))
    target = np.array([0.1, 0.3, np.nan, np.nan])
    assert np.array_equal(ZeroForecast(1).fit(None, past, target).predict(None, past), np.zeros(4))
    np.testing.assert_allclose(DriftForecast(1).fit(None, past, target).predict(None, past), np.full(4, 0.2))


@pytest.mark.parametrize("horizon", [1, 3])
def test_momentum_fits_its_coefficient_and_reads_the_last_h_bar_return(horizon):
    rng = np.random.default_rng(0)
    past = rng.standard_normal((5000, N_LAGS))
    signal = past[:, :horizon].sum(axis=1)
    target = -0.4 * signal + 0.1 * rng.standard_normal(5000)
    model = MomentumForecast(horizon).fit(None, past, target)
    assert model.coef_ == pytest.approx(-0.4, abs=0.01)
    np.testing.assert_allclose(model.predict(None, past), model.coef_ * signal)


def test_ridge_recovers_linear_coefficients_in_original_units():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3000, 3)) * [1.0, 10.0, 0.01] + [0.0, 5.0, -1.0]
    weights = np.array([0.5, -0.02, 30.0])
    y = x @ weights + 0.2 + 0.01 * rng.standard_normal(3000)
    model = RidgeForecast(1, alpha=1e-8).fit(x, np.zeros((3000, 0)), y)
    np.testing.assert_allclose(model.coef_, weights, rtol=1e-2)
    assert model.intercept_ == pytest.approx(0.2, abs=0.05)
    np.testing.assert_allclose(model.predict(x[:10], None), x[:10] @ model.coef_ + model.intercept_)


def test_ridge_flattens_windowed_features():
    rng = np.random.default_rng(2)
    windows = rng.standard_normal((500, 4, 2))
    y = windows[:, -1, 0] + 0.01 * rng.standard_normal(500)
    model = RidgeForecast(1, alpha=1e-6).fit(windows, np.zeros((500, 0)), y)
    assert model.coef_.shape == (8,)
    assert model.coef_[6] == pytest.approx(1.0, abs=0.01)


def test_ridge_holdout_shrinks_noise_and_keeps_signal():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2000, 20))
    empty = np.zeros((2000, 0))
    noise_only = RidgeForecast(5).fit(x, empty, rng.standard_normal(2000))
    assert noise_only.alpha_ >= 1.0
    strong = RidgeForecast(5).fit(x, empty, x[:, 0] + 0.01 * rng.standard_normal(2000))
    assert strong.alpha_ == min(RIDGE_ALPHAS)


def test_ridge_standardizes_with_training_statistics_only():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1000, 2))
    model = RidgeForecast(1, alpha=0.1).fit(x, np.zeros((1000, 0)), x[:, 0])
    before = model.predict(x[:5], None)
    # Test rows on another scale change nothing fitted: a forecast depends on its own row alone.
    shifted = np.vstack([x[:5], 1000 * rng.standard_normal((50, 2))])
    np.testing.assert_array_equal(model.predict(shifted, None)[:5], before)


def test_ar_recovers_phi_and_order_of_ar1_data():
    returns = simulate_ar([0.4], 20_000, seed=5)
    close = 100 * np.exp(np.cumsum(returns))
    past = lagged_log_returns(close, N_LAGS)
    model = AutoregressiveForecast(3).fit(None, past, forward_log_return(close, 3))
    assert model.order_ == 1
    assert model.phi_[0] == pytest.approx(0.4, abs=0.02)
    # The 3-step cumulative forecast of an AR(1): c(1 + (1+phi) + (1+phi+phi²)) + (phi + phi² + phi³) r_t.
    phi, c = model.phi_[0], model.intercept_
    expected = c * (3 + 2 * phi + phi**2) + (phi + phi**2 + phi**3) * past[:, 0]
    np.testing.assert_allclose(model.predict(None, past), expected, rtol=1e-10, atol=1e-15)


def test_ar_recovers_ar2():
    close = 100 * np.exp(np.cumsum(simulate_ar([0.3, -0.2], 20_000, seed=6)))
    model = AutoregressiveForecast(1).fit(None, lagged_log_returns(close, N_LAGS), forward_log_return(close, 1))
    assert model.order_ == 2
    np.testing.assert_allclose(model.phi_, [0.3, -0.2], atol=0.02)


def test_ar_on_a_random_walk_picks_a_constant():
    close = random_walk_close(20_000, seed=7)
    model = AutoregressiveForecast(2).fit(None, lagged_log_returns(close, N_LAGS), forward_log_return(close, 2))
    assert model.order_ == 0
    np.testing.assert_allclose(model.predict(None, lagged_log_returns(close, N_LAGS)), 2 * model.intercept_)


def planted_nonlinear_signal(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(features, target): the target's mean is |x0| centred, plus x1 where x2 > 0; no linear part for ridge to find."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4))
    signal = np.abs(x[:, 0]) - math.sqrt(2 / math.pi) + np.where(x[:, 2] > 0, x[:, 1], 0.0)
    return x, 1e-3 * (0.5 * signal + rng.standard_normal(n))


def test_lightgbm_learns_a_planted_nonlinear_signal_out_of_sample():
    x, y = planted_nonlinear_signal(4000, seed=11)
    train, test = slice(0, 3000), slice(3000, 4000)
    empty = np.zeros((4000, 0))
    model = LightGBMForecast(1).fit(x[train], empty[train], y[train])
    forecast = model.predict(x[test], empty[test])
    ratio = forecast_metrics(y[test], forecast, horizon=1)["rmse_ratio_vs_zero"]
    ridge = RidgeForecast(1).fit(x[train], empty[train], y[train]).predict(x[test], empty[test])
    assert ratio < 0.95
    assert ratio < forecast_metrics(y[test], ridge, horizon=1)["rmse_ratio_vs_zero"]
    assert 1 < model.rounds_ < 500  # early stopping chose the rounds


def test_lightgbm_is_deterministic_for_a_seed():
    x, y = planted_nonlinear_signal(3000, seed=12)
    empty = np.zeros((3000, 0))
    forecasts = [LightGBMForecast(2, seed=seed).fit(x[:2000], empty[:2000], y[:2000]).predict(x, empty) for seed in (3, 3, 4)]
    np.testing.assert_array_equal(forecasts[0], forecasts[1])
    assert not np.array_equal(forecasts[0], forecasts[2])  # the seed draws the bagged rows and features


def test_lightgbm_fits_on_training_rows_only():
    """Fitted from the training slice of a series: whatever the rows after it hold changes nothing."""
    x, y = planted_nonlinear_signal(3000, seed=13)
    empty = np.zeros((3000, 0))
    train = slice(0, 2000)
    altered_x, altered_y = x.copy(), y.copy()
    altered_y[2000:] = -y[2000:] + 1.0
    altered_x[2000:, 0] *= 100
    models = [LightGBMForecast(3).fit(f[train], empty[train], t[train]) for f, t in ((x, y), (altered_x, altered_y))]
    assert models[0].rounds_ == models[1].rounds_
    np.testing.assert_array_equal(models[0].predict(x, empty), models[1].predict(x, empty))


def test_lightgbm_skips_nan_rows_in_fit_and_forecasts_them_as_nan():
    x, y = planted_nonlinear_signal(3000, seed=14)
    empty = np.zeros((3000, 0))
    holed_x, holed_y = x.copy(), y.copy()
    holed_x[:30, 1] = np.nan  # a feature's warm-up
    holed_y[-3:] = np.nan  # targets not yet closed
    model = LightGBMForecast(3).fit(holed_x, empty, holed_y)
    clean = LightGBMForecast(3).fit(x[30:-3], empty[30:-3], y[30:-3])
    forecast = model.predict(holed_x, empty)
    assert np.isnan(forecast[:30]).all() and np.isfinite(forecast[30:]).all()
    np.testing.assert_array_equal(forecast[30:], clean.predict(x[30:], empty[30:]))


def trend_and_daily_cycle(n: int, step_minutes: int = 5) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """(close times, log close): a straight trend plus a daily sine, the shape Prophet models."""
    times = pd.date_range("2025-01-01 00:05", periods=n, freq=f"{step_minutes}min", tz="UTC")
    day_phase = 2 * np.pi * (times.hour * 60 + times.minute).to_numpy() / 1440
    days = np.arange(n) * step_minutes / 1440
    return times, math.log(100) + 2e-3 * days + 0.01 * np.sin(day_phase)


def test_prophet_forecasts_a_trend_with_a_daily_cycle():
    times, log_close = trend_and_daily_cycle(20 * 288)  # 20 days of 5-minute bars
    horizon = 12
    target = np.full(log_close.size, np.nan)
    target[:-horizon] = log_close[horizon:] - log_close[:-horizon]
    train, test = slice(0, 14 * 288), slice(14 * 288, log_close.size - horizon)
    empty = np.zeros((log_close.size, 0))
    model = ProphetForecast(horizon).fit(None, empty[train], target[train], times=times[train], log_close=log_close[train])
    assert model.bar_interval_ == pd.Timedelta(minutes=5)
    forecast = model.predict(None, empty[test], times=times[test])
    # The seasonal swing over an hour dominates the target; the path's change over the horizon tracks it.
    metrics = forecast_metrics(target[test], forecast, horizon=horizon)
    assert metrics["rmse_ratio_vs_zero"] < 0.05 and metrics["directional_accuracy"] > 0.99


def test_prophet_fits_a_regular_subsample_that_ends_at_the_last_row():
    times, log_close = trend_and_daily_cycle(3 * PROPHET_MAX_POINTS + 7)
    model = ProphetForecast(1).fit(None, np.zeros((len(times), 0)), None, times=times, log_close=log_close)
    history = model.model_.history
    assert len(history) <= PROPHET_MAX_POINTS
    assert history["ds"].iloc[-1] == times[-1].tz_localize(None)
    assert history["ds"].diff().dropna().nunique() == 1  # evenly spaced


def test_prophet_forecast_reads_only_its_own_close_time():
    """The forecast at row t is a function of bar t's close time: the closes after the training
    rows, and the rows after t, are never read."""
    times, log_close = trend_and_daily_cycle(6 * 288)
    empty = np.zeros((len(times), 0))
    train = slice(0, 4 * 288)
    model = ProphetForecast(6).fit(None, empty[train], None, times=times[train], log_close=log_close[train])
    whole = model.predict(None, empty, times=times)
    t = 5 * 288
    np.testing.assert_array_equal(model.predict(None, empty[: t + 1], times=times[: t + 1]), whole[: t + 1])
    with pytest.raises(ValueError, match="one close time per log close"):
        ProphetForecast(6).fit(None, empty, None, times=times[:10], log_close=log_close[:11])


@pytest.mark.parametrize("name", list(BASELINES))
@pytest.mark.parametrize("horizon", [1, 4])
def test_no_look_ahead(name, horizon):
    close = random_walk_close(3000, seed=8)
    t = 2500
    # Everything after bar t rewritten; bar t and before unchanged.
    altered = close.copy()
    altered[t + 1 :] = random_walk_close(close.size - t - 1, seed=9) * close[t] / 50
    features, past, target = series_inputs(close, horizon)
    features_alt, past_alt, target_alt = series_inputs(altered, horizon)
    np.testing.assert_array_equal(features[: t + 1], features_alt[: t + 1])

    # A fitted model held fixed: the forecast at t and before ignores the rewrite.
    train = slice(40, 2000 - horizon)
    model = fitted(name, horizon, features, past, target, close, train)
    everything = slice(0, close.size)
    np.testing.assert_array_equal(
        forecast_rows(model, features, past, everything)[: t + 1], forecast_rows(model, features_alt, past_alt, everything)[: t + 1]
    )

    # Fitted on everything known at t (the last target that has closed is y_{t-h}), on either series.
    known = slice(40, t - horizon + 1)
    at_t = [
        forecast_rows(fitted(name, horizon, f, p, y, c, known), f, p, slice(t, t + 1))
        for f, p, y, c in ((features, past, target, close), (features_alt, past_alt, target_alt, altered))
    ]
    np.testing.assert_array_equal(at_t[0], at_t[1])


@pytest.fixture(scope="module")
def fixture_close(shared_data) -> np.ndarray:
    return read_klines(shared_data / FIXTURE_7D)["close"].to_numpy()


@pytest.mark.parametrize("horizon", [1, 2, 3, 4, 5])
def test_no_baseline_calls_direction_above_60_percent_on_real_bars(fixture_close, horizon):
    """On real 1-minute BTC, out of sample, a hit rate above 0.6 would mean a leak in the harness."""
    features, past, target = series_inputs(fixture_close, horizon)
    split = int(0.7 * len(fixture_close))
    train, test = slice(N_LAGS, split - horizon), slice(split, len(fixture_close) - horizon)
    for name in BASELINES:
        model = fitted(name, horizon, features, past, target, fixture_close, train)
        metrics = forecast_metrics(target[test], forecast_rows(model, features, past, test), horizon=horizon)
        accuracy = metrics["directional_accuracy"]
        assert math.isnan(accuracy) or accuracy <= 0.6, (name, metrics)


def test_the_real_bar_guard_catches_a_leak(fixture_close):
    """A feature that peeks at the target passes the same harness only with a hit rate far above 0.6."""
    horizon = 3
    _, past, target = series_inputs(fixture_close, horizon)
    noise = np.random.default_rng(10).standard_normal(target.size) * np.nanstd(target)
    leaky = np.column_stack([np.nan_to_num(target) + noise, past[:, :3]])
    split = int(0.7 * len(fixture_close))
    train, test = slice(N_LAGS, split - horizon), slice(split, len(fixture_close) - horizon)
    model = RidgeForecast(horizon).fit(leaky[train], past[train], target[train])
    metrics = forecast_metrics(target[test], model.predict(leaky[test], past[test]), horizon=horizon)
    assert metrics["directional_accuracy"] > 0.6
