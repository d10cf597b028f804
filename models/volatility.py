"""Forecasting h-bar realized volatility: the target, classical baselines and their metrics.

Units. Everything is in log volatility over h bars: ``0.5 * log(variance of the h-bar log
return)``, the variance being in squared log-return units (not annualized). A forecast of 1%
over h bars reads log(0.01) ≈ -4.6.

Interface (no look-ahead by construction). Inputs are ``returns`` from :func:`bar_log_returns`,
row t = r_t = log(close[t] / close[t-1]), one row per bar in time order over a contiguous
stretch of bars. ``fit`` sees only the rows it is given (the training stretch); ``predict`` maps
row t to the forecast for (t, t+h] from rows up to t of the stretch it is given, so pass it the
series from its start and slice out the test rows. Unlike :mod:`models.baselines`, whose
``past_returns`` rows hold fixed windows, these inputs are the whole path: EWMA and GARCH are
recursive filters that read every past return. A NaN return (the series' first row) is skipped
in ``fit`` and forecast as NaN in ``predict``, leaving the filter's state as it was. As there,
the last h training targets reach h bars past the training rows: purge them before a test fold.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Self

import numpy as np

from models.metrics import check_horizon, diebold_mariano, pearson, scored_points

# Floor on the realized variance of h bars: h * RETURN_FLOOR², as if every bar had moved at least
# 1e-6 (0.01 bp, a tenth of BTC's 0.01 USDT tick at 100k). Without it a run of h flat bars has
# log(0) = -inf; with it, log vol is at least log(1e-6 * sqrt(h)).
RETURN_FLOOR = 1e-6
RISKMETRICS_LAMBDA = 0.94
# HAR's windows as multiples of its "day" (Corsi 2009: day, week, month).
HAR_DAYS = (1, 5, 22)


def bar_log_returns(close: np.ndarray) -> np.ndarray:
    """r_t = log(close[t] / close[t-1]); NaN for the first bar."""
    close = np.asarray(close, dtype=np.float64)
    returns = np.full(close.size, np.nan)
    returns[1:] = np.diff(np.log(close))
    return returns


def log_vol(variance: np.ndarray, horizon: int) -> np.ndarray:
    """0.5 * log(variance) of an h-bar return, the variance floored at h * RETURN_FLOOR² (NaN stays NaN)."""
    return 0.5 * np.log(np.maximum(variance, horizon * RETURN_FLOOR**2))


def log_realized_vol(close: np.ndarray, horizon: int) -> np.ndarray:
    """The target: row t = log sqrt(sum of r_i² over i in (t, t+h]), floored (see ``RETURN_FLOOR``).

    It reads close[t..t+h] only; NaN for the last h rows, whose window has not closed yet.
    """
    check_horizon(horizon)
    squared = bar_log_returns(close) ** 2
    target = np.full(squared.size, np.nan)
    if squared.size > horizon:
        # Each window summed on its own (not a cumulative sum's difference), so a bar outside
        # (t, t+h] cannot reach row t even through rounding.
        windows = np.lib.stride_tricks.sliding_window_view(squared[1:], horizon)
        target[: windows.shape[0]] = log_vol(windows.sum(axis=1), horizon)
    return target


class VolatilityBaseline:
    """A forecaster of the log realized volatility over the next h bars."""

    def __init__(self, horizon: int):
        check_horizon(horizon)
        self.horizon = int(horizon)

    def fit(self, returns: np.ndarray, target: np.ndarray) -> Self:
        return self

    def predict(self, returns: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class ConstantVolatility(VolatilityBaseline):
    """The mean training target: what a forecaster must beat to show that volatility clusters."""

    def fit(self, returns: np.ndarray, target: np.ndarray) -> Self:
        target = _finite(target)
        if target.size == 0:
            raise ValueError("no finite training target")
        self.mean_ = float(np.mean(target))
        return self

    def predict(self, returns: np.ndarray) -> np.ndarray:
        return np.full(len(returns), self.mean_)


class EWMAVolatility(VolatilityBaseline):
    """RiskMetrics (J.P. Morgan 1996): σ²_{t+1} = λ σ²_t + (1-λ) r_t², λ per bar; forecast h σ²_{t+1}.

    The variance of the next bar is carried flat over the horizon (EWMA has no mean reversion),
    so the h-bar variance is h σ²_{t+1}; returns are taken as zero-mean. The filter starts from
    the training rows' mean r², the one thing ``fit`` learns.
    """

    def __init__(self, horizon: int, decay: float = RISKMETRICS_LAMBDA):
        super().__init__(horizon)
        if not 0 < decay < 1:
            raise ValueError(f"decay must lie in (0, 1), got {decay}")
        self.decay = decay

    def fit(self, returns: np.ndarray, target: np.ndarray) -> Self:
        returns = _finite(returns)
        if returns.size == 0:
            raise ValueError("no finite training return")
        self.initial_variance_ = float(np.mean(returns**2))
        return self

    def predict(self, returns: np.ndarray) -> np.ndarray:
        return self.predict_from(returns, self.initial_variance_)[0]

    def predict_from(self, returns: np.ndarray, variance: float) -> tuple[np.ndarray, float]:
        """:meth:`predict` with the filter started from ``variance`` (the σ² that the rows before
        left), and the σ² it leaves: the same forecasts, a chunk of rows at a time."""
        next_variance = _filter(returns, variance, 0.0, 1 - self.decay, self.decay)
        filtered = next_variance[np.isfinite(next_variance)]
        return log_vol(self.horizon * next_variance, self.horizon), float(filtered[-1]) if filtered.size else variance


class HARVolatility(VolatilityBaseline):
    """HAR-RV (Corsi 2009) in logs: y_t = c + Σ_w b_w x_{w,t} + e_t, by OLS on the training rows.

    x_{w,t} = log vol of the last w bars (t-w, t], scaled to h bars: 0.5 log((h/w) Σ r_i²),
    floored like the target, for w = ``day_bars`` × (1, 5, 22). ``day_bars`` defaults to the
    horizon (windows h, 5h, 22h); 1440 on 1-minute bars gives Corsi's calendar days. Logs make
    the errors close to Gaussian and forecasts positive; the forecast is of E[log vol], so as a
    variance it runs low by the Jensen gap (QLIKE charges for that).
    """

    def __init__(self, horizon: int, day_bars: int | None = None):
        super().__init__(horizon)
        self.day_bars = self.horizon if day_bars is None else int(day_bars)
        check_horizon(self.day_bars)
        self.windows = tuple(days * self.day_bars for days in HAR_DAYS)

    def fit(self, returns: np.ndarray, target: np.ndarray) -> Self:
        x = self._regressors(returns)
        y = np.asarray(target, dtype=np.float64)
        rows = np.isfinite(x).all(axis=1) & np.isfinite(y)
        if rows.sum() <= x.shape[1] + 1:
            raise ValueError(f"{rows.sum()} training rows have the {self.windows[-1]}-bar history and a target: too few")
        design = np.column_stack([np.ones(rows.sum()), x[rows]])
        solution = np.linalg.lstsq(design, y[rows], rcond=None)[0]
        self.intercept_, self.coef_ = float(solution[0]), solution[1:]
        return self

    def predict(self, returns: np.ndarray) -> np.ndarray:
        return self.intercept_ + self._regressors(returns) @ self.coef_

    def _regressors(self, returns: np.ndarray) -> np.ndarray:
        squared = np.asarray(returns, dtype=np.float64) ** 2
        # Prefix sums read rows up to t only; a NaN (the first row) spoils just the windows that hold it.
        cumulative = np.concatenate([[0.0], np.cumsum(np.nan_to_num(squared))])
        missing = np.concatenate([[0], np.cumsum(np.isnan(squared))])
        columns = []
        for window in self.windows:
            column = np.full(squared.size, np.nan)
            end = np.arange(window, squared.size + 1)
            sums = cumulative[end] - cumulative[end - window]
            sums[missing[end] > missing[end - window]] = np.nan
            column[window - 1 :] = log_vol(sums * self.horizon / window, self.horizon)
            columns.append(column)
        return np.column_stack(columns)


class GARCHVolatility(VolatilityBaseline):
    """GARCH(1,1) (Bollerslev 1986), zero mean, Gaussian: σ²_{t+1} = ω + α r_t² + β σ²_t.

    Fitted once by ``arch`` on the training returns divided by their standard deviation (unit
    scale keeps the optimizer well conditioned); ``omega_`` is in the returns' own units. The
    forecast at t sums E[σ²_{t+k}] = σ̄² + (α+β)^{k-1} (σ²_{t+1} - σ̄²), σ̄² = ω / (1-α-β),
    over k = 1..h, from the fitted parameters filtered through the returns up to t (no refit).
    The filter starts from arch's backcast of the training returns, so on them it equals arch's
    own ``forecast``.
    """

    def fit(self, returns: np.ndarray, target: np.ndarray) -> Self:
        from arch import arch_model  # heavy import, needed only here

        returns = _finite(returns)
        if returns.size < 100:
            raise ValueError(f"{returns.size} training returns are too few for GARCH(1,1)")
        self.scale_ = float(np.std(returns))
        model = arch_model(returns / self.scale_, mean="Zero", vol="GARCH", p=1, q=1, dist="normal", rescale=False)
        self.result_ = model.fit(disp="off")
        params = self.result_.params
        self.omega_ = float(params["omega"]) * self.scale_**2
        self.alpha_, self.beta_ = float(params["alpha[1]"]), float(params["beta[1]"])
        # arch starts its recursion from this stand-in for the r² and σ² before the first return.
        self.backcast_ = model.volatility.backcast(returns / self.scale_) * self.scale_**2
        return self

    def predict(self, returns: np.ndarray) -> np.ndarray:
        next_variance = _filter(returns, self.backcast_, self.omega_, self.alpha_, self.beta_)
        # E[σ²_{t+k}] = ω (1 + p + ... + p^{k-2}) + p^{k-1} σ²_{t+1}, p = α + β, summed over k = 1..h.
        powers = (self.alpha_ + self.beta_) ** np.arange(self.horizon)
        partial_sums = np.concatenate([[0.0], np.cumsum(powers)[:-1]])
        variance = powers.sum() * next_variance + self.omega_ * partial_sums.sum()
        return log_vol(variance, self.horizon)


VOLATILITY_BASELINES: dict[str, Callable[[int], VolatilityBaseline]] = {
    "constant": ConstantVolatility,
    "ewma": EWMAVolatility,
    "har": HARVolatility,
    "garch": GARCHVolatility,
}


def _filter(returns: np.ndarray, backcast: float, omega: float, alpha: float, beta: float) -> np.ndarray:
    """Row t = σ²_{t+1} = ω + α r_t² + β σ²_t; NaN rows read NaN and leave σ² as it was.

    ``backcast`` stands in for both r² and σ² before the first finite return (as in arch), so the
    first return's σ² is ω + (α + β)·backcast: for EWMA (ω = 0, α + β = 1) the backcast itself.
    """
    returns = np.asarray(returns, dtype=np.float64)
    out = np.full(returns.size, np.nan)
    variance = omega + (alpha + beta) * backcast
    for t, value in enumerate(returns):
        if math.isnan(value):
            continue
        variance = omega + alpha * value * value + beta * variance
        out[t] = variance
    return out


def qlike_loss(target_log_vol: np.ndarray, forecast_log_vol: np.ndarray) -> np.ndarray:
    """Per-point QLIKE on variances (Patton 2011): σ²/σ̂² - log(σ²/σ̂²) - 1, 0 for a perfect forecast.

    With d = target - forecast in log vol, σ²/σ̂² = exp(2d). Robust to noise in the realized
    proxy: its expectation ranks variance forecasts as their true loss would. It charges
    under-prediction (exp) more than over-prediction (linear).
    """
    twice_gap = 2 * (np.asarray(target_log_vol, dtype=np.float64) - np.asarray(forecast_log_vol, dtype=np.float64))
    return np.exp(twice_gap) - twice_gap - 1


def volatility_metrics(target_log_vol: np.ndarray, forecast_log_vol: np.ndarray) -> dict[str, float]:
    """Score log-vol forecasts; keys ``n``, ``n_nan_target``, ``qlike``, ``rmse_log``, ``mz_r2``,
    ``mz_intercept``, ``mz_slope``.

    ``qlike`` is the mean of :func:`qlike_loss`; ``rmse_log`` the RMSE of log vol; ``mz_*`` the
    Mincer–Zarnowitz regression target = a + b forecast + e (unbiased: a = 0, b = 1; R² its
    explained share, NaN for a constant forecast). NaN targets are dropped as in
    :func:`models.metrics.forecast_metrics`; a NaN forecast where a target exists is an error.
    """
    target, forecast = _scored(target_log_vol, forecast_log_vol)
    correlation = pearson(forecast, target)
    slope = correlation * float(np.std(target) / np.std(forecast)) if np.ptp(forecast) > 0 else math.nan
    return {
        "n": float(target.size),
        "n_nan_target": float(np.isnan(np.asarray(target_log_vol, dtype=np.float64)).sum()),
        "qlike": float(np.mean(qlike_loss(target, forecast))),
        "rmse_log": math.sqrt(float(np.mean((target - forecast) ** 2))),
        "mz_r2": correlation**2,
        "mz_intercept": float(target.mean() - slope * forecast.mean()),
        "mz_slope": slope,
    }


def dm_pvalue(target_log_vol: np.ndarray, forecast_a: np.ndarray, forecast_b: np.ndarray, horizon: int) -> float:
    """Two-sided Diebold–Mariano p-value of equal QLIKE, HAC over the h-1 lags that overlapping
    h-bar targets share (:func:`models.metrics.diebold_mariano`); NaN targets dropped."""
    target, a = _scored(target_log_vol, forecast_a)
    _, b = _scored(target_log_vol, forecast_b)
    return diebold_mariano(target, a, b, horizon, loss=qlike_loss)[1]


def _scored(target_log_vol: np.ndarray, forecast_log_vol: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return scored_points(target_log_vol, forecast_log_vol, names=("target", "forecast"))


def _finite(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return values[np.isfinite(values)]
