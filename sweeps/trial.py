"""One trial: a walk-forward backtest of one trial config, scored by the sweep's objective.

A trial trades only LSTMStrategy (no benchmarks: the sweep compares trials with one another) over
windows planned as ``backtests.walk_forward`` plans them, each window's model retrained with
``backtests.walk_forward.window_model`` (so a retried trial reuses the windows it had finished)
and its open position closed at the window's end (``close_at_window_end``). The bars loaded end
where the windows end: a trial's backtest, features and objective never read a bar after it.

Pooled. A trial of several bar types (``[data] bar_types``) trains one pooled model per window on
every instrument (models.pooling) and trades them all in one engine and one account, an LSTMStrategy
per instrument (``backtests.walk_forward_pooled.trade_pooled_window``); its equity, statistics and
Sharpe ratio are the account's (``backtests.stats.account_stats``), its IC and QLIKE pool every
instrument's forecasts, each against its own instrument's realized return.

What a trial returns (:func:`run_trial`), all JSON values:

- ``windows``: per window, its number, train and test ranges, bars (of every instrument) and net ``return`` (equity at
  the window's end / at its start - 1, after fees);
- ``daily_returns``: the stitched equity's daily returns (backtests.stats), ``{UTC date: return}``,
  the date of the day the return was earned over (a partial day counts as a day);
- ``stats``: backtests.stats.performance_stats of the stitched run (``sharpe`` annualized by 365);
- ``objective``: the objective over every window; ``intermediate``: the same over windows 1..k,
  per k (what pruning judges);
- ``stopped``: True when ``report`` stopped the walk (a pruned trial): everything above then
  covers the windows it ran.

Objectives: ``sharpe`` as in ``stats`` (0 for a run that never traded: its daily returns are all
exactly 0, whose Sharpe ratio the formula leaves undefined); ``ic``: Spearman correlation of the point forecast with
the realized h-bar log return; ``qlike``: mean QLIKE of the volatility forecast against the log
realized volatility over the horizon (models.volatility). Forecasts whose horizon reaches past the
last bar loaded are left out.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from nautilus_trader.model.data import BarType
from nautilus_trader.model.instruments import Instrument

from backtests.feed import BarFeed
from backtests.pooled import instrument_fills, load_all_inputs
from backtests.runner import BacktestSettings, load_inputs, lstm_strategy, run_strategy
from backtests.stats import (
    account_stats,
    daily_returns,
    empty_fills,
    equity_curve,
    fills_from_nautilus,
    performance_stats,
)
from backtests.walk_forward import (
    Window,
    close_at_window_end,
    plan_windows,
    window_dir,
    window_model,
    windows_with_bars,
)
from backtests.walk_forward_pooled import trade_pooled_window, window_instruments
from models.config import TrainConfig
from models.features import forward_log_return
from models.metrics import spearman
from models.volatility import log_realized_vol, qlike_loss

_NS = pd.Timedelta(1, unit="ns")


@dataclass(frozen=True)
class TrialPlan:
    """What one walk-forward run needs: the config to train, the rule, the windows, where to write."""

    train: TrainConfig
    strategy: dict
    bar_types: tuple[str, ...]  # one instrument, or several pooled in one account
    windows: tuple[Window, ...]
    objective: str
    out: Path

    @property
    def settings(self) -> BacktestSettings:
        """The bars from the first window's test start to its last one's end (excluded)."""
        return BacktestSettings(model_path=self.out, catalog=self.train.data.catalog, bar_types=self.bar_types,
                                start=self.windows[0].test_start, end=self.windows[-1].test_end - _NS,
                                strategy=self.strategy)


@dataclass
class WindowRun:
    """What one traded window leaves for the score: the account's equity at each bar close, each
    instrument's fills table (by instrument id) and the forecasts (a ``bar_type`` column when pooled)."""

    equity: pd.Series
    fills: dict[str, pd.DataFrame]
    predictions: pd.DataFrame


