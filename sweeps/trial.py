"""One trial: a walk-forward backtest of one trial config, scored by the sweep's objective.

A trial trades only LSTMStrategy (no benchmarks: the sweep compares trials with one another) over
windows planned as ``backtests.walk_forward`` plans them, each window's model retrained with
``backtests.walk_forward.window_model`` (so a retried trial reuses the windows it had finished)
and its open position closed at the window's end (``close_at_window_end``). The bars loaded end
where the windows end: a trial's backtest, features and objective never read a bar after it.

What a trial returns (:func:`run_trial`), all JSON values:

- ``windows``: per window, its number, train and test ranges, bars and net ``return`` (equity at
  the window's end / at its start - 1, after fees);
- ``daily_returns``: the stitched equity's daily returns (backtests.stats), ``{UTC date: return}``,
  the date of the day the return was earned over (a partial day counts as a day);
- ``stats``: backtests.stats.performance_stats of the stitched run (``sharpe`` annualized by 365);
- ``objective``: the objective over every window; ``intermediate``: the same over windows 1..k,
  per k (what pruning judges).

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

from backtests.runner import BacktestSettings, load_inputs, lstm_strategy, run_strategy
from backtests.stats import (
    daily_returns,
    equity_curve,
    fills_from_nautilus,
    performance_stats,
)
from backtests.walk_forward import (
    Window,
    close_at_window_end,
    plan_windows,
    window_model,
)
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
    bar_type: str
    windows: tuple[Window, ...]
    objective: str
    out: Path

    @property
    def settings(self) -> BacktestSettings:
        """The bars from the first window's test start to its last one's end (excluded)."""
        return BacktestSettings(model_path=self.out, catalog=Path(self.train.data.catalog), bar_type=self.bar_type,
                                start=self.windows[0].test_start, end=self.windows[-1].test_end - _NS,
                                strategy=self.strategy)


def sweep_range(catalog: str, bar_type: str, start: str, end: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The range a sweep covers: the first bar close (or ``start``) and where the bar after the last
    (or after ``end``) would close."""
    interval = BarType.from_str(bar_type).spec.timedelta
    settings = BacktestSettings(model_path=Path(), catalog=Path(catalog), bar_type=bar_type,
                                start=pd.Timestamp(start, tz="UTC") if start else None,
                                end=pd.Timestamp(end, tz="UTC") if end else None)
    _, bars = load_inputs(settings)
    closes = bars.close().index
    return closes[0], closes[-1] + interval


def plan_trial_windows(train: TrainConfig, bar_type: str, first: pd.Timestamp, locked_start: pd.Timestamp,
                       train_days: float, test_days: float) -> tuple[Window, ...]:
    """The walk-forward windows of a trial: every test window ends at or before ``locked_start``."""
    purge = train.training.horizon * BarType.from_str(bar_type).spec.timedelta
    windows = plan_windows(first, locked_start, pd.Timedelta(days=train_days), pd.Timedelta(days=test_days), purge)
    if not windows:
        raise ValueError(f"{first} to the locked segment at {locked_start} leaves no test window after {train_days} "
                         "days of training: lengthen the range or shorten [walk_forward]")
    return tuple(windows)


def locked_window(train: TrainConfig, bar_type: str, locked_start: pd.Timestamp, end: pd.Timestamp,
                  train_days: float) -> Window:
    """The locked segment as one window: trained on the ``train_days`` before it (less the purge)."""
    purge = train.training.horizon * BarType.from_str(bar_type).spec.timedelta
    train_end = locked_start - purge
    return Window(1, train_end - pd.Timedelta(days=train_days), train_end, locked_start, end)


