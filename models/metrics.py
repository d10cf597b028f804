"""Out-of-sample forecast metrics for h-bar forward log returns, fold by fold.

The target is y_t = log(close[t+h] / close[t]). Crypto returns are close to a random walk, so
every score sits beside the score of the zero-return (random-walk) forecast on the same points:
the RMSE ratio, the Diebold–Mariano test against it, and the majority-direction rate beside the
directional hit rate.

NaN policy. Points whose target is NaN (the last h bars of a series have none) are dropped from
every metric alike and counted in ``n_nan_target``. A NaN or infinite prediction at a point that
has a target is an error: a forecaster that skips its hard points must not score better for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

# Lentz's continued fraction for the incomplete beta function: convergence and underflow guards.
_CF_EPS = 1e-15
_CF_TINY = 1e-300
_CF_MAX_ITER = 100_000


def forecast_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    quantile_preds: np.ndarray | None = None,
    quantiles: Sequence[float] | None = None,
    horizon: int = 1,
) -> dict[str, float]:
    """Score one fold's out-of-sample forecasts; a flat dict of floats.

    Keys: ``n``, ``n_nan_target``, ``mae``, ``rmse``, ``rmse_ratio_vs_zero``,
    ``directional_accuracy``, ``majority_rate``, ``n_directional``, ``ic``, ``rank_ic``,
    ``dm_stat_vs_zero``, ``dm_pvalue_vs_zero``; with quantiles also ``coverage_q{q:g}`` and
    ``pinball_q{q:g}`` per quantile and ``pinball`` (their mean), e.g. ``coverage_q0.1``.

    ``quantile_preds`` has one column per entry of ``quantiles`` (each strictly inside (0, 1)).
    ``horizon`` is h; it sets the HAC lags of the Diebold–Mariano test (h-step targets overlap).
    """
    check_horizon(horizon)
    y_true = np.asarray(y_true, dtype=np.float64)
    y, pred = scored_points(y_true, y_pred)
    keep = ~np.isnan(y_true)

    error = y - pred
    rmse = math.sqrt(np.mean(error**2))
    rmse_zero = math.sqrt(np.mean(y**2))
    metrics = {
        "n": float(y.size),
        "n_nan_target": float((~keep).sum()),
        "mae": float(np.mean(np.abs(error))),
        "rmse": rmse,
        "rmse_ratio_vs_zero": rmse / rmse_zero if rmse_zero > 0 else math.nan,
        **directional_metrics(y, pred),
        "ic": pearson(pred, y),
        "rank_ic": spearman(pred, y),
    }
    if np.all(pred == 0):
        # The zero forecast against itself is no test.
        stat, pvalue = math.nan, math.nan
    else:
        stat, pvalue = diebold_mariano(y, pred, np.zeros_like(y), horizon)
    metrics["dm_stat_vs_zero"] = stat
    metrics["dm_pvalue_vs_zero"] = pvalue

    if (quantile_preds is None) != (quantiles is None):
        raise ValueError("quantile_preds and quantiles go together: give both or neither")
    if quantile_preds is not None:
        metrics.update(quantile_metrics(y, _kept_quantile_preds(quantile_preds, keep, quantiles), quantiles))
    return metrics


def scored_points(y_true: np.ndarray, y_pred: np.ndarray, names: tuple[str, str] = ("y_true", "y_pred")) -> tuple[np.ndarray, np.ndarray]:
    """The points that have a target (NaN targets dropped: the last h rows of a series), checked:
    1-D and of one length, no infinite target, a finite forecast wherever there is a target."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    target, forecast = names
    if y_true.ndim != 1 or y_pred.shape != y_true.shape:
        raise ValueError(f"{target} and {forecast} must be 1-D of one length, got {y_true.shape} and {y_pred.shape}")
    if np.isinf(y_true).any():
        raise ValueError(f"{target} has infinite values")
    keep = ~np.isnan(y_true)
    if not keep.any():
        raise ValueError(f"no point has a target: every {target} is NaN")
    if not np.isfinite(y_pred[keep]).all():
        raise ValueError(f"{forecast} has NaN or infinite values at points that have a target")
    return y_true[keep], y_pred[keep]


