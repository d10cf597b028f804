"""The backtest report folder: stats.json, fills.csv, positions.csv, predictions.parquet, plots."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from backtests.feed import BarFeed
from backtests.plots import plot_equity, plot_trades
from backtests.runner import BacktestSettings, StrategyRun
from backtests.stats import equity_curve, fills_from_nautilus, performance_stats
from models.artifact import load_artifact
from models.jsonio import write_json


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
        },
    }
    write_run_files(out, report, runs[main])
    plot_equity(curves, out / "equity.png", title=f"Equity: {main} and benchmarks, {settings.bar_type}")
    plot_trades(close, fills[main], out / "trades.png", title=f"{settings.bar_type}: {main} fills")
    return report


def write_run_files(out: Path, report: dict, run: StrategyRun) -> None:
    """stats.json, and the main strategy's fills.csv, positions.csv and predictions.parquet."""
    write_json(out / "stats.json", report)
    run.fills.to_csv(out / "fills.csv")
    run.positions.to_csv(out / "positions.csv")
    if run.predictions is not None:
        run.predictions.to_parquet(out / "predictions.parquet")


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
