"""Naive and classical baseline forecasters of the h-bar forward log return.

Interface (no look-ahead by construction). Every input is one row per bar t, rows in time
order, and row t holds only what is known at bar t's close:

- ``features``: the LSTM's feature matrix, (n, k) or (n, window, k) (flattened to 2-D), or None;
- ``past_returns``: from :func:`lagged_log_returns`, row t = [r_t, r_{t-1}, ..., r_{t-L+1}] with
  r_t = log(close[t] / close[t-1]), built once over the whole series so that the first rows of a
  test fold still see the bars before it;
- ``target`` (fit only): y_t = log(close[t+h] / close[t]).

``predict`` maps row t to the forecast for bar t alone, so values after t cannot reach it, and
``fit`` sees only the rows it is given. The one leak left to the caller: the last h training
targets reach h bars past the training rows, so purge them when a test fold follows directly.

Rows with a NaN in what a baseline reads (a series' warm-up rows) are skipped in ``fit`` and
forecast as NaN in ``predict``; start test folds after the warm-up, since
:func:`models.metrics.forecast_metrics` refuses NaN forecasts where a target exists.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Self

import lightgbm
import numpy as np
import pandas as pd

from models.metrics import check_horizon

# Per-sample ridge penalties tried on the holdout, on standardized features.
RIDGE_ALPHAS = tuple(10.0**k for k in range(-4, 4))
# The most recent share of the training fold that scores the ridge penalties.
RIDGE_HOLDOUT_SHARE = 0.2
AR_MAX_ORDER = 10
# The most recent share of the training fold that early-stops the gradient boosting.
GBM_HOLDOUT_SHARE = 0.2
GBM_MAX_ROUNDS = 500
# Rounds without a better holdout loss before boosting stops.
GBM_PATIENCE = 50
# The most training points Prophet is fitted on (a regular subsample beyond): Stan's optimizer
# takes about a second for 2,000 points and grows faster than linearly (~2.7 s for 5,000).
PROPHET_MAX_POINTS = 2000


def lagged_log_returns(close: np.ndarray, n_lags: int) -> np.ndarray:
    """Row t = [r_t, r_{t-1}, ..., r_{t-n_lags+1}], r_t = log(close[t] / close[t-1]); NaN before the series."""
    close = np.asarray(close, dtype=np.float64)
    returns = np.full(close.size, np.nan)
    returns[1:] = np.diff(np.log(close))
    lags = np.full((close.size, n_lags), np.nan)
    for lag in range(n_lags):
        lags[lag:, lag] = returns[: close.size - lag]
    return lags


class Baseline:
    """A forecaster of the h-bar forward log return; ``n_lags`` is how many past returns it reads.

    ``reads_path``: the baseline models the price path over time, so ``fit`` also takes the rows'
    bar close times and log closes (keywords ``times``, ``log_close``) and ``predict`` their close
    times (``times``); see :class:`ProphetForecast`, the one that does.
    """

    n_lags = 0
    reads_path = False

    def __init__(self, horizon: int):
        check_horizon(horizon)
        self.horizon = int(horizon)

    def fit(self, features: np.ndarray | None, past_returns: np.ndarray, target: np.ndarray) -> Self:
        return self

    def predict(self, features: np.ndarray | None, past_returns: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _lags(self, past_returns: np.ndarray) -> np.ndarray:
        past_returns = np.asarray(past_returns, dtype=np.float64)
        if past_returns.ndim != 2 or past_returns.shape[1] < self.n_lags:
            raise ValueError(
                f"{type(self).__name__} reads {self.n_lags} past returns; past_returns has shape {past_returns.shape}"
            )
        return past_returns[:, : self.n_lags]


class ZeroForecast(Baseline):
    """The random walk: the expected log return is 0."""

    def predict(self, features: np.ndarray | None, past_returns: np.ndarray) -> np.ndarray:
        return np.zeros(len(past_returns))


class DriftForecast(Baseline):
    """The mean training target."""

    def fit(self, features: np.ndarray | None, past_returns: np.ndarray, target: np.ndarray) -> Self:
        target = np.asarray(target, dtype=np.float64)
        target = target[np.isfinite(target)]
        if target.size == 0:
            raise ValueError("no finite training target")
        self.mean_ = float(np.mean(target))
        return self

    def predict(self, features: np.ndarray | None, past_returns: np.ndarray) -> np.ndarray:
        return np.full(len(past_returns), self.mean_)


class MomentumForecast(Baseline):
    """``coef_`` times the last h-bar log return, log(close[t] / close[t-h]).

    The coefficient is least squares through the origin on the training fold, so the baseline
    is fitted momentum (coef > 0) or reversal (coef < 0) at the scale the data support; a raw
    coefficient of 1 would lose to the zero forecast on RMSE by construction under a random walk.
    """

    def __init__(self, horizon: int):
        super().__init__(horizon)
        self.n_lags = self.horizon

    def fit(self, features: np.ndarray | None, past_returns: np.ndarray, target: np.ndarray) -> Self:
        signal = self._signal(past_returns)
        target = np.asarray(target, dtype=np.float64)
        rows = np.isfinite(signal) & np.isfinite(target)
        if not rows.any():
            raise ValueError("no training row has both the past h-bar return and a target")
        power = float(signal[rows] @ signal[rows])
        self.coef_ = float(signal[rows] @ target[rows]) / power if power > 0 else 0.0
        return self

    def predict(self, features: np.ndarray | None, past_returns: np.ndarray) -> np.ndarray:
        return self.coef_ * self._signal(past_returns)

    def _signal(self, past_returns: np.ndarray) -> np.ndarray:
        return self._lags(past_returns).sum(axis=1)


class RidgeForecast(Baseline):
    """Closed-form ridge regression on the LSTM's features, standardized with training-fold statistics.

    Minimizes mean squared error + alpha·||w||² over standardized features, intercept unpenalized.
    ``alpha=None`` picks it from ``RIDGE_ALPHAS`` on a time-ordered holdout: fit on the first
    80% of the training rows (less the last h, whose targets reach into the holdout), score on
    the last 20%, then refit on all training rows with the best alpha. ``coef_`` and
    ``intercept_`` are in the features' original units.
    """

    def __init__(self, horizon: int, alpha: float | None = None):
        super().__init__(horizon)
        self.alpha = alpha

    def fit(self, features: np.ndarray | None, past_returns: np.ndarray, target: np.ndarray) -> Self:
        x = _feature_matrix(features)
        y = np.asarray(target, dtype=np.float64)
        rows = np.isfinite(x).all(axis=1) & np.isfinite(y)
        x, y = x[rows], y[rows]
        self.alpha_ = self.alpha if self.alpha is not None else self._holdout_alpha(x, y)
        self.coef_, self.intercept_ = _ridge(x, y, self.alpha_)
        return self

    def predict(self, features: np.ndarray | None, past_returns: np.ndarray) -> np.ndarray:
        return _feature_matrix(features) @ self.coef_ + self.intercept_

    def _holdout_alpha(self, x: np.ndarray, y: np.ndarray) -> float:
        split = int(len(y) * (1 - RIDGE_HOLDOUT_SHARE))
        fit_end = split - self.horizon
        if fit_end < 2 or split >= len(y):
            raise ValueError(f"{len(y)} training rows are too few for a holdout at horizon {self.horizon}")

        def holdout_mse(alpha: float) -> float:
            coef, intercept = _ridge(x[:fit_end], y[:fit_end], alpha)
            return float(np.mean((x[split:] @ coef + intercept - y[split:]) ** 2))

        return min(RIDGE_ALPHAS, key=holdout_mse)


class AutoregressiveForecast(Baseline):
    """AR(p) on 1-bar log returns, iterated h steps and summed into the h-bar return.

    r_t = c + phi_1 r_{t-1} + ... + phi_p r_{t-p} + e_t, by least squares on the training rows.
    The order p in 0..``max_order`` minimizes BIC, all orders fitted on the same rows so their
    BIC compare; p = 0 (a constant) is allowed, so a random walk may honestly come out as drift.
    """

    def __init__(self, horizon: int, max_order: int = AR_MAX_ORDER):
        super().__init__(horizon)
        self.max_order = max_order
        # Fitting regresses r_t on r_{t-1..t-p}: one lag more than forecasting needs.
        self.n_lags = max_order + 1

    def fit(self, features: np.ndarray | None, past_returns: np.ndarray, target: np.ndarray) -> Self:
        lags = self._lags(past_returns)
        lags = lags[np.isfinite(lags).all(axis=1)]
        if len(lags) <= 2 * (self.max_order + 1):
            raise ValueError(f"{len(lags)} training rows are too few for AR order up to {self.max_order}")
        current, previous = lags[:, 0], lags[:, 1:]
        fits = [_least_squares_with_intercept(previous[:, :order], current) for order in range(self.max_order + 1)]
        n = len(current)
        bic = [n * math.log(rss / n) + (order + 1) * math.log(n) for order, (_, _, rss) in enumerate(fits)]
        self.order_ = int(np.argmin(bic))
        self.phi_, self.intercept_, _ = fits[self.order_]
        return self

    def predict(self, features: np.ndarray | None, past_returns: np.ndarray) -> np.ndarray:
        state = self._lags(past_returns)[:, : self.order_]
        total = np.zeros(len(state))
        for _ in range(self.horizon):
            step = self.intercept_ + state @ self.phi_
            total += step
            state = np.column_stack([step, state[:, :-1]])[:, : self.order_]
        return total


class LightGBMForecast(Baseline):
    """Gradient-boosted trees (LightGBM) on the LSTM's features: the nonlinear baseline.

    Rounds are chosen on a time-ordered holdout as the ridge chooses its penalty: boost on the
    first 80% of the training rows (less the last h, whose targets reach into the holdout),
    stop once the last 20% has not improved for ``GBM_PATIENCE`` rounds, then refit on all
    training rows with the best round count, so the most recent rows also shape the trees.

    Defaults are small because one-minute returns are mostly noise: 15 leaves and at least 200
    rows per leaf keep each tree from fitting outliers, learning rate 0.05 over at most 500
    rounds leaves early stopping room to act, and feature and row subsampling of 0.8 (drawn
    from ``seed``) decorrelate the trees. ``deterministic`` with one thread makes a fit
    reproducible bit for bit and keeps parallel evaluation workers from oversubscribing cores.
    """

    def __init__(self, horizon: int, seed: int = 0, num_threads: int = 1):
        super().__init__(horizon)
        self.params = {
            "objective": "regression",
            "num_leaves": 15,
            "learning_rate": 0.05,
            "min_data_in_leaf": 200,
            "feature_fraction": 0.8,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "seed": seed,
            "deterministic": True,
            "force_row_wise": True,  # LightGBM's advice with deterministic: no row/col-wise timing test
            "num_threads": num_threads,
            "verbosity": -1,
        }

    def fit(self, features: np.ndarray | None, past_returns: np.ndarray, target: np.ndarray) -> Self:
        x = _feature_matrix(features)
        y = np.asarray(target, dtype=np.float64)
        rows = np.isfinite(x).all(axis=1) & np.isfinite(y)
        x, y = x[rows], y[rows]
        self.rounds_ = self._holdout_rounds(x, y)
        self.booster_ = lightgbm.train(self.params, lightgbm.Dataset(x, y), num_boost_round=self.rounds_)
        return self

    def predict(self, features: np.ndarray | None, past_returns: np.ndarray) -> np.ndarray:
        x = _feature_matrix(features)
        forecast = np.full(len(x), np.nan)
        rows = np.isfinite(x).all(axis=1)
        if rows.any():
            forecast[rows] = self.booster_.predict(x[rows], num_threads=self.params["num_threads"])
        return forecast

    def _holdout_rounds(self, x: np.ndarray, y: np.ndarray) -> int:
        split = int(len(y) * (1 - GBM_HOLDOUT_SHARE))
        fit_end = split - self.horizon
        if fit_end < 2 or split >= len(y):
            raise ValueError(f"{len(y)} training rows are too few for a holdout at horizon {self.horizon}")
        fit_rows = lightgbm.Dataset(x[:fit_end], y[:fit_end])
        holdout = lightgbm.Dataset(x[split:], y[split:], reference=fit_rows)
        booster = lightgbm.train(
            self.params, fit_rows, num_boost_round=GBM_MAX_ROUNDS, valid_sets=[holdout],
            callbacks=[lightgbm.early_stopping(GBM_PATIENCE, verbose=False)],
        )
        return max(1, booster.best_iteration)


class ProphetForecast(Baseline):
    """Prophet (Taylor & Letham 2018) on the log close: its fitted path's change over the horizon.

    Fit: Prophet with its defaults (a piecewise-linear trend with 25 changepoints over the first
    80% of the span; daily, weekly and yearly Fourier seasonality where the span covers two
    periods) on y = log close against ds = bar close time (UTC, as Prophet takes no time zone),
    for the rows ``fit`` is given only: the training span. Beyond ``PROPHET_MAX_POINTS`` rows it
    is fitted on every k-th row, the smallest k that leaves at most that many, counted back from
    the last row so that the most recent close is in (1-minute bars: ~100k rows take minutes,
    2,000 about a second, spaced k minutes apart so the daily cycle is still sampled at every
    phase). ``bar_interval_`` is the training rows' median spacing.

    Forecast: once fitted, Prophet's expected path yhat(s) (trend + seasonality, no noise) is a
    deterministic function of the time s. The forecast for row t, closing at s_t, is
    yhat(s_t + h·bar_interval_) - yhat(s_t): the log return the fitted path makes over the next
    h bars. It reads bar t's close time and nothing else from the test rows (not even closes up
    to t: Prophet does not update on new data), so nothing after t reaches it. After the
    training span the trend is the last segment's slope extrapolated, so the forecast is that
    drift plus the seasonal swing between the two times of day and week.
    """

    reads_path = True

    def fit(
        self, features: np.ndarray | None, past_returns: np.ndarray, target: np.ndarray,
        *, times: pd.DatetimeIndex, log_close: np.ndarray,
    ) -> Self:
        times, log_close = _utc_naive(times), np.asarray(log_close, dtype=np.float64)
        if len(times) != len(log_close):
            raise ValueError(f"Prophet needs one close time per log close, got {len(times)} and {len(log_close)}")
        rows = np.flatnonzero(np.isfinite(log_close))
        if rows.size < 3:
            raise ValueError(f"{rows.size} training rows with a close are too few for Prophet")
        self.bar_interval_ = pd.Timedelta(np.median(np.diff(times[rows].asi8)), unit="ns")
        stride = math.ceil(rows.size / PROPHET_MAX_POINTS)
        rows = rows[::-1][::stride][::-1]
        prophet, quiet = _prophet()
        self.model_ = prophet(uncertainty_samples=0)  # the expected path only: no sampled intervals
        with quiet():
            self.model_.fit(pd.DataFrame({"ds": times[rows], "y": log_close[rows]}))
        return self

    def predict(self, features: np.ndarray | None, past_returns: np.ndarray, *, times: pd.DatetimeIndex) -> np.ndarray:
        times = _utc_naive(times)
        return self._path(times + self.horizon * self.bar_interval_) - self._path(times)

    def _path(self, times: pd.DatetimeIndex) -> np.ndarray:
        return self.model_.predict(pd.DataFrame({"ds": times}))["yhat"].to_numpy()


BASELINES: dict[str, Callable[[int], Baseline]] = {
    "zero": ZeroForecast,
    "drift": DriftForecast,
    "momentum": MomentumForecast,
    "ridge": RidgeForecast,
    "ar": AutoregressiveForecast,
    "lightgbm": LightGBMForecast,
    "prophet": ProphetForecast,
}


def _prophet():
    """Prophet's class and cmdstanpy's ``disable_logging`` (it logs every fit at INFO), imported on
    first use (a heavy import). Prophet's own chatter is turned down: it logs each seasonality it
    leaves out, and prophet.plot an error when plotly (interactive plots, not used here) is missing."""
    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)
    from cmdstanpy import disable_logging
    from prophet import Prophet

    logging.getLogger("prophet").setLevel(logging.WARNING)  # after the import, which sets it to INFO
    return Prophet, disable_logging


def _utc_naive(times) -> pd.DatetimeIndex:
    times = pd.DatetimeIndex(times)
    return times.tz_convert("UTC").tz_localize(None) if times.tz is not None else times


def _ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """Ridge on features standardized with these rows' statistics; (coef, intercept) in original units."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    # A constant column carries nothing; scale 1 keeps it at zero instead of dividing by zero.
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    gram = z.T @ z / len(y) + alpha * np.eye(z.shape[1])
    coef = np.linalg.solve(gram, z.T @ (y - y.mean()) / len(y)) / scale
    return coef, float(y.mean() - mean @ coef)


def _least_squares_with_intercept(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(slopes, intercept, residual sum of squares) of y on x plus a constant."""
    design = np.column_stack([np.ones(len(y)), x])
    solution = np.linalg.lstsq(design, y, rcond=None)[0]
    residual = y - design @ solution
    return solution[1:], float(solution[0]), float(residual @ residual)


def _feature_matrix(features: np.ndarray | None) -> np.ndarray:
    if features is None:
        raise ValueError("this baseline needs the feature matrix")
    features = np.asarray(features, dtype=np.float64)
    return features.reshape(len(features), -1)

