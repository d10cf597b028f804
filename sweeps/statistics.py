"""Is the best of N trials better than luck? The deflated Sharpe ratio and the probability of
backtest overfitting, both from their papers' formulas.

Deflated Sharpe ratio (DSR): Bailey & López de Prado (2014), "The Deflated Sharpe Ratio:
Correcting for Selection Bias, Backtest Overfitting and Non-Normality", Journal of Portfolio
Management 40(5). Every Sharpe ratio here is per period (mean / standard deviation of one period's
returns, never annualized), and ``kurtosis`` is the plain (non-excess) kurtosis, 3 for a normal.

- :func:`expected_max_sharpe`: the expected largest Sharpe of ``N`` trials whose true Sharpe is zero
  and whose estimated Sharpe ratios have variance ``V``:
  ``sqrt(V) * ((1 - g) * Z^-1(1 - 1/N) + g * Z^-1(1 - 1/(N e)))``, ``g`` the Euler–Mascheroni constant.
- :func:`probabilistic_sharpe_ratio` (PSR): the probability that the true Sharpe exceeds a benchmark
  ``SR*`` given the estimate ``SR`` from ``T`` returns of skewness ``g3`` and kurtosis ``g4``:
  ``Z((SR - SR*) sqrt(T - 1) / sqrt(1 - g3 SR + (g4 - 1) / 4 SR^2))``.
- :func:`deflated_sharpe_ratio`: the PSR of the winner against the expected maximum of the trials.
  It survives deflation when that probability is at least :data:`SURVIVAL_PROBABILITY`.

Probability of backtest overfitting (PBO): Bailey, Borwein, López de Prado & Zhu (2017), "The
Probability of Backtest Overfitting", Journal of Computational Finance 20(4), by combinatorially
symmetric cross-validation (CSCV), :func:`probability_of_backtest_overfitting`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
from scipy import stats

SURVIVAL_PROBABILITY = 0.95  # the DSR a winner needs to be called better than luck (the paper's 95 %)


def sharpe_ratios(returns: np.ndarray) -> np.ndarray:
    """Per-period Sharpe ratio of each column: mean / standard deviation (n - 1), as in
    ``backtests.stats``; a float for a 1-D series."""
    returns = np.asarray(returns, dtype=float)
    # std of identical values can round to 1e-18 rather than 0: ptp says exactly whether a column varies
    std = np.where(np.ptp(returns, axis=0) > 0, returns.std(axis=0, ddof=1), 0.0)
    sharpe = _ratio(np.atleast_1d(returns.mean(axis=0)), np.atleast_1d(std))
    return sharpe if returns.ndim > 1 else float(sharpe[0])


def _ratio(mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """mean / std; where nothing varies, 0 for a zero mean, else +-inf (a gain or loss without
    risk), so a ranking of trials stays defined."""
    sharpe = np.where(mean == 0, 0.0, np.copysign(np.inf, mean))
    varies = std > 0
    sharpe[varies] = mean[varies] / std[varies]
    return sharpe


def expected_max_sharpe(trials: int, sharpe_variance: float) -> float:
    """The expected maximum per-period Sharpe of ``trials`` independent trials whose true Sharpe is
    zero and whose estimates have variance ``sharpe_variance`` (the DSR paper's equation for
    ``E[max SR_n]``). One trial selects nothing: its expected maximum is the null's 0."""
    if trials < 1:
        raise ValueError(f"trials must be at least 1, got {trials}")
    if not sharpe_variance >= 0:
        raise ValueError(f"sharpe_variance must be a non-negative number, got {sharpe_variance}")
    if trials == 1:
        return 0.0
    gamma = np.euler_gamma
    return float(math.sqrt(sharpe_variance) * (
        (1 - gamma) * stats.norm.ppf(1 - 1 / trials) + gamma * stats.norm.ppf(1 - 1 / (trials * math.e))))