def sweep_range(catalog: str, bar_type: str, start: str, end: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The range a sweep covers: the first bar close (or ``start``) and where the bar after the last
    (or after ``end``) would close."""
    interval = BarType.from_str(bar_type).spec.timedelta
    settings = BacktestSettings(model_path=Path(), catalog=catalog, bar_type=bar_type,
                                start=pd.Timestamp(start, tz="UTC") if start else None,
                                end=pd.Timestamp(end, tz="UTC") if end else None)
    _, bars = load_inputs(settings)
    closes = bars.close().index
    return closes[0], closes[-1] + interval


def plan_trial_windows(train: TrainConfig, bar_type: str, first: pd.Timestamp, locked_start: pd.Timestamp,
                       train_days: float, test_days: float) -> tuple[Window, ...]:
    """The walk-forward windows of a trial: every test window ends at or before ``locked_start``."""
    windows = plan_windows(first, locked_start, pd.Timedelta(days=train_days), pd.Timedelta(days=test_days),
                           _purge(train, bar_type))
    if not windows:
        raise ValueError(f"{first} to the locked segment at {locked_start} leaves no test window after {train_days} "
                         "days of training: lengthen the range or shorten [walk_forward]")
    return tuple(windows)


def locked_window(train: TrainConfig, bar_type: str, locked_start: pd.Timestamp, end: pd.Timestamp,
                  train_days: float) -> Window:
    """The locked segment as one window: trained on the ``train_days`` before it (less the purge)."""
    train_end = locked_start - _purge(train, bar_type)
    return Window(1, train_end - pd.Timedelta(days=train_days), train_end, locked_start, end)


def _purge(train: TrainConfig, bar_type: str) -> pd.Timedelta:
    """The gap between a window's training and its test (the targets' horizon, as backtests.walk_forward leaves)."""
    return train.training.horizon * BarType.from_str(bar_type).spec.timedelta


def run_trial(plan: TrialPlan, report: Callable[[float, int], bool] | None = None) -> dict:
    """Walk ``plan``'s windows; after each, ``report(objective so far, window index)``, which returns
    True to stop there (a pruned trial). Returns the dict described in the module docstring, over the
    windows run."""
    settings = plan.settings
    instruments, bars = load_all_inputs(settings)
    trade = trade_pooled if len(plan.bar_types) > 1 else trade_alone
    balance = settings.starting_balance
    traded, windows, intermediate = [], [], []
    for window, window_bars in windows_with_bars(plan.windows, bars):
        model_dir = window_dir(plan.out, window)
        window_model(plan.train, settings, window, model_dir)
        run = trade(replace(settings, model_path=model_dir, starting_balance=balance), instruments, window_bars,
                    window.number)
        traded.append(run)
        windows.append(window_record(window, len(window_bars), float(run.equity.iloc[-1]) / balance - 1.0))
        balance = float(run.equity.iloc[-1])
        scores = score(plan, bars, traded, settings.starting_balance)
        intermediate.append(scores["objective"])
        if report is not None and scores["objective"] is not None and report(scores["objective"], len(windows) - 1):
            return {"windows": windows, "intermediate": intermediate, "stopped": True, **scores}
    if not windows:
        raise ValueError(f"no bars of {', '.join(plan.bar_types)} in any window of the trial")
    return {"windows": windows, "intermediate": intermediate, "stopped": False,
            **score(plan, bars, traded, settings.starting_balance)}


def trade_alone(settings: BacktestSettings, instruments: list[Instrument], bars: BarFeed, number: int) -> WindowRun:
    """One instrument's LSTMStrategy over the window, its open position closed at the end."""
    (instrument,) = instruments
    run = run_strategy("lstm", lstm_strategy(settings), settings, instrument, bars)
    close = bars.close()
    fills = fills_from_nautilus(close_at_window_end(run.fills, close, instrument, number))
    return WindowRun(equity_curve(fills, close, settings.starting_balance), {str(instrument.id): fills}, run.predictions)


def trade_pooled(settings: BacktestSettings, instruments: list[Instrument], bars: BarFeed, number: int) -> WindowRun:
    """An LSTMStrategy per instrument with bars in the window, all in one account (an instrument without
    bars there sits the window out, as in backtests.walk_forward_pooled)."""
    here, trading = window_instruments(settings, instruments, bars)
    runs, _, equities = trade_pooled_window(here, trading, bars, {"lstm": settings.starting_balance}, number, ("lstm",))
    run = runs["lstm"]
    # run_strategies names each row's bar type only when several strategies ran.
    predictions = run.predictions  # read from the run's file once
    if "bar_type" not in predictions:
        predictions = predictions.assign(bar_type=bars.bar_types[0])
    return WindowRun(equities["lstm"], {str(i.id): instrument_fills(run.fills, str(i.id)) for i in trading}, predictions)


