"""Walk-forward backtests: retrain on a trailing window, trade the next one out of sample, stitch.

Windows. Test windows of ``test_days`` follow one another from ``start + train_days`` (start: the
settings' start, else the first bar) to the last bar; the last one may be shorter. A bar belongs
to the window its close time falls in, ``[test_start, test_end)``. Window k's model is the base
artifact's config retrained (same features, network, epochs and seed) on the bars closing in
``[test_start - purge - train_days, test_start - purge)``, where ``purge`` is ``horizon`` bars:
the target of the last training bar ends on the bar before the test window at the latest, so no
training target sees a test bar. Artifacts go to ``OUT/windows/NN/model``; a re-run reuses a
finished one trained on the same config and resumes an unfinished one from its checkpoint.

Context. Each window runs like a plain backtest (backtests.runner), one fresh engine per strategy.
The strategy's warm-up request is served from the catalog, so the window's new model is warmed on
the bars just before the window (the previous test window's) and forecasts the window's first
bar from a warm state: no zero padding and no lost bars.

Money. Each strategy starts window k+1 with its equity at the end of window k, so the stitched
equity curve is continuous. A position still open after a window's last bar is closed at that
bar's close by a synthetic taker fill charged the venue's taker fee; it appears in fills.csv as
order type ``WINDOW_END`` (client order id ``WINDOW-END-NN``), while positions.csv, Nautilus's own
report, still lists that position as open. The next window starts flat. An order decided on a
window's last bar would fill on the next window's first bar, in another engine, so it never fills;
the next window decides afresh. The benchmarks restart per window too: buy-and-hold buys again
(paying the fee again) and the EMA cross rebuilds its averages. The strategy's drawdown kill
switch measures from each window's start.

Parallel. The windows' models can train at once, as Ray tasks (``workers``, backtests.parallel:
a local Ray, or a cluster by address); trading stays in this process, window after window as each
model arrives, because money carries over: window k+1 starts from window k's ending equity, and
the strategy's drawdown stop and the buy-and-hold's size depend on that equity, so a window
traded from a fixed equity and rescaled afterwards would not be the same run. A worker trains
on one torch thread, with the same config and seed, so the report is identical to a one-by-one
run on one thread (``OMP_NUM_THREADS=1``); one-by-one on more threads, torch sums in another
order and forecasts differ in the last digits (up to 6e-10 in the README's runs). Workers read
the catalog and write the models under ``OUT/windows`` by path: on a cluster both must be on a
filesystem every node sees, or the catalog in object storage (an ``s3://`` URL).

Report. The same folder as a plain backtest (backtests.report.write_report), its statistics
computed over the stitched equity, fills, positions and predictions (each with a ``window``
column), plus ``windows.json``: each window's train and test ranges, model, statistics and
whether its test bars overlap its model's training data (``in_sample``; stats.json's ``training``
lists the same per window).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
from nautilus_trader.model.data import BarType
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import Money

from backtests.feed import BarFeed, joined
from backtests.parallel import ONE_BY_ONE, Workers, map_ordered, require_shared_path
from backtests.predictions_file import file_frames, write_frames
from backtests.report import training_overlap, write_report
from backtests.runner import (
    BacktestSettings,
    StrategyRun,
    all_strategies,
    load_inputs,
    run_strategy,
)
from backtests.stats import (
    equity_curve,
    fills_from_nautilus,
    performance_stats,
    position_series,
)
from marketdata.catalog import absolute_location
from marketdata.progress import progress
from models.artifact import Artifact, ArtifactError, load_artifact
from models.config import TrainConfig
from models.jsonio import scratch_file, write_json
from models.train import train_model

log = logging.getLogger(__name__)

_NS = pd.Timedelta(1, unit="ns")  # the config's end is inclusive: one tick before the range's end


@dataclass(frozen=True)
class Window:
    """One retrain-and-trade step; ranges are of bar close times, start included, end excluded."""

    number: int
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp


def plan_windows(
    start: pd.Timestamp, end: pd.Timestamp, train: pd.Timedelta, test: pd.Timedelta, purge: pd.Timedelta
) -> list[Window]:
    """Test windows of ``test`` from ``start + train`` until ``end`` (excluded), each with its training range."""
    windows, test_start = [], start + train
    while test_start < end:
        test_end = min(test_start + test, end)
        windows.append(Window(len(windows) + 1, test_start - purge - train, test_start - purge, test_start, test_end))
        test_start = test_end
    return windows


def run_walk_forward(settings: BacktestSettings, train_days: float, test_days: float, out: Path,
                     workers: Workers = ONE_BY_ONE) -> dict:
    """Retrain, trade and stitch every window; write the report folder and windows.json; return the stats.

    ``workers``: where the windows' models train (backtests.parallel); by default one by one, here.
    """
    if train_days <= 0 or test_days <= 0:
        raise ValueError(f"--train-days and --test-days must be positive, not {train_days} and {test_days}")
    if len(settings.bar_types) > 1:
        raise ValueError(f"this walk-forward trades one instrument, not {list(settings.bar_types)}: see backtests.walk_forward_pooled")
    out = Path(out)
    instrument, bars = load_inputs(settings)
    base = load_artifact(settings.model_path).config
    interval = BarType.from_str(settings.bar_type).spec.timedelta
    closes = bars.close().index
    windows = plan_windows(
        settings.start if settings.start is not None else closes[0],
        closes[-1] + interval,  # where the bar after the last would close
        pd.Timedelta(days=train_days),
        pd.Timedelta(days=test_days),
        purge=base.training.horizon * interval,
    )
    if not windows:
        raise ValueError(f"{closes[0]} to {closes[-1]} leaves nothing to test after {train_days} days of training")

    balances = defaultdict(lambda: settings.starting_balance)
    parts, traded, summary, training = defaultdict(list), [], [], []
    tested = windows_with_bars(windows, bars)
    models = train_windows(base, settings, [window for window, _ in tested], out, workers)
    for (window, window_bars), artifact in progress(zip(tested, models), total=len(tested), desc="walk-forward", unit="window"):
        log.info(
            "window %d/%d: train on %s to %s, test on %s to %s",
            window.number, len(windows), window.train_start, window.train_end, window.test_start, window.test_end,
        )
        model_dir = window_dir(out, window)
        runs, stats = trade_window(replace(settings, model_path=model_dir), instrument, window_bars, balances, window.number)
        for name, run in runs.items():
            parts[name].append((window.number, run))
            balances[name] = stats[name]["ending_equity"]
        traded.append(window_bars)
        # Each window's own model, trained on its own past: in-sample only if that went wrong.
        training.append({"window": window.number, **training_overlap(model_dir, window_bars.close().index)})
        summary.append(window_summary(window, artifact, model_dir, window_bars, stats, training[-1]["in_sample"]))

    stitched = {name: stitch(name, runs) for name, runs in parts.items()}
    report = write_report(out, joined(traded), stitched, settings, training)
    write_json(out / "windows.json", summary)
    return report


def windows_with_bars(windows: list[Window], bars: BarFeed) -> list[tuple[Window, BarFeed]]:
    """Each window with its test bars; a window that holds none is logged and left out."""
    tested = []
    for window in windows:
        window_bars = bars.window(window.test_start, window.test_end)
        if window_bars is not None:
            tested.append((window, window_bars))
        else:
            log.warning("window %d (%s to %s) holds no bars: skipped", window.number, window.test_start, window.test_end)
    return tested


def window_dir(out: Path, window: Window) -> Path:
    return out / "windows" / f"{window.number:02d}" / "model"


def train_windows(base: TrainConfig, settings: BacktestSettings, windows: list[Window], out: Path,
                  workers: Workers) -> Iterator[Artifact]:
    """Each window's model, in window order: trained one by one here, or all at once as Ray tasks.

    Only training runs in parallel: trading stays here, in window order, because each window starts
    from the equity the last one ended with, and the strategy's sizing and drawdown stop depend on it.
    """
    out.mkdir(parents=True, exist_ok=True)
    # Workers may run elsewhere, in another directory: they get absolute paths.
    shared = replace(settings, catalog=absolute_location(settings.catalog), model_path=Path(settings.model_path).resolve())
    calls = [(base, shared, window, window_dir(out, window).resolve()) for window in windows]
    return map_ordered(train_window, calls, workers)


def train_window(base: TrainConfig, settings: BacktestSettings, window: Window, path: Path) -> Artifact:
    """window_model as a worker runs it: the catalog and the report folder must be where the driver said."""
    require_shared_path(settings.catalog, "catalog")
    require_shared_path(path.parent.parent.parent, "report folder")
    return window_model(base, settings, window, path)


def window_model(base: TrainConfig, settings: BacktestSettings, window: Window, path: Path) -> Artifact:
    """The base config trained on the window's training range (reused if already trained so)."""
    config = base.override(data={
        "catalog": str(settings.catalog),
        "bar_types": settings.bar_types,
        "start": window.train_start.isoformat(),
        "end": (window.train_end - _NS).isoformat(),
    }).with_absolute_paths()  # as the artifact stores it, so a model already trained compares equal
    try:
        existing = load_artifact(path)
    except ArtifactError:
        existing = None
    if existing is not None and existing.config == config:
        log.info("window %d: reusing the model already trained at %s", window.number, path)
        return existing
    return train_model(config, path)


