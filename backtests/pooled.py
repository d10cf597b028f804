"""Backtests of several instruments traded together: one engine, one venue, one account.

A pooled artifact (models.pooling) drives every instrument it was trained on, and so may a
one-instrument artifact's own. Each strategy runs as one instance per instrument, all in one
``BacktestEngine`` sharing one account (``backtests.runner.run_strategies``):

- ``lstm``: one LSTMStrategy per instrument, each its own OnlinePredictor of the shared
  artifact (that instrument's scaling and one-hot), order id tags the instruments' symbols; a
  cross-asset model's (``[data] cross_asset``) share one ``strategies.cross_barrier.CrossBarrier``,
  so each forecasts close time t once every instrument's bar of t is in (the
  ``vol_target_buy_and_hold`` instances too, in their engine);
- ``ridge`` and ``lightgbm``: the same with the artifact's ridge or LightGBM baseline;
- ``ema_cross``, ``buy_and_hold`` and, for a model with a volatility head,
  ``vol_target_buy_and_hold`` (backtests.benchmarks): one per instrument, sized alike,
  together in one engine and account too, so every row of the report is one account's.

Report: equity.parquet (backtests.report) holds the account's equity and returns per strategy and
each instrument's close; stats.json's figures are the account's (``backtests.stats.account_stats`` over the summed
equity ``account_equity``), and ``instruments`` holds each instrument's own figures per strategy,
as if its fills alone had traded from the whole starting balance. fills.csv, positions.csv and
predictions.parquet hold every instrument's rows (an ``instrument_id`` / ``bar_type`` column);
one trades-<symbol>.png per instrument.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import msgspec
import pandas as pd
from nautilus_trader.config import ImportableStrategyConfig
from nautilus_trader.model.data import BarType
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.trading.config import StrategyFactory
from nautilus_trader.trading.strategy import Strategy

from backtests.benchmarks import VolTargetBuyAndHold, benchmark_strategies
from backtests.feed import BarFeed, load_feed
from backtests.plots import plot_equity, plot_trades
from backtests.report import row_groups_of, training_overlap, write_equity, write_run_files
from backtests.runner import (
    BacktestSettings,
    StrategyRun,
    decision_settings,
    load_instrument,
    lstm_settings,
    run_strategies,
    vol_target_config,
)
from backtests.stats import (
    account_equity,
    account_stats,
    equity_curve,
    fills_from_nautilus,
    performance_stats,
)
from models.artifact import load_artifact
from models.predictor import output_columns
from strategies.config import (
    CONFIG_PATH,
    FORECASTERS,
    STRATEGY_PATH,
    parse_strategy_config,
)
from strategies.cross_barrier import CrossBarrier


def symbol_tag(bar_type: str) -> str:
    """A strategy's order id tag for an instrument: its symbol, letters and digits only (BTCUSDT)."""
    return re.sub(r"[^A-Za-z0-9]", "", str(BarType.from_str(bar_type).instrument_id.symbol))


def one_instrument(settings: BacktestSettings, bar_type: str) -> BacktestSettings:
    return replace(settings, bar_type=bar_type, bar_types=())


def load_all_inputs(settings: BacktestSettings) -> tuple[list[Instrument], BarFeed]:
    """Each instrument (fees as settings say) and the feed of every one's bars; an error unless they can
    share one account."""
    instruments = [load_instrument(settings, bar_type) for bar_type in settings.bar_types]
    kinds = {(str(i.id.venue), str(i.quote_currency), i.instrument_class.name) for i in instruments}
    if len(kinds) > 1:
        raise ValueError(f"{list(settings.bar_types)} cannot share one account: venues, quote currencies or kinds differ {sorted(kinds)}")
    return instruments, load_feed(settings.catalog, settings.bar_types, settings.start, settings.end, settings.chunk_bars)


