"""From bars to the arrays the network trains on: features, target, scaling, sequences."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.features import FeatureSpec, compute_features, forward_log_return
from models.volatility import log_realized_vol


@dataclass(frozen=True)
class Dataset:
    """Rows are bars after the features' warm-up, in time order."""

    index: pd.DatetimeIndex  # bar close times
    features: np.ndarray  # (rows, n_features) float64
    target: np.ndarray  # (rows,) forward log return; NaN where the horizon runs past the data
    volatility: np.ndarray  # (rows,) forward log realized volatility (models.volatility); NaN likewise
    close: np.ndarray  # (rows,) close prices, for baselines that need them
    spec: FeatureSpec  # what computed the features
    horizon: int  # bars the targets look ahead

    def __len__(self) -> int:
        return len(self.index)


def build_dataset(bars: pd.DataFrame, spec: FeatureSpec, horizon: int) -> Dataset:
    features = compute_features(bars, spec)
    target = forward_log_return(bars, horizon)
    defined = features.notna().all(axis=1).to_numpy()
    if not defined.any():
        raise ValueError(f"{len(bars)} bars are too few: the features need {spec.warmup_bars} bars of warm-up")
    first = int(np.argmax(defined))
    if not defined[first:].all():
        row = first + int(np.argmax(~defined[first:]))
        raise ValueError(f"features are undefined at {features.index[row]} after warm-up; check the bars there")
    return Dataset(
        index=features.index[first:],
        features=features.to_numpy(dtype=np.float64)[first:],
        target=target.to_numpy(dtype=np.float64)[first:],
        volatility=log_realized_vol(bars["close"].to_numpy(dtype=np.float64), horizon)[first:],
        close=bars["close"].to_numpy(dtype=np.float64)[first:],
        spec=spec,
        horizon=horizon,
    )


@dataclass(frozen=True)
class Scaler:
    """Per-feature standardization, fitted on training rows only."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray) -> Scaler:
        std = features.std(axis=0)
        # A constant feature would divide by zero; leave it centred and unscaled.
        return cls(mean=features.mean(axis=0), std=np.where(std > 0, std, 1.0))

    def transform(self, features: np.ndarray) -> np.ndarray:
        return (features - self.mean) / self.std

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, raw: dict) -> Scaler:
        return cls(mean=np.asarray(raw["mean"], dtype=np.float64), std=np.asarray(raw["std"], dtype=np.float64))


def network_inputs(scaler: Scaler, features: np.ndarray, one_hot: np.ndarray | None = None) -> np.ndarray:
    """The network's input rows: the scaled features, then a pooled model's instrument one-hot
    (models.pooling; None or empty for a single instrument), the same on every row."""
    scaled = scaler.transform(features)
    if one_hot is None or not len(one_hot):
        return scaled
    return np.concatenate([scaled, np.broadcast_to(one_hot, (len(scaled), len(one_hot)))], axis=1)


def sequences(
    features: np.ndarray, target: np.ndarray, rows: range, length: int, burn_in: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut ``rows`` into overlapping sequences for truncated backpropagation through time.

    Each sequence starts from a zero state; its first ``burn_in`` steps only build context and
    are masked out of the loss. Consecutive sequences overlap by ``burn_in``, so every row after
    the first ``burn_in`` is in the loss exactly once. ``target`` is (rows,) or (rows, n_targets).
    Returns (x, y, mask) with shapes (n, length, n_features), (n, length[, n_targets]), (n, length):
    the mask says which steps are scored; a NaN target (zeroed in y) is left out by the loss.
    """
    if len(rows) < length:
        raise ValueError(f"{len(rows)} training rows are fewer than one sequence of {length}")
    stride = length - burn_in
    starts = list(range(rows.start, rows.stop - length + 1, stride))
    if starts[-1] + length < rows.stop:
        starts.append(rows.stop - length)  # the tail, aligned to the end
    x = np.stack([features[s : s + length] for s in starts])
    y = np.stack([target[s : s + length] for s in starts])
    mask = np.ones(y.shape[:2], dtype=bool)
    mask[:, :burn_in] = False
    if len(starts) > 1:
        # Steps of the tail sequence already counted by the one before it.
        already = (starts[-2] + length) - starts[-1]
        mask[-1, : max(burn_in, already)] = False
    return x, y, mask
