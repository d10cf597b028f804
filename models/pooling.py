"""Several instruments in one model: per-instrument scaling and the instrument id feature.

A pooled model (``[data] bar_types`` naming several bar types of one timeframe) trains on the
sequences of every instrument, each cut from that instrument's own contiguous rows; the
train/validation split is taken per instrument, by time, with the same gap (models.splits), and
the validation loss is the mean over all instruments' validation rows together.

Each instrument keeps its own feature scaler and target scales, fitted on its own fitting rows
only, so a calm and a wild market both reach the network in O(1) units. The network's input row
is the instrument's scaled features followed by a one-hot of the instrument's place among the
model's instruments (``[data] bar_types`` order); a single instrument gets no one-hot, so its
inputs are exactly those of an unpooled model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from nautilus_trader.model.data import BarType

from models.dataset import Dataset, Scaler, network_inputs
from models.heads import TargetScales


@dataclass(frozen=True)
class Scaling:
    """What turns one instrument's features into network inputs and the network's outputs back."""

    scaler: Scaler
    scales: TargetScales
    one_hot: np.ndarray  # (n_instruments,) float64, or (0,) for a single instrument

    def inputs(self, features: np.ndarray) -> np.ndarray:
        """Network input rows (rows, n_features + len(one_hot)), float32 as the network trains on them."""
        return network_inputs(self.scaler, features, self.one_hot).astype(np.float32)


def one_hot(index: int, count: int) -> np.ndarray:
    """The instrument id feature of instrument ``index`` of ``count``: none for a single instrument."""
    if count == 1:
        return np.zeros(0)
    code = np.zeros(count)
    code[index] = 1.0
    return code


def input_width(n_columns: int, n_instruments: int) -> int:
    """The network's input width: the feature columns and the one-hot."""
    return n_columns + len(one_hot(0, n_instruments))


def benchmark_rows(datasets: list[Dataset], fitting: list[slice], n_own: int) -> tuple[np.ndarray, np.ndarray]:
    """What train's benchmarks (ridge, LightGBM) fit on: each instrument's ``fitting`` rows of its
    own ``n_own`` feature columns (no scaling, cross-asset columns or one-hot), stacked, and their targets."""
    features = np.concatenate([data.features[rows, :n_own] for data, rows in zip(datasets, fitting)])
    return features, np.concatenate([data.target[rows] for data, rows in zip(datasets, fitting)])


def check_bar_types(bar_types: list[str] | tuple[str, ...], where: str = "[data] bar_types") -> list[BarType]:
    """Parsed bar types: distinct instruments, all of one timeframe and price (pooled rows are alike)."""
    parsed = []
    for text in bar_types:
        try:
            parsed.append(BarType.from_str(text))
        except ValueError as exc:
            raise ValueError(f"{where}: {text!r} is not a bar type: {exc}") from None
    instruments = [str(b.instrument_id) for b in parsed]
    if len(set(instruments)) != len(instruments):
        raise ValueError(f"{where}: {list(bar_types)} name an instrument twice")
    specs = {str(b.spec) for b in parsed}
    if len(specs) > 1:
        raise ValueError(f"{where}: {list(bar_types)} mix bar specifications {sorted(specs)}; pool bars of one timeframe")
    return parsed


# Cross-asset features ([data] cross_asset): beside its own features, each instrument's row at close
# time t holds every OTHER instrument's 1-bar log return at t, log(close_j(t) / close_j(t - bar)), in
# ``[data] bar_types`` order. Known at t's close, like the instrument's own bar. Where instrument j
# has no bar at t, or none at t - bar (an exchange outage, or before its history starts), its return
# there is 0.0: no move known, never a value carried from another time. These columns follow the
# feature spec's and are scaled with them, by the instrument's own fitting rows.


def cross_columns(bar_types: list[str] | tuple[str, ...], bar_type: str) -> list[str]:
    """The cross-asset columns of ``bar_type``'s rows: ``ret1@<other bar type>`` per other instrument."""
    return [f"ret1@{other}" for other in bar_types if other != bar_type]


def cross_returns(index: pd.DatetimeIndex, others: list[pd.DataFrame], interval: pd.Timedelta) -> np.ndarray:
    """(len(index), len(others)): each other instrument's 1-bar log return at each close time of ``index``."""
    columns = []
    for bars in others:
        close = bars["close"].astype(np.float64)
        returns = np.log(close / close.shift(1))
        # Only a step of exactly one bar: after a gap the previous close is not t - bar's.
        returns[close.index.to_series().diff() != interval] = np.nan
        columns.append(returns.reindex(index).fillna(0.0).to_numpy())
    return np.stack(columns, axis=1) if columns else np.zeros((len(index), 0))


class CrossReturns:
    """The cross-asset columns bar by bar, as :func:`cross_returns` computes them offline.

    ``update(j, close_time_ns, close)`` records instrument j's bar; ``row(k, close_time_ns)`` is
    instrument k's cross columns at that close time, from the bars recorded so far (feed every
    instrument's bar of a close time before asking for that time's rows).
    """

    def __init__(self, n_instruments: int, interval_ns: int):
        self.interval_ns = interval_ns
        self._last = [(-1, np.nan)] * n_instruments  # (close time, close) of each one's latest bar
        self._returns = [(-1, 0.0)] * n_instruments  # (close time, 1-bar log return there)

    def update(self, instrument: int, close_time_ns: int, close: float) -> None:
        before, previous = self._last[instrument]
        step = np.log(close / previous) if before == close_time_ns - self.interval_ns else 0.0
        self._last[instrument] = (close_time_ns, close)
        self._returns[instrument] = (close_time_ns, step)

    def row(self, instrument: int, close_time_ns: int) -> np.ndarray:
        return np.array([value if at == close_time_ns else 0.0
                         for j, (at, value) in enumerate(self._returns) if j != instrument])


def with_cross_returns(data: Dataset, bar_types: list[str] | tuple[str, ...], bar_type: str,
                       bars: dict[str, pd.DataFrame]) -> Dataset:
    """``data`` (``bar_type``'s rows) with its cross-asset columns appended to its features;
    ``bars`` holds every other instrument's bars."""
    missing = [other for other in bar_types if other != bar_type and other not in bars]
    if missing:
        raise ValueError(f"cross-asset features of {bar_type} need the bars of {missing} too")
    interval = pd.Timedelta(BarType.from_str(bar_type).spec.timedelta)
    others = [bars[other] for other in bar_types if other != bar_type]
    return replace(data, features=np.concatenate([data.features, cross_returns(data.index, others, interval)], axis=1))