def score(plan: TrialPlan, bars: BarFeed, traded: list[WindowRun], start: float) -> dict:
    """The stitched run's statistics, daily returns and objective over the windows so far."""
    equity = pd.concat([run.equity for run in traded])
    closes = {b: bars.close(b) for b in plan.bar_types}
    ids = {str(BarType.from_str(b).instrument_id): b for b in plan.bar_types}
    fills = {key: pd.concat([run.fills[key] for run in traded if key in run.fills] or [empty_fills()]) for key in ids}
    if len(ids) == 1:
        (only,) = fills.values()
        stats = performance_stats(equity, only, bars.close().loc[equity.index], 0.0)
    else:
        aligned = {key: closes[b].reindex(equity.index).ffill().bfill() for key, b in ids.items()}
        stats = account_stats(equity, fills, aligned, start, 0.0)
    daily = daily_returns(equity, start)
    frame = pd.concat([run.predictions for run in traded])
    if plan.objective == "sharpe":
        # A rule that never traded earned exactly nothing each day: Sharpe 0, not undefined.
        objective = 0.0 if stats["turnover"] == 0 and not daily.any() else stats["sharpe"]
    elif plan.objective == "ic":
        objective = forecast_ic(frame, closes, plan.train.training.horizon)
    else:
        objective = forecast_qlike(frame, closes, plan.train.training.horizon)
    return {
        "objective": _number(objective),
        "stats": {key: _number(value) for key, value in stats.items()},
        "daily_returns": {(day - pd.Timedelta(days=1)).date().isoformat(): float(value) for day, value in daily.items()},
    }


def per_instrument(predictions: pd.DataFrame, closes: dict[str, pd.Series]) -> list[tuple[pd.DataFrame, pd.Series]]:
    """Each instrument's forecast rows with its closes: by the ``bar_type`` column when there are several."""
    if len(closes) == 1:
        return [(predictions, next(iter(closes.values())))]
    return [(predictions[predictions["bar_type"] == bar_type], close) for bar_type, close in closes.items()]


def forecast_ic(predictions: pd.DataFrame, closes: dict[str, pd.Series], horizon: int) -> float:
    """Spearman correlation of the point forecast with the realized h-bar log return (known rows only),
    over every instrument's rows, each against its own closes (``closes``: by bar type)."""
    forecasts, realized = [], []
    for rows, close in per_instrument(predictions, closes):
        forecasts.append(rows["prediction"].to_numpy(dtype=float))
        realized.append(forward_log_return(close.to_frame("close"), horizon).reindex(rows.index).to_numpy(dtype=float))
    forecast, target = np.concatenate(forecasts), np.concatenate(realized)
    known = np.isfinite(target) & np.isfinite(forecast)
    if known.sum() < 3:
        return math.nan
    return spearman(forecast[known], target[known])


def forecast_qlike(predictions: pd.DataFrame, closes: dict[str, pd.Series], horizon: int) -> float:
    """Mean QLIKE of the volatility forecast (std of the h-bar return) against the log realized volatility,
    over every instrument's rows (``closes``: by bar type)."""
    if "volatility" not in predictions:
        raise ValueError("objective qlike needs a model with the volatility head ([model] volatility_head = true)")
    forecasts, realized = [], []
    for rows, close in per_instrument(predictions, closes):
        forecasts.append(np.log(rows["volatility"].to_numpy(dtype=float)))
        target = pd.Series(log_realized_vol(close.to_numpy(), horizon), index=close.index)
        realized.append(target.reindex(rows.index).to_numpy(dtype=float))
    forecast, target = np.concatenate(forecasts), np.concatenate(realized)
    known = np.isfinite(target) & np.isfinite(forecast)
    if not known.any():
        return math.nan
    return float(np.mean(qlike_loss(target[known], forecast[known])))


def window_record(window: Window, bars: int, net_return: float) -> dict:
    return {
        "window": window.number,
        "train_start": window.train_start.isoformat(),
        "train_end": window.train_end.isoformat(),
        "test_start": window.test_start.isoformat(),
        "test_end": window.test_end.isoformat(),
        "bars": bars,
        "return": net_return,
    }


def _number(value) -> float | None:
    """JSON's number, None for NaN or infinity."""
    value = float(value)
    return value if math.isfinite(value) else None