def directional_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Hit rate of the predicted sign, and what always guessing the majority sign would score.

    Ties are excluded: a point where the prediction or the outcome is exactly 0 calls no
    direction (the zero forecast has no directional accuracy; an unchanged close is neither up
    nor down). ``majority_rate`` is the share of the more frequent outcome sign among the same
    points, chosen in hindsight, so it bounds what any constant-direction guess scores there.
    NaN for both when no point calls a direction.
    """
    return directional_from_counts(direction_counts(y_true, y_pred))


def direction_counts(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """The points that call a direction, those whose sign is right, and those whose outcome is up:
    what :func:`directional_metrics` is made of, summable over chunks of the points."""
    pred_sign, true_sign = np.sign(y_pred), np.sign(y_true)
    calls = (pred_sign != 0) & (true_sign != 0)
    return np.array([calls.sum(), (calls & (pred_sign == true_sign)).sum(), (calls & (true_sign > 0)).sum()], dtype=np.int64)


def directional_from_counts(counts: np.ndarray) -> dict[str, float]:
    """:func:`directional_metrics` from :func:`direction_counts` (summed)."""
    count, hits, ups = (int(value) for value in counts)
    if count == 0:
        return {"directional_accuracy": math.nan, "majority_rate": math.nan, "n_directional": 0.0}
    up_share = ups / count
    return {"directional_accuracy": hits / count, "majority_rate": max(up_share, 1.0 - up_share), "n_directional": float(count)}


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; NaN when either side is constant (a constant forecast has no IC)."""
    return Comoments().add(x, y).pearson()