def trade_window(
    settings: BacktestSettings, instrument: Instrument, bars: BarFeed, balances: dict[str, float], number: int
) -> tuple[dict[str, StrategyRun], dict[str, dict]]:
    """The strategy and each benchmark over the window, each from its balance carried from the last window.

    Returns the runs (their fills closed at the window's end) and each one's statistics over the window.
    """
    close = bars.close()
    strategies = all_strategies(settings, instrument, bars.first_close())
    main = next(iter(strategies))  # the report's forecasts are its alone
    runs, stats = {}, {}
    for name, strategy in strategies.items():
        balance = balances[name]
        run = run_strategy(name, strategy, replace(settings, starting_balance=balance), instrument, bars, name == main)
        run.fills = close_at_window_end(run.fills, close, instrument, number)
        fills = fills_from_nautilus(run.fills)
        equity = equity_curve(fills, close, balance)
        runs[name] = run
        stats[name] = {
            "starting_balance": balance,
            "ending_equity": float(equity.iloc[-1]),
            **performance_stats(equity, fills, close, run.seconds),
        }
    return runs, stats


def close_at_window_end(report: pd.DataFrame, close: pd.Series, instrument: Instrument, number: int) -> pd.DataFrame:
    """Nautilus's fills report plus, if a position is open after the last bar, a taker fill closing it there."""
    held = float(position_series(fills_from_nautilus(report), close.index).iloc[-1])
    if held == 0.0:
        return report
    quantity, price = instrument.make_qty(abs(held)), instrument.make_price(float(close.iloc[-1]))
    fee = Money(quantity.as_double() * price.as_double() * float(instrument.taker_fee), instrument.quote_currency)
    row = report.iloc[[-1]].copy()  # keeps the strategy, instrument, account and position ids
    row.index = pd.Index([f"WINDOW-END-{number:02d}"], name=report.index.name)
    row[["venue_order_id", "trade_id", "event_id"]] = None
    row["order_side"] = "SELL" if held > 0 else "BUY"
    row["order_type"] = "WINDOW_END"
    row["last_qty"], row["last_px"], row["commission"] = str(quantity), str(price), str(fee)
    row["currency"], row["liquidity_side"] = instrument.quote_currency.code, "TAKER"
    row["ts_event"] = row["ts_init"] = close.index[-1]
    return pd.concat([report, row])


