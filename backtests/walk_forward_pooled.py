"""Walk-forward backtests of several instruments in one account: backtests.walk_forward's windows,
money and report rules, with a pooled model (models.pooling) per window and every instrument
traded together as in backtests.pooled.

Windows are planned over the union of the instruments' bar closes. Window k's model is the base
config retrained on every instrument's bars closing in its training range (each instrument must
have bars there: a window before one's history starts is an error, naming it); its test window trades
each instrument that has bars in it, all in one engine and account per strategy (an instrument
without bars there sits the window out). The account's equity carries from window to window; a
position still open after a window's last bar is closed there per instrument by a synthetic taker
fill (``WINDOW_END``), as in the one-instrument walk-forward. windows.json lists each window's
train and test ranges, model, account statistics and in-sample flag.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import pandas as pd
from nautilus_trader.model.data import BarType

from backtests.feed import BarFeed, joined
from backtests.parallel import ONE_BY_ONE, Workers
from backtests.pooled import (
    instrument_fills,
    load_all_inputs,
    pooled_strategies,
    write_pooled_report,
)
from backtests.report import training_overlap
from backtests.runner import BacktestSettings, StrategyRun, run_strategies
from backtests.stats import account_equity, account_stats
from backtests.walk_forward import (
    close_at_window_end,
    plan_windows,
    stitch,
    train_windows,
    window_dir,
    windows_with_bars,
)
from marketdata.progress import progress
from models.artifact import load_artifact
from models.jsonio import write_json


def run_pooled_walk_forward(settings: BacktestSettings, train_days: float, test_days: float, out: Path,
                            workers: Workers = ONE_BY_ONE) -> dict:
    """Retrain a pooled model, trade every instrument in one account, per window; stitch and report.

    ``workers``: where the windows' models train, as in backtests.walk_forward.train_windows.
    """
    if train_days <= 0 or test_days <= 0:
        raise ValueError(f"--train-days and --test-days must be positive, not {train_days} and {test_days}")
    out = Path(out)
    instruments, bars = load_all_inputs(settings)
    base = load_artifact(settings.model_path).config
    interval = BarType.from_str(settings.bar_type).spec.timedelta
    closes = {b: bars.close(b).index for b in settings.bar_types}
    first, last = min(c[0] for c in closes.values()), max(c[-1] for c in closes.values())
    windows = plan_windows(settings.start if settings.start is not None else first, last + interval,
                           pd.Timedelta(days=train_days), pd.Timedelta(days=test_days), purge=base.training.horizon * interval)
    if not windows:
        raise ValueError(f"{first} to {last} leaves nothing to test after {train_days} days of training")

    balances = defaultdict(lambda: settings.starting_balance)
    parts, traded, summary, training = defaultdict(list), [], [], []
    tested = windows_with_bars(windows, bars)
    models = train_windows(base, settings, [window for window, _ in tested], out, workers)
    for (window, window_bars), _ in progress(zip(tested, models), total=len(tested), desc="walk-forward", unit="window"):
        model_dir = window_dir(out, window)
        here, trading = window_instruments(replace(settings, model_path=model_dir), instruments, window_bars)
        runs, stats, _ = trade_pooled_window(here, trading, window_bars, balances, window.number)
        for name, run in runs.items():
            parts[name].append((window.number, run))
            balances[name] = stats[name]["ending_equity"]
        overlaps = []
        traded.append(window_bars)
        for b, each in window_bars.closes.items():
            overlaps.append({"window": window.number, **training_overlap(model_dir, each.index, b)})
        training += overlaps
        summary.append({
            "window": window.number,
            "train": {"start": window.train_start.isoformat(), "end": window.train_end.isoformat()},
            "test": {"start": window.test_start.isoformat(), "end": window.test_end.isoformat(),
                     "bars": {b: len(each) for b, each in window_bars.closes.items()}},
            "model": str(model_dir),
            "in_sample": any(o["in_sample"] for o in overlaps),
            "strategies": stats,
        })

    stitched = {name: stitch(name, runs) for name, runs in parts.items()}
    report = write_pooled_report(out, joined(traded), stitched, settings, training)
    write_json(out / "windows.json", summary)
    return report


def window_instruments(settings: BacktestSettings, instruments: list, bars: BarFeed) -> tuple[BacktestSettings, list]:
    """The settings and instruments of a window's trading: those with bars in it (an instrument without
    bars there sits the window out)."""
    here = replace(settings, bar_types=bars.bar_types, bar_type="")
    return here, [i for i, b in zip(instruments, settings.bar_types) if b in bars.closes]


def trade_pooled_window(settings: BacktestSettings, instruments: list, bars: BarFeed, balances: dict[str, float],
                        number: int, names: tuple[str, ...] | None = None,
                        ) -> tuple[dict[str, StrategyRun], dict[str, dict], dict[str, pd.Series]]:
    """Every strategy (or those ``names``: a sweep's trial trades the LSTM alone) over the window in one
    account from its carried balance; open positions closed at the end. Returns each one's run, its
    account statistics and its account equity at every bar close."""
    closes = {str(i.id): bars.close(b) for i, b in zip(instruments, settings.bar_types)}
    runs, stats, equities = {}, {}, {}
    groups = pooled_strategies(settings, instruments, bars)
    main = next(iter(groups))  # the report's forecasts are its alone
    for name, group in groups.items():
        if names is not None and name not in names:
            continue
        balance = balances[name]
        run = run_strategies(name, group, replace(settings, starting_balance=balance), instruments, bars,
                             main=name == main)
        closed = [close_at_window_end(run.fills[run.fills["instrument_id"] == str(i.id)], closes[str(i.id)], i, number)
                  for i in instruments if not run.fills.empty and (run.fills["instrument_id"] == str(i.id)).any()]
        run.fills = pd.concat(closed) if closed else run.fills
        fills = {key: instrument_fills(run.fills, key) for key in closes}
        equity = account_equity(fills, closes, balance)
        aligned = {key: close.reindex(equity.index).ffill().bfill() for key, close in closes.items()}
        runs[name], equities[name] = run, equity
        stats[name] = {"starting_balance": balance, "ending_equity": float(equity.iloc[-1]),
                       **account_stats(equity, fills, aligned, balance, run.seconds)}
    return runs, stats, equities
