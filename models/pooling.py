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

from dataclasses import dataclass

import numpy as np
from nautilus_trader.model.data import BarType

from models.dataset import Scaler, network_inputs
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