def pooled_strategies(settings: BacktestSettings, instruments: list[Instrument], bars: BarFeed) -> dict[str, list[Strategy]]:
    """Per strategy name, one instance per instrument with distinct strategy ids."""
    sizing = parse_strategy_config(lstm_settings(one_instrument(settings, settings.bar_types[0]))).sizing
    notional = min(sizing.order_notional, sizing.max_notional)
    artifact = load_artifact(settings.model_path)
    volatility = "volatility" in output_columns(artifact)
    strategies: dict[str, list[Strategy]] = {}
    for instrument, bar_type in zip(instruments, settings.bar_types):
        tag = symbol_tag(bar_type)
        for forecaster in FORECASTERS:
            config = lstm_settings(one_instrument(settings, bar_type), forecaster)
            config["order_id_tag"] = tag if forecaster == "lstm" else f"{forecaster.upper()}{tag}"
            strategies.setdefault(forecaster, []).append(StrategyFactory.create(
                ImportableStrategyConfig(strategy_path=STRATEGY_PATH, config_path=CONFIG_PATH, config=config)))
        first_close = bars.first_close(bar_type)
        benchmarks = benchmark_strategies(instrument, BarType.from_str(bar_type), notional, first_close)
        if volatility:
            lstm_config = parse_strategy_config(lstm_settings(one_instrument(settings, bar_type)))
            benchmarks["vol_target_buy_and_hold"] = VolTargetBuyAndHold(vol_target_config(lstm_config, notional))
        for name, benchmark in benchmarks.items():
            # The benchmarks' ids, unique per instrument in the one engine.
            strategies.setdefault(name, []).append(type(benchmark)(msgspec.structs.replace(benchmark.config, order_id_tag=tag)))
    if artifact.config.data.cross_asset:  # each group runs in its own engine; the ridge baseline sees its own features only
        for name in ("lstm", "vol_target_buy_and_hold"):
            if name in strategies:
                CrossBarrier.share(artifact, strategies[name])
    return strategies


def run_pooled(settings: BacktestSettings) -> tuple[BarFeed, dict[str, StrategyRun]]:
    """Every strategy over every instrument's bars, each strategy's instances in one engine and account."""
    instruments, bars = load_all_inputs(settings)
    groups = pooled_strategies(settings, instruments, bars)
    main = next(iter(groups))  # the report's forecasts are its alone
    # Each group leaves the dict as it runs: its engine's cache and decision logs go with it.
    return bars, {name: run_strategies(name, groups.pop(name), settings, instruments, bars, main=name == main)
                  for name in list(groups)}


def write_pooled_report(out: Path, bars: BarFeed, runs: dict[str, StrategyRun], settings: BacktestSettings,
                        training: list[dict] | None = None) -> dict:
    """The report of a pooled backtest (see the module docstring); returns stats.json's content.

    ``training``: :func:`backtests.report.training_overlap` of each model and instrument that traded
    (a walk-forward's windows); by default, of ``settings.model_path`` per instrument over its bars."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    closes = {str(BarType.from_str(b).instrument_id): bars.close(b) for b in settings.bar_types}
    stats, curves, per_instrument, fills = {}, {}, {}, {}
    for name, run in runs.items():
        fills[name] = {key: instrument_fills(run.fills, key) for key in closes}
        curves[name] = account_equity(fills[name], closes, settings.starting_balance)
        aligned = {key: close.reindex(curves[name].index).ffill().bfill() for key, close in closes.items()}
        stats[name] = account_stats(curves[name], fills[name], aligned, settings.starting_balance, run.seconds)
        for key, close in closes.items():
            alone = equity_curve(fills[name][key], close, settings.starting_balance)
            per_instrument.setdefault(key, {})[name] = performance_stats(alone, fills[name][key], close, run.seconds)
    main, *benchmarks = runs
    if training is None:
        training = [training_overlap(settings.model_path, closes[str(BarType.from_str(b).instrument_id)].index, b)
                    for b in settings.bar_types]
    first = min(close.index[0] for close in closes.values())
    last = max(close.index[-1] for close in closes.values())
    report = {
        **stats[main],
        "benchmarks": {name: stats[name] for name in benchmarks},
        "instruments": per_instrument,
        "in_sample": any(model["in_sample"] for model in training),
        "training": training,
        "settings": {
            "model": str(settings.model_path),
            "bar_types": list(settings.bar_types),
            "first_bar_close": first.isoformat(),
            "last_bar_close": last.isoformat(),
            "starting_balance": settings.starting_balance,
            "strategy": settings.strategy,
            **decision_settings(settings),
        },
    }
    write_run_files(out, report, runs[main])
    write_equity(out, row_groups_of(curves), {name: settings.starting_balance for name in runs}, closes)
    plot_equity(curves, out / "equity.png", title=f"One account: {main} and benchmarks, {', '.join(closes)}")
    for key, close in closes.items():
        plot_trades(close, fills[main][key], out / f"trades-{key.split('.')[0]}.png", title=f"{key}: {main} fills")
    return report


def instrument_fills(report: pd.DataFrame, instrument_id: str) -> pd.DataFrame:
    """The fills table (backtests.stats) of one instrument's fills in a report of several."""
    return fills_from_nautilus(report[report["instrument_id"] == instrument_id] if not report.empty else report)