def probabilistic_sharpe_ratio(sharpe: float, benchmark: float, observations: int, skewness: float,
                               kurtosis: float) -> float:
    """The probability that the true per-period Sharpe exceeds ``benchmark``, given the estimate
    ``sharpe`` from ``observations`` returns with this skewness and (non-excess) kurtosis."""
    if observations < 2:
        raise ValueError(f"the PSR needs at least 2 observations, got {observations}")
    variance_term = 1 - skewness * sharpe + (kurtosis - 1) / 4 * sharpe ** 2
    if not variance_term > 0:
        raise ValueError(f"skewness {skewness} and kurtosis {kurtosis} at Sharpe {sharpe} give a non-positive "
                         f"variance of the Sharpe estimate ({variance_term}); real returns have kurtosis >= skewness^2 + 1")
    return float(stats.norm.cdf((sharpe - benchmark) * math.sqrt(observations - 1) / math.sqrt(variance_term)))


def deflated_sharpe_ratio(returns: np.ndarray, trial_sharpes: np.ndarray) -> dict:
    """The deflated Sharpe ratio of the selected trial.

    ``returns``: the winner's per-period returns; ``trial_sharpes``: the per-period Sharpe of every
    trial, the winner included (their number and variance set the expected maximum under the null).
    Skewness and kurtosis are the sample moments of ``returns`` (population, non-excess kurtosis).
    """
    returns = _finite_vector(returns, "returns")
    trial_sharpes = _finite_vector(trial_sharpes, "trial_sharpes")
    if returns.size < 2 or np.ptp(returns) == 0:
        raise ValueError(f"the winner's returns need at least 2 values that vary, got {returns.size} value(s) "
                         f"from {returns.min()} to {returns.max()}")
    trials = int(trial_sharpes.size)
    sharpe_variance = float(trial_sharpes.var(ddof=1)) if trials > 1 else 0.0
    benchmark = expected_max_sharpe(trials, sharpe_variance)
    sharpe = float(sharpe_ratios(returns))
    skewness, kurtosis = float(stats.skew(returns)), float(stats.kurtosis(returns, fisher=False))
    deflated = probabilistic_sharpe_ratio(sharpe, benchmark, returns.size, skewness, kurtosis)
    return {"sharpe": sharpe, "trials": trials, "sharpe_variance": sharpe_variance, "expected_max_sharpe": benchmark,
            "observations": int(returns.size), "skewness": skewness, "kurtosis": kurtosis,
            "deflated_sharpe": deflated, "survives": bool(deflated >= SURVIVAL_PROBABILITY)}


