"""A backtest's verdict in a few plain lines: what traded, what it earned, whether the forecasts were any good.

Read from a report folder (``backtests.report``, ``backtests.pooled``): ``stats.json`` for the
trades and returns of the strategy and each benchmark, and ``predictions.parquet`` (the
strategy's own forecasts, bar by bar, with each bar's close) to score the forecasts on the very
rows the backtest traded: the return forecast against the random walk (a zero forecast), the
volatility forecast against RiskMetrics EWMA, each with a Diebold–Mariano test
(:mod:`models.metrics`, :mod:`models.volatility`). It claims only what those numbers say: a
forecast "beats" its baseline only with a lower loss and p < 0.05.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from backtests.predictions_file import TimeOrder, bar_type_groups, file_frames, rows_of_bar_type, with_context
from models.artifact import load_artifact
from models.metrics import Comoments, LossDifferential, direction_counts, directional_from_counts, squared_error
from models.volatility import EWMAVolatility, bar_log_returns, log_realized_vol, qlike_loss

STRATEGY = "lstm"  # the report's main row (backtests.report.stats_table)
SIGNIFICANCE = 0.05
FORECAST_COLUMNS = ("close", "prediction", "volatility", "bar_type")  # what forecast_check reads of predictions.parquet


def forecast_check(predictions: Path | pd.DataFrame, horizon: int) -> dict:
    """Score ``predictions`` (a predictions.parquet, or its frame: columns ``close``, ``prediction``,
    optionally ``volatility`` and ``bar_type``; indexed by bar close time) against what followed each
    row within the same rows.

    Each instrument's rows, in time order (a ValueError if not), have their targets h rows ahead, so
    the last h rows of each have none and are left out; all instruments' scored rows are then pooled.
    The EWMA baseline starts from the mean squared return of the rows it filters, an advantage to the
    baseline that fades within about 100 bars (0.94^100 ≈ 0.2%). A file is read a row group at a
    time, twice, and the scores are kept as sums (models.metrics: Comoments, LossDifferential): held
    whole, its columns and the arrays scored took the verdict's peak up by 150 MB at 512,751 bars.
    """
    if isinstance(predictions, pd.DataFrame):
        def frames(columns):
            return [predictions[[c for c in columns if c in predictions]]]
        has_volatility, what = "volatility" in predictions, "the forecasts"
    else:
        def frames(columns):
            return file_frames(predictions, columns)
        has_volatility, what = "volatility" in pq.read_schema(predictions).names, str(predictions)
    returns, volatility = _ReturnScores(horizon), _VolatilityScores(horizon)
    for bar_type, mean_squared_return in _survey(frames(["close", "bar_type"]), TimeOrder(what)).items():
        own = (rows_of_bar_type(rows, bar_type) for rows in frames(FORECAST_COLUMNS))
        ewma = EWMAVolatility(horizon)
        variance = mean_squared_return  # the filter's start (EWMAVolatility.fit on these rows)
        for frame, new in with_context(own, before=1, after=horizon):
            close = frame["close"].to_numpy(np.float64)
            ahead = np.full(close.size, np.nan)
            ahead[:-horizon] = np.log(close[horizon:] / close[:-horizon])
            returns.add(ahead[new], frame["prediction"].to_numpy(np.float64)[new])
            if has_volatility:
                ewma_forecast, variance = ewma.predict_from(bar_log_returns(close)[new], variance)
                volatility.add(log_realized_vol(close, horizon)[new], np.log(frame["volatility"].to_numpy(np.float64)[new]),
                               ewma_forecast)
    check = {"horizon": horizon, "rows": returns.rows}
    if returns.rows < 2 * horizon:
        return check
    check["returns"] = returns.scores()
    if volatility.rows:
        check["volatility"] = volatility.scores()
    return check


def _survey(frames: Iterable[pd.DataFrame], order: TimeOrder) -> dict:
    """Each bar type (None: the rows name none) in order of its first row, and the mean squared bar
    return of its rows (EWMA's start, as EWMAVolatility.fit over them); ``order`` checks that each
    one's rows are in time order."""
    found = {}  # bar type: [Σr², returns, last close]
    for frame in frames:
        for bar_type, rows in bar_type_groups(frame):
            order.check(bar_type, rows.index)
            seen = found.setdefault(bar_type, [0.0, 0, np.nan])
            close = np.concatenate([[seen[2]], rows["close"].to_numpy(np.float64)])  # the close before: the seam's return
            squared = bar_log_returns(close)[1:] ** 2
            squared = squared[np.isfinite(squared)]
            seen[0] += float(squared.sum())
            seen[1] += squared.size
            seen[2] = close[-1]
    return {bar_type: total / count if count else np.nan for bar_type, (total, count, _) in found.items()}


class _ReturnScores:
    """models.metrics.forecast_metrics' scores that the verdict reports, kept as sums over chunks of rows."""

    def __init__(self, horizon: int) -> None:
        self.rows, self.squared_error, self.squared_outcome = 0, 0.0, 0.0
        self.directions = np.zeros(3, dtype=np.int64)
        self.moments = Comoments()
        self.differential = LossDifferential(horizon)  # squared error against the random walk's (zero)
        self.any_forecast = False

    def add(self, outcome: np.ndarray, forecast: np.ndarray) -> None:
        keep = np.isfinite(outcome) & np.isfinite(forecast)
        y, f = outcome[keep], forecast[keep]
        errors = squared_error(y, f)
        self.rows += y.size
        self.squared_error += float(errors.sum())
        self.squared_outcome += float((y * y).sum())
        self.directions += direction_counts(y, f)
        self.moments.add(f, y)
        self.differential.add(errors - squared_error(y, np.zeros_like(y)))
        self.any_forecast |= bool(np.any(f != 0))

    def scores(self) -> dict:
        directional = directional_from_counts(self.directions)
        return {
            "rmse_ratio_vs_zero": (math.sqrt(self.squared_error / self.squared_outcome) if self.squared_outcome > 0
                                   else math.nan),
            # The zero forecast against itself is no test (as forecast_metrics).
            "dm_pvalue_vs_zero": self.differential.test()[1] if self.any_forecast else math.nan,
            "directional_accuracy": directional["directional_accuracy"],
            "majority_rate": directional["majority_rate"],
            "ic": self.moments.pearson(),
        }


class _VolatilityScores:
    """QLIKE of the volatility forecast and of EWMA, and the Diebold–Mariano test of the two, kept as sums."""

    def __init__(self, horizon: int) -> None:
        self.rows, self.qlike, self.qlike_ewma = 0, 0.0, 0.0
        self.differential = LossDifferential(horizon)

    def add(self, target: np.ndarray, forecast: np.ndarray, ewma: np.ndarray) -> None:
        keep = np.isfinite(target) & np.isfinite(forecast) & np.isfinite(ewma)
        mine, theirs = qlike_loss(target[keep], forecast[keep]), qlike_loss(target[keep], ewma[keep])
        self.rows += mine.size
        self.qlike += float(mine.sum())
        self.qlike_ewma += float(theirs.sum())
        self.differential.add(mine - theirs)

    def scores(self) -> dict:
        return {"qlike": self.qlike / self.rows, "qlike_ewma": self.qlike_ewma / self.rows,
                "dm_pvalue_vs_ewma": self.differential.test()[1]}


def verdict(report_dir: Path, horizon: int | None = None) -> list[str]:
    """The verdict on the backtest in ``report_dir``: 3 to 5 lines.

    ``horizon``: the forecasts' horizon in bars; by default that of the model stats.json names."""
    report_dir = Path(report_dir)
    stats = json.loads((report_dir / "stats.json").read_text())
    rows = {STRATEGY: stats, **stats["benchmarks"]}
    settings = stats["settings"]
    seen = ("IN-SAMPLE: the model was trained on these bars" if stats["in_sample"] else "bars the model never saw")
    lines = [
        f"Backtest {_day(settings['first_bar_close'])} → {_day(settings['last_bar_close'])} ({seen}); completed round trips: "
        + ", ".join(f"{name} {row['trades']}" for name, row in rows.items()) + ".",
        _earnings(stats, settings["starting_balance"]),
    ]
    predictions = report_dir / "predictions.parquet"
    if predictions.is_file():
        horizon = horizon or load_artifact(Path(settings["model"])).config.training.horizon
        # Only what forecast_check reads: the reasons' words and the quantiles are most of the file.
        lines += _forecast_lines(forecast_check(predictions, horizon))
    html = report_dir / "report.html"
    lines.append(f"Report: {html} (stats.json, fills, forecasts and plots beside it)." if html.is_file()
                 else f"Report: {report_dir}/ (stats.json, fills, forecasts, plots).")
    return lines


def _earnings(stats: dict, balance: float) -> str:
    mine = stats["total_return"]
    others = ", ".join(f"{name} {_percent(row['total_return'])}" for name, row in stats["benchmarks"].items())
    return (f"Net of fees, {STRATEGY} returned {_percent(mine)} ({stats['fees']:,.0f} of fees on a {balance:,.0f} balance); "
            f"{others}: {_outcome(mine, stats['benchmarks'])}.")


def _outcome(mine: float, benchmarks: dict) -> str:
    """Which benchmarks the strategy's return beat, matched (the same return: e.g. none of them traded) and trailed."""
    groups = {"beat": [], "matched": [], "trailed": []}
    for name, row in benchmarks.items():
        theirs = row["total_return"]
        groups["beat" if mine > theirs else "matched" if mine == theirs else "trailed"].append(name)
    if not groups["matched"] and not groups["trailed"]:
        return "it beat all of them"
    if not groups["matched"] and not groups["beat"]:
        return "it beat none of them"
    return "it " + "; ".join(f"{verb} {', '.join(names)}" for verb, names in groups.items() if names)


def _forecast_lines(check: dict) -> list[str]:
    horizon = check["horizon"]
    if "returns" not in check:
        return [f"Too few rows ({check['rows']}) with a known {horizon}-bar outcome to score the forecasts."]
    r = check["returns"]
    returns_line = (
        f"Return forecast ({horizon} bars ahead, {check['rows']:,} rows of this backtest): RMSE {r['rmse_ratio_vs_zero']:.3f}× "
        f"the random walk's (Diebold–Mariano p = {_p(r['dm_pvalue_vs_zero'])}), sign right {_percent(r['directional_accuracy'], signed=False)} "
        f"where the majority sign scores {_percent(r['majority_rate'], signed=False)}, IC {r['ic']:+.3f}: "
        f"{_judged(r['rmse_ratio_vs_zero'], r['dm_pvalue_vs_zero'], 'the random walk')}."
    )
    lines = [returns_line]
    if "volatility" in check:
        v = check["volatility"]
        lines.append(f"Volatility forecast: QLIKE {v['qlike']:.3f} against EWMA's {v['qlike_ewma']:.3f} (p = "
                     f"{_p(v['dm_pvalue_vs_ewma'])}): {_judged(v['qlike'] / v['qlike_ewma'], v['dm_pvalue_vs_ewma'], 'EWMA')}.")
    return lines


def _judged(loss_ratio: float, pvalue: float, baseline: str) -> str:
    """What a loss ratio (forecast over baseline) and its Diebold–Mariano p-value allow one to say."""
    if math.isnan(pvalue) or pvalue >= SIGNIFICANCE:
        return f"not significantly different from {baseline}"
    return f"beats {baseline}" if loss_ratio < 1 else f"significantly WORSE than {baseline}"


def _percent(value: float | None, signed: bool = True) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:+.2%}" if signed else f"{value:.1%}"


def _p(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2g}"


def _day(iso: str) -> str:
    return pd.Timestamp(iso).strftime("%Y-%m-%d")