class Comoments:
    """The count, means, least and greatest values, and centered sums of squares and products of
    pairs (x, y) given a chunk at a time, chunks merged as Chan, Golub & LeVeque (1979) do: for
    :func:`pearson` over points never held at once. One chunk gives pearson's centered sums exactly."""

    def __init__(self) -> None:
        self.n = 0
        self.mean = np.zeros(2)
        self.sums = np.zeros(3)  # Σ(x - x̄)², Σ(y - ȳ)², Σ(x - x̄)(y - ȳ)
        self.low, self.high = np.full(2, np.inf), np.full(2, -np.inf)

    def add(self, x: np.ndarray, y: np.ndarray) -> Comoments:
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if not x.size:
            return self
        mean = np.array([x.mean(), y.mean()])
        xc, yc = x - mean[0], y - mean[1]
        sums = np.array([xc @ xc, yc @ yc, xc @ yc])
        self.low = np.minimum(self.low, [x.min(), y.min()])
        self.high = np.maximum(self.high, [x.max(), y.max()])
        if self.n:
            n, gap = self.n + x.size, mean - self.mean
            weight = self.n * x.size / n
            sums = self.sums + sums + weight * np.array([gap[0] * gap[0], gap[1] * gap[1], gap[0] * gap[1]])
            mean = self.mean + gap * x.size / n
        self.n, self.mean, self.sums = self.n + x.size, mean, sums
        return self

    def pearson(self) -> float:
        # Constancy is tested on the raw values: a constant's mean is inexact, so its centered values need not be 0.
        if self.n < 2 or self.low[0] == self.high[0] or self.low[1] == self.high[1]:
            return math.nan
        xx, yy, xy = self.sums
        return float(xy / math.sqrt(float(xx) * float(yy)))


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (ties share their average rank); NaN when either side is constant."""
    return pearson(pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy())


def quantile_metrics(y_true: np.ndarray, quantile_preds: np.ndarray, quantiles: Sequence[float]) -> dict[str, float]:
    """Coverage (share of outcomes at or below each quantile forecast) and pinball loss.

    A calibrated q-quantile forecast has coverage q. ``pinball`` is the mean of the
    per-quantile losses.
    """
    metrics: dict[str, float] = {}
    for column, q in enumerate(quantiles):
        forecast = quantile_preds[:, column]
        miss = y_true - forecast
        metrics[f"coverage_q{q:g}"] = float(np.mean(y_true <= forecast))
        metrics[f"pinball_q{q:g}"] = float(np.mean(np.maximum(q * miss, (q - 1) * miss)))
    metrics["pinball"] = float(np.mean([metrics[f"pinball_q{q:g}"] for q in quantiles]))
    return metrics


def squared_error(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    return (y_true - y_pred) ** 2


def diebold_mariano(
    y_true: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    horizon: int = 1,
    loss: Callable[[np.ndarray, np.ndarray], np.ndarray] = squared_error,
) -> tuple[float, float]:
    """Two-sided Diebold–Mariano test of equal loss; returns (statistic, p-value).

    ``loss(y_true, pred)`` gives the per-point loss, squared error unless another is passed
    (e.g. QLIKE in :mod:`models.volatility`).

    The statistic is negative when ``pred_a`` has the lower loss. The loss differential of
    h-step forecasts is autocorrelated up to lag h-1 (their targets overlap), so its long-run
    variance sums the autocovariances at lags 0..h-1 with DM's uniform weights, which are exact
    for the MA(h-1) errors of an h-step forecast. Where that sum is not positive (it can be in
    small samples), Newey–West's Bartlett weights over the same lags are used instead. The
    Harvey–Leybourne–Newbold correction rescales the statistic and takes the p-value from
    Student's t with n-1 degrees of freedom.

    Identical losses at every point give (0, 1): no evidence of a difference. NaN with fewer
    than 2h points (and at least 2), too few for h-1 autocovariances and the correction.
    """
    check_horizon(horizon)
    y_true, pred_a, pred_b = (np.asarray(v, dtype=np.float64) for v in (y_true, pred_a, pred_b))
    if not (y_true.shape == pred_a.shape == pred_b.shape) or y_true.ndim != 1:
        raise ValueError("y_true, pred_a and pred_b must be 1-D of one length")
    if not (np.isfinite(y_true).all() and np.isfinite(pred_a).all() and np.isfinite(pred_b).all()):
        raise ValueError("diebold_mariano needs finite values; drop NaN targets first")
    n = y_true.size
    if n < max(2, 2 * horizon):
        return math.nan, math.nan
    return LossDifferential(horizon).add(loss(y_true, pred_a) - loss(y_true, pred_b)).test()


class LossDifferential:
    """The loss differential d_t of two h-step forecasts, given a chunk at a time in time order, kept
    as what :func:`diebold_mariano` needs of it: its count, sum, least and greatest value, the lagged
    products Σ d_t d_{t-k} for k = 0..h-1, and its first and last h-1 values (which the centered
    autocovariances' sums leave out). So a test over a year of bars holds no array of them."""

    def __init__(self, horizon: int) -> None:
        check_horizon(horizon)
        self.horizon = horizon
        self.n, self.total = 0, 0.0
        self.low, self.high = math.inf, -math.inf
        self.products = np.zeros(horizon)
        self.head, self.tail = np.zeros(0), np.zeros(0)  # the first and last (up to) h-1 values

    def add(self, differential: np.ndarray) -> LossDifferential:
        d = np.asarray(differential, dtype=np.float64)
        if not d.size:
            return self
        lags = self.horizon - 1
        joined = np.concatenate([self.tail, d])  # with the values before, for the products across the chunks' seam
        for k in range(min(lags, joined.size - 1) + 1):
            start = max(self.tail.size, k)  # each product once: its later value in this chunk
            self.products[k] += joined[start:] @ joined[start - k : joined.size - k]
        self.head = np.concatenate([self.head, d[: lags - self.head.size]])
        self.tail = joined[max(0, joined.size - lags) :] if lags else self.tail
        self.n += d.size
        self.total += float(d.sum())
        self.low, self.high = min(self.low, float(d.min())), max(self.high, float(d.max()))
        return self

    def autocovariances(self) -> np.ndarray:
        """γ_k = Σ_{t=k}^{n-1} (d_t - d̄)(d_{t-k} - d̄) / n, k = 0..h-1, from the sums kept."""
        n, mean = self.n, self.total / self.n
        lags = np.arange(self.horizon)
        # Σ_{t≥k} d_t and Σ_{t<n-k} d_t: the sum without the first k values, and without the last k.
        without_first = self.total - np.concatenate([[0.0], np.cumsum(self.head)])[lags]
        without_last = self.total - np.concatenate([[0.0], np.cumsum(self.tail[::-1])])[lags]
        return (self.products - mean * (without_first + without_last) + (n - lags) * mean * mean) / n

    def test(self) -> tuple[float, float]:
        """:func:`diebold_mariano`'s (statistic, p-value) of the differential so far."""
        n, horizon = self.n, self.horizon
        if n < max(2, 2 * horizon):
            return math.nan, math.nan
        mean = self.total / n
        if self.low == self.high:
            # No variation: equal losses are no evidence; a constant gap is certain.
            return (0.0, 1.0) if mean == 0 else (math.copysign(math.inf, mean), 0.0)
        correction = (n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n
        statistic = mean / math.sqrt(_long_run_variance(self.autocovariances()) / n) * math.sqrt(correction)
        return statistic, student_t_two_sided_pvalue(statistic, n - 1)


def _long_run_variance(autocov: np.ndarray) -> float:
    """DM's uniform sum of the autocovariances at lags 0..h-1, or Newey–West's Bartlett weights where it is not positive."""
    uniform = autocov[0] + 2 * autocov[1:].sum()
    if uniform > 0:
        return float(uniform)
    bartlett = 1 - np.arange(1, autocov.size) / autocov.size
    return float(autocov[0] + 2 * (bartlett * autocov[1:]).sum())


def student_t_two_sided_pvalue(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom (no scipy in this project).

    Uses P = I_x(df/2, 1/2) with x = df / (df + t²), the regularized incomplete beta function.
    """
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    if math.isnan(t):
        return math.nan
    if math.isinf(t):
        return 0.0
    t2 = t * t
    return _regularized_beta(df / 2, 0.5, df / (df + t2), t2 / (df + t2))


def _regularized_beta(a: float, b: float, x: float, one_minus_x: float) -> float:
    """I_x(a, b); ``one_minus_x`` is passed in so that x near 1 keeps its precision."""
    if x <= 0:
        return 0.0
    if one_minus_x <= 0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(one_minus_x)
    )
    # The continued fraction converges fast only below this point; use I_x(a,b) = 1 - I_{1-x}(b,a) above it.
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, one_minus_x) / b


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """The incomplete beta continued fraction by the modified Lentz method (Numerical Recipes §6.4)."""
    c, d = 1.0, _away_from_zero(1 - (a + b) * x / (a + 1))
    d = 1 / d
    result = d
    for m in range(1, _CF_MAX_ITER):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1 / _away_from_zero(1 + numerator * d)
            c = _away_from_zero(1 + numerator / c)
            step = d * c
            result *= step
        if abs(step - 1) < _CF_EPS:
            return result
    raise ArithmeticError(f"incomplete beta continued fraction did not converge (a={a}, b={b}, x={x})")


def _away_from_zero(value: float) -> float:
    return value if abs(value) >= _CF_TINY else _CF_TINY


def cumulative_ic(fold_metrics: Sequence[Mapping[str, float]]) -> pd.DataFrame:
    """Per-fold IC and rank IC with their running sums over folds, for the cumulative-IC plot.

    Rows follow the folds' order. A steady upward slope is a consistent edge; a fold whose
    forecast was constant has NaN IC and adds nothing to the running sum.
    """
    table = pd.DataFrame(
        {
            "fold": np.arange(len(fold_metrics)),
            "n": [m["n"] for m in fold_metrics],
            "ic": [m["ic"] for m in fold_metrics],
            "rank_ic": [m["rank_ic"] for m in fold_metrics],
        }
    )
    table["cumulative_ic"] = table["ic"].fillna(0).cumsum()
    table["cumulative_rank_ic"] = table["rank_ic"].fillna(0).cumsum()
    return table


def aggregate_over_seeds(runs: Sequence[Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and sample standard deviation (ddof=1) of each metric over seeds.

    Every run must have the same keys. A NaN in any seed makes that metric's mean NaN, so a
    collapsed seed is seen rather than averaged away; one seed gives a NaN std (no spread known).
    """
    if not runs:
        raise ValueError("no runs to aggregate")
    keys = list(runs[0])
    for run in runs[1:]:
        if set(run) != set(keys):
            raise ValueError(f"runs have different metrics: {sorted(set(run) ^ set(keys))}")
    summary = {}
    for key in keys:
        values = np.array([run[key] for run in runs], dtype=np.float64)
        std = float(np.std(values, ddof=1)) if values.size > 1 else math.nan
        summary[key] = {"mean": float(np.mean(values)), "std": std}
    return summary


def check_horizon(horizon: int) -> None:
    """Raise unless ``horizon`` is a positive whole number of bars."""
    if int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon must be a positive integer number of bars, got {horizon!r}")


def _kept_quantile_preds(quantile_preds: np.ndarray, keep: np.ndarray, quantiles: Sequence[float]) -> np.ndarray:
    quantile_preds = np.asarray(quantile_preds, dtype=np.float64)
    if quantile_preds.shape != (keep.size, len(quantiles)):
        raise ValueError(
            f"quantile_preds must have shape (n, {len(quantiles)}) = {(keep.size, len(quantiles))}, got {quantile_preds.shape}"
        )
    if not all(0 < q < 1 for q in quantiles):
        raise ValueError(f"quantiles must lie strictly inside (0, 1), got {list(quantiles)}")
    kept = quantile_preds[keep]
    if not np.isfinite(kept).all():
        raise ValueError("quantile_preds has NaN or infinite values at points that have a target")
    return kept