def probability_of_backtest_overfitting(returns: np.ndarray, splits: int = 16,
                                        metric: Callable[[np.ndarray], np.ndarray] = sharpe_ratios) -> dict:
    """The probability of backtest overfitting by CSCV.

    ``returns``: a periods x trials matrix (T x N). Its rows are cut, in time order, into ``splits``
    (S, even) groups of as equal size as T allows. For each of the C(S, S/2) ways to pick half the
    groups as in-sample (IS; the other half, out-of-sample, OOS), ``metric`` (column -> figure,
    larger is better; per-period Sharpe by default) ranks the trials on both halves. The trial best
    IS (the first on a tie) gets its OOS relative rank ``w = rank / (N + 1)`` (ties averaged) and
    the logit ``l = ln(w / (1 - w))``. PBO is the share of combinations with ``l <= 0``: the IS
    winner is at or below the OOS median.

    Also returned, for the paper's performance degradation: the IS winner's IS and OOS figures per
    combination, the least-squares slope and intercept of OOS on IS, and the probability of loss
    (share of combinations whose IS winner has an OOS figure below 0).

    Cost: C(S, S/2) rankings (12,870 at S = 16); about 3.5 s for 1,000 x 100 at S = 16 on this
    2-core machine with the default metric, about 12 s with a custom one (it copies the rows).
    """
    matrix = np.asarray(returns, dtype=float)
    if matrix.ndim != 2:
        raise ValueError(f"returns must be a periods x trials matrix, got {matrix.ndim} dimension(s)")
    periods, trials = matrix.shape
    if splits < 2 or splits % 2:
        raise ValueError(f"splits must be an even number >= 2, got {splits}")
    if periods < splits:
        raise ValueError(f"returns has {periods} rows (periods), fewer than the {splits} splits")
    if trials < 2:
        raise ValueError(f"returns has {trials} column(s) (trials); PBO needs at least 2")
    if not np.isfinite(matrix).all():
        row, column = np.argwhere(~np.isfinite(matrix))[0]
        raise ValueError(f"returns has a non-finite value (NaN or inf) at row {row}, column {column}")
    sizes = np.array([len(group) for group in np.array_split(np.arange(periods), splits)])
    if np.sort(sizes)[:splits // 2].sum() < 2:
        raise ValueError(f"returns has {periods} rows: too few for halves of at least 2 rows in {splits} splits")
    half_metric = _sharpe_of_halves(matrix, sizes) if metric is sharpe_ratios else (
        lambda in_half: np.asarray(metric(matrix[np.repeat(in_half, sizes)])))
    logits, in_sample, out_of_sample = [], [], []
    for chosen in itertools.combinations(range(splits), splits // 2):
        in_half = np.zeros(splits, dtype=bool)
        in_half[list(chosen)] = True
        is_figures, oos_figures = half_metric(in_half), half_metric(~in_half)
        best = int(np.argmax(is_figures))
        relative_rank = stats.rankdata(oos_figures)[best] / (trials + 1)
        logits.append(float(np.log(relative_rank / (1 - relative_rank))))
        in_sample.append(float(is_figures[best]))
        out_of_sample.append(float(oos_figures[best]))
    oos = np.array(out_of_sample)
    slope, intercept = _degradation_fit(np.array(in_sample), oos)
    return {"pbo": float(np.mean(np.array(logits) <= 0)), "logits": logits, "splits": splits,
            "combinations": len(logits), "in_sample_best": in_sample, "out_of_sample_of_best": out_of_sample,
            "degradation_slope": slope, "degradation_intercept": intercept,
            "probability_of_loss": float(np.mean(oos < 0))}


def _sharpe_of_halves(matrix: np.ndarray, sizes: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """The default metric of a half without copying its rows: per-period Sharpe from each group's
    count, sum and sum of squares (C(16, 8) = 12,870 halves would otherwise copy the matrix each).
    Moments are taken about each trial's first return, so a constant trial has variance exactly 0."""
    shifted = matrix - matrix[0]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    sums, squares = np.add.reduceat(shifted, starts, axis=0), np.add.reduceat(shifted ** 2, starts, axis=0)

    def sharpe(in_half: np.ndarray) -> np.ndarray:
        count = sizes[in_half].sum()
        shifted_mean = sums[in_half].sum(axis=0) / count
        variance = np.maximum(squares[in_half].sum(axis=0) - count * shifted_mean ** 2, 0.0) / (count - 1)
        return _ratio(shifted_mean + matrix[0], np.sqrt(variance))
    return sharpe


def _degradation_fit(in_sample: np.ndarray, out_of_sample: np.ndarray) -> tuple[float, float]:
    """Least-squares line OOS = slope x IS + intercept; NaN where IS does not vary or is infinite."""
    if not (np.isfinite(in_sample).all() and np.isfinite(out_of_sample).all()) or np.ptp(in_sample) == 0:
        return math.nan, math.nan
    slope, intercept = np.polyfit(in_sample, out_of_sample, 1)
    return float(slope), float(intercept)


def _finite_vector(values: np.ndarray, name: str) -> np.ndarray:
    vector = np.asarray(values, dtype=float)
    if vector.ndim != 1 or vector.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {vector.shape}")
    if not np.isfinite(vector).all():
        raise ValueError(f"{name} has a non-finite value (NaN or inf) at index {int(np.argmax(~np.isfinite(vector)))}")
    return vector
