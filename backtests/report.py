"""The backtest report folder: stats.json, equity.parquet, fills.csv, positions.csv, predictions.parquet, plots.

equity.parquet: one row per bar close (index ``close_time``, UTC), for the strategy and each
benchmark NAME (stats.json's strategy, then ``benchmarks``' keys):

- ``equity_NAME``: mark-to-market equity at the bar's close, quote currency
  (``backtests.stats.equity_curve``; a pooled run's is the one account's, ``account_equity``);
- ``return_NAME``: that bar's simple return, ``equity_t / equity_{t-1} - 1``, the first bar's
  against the equity before any fill (stats.json's ``equity_start``), so compounding the column
  gives ``total_return``;
- ``close_INSTRUMENT``: each traded instrument's close (an instrument without a bar at a close
  carries its last close, as the equity marks it).

stats.json's Sharpe, Sortino and maximum drawdown from it (``tests/backtests/test_equity_file.py``
checks this with empyrical): daily returns are the bar returns compounded per UTC day, a day
ending at midnight (``resample("1D", closed="right", label="right")``; a run whose first bar closes
exactly at midnight counts that bar in the day after it), annualized with 365 days
(``empyrical.sharpe_ratio(daily, annualization=365)``, likewise ``sortino_ratio``); the maximum
drawdown is over every bar, ``-empyrical.max_drawdown(bar returns)``.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pandas as pd
from nautilus_trader.model.data import BarType

from backtests.feed import BarFeed
from backtests.plots import plot_equity, plot_trades
from backtests.predictions_file import write_frames
from backtests.runner import BacktestSettings, StrategyRun, decision_settings
from backtests.stats import (
    equity_curve,
    fills_from_nautilus,
    opening_equity,
    performance_stats,
)
from models.artifact import load_artifact
from models.jsonio import replacing, write_json

EQUITY_FILE = "equity.parquet"
EQUITY_ROWS = 10_000  # equity.parquet's rows written at a time, a row group each (write_equity): a week of minutes


def training_overlap(model_path: Path, traded: pd.DatetimeIndex, bar_type: str | None = None) -> dict:
    """The model's training range (its artifact's data fingerprint of ``bar_type``'s instrument,
    None: its only one) beside the bar closes it traded, and whether the two overlap: results on
    bars a model was trained on are in-sample."""
    data = load_artifact(model_path).instrument(bar_type).data
    first, last = pd.Timestamp(data["first_bar_close"]), pd.Timestamp(data["last_bar_close"])
    return {
        "model": str(model_path),
        "trained": {"first_bar_close": first.isoformat(), "last_bar_close": last.isoformat()},
        "traded": {"first_bar_close": traded[0].isoformat(), "last_bar_close": traded[-1].isoformat()},
        "in_sample": bool(traded[0] <= last and traded[-1] >= first),
    }


def write_report(out: Path, bars: BarFeed, runs: dict[str, StrategyRun], settings: BacktestSettings,
                 training: list[dict] | None = None) -> dict:
    """Write the report of ``runs`` (the first is the strategy, the rest its benchmarks); return stats.

    ``training``: :func:`training_overlap` of each model that traded (a walk-forward's windows);
    by default, of ``settings.model_path`` over all the bars.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    close = bars.close()
    training = training if training is not None else [training_overlap(settings.model_path, close.index, settings.bar_type)]
    stats, curves, fills = {}, {}, {}
    for name, run in runs.items():
        fills[name] = fills_from_nautilus(run.fills)
        curves[name] = equity_curve(fills[name], close, settings.starting_balance)
        stats[name] = performance_stats(curves[name], fills[name], close, run.seconds)

    main, *benchmarks = runs
    report = {
        **stats[main],
        "benchmarks": {name: stats[name] for name in benchmarks},
        "in_sample": any(model["in_sample"] for model in training),
        "training": training,
        "settings": {
            "model": str(settings.model_path),
            "bar_type": settings.bar_type,
            "first_bar_close": close.index[0].isoformat(),
            "last_bar_close": close.index[-1].isoformat(),
            "starting_balance": settings.starting_balance,
            "strategy": settings.strategy,
            **decision_settings(settings),
        },
    }
    write_run_files(out, report, runs[main])
    starts = {name: opening_equity(curves[name], fills[name], close) for name in runs}
    write_equity(out, curves, starts, {str(BarType.from_str(settings.bar_type).instrument_id): close})
    plot_equity(curves, out / "equity.png", title=f"Equity: {main} and benchmarks, {settings.bar_type}")
    plot_trades(close, fills[main], out / "trades.png", title=f"{settings.bar_type}: {main} fills")
    return report


def write_run_files(out: Path, report: dict, run: StrategyRun) -> None:
    """stats.json, and the main strategy's fills.csv, positions.csv and predictions.parquet."""
    write_json(out / "stats.json", report)
    run.fills.to_csv(out / "fills.csv")
    run.positions.to_csv(out / "positions.csv")
    if run.predictions_file is not None:
        with replacing(out / "predictions.parquet") as staging:
            shutil.copyfile(run.predictions_file, staging)


def write_equity(out: Path, curves: dict[str, pd.Series], starts: dict[str, float], closes: dict[str, pd.Series]) -> None:
    """equity.parquet (the module docstring): each curve and its bar returns, ``starts`` the equity
    before any fill, and each instrument's close carried onto the curves' bar closes.

    Written ``EQUITY_ROWS`` rows at a time, a row group each, through a staging file: the frame of
    every column at once (about 160 bytes a bar for a backtest and its five benchmarks) was the
    largest thing the report's files made.
    """
    index = next(iter(curves.values())).index.rename("close_time")
    closes = {key: close.reindex(index).ffill().bfill() for key, close in closes.items()}

    def row_groups():
        for start in range(0, len(index), EQUITY_ROWS):
            rows = slice(start, start + EQUITY_ROWS)
            columns = {}
            for name, equity in curves.items():
                part = equity.iloc[rows]
                before = float(equity.iloc[start - 1]) if start else starts[name]
                columns[f"equity_{name}"] = part
                columns[f"return_{name}"] = part / part.shift(1, fill_value=before) - 1.0
            for key, close in closes.items():
                columns[f"close_{key}"] = close.iloc[rows]
            yield pd.DataFrame(columns, index=index[rows])

    with replacing(Path(out) / EQUITY_FILE) as staging:
        write_frames(staging, row_groups())


def stats_table(report: dict) -> str:
    """The key figures of the strategy and each benchmark, one row each."""
    keys = ["total_return", "sharpe", "max_drawdown", "trades", "win_rate", "fees", "exposure"]
    rows = {"lstm": report, **report["benchmarks"]}
    lines = ["| strategy | " + " | ".join(keys) + " |", "|" + "---|" * (len(keys) + 1)]
    for name, stats in rows.items():
        lines.append(f"| {name} | " + " | ".join(_cell(stats[key]) for key in keys) + " |")
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4g}" if isinstance(value, float) else str(value)