def run_trial(plan: TrialPlan, report: Callable[[float, int], None] | None = None) -> dict:
    """Walk ``plan``'s windows; after each, ``report(objective so far, window index)`` (which may
    raise optuna.TrialPruned). Returns the dict described in the module docstring."""
    settings = plan.settings
    instrument, bars = load_inputs(settings)
    close = bars.close()
    balance = settings.starting_balance
    equities, fills, predictions, windows, intermediate = [], [], [], [], []
    for window in plan.windows:
        window_bars = bars.window(window.test_start, window.test_end)
        if window_bars is None:
            continue
        model_dir = plan.out / "windows" / f"{window.number:02d}" / "model"
        window_model(plan.train, settings, window, model_dir)
        traded = replace(settings, model_path=model_dir, starting_balance=balance)
        run = run_strategy("lstm", lstm_strategy(traded), traded, instrument, window_bars)
        window_close = window_bars.close()
        window_fills = fills_from_nautilus(close_at_window_end(run.fills, window_close, instrument, window.number))
        equity = equity_curve(window_fills, window_close, balance)
        equities.append(equity)
        fills.append(window_fills)
        predictions.append(run.predictions)
        windows.append(window_record(window, len(window_bars), float(equity.iloc[-1]) / balance - 1.0))
        balance = float(equity.iloc[-1])
        scores = score(plan, close, equities, fills, predictions, settings.starting_balance)
        intermediate.append(scores["objective"])
        if report is not None and scores["objective"] is not None:
            report(scores["objective"], len(windows) - 1)
    if not windows:
        raise ValueError(f"no bars of {plan.bar_type} in any window of the trial")
    return {"windows": windows, "intermediate": intermediate, **score(plan, close, equities, fills, predictions,
                                                                      settings.starting_balance)}


def score(plan: TrialPlan, close: pd.Series, equities: list[pd.Series], fills: list[pd.DataFrame],
          predictions: list[pd.DataFrame], start: float) -> dict:
    """The stitched run's statistics, daily returns and objective over the windows so far."""
    equity = pd.concat(equities)
    traded_close = close.loc[equity.index]
    all_fills = pd.concat(fills)
    stats = performance_stats(equity, all_fills, traded_close, 0.0)
    daily = daily_returns(equity, start)
    frame = pd.concat(predictions)
    if plan.objective == "sharpe":
        # A rule that never traded earned exactly nothing each day: Sharpe 0, not undefined.
        objective = 0.0 if stats["turnover"] == 0 and not daily.any() else stats["sharpe"]
    elif plan.objective == "ic":
        objective = forecast_ic(frame, close, plan.train.training.horizon)
    else:
        objective = forecast_qlike(frame, close, plan.train.training.horizon)
    return {
        "objective": _number(objective),
        "stats": {key: _number(value) for key, value in stats.items()},
        "daily_returns": {(day - pd.Timedelta(days=1)).date().isoformat(): float(value) for day, value in daily.items()},
    }


def forecast_ic(predictions: pd.DataFrame, close: pd.Series, horizon: int) -> float:
    """Spearman correlation of the point forecast with the realized h-bar log return (known rows only)."""
    realized = forward_log_return(close.to_frame("close"), horizon).reindex(predictions.index)
    known = realized.notna().to_numpy() & predictions["prediction"].notna().to_numpy()
    if known.sum() < 3:
        return math.nan
    return spearman(predictions["prediction"].to_numpy()[known], realized.to_numpy()[known])


def forecast_qlike(predictions: pd.DataFrame, close: pd.Series, horizon: int) -> float:
    """Mean QLIKE of the volatility forecast (std of the h-bar return) against the log realized volatility."""
    if "volatility" not in predictions:
        raise ValueError("objective qlike needs a model with the volatility head ([model] volatility_head = true)")
    target = pd.Series(log_realized_vol(close.to_numpy(), horizon), index=close.index).reindex(predictions.index)
    forecast = np.log(predictions["volatility"].to_numpy(dtype=float))
    known = np.isfinite(target.to_numpy()) & np.isfinite(forecast)
    if not known.any():
        return math.nan
    return float(np.mean(qlike_loss(target.to_numpy()[known], forecast[known])))


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
