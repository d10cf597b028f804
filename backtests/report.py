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
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd
from nautilus_trader.model.data import BarType

from backtests.feed import BarFeed
from backtests.plots import EquityLines, plot_equity_lines, plot_trades
from backtests.predictions_file import write_frames
from backtests.runner import BacktestSettings, StrategyRun, decision_settings
from backtests.stats import (
    CurveSummary,
    curve_stats,
    equity_chunks,
    fills_from_nautilus,
    opening_equity,
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
    fills = {name: fills_from_nautilus(run.fills) for name, run in runs.items()}
    # Each equity curve is made EQUITY_ROWS bars at a time, as equity.parquet is written, and summed up for the
    # statistics and the plot as it goes: the curves of the whole range were the report's largest allocation.
    starts = {name: opening_equity(next(equity_chunks(fills[name], close, settings.starting_balance, 1))[0], fills[name], close)
              for name in runs}
    summaries = {name: CurveSummary(starts[name]) for name in runs}
    lines = EquityLines(list(runs), len(close))

    def row_groups():
        chunks = [equity_chunks(fills[name], close, settings.starting_balance, EQUITY_ROWS) for name in runs]
        for parts in zip(*chunks):
            for name, (equity, position) in zip(runs, parts):
                summaries[name].add(equity, position != 0.0)
                lines.add(name, equity)
            yield {name: equity for name, (equity, _) in zip(runs, parts)}

    write_equity(out, row_groups(), starts, {str(BarType.from_str(settings.bar_type).instrument_id): close})
    stats = {name: curve_stats(summaries[name], [fills[name]], run.seconds, None) for name, run in runs.items()}

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
    plot_equity_lines(lines, out / "equity.png", title=f"Equity: {main} and benchmarks, {settings.bar_type}")
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


def write_equity(out: Path, row_groups: Iterable[dict[str, pd.Series]], starts: dict[str, float],
                 closes: dict[str, pd.Series]) -> None:
    """equity.parquet (the module docstring), a row group at a time: ``row_groups`` gives each
    curve's equity over the next rows (one dict per row group, in order; :func:`row_groups_of`
    cuts whole curves), ``starts`` the equity before any fill; each instrument's close is carried
    onto the curves' bar closes. Written through a staging file: the frame of every column at once
    (about 160 bytes a bar for a backtest and its five benchmarks) was the largest thing the
    report's files made.
    """
    before = dict(starts)  # each curve's equity before the row group's first row
    # Each instrument's close before the row group: before its first bar, its first close.
    carried = {key: float(close.iloc[0]) for key, close in closes.items()}

    def frames():
        for curves in row_groups:
            index = next(iter(curves.values())).index.rename("close_time")
            columns = {}
            for name, part in curves.items():
                columns[f"equity_{name}"] = part
                columns[f"return_{name}"] = part / part.shift(1, fill_value=before[name]) - 1.0
                before[name] = float(part.iloc[-1]) if len(part) else before[name]
            for key, close in closes.items():
                here = close.reindex(index).ffill().fillna(carried[key])  # the last close at or before each bar
                carried[key] = float(here.iloc[-1]) if len(here) else carried[key]
                columns[f"close_{key}"] = here
            yield pd.DataFrame(columns, index=index)

    with replacing(Path(out) / EQUITY_FILE) as staging:
        write_frames(staging, frames())


def row_groups_of(curves: dict[str, pd.Series]) -> Iterator[dict[str, pd.Series]]:
    """Whole curves (on one index) cut into :func:`write_equity`'s row groups of ``EQUITY_ROWS`` rows."""
    index = next(iter(curves.values())).index
    for start in range(0, max(len(index), 1), EQUITY_ROWS):
        yield {name: equity.iloc[start : start + EQUITY_ROWS] for name, equity in curves.items()}


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