def stitch(name: str, runs: list[tuple[int, StrategyRun]]) -> StrategyRun:
    """One run from a strategy's (window number, run) pairs, each table with a ``window`` column."""

    def joined(table: str) -> pd.DataFrame:
        numbered = [getattr(run, table).assign(window=number) for number, run in runs]
        filled = [frame for frame in numbered if len(frame)]
        return pd.concat(filled) if filled else numbered[0]

    stitched = StrategyRun(name, joined("fills"), joined("positions"), None, sum(run.seconds for _, run in runs))
    if runs[0][1].predictions_file is not None:  # joined a row group at a time (backtests.predictions_file)
        stitched.predictions_file = scratch_file(stitched, "predictions")
        write_frames(stitched.predictions_file, (frame.assign(window=number) for number, run in runs
                                                 for frame in file_frames(run.predictions_file)))
    return stitched


def window_summary(window: Window, artifact: Artifact, model_dir: Path, bars: BarFeed, stats: dict, in_sample: bool) -> dict:
    return {
        "window": window.number,
        "train": {
            "start": window.train_start.isoformat(),
            "end": window.train_end.isoformat(),
            "first_bar_close": artifact.data["first_bar_close"],
            "last_bar_close": artifact.data["last_bar_close"],
            "bars": artifact.data["bars"],
        },
        "test": {
            "start": window.test_start.isoformat(),
            "end": window.test_end.isoformat(),
            "first_bar_close": bars.close().index[0].isoformat(),
            "last_bar_close": bars.close().index[-1].isoformat(),
            "bars": len(bars),
        },
        "model": str(model_dir),
        "in_sample": in_sample,
        "stats": stats,
    }
