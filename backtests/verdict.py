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
from pathlib import Path

import numpy as np
import pandas as pd

from models.artifact import load_artifact
from models.metrics import forecast_metrics
from models.volatility import (
    EWMAVolatility,
    bar_log_returns,
    dm_pvalue,
    log_realized_vol,
    volatility_metrics,
)
from strategies.decision_log import read_predictions_parquet

STRATEGY = "lstm"  # the report's main row (backtests.report.stats_table)
SIGNIFICANCE = 0.05
FORECAST_COLUMNS = ("close", "prediction", "volatility", "bar_type")  # what forecast_check reads of predictions.parquet


def forecast_check(predictions: pd.DataFrame, horizon: int) -> dict:
    """Score ``predictions`` (columns ``close``, ``prediction``, optionally ``volatility`` and
    ``bar_type``; indexed by bar close time) against what followed each row within the same rows.

    Each instrument's rows are taken in time order and its targets are h rows ahead, so the last h
    rows of each have none and are left out; all instruments' scored rows are then pooled. The
    EWMA baseline starts from the mean squared return of the rows it filters, an advantage to the
    baseline that fades within about 100 bars (0.94^100 ≈ 0.2%).
    """
    returns, volatility = {"y": [], "forecast": []}, {"y": [], "forecast": [], "ewma": []}
    groups = predictions.groupby("bar_type", sort=False) if "bar_type" in predictions else [(None, predictions)]
    for _, rows in groups:
        rows = rows.sort_index()
        close = rows["close"].to_numpy(np.float64)
        ahead = np.full(close.size, np.nan)
        ahead[:-horizon] = np.log(close[horizon:] / close[:-horizon])
        keep = np.isfinite(ahead) & np.isfinite(rows["prediction"].to_numpy(np.float64))
        returns["y"].append(ahead[keep])
        returns["forecast"].append(rows["prediction"].to_numpy(np.float64)[keep])
        if "volatility" in rows:
            bar_returns = bar_log_returns(close)
            ewma = EWMAVolatility(horizon).fit(bar_returns, None).predict(bar_returns)
            target, forecast = log_realized_vol(close, horizon), np.log(rows["volatility"].to_numpy(np.float64))
            keep = np.isfinite(target) & np.isfinite(forecast) & np.isfinite(ewma)
            for name, values in (("y", target), ("forecast", forecast), ("ewma", ewma)):
                volatility[name].append(values[keep])
    y, forecast = np.concatenate(returns["y"]), np.concatenate(returns["forecast"])
    if y.size < 2 * horizon:
        return {"horizon": horizon, "rows": int(y.size)}
    scores = forecast_metrics(y, forecast, horizon=horizon)
    check = {
        "horizon": horizon,
        "rows": int(y.size),
        "returns": {key: scores[key] for key in
                    ("rmse_ratio_vs_zero", "dm_pvalue_vs_zero", "directional_accuracy", "majority_rate", "ic")},
    }
    if volatility["y"]:
        target, forecast, ewma = (np.concatenate(volatility[name]) for name in ("y", "forecast", "ewma"))
        check["volatility"] = {
            "qlike": volatility_metrics(target, forecast)["qlike"],
            "qlike_ewma": volatility_metrics(target, ewma)["qlike"],
            "dm_pvalue_vs_ewma": dm_pvalue(target, forecast, ewma, horizon),
        }
    return check


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
        lines += _forecast_lines(forecast_check(read_predictions_parquet(predictions, FORECAST_COLUMNS), horizon))
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
