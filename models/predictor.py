"""Predictions from an artifact, the two ways: offline over a DataFrame, online bar by bar.

Both run the same steps: features (models.features) → the artifact's scaler → the LSTM from a
zero state at the first bar whose features are defined → scaled back to a log return. The
online path is what the strategy calls on every bar; tests hold the two to 1e-5 on real bars.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.artifact import Artifact
from models.dataset import build_dataset
from models.features import OnlineFeatures
from models.network import StreamingLSTM
from models.train import predict_series


def batch_predict(artifact: Artifact, bars: pd.DataFrame) -> pd.DataFrame:
    """One row per bar after the features' warm-up: the point forecast and any quantiles."""
    data = build_dataset(bars, artifact.feature_spec, artifact.config.training.horizon)
    outputs = predict_series(artifact.model, artifact.scaler.transform(data.features)) * artifact.target_scale
    return pd.DataFrame(outputs, index=data.index, columns=output_columns(artifact))


def output_columns(artifact: Artifact) -> list[str]:
    return [f"q{q:g}" for q in artifact.lstm.quantiles] or ["prediction"]


class OnlinePredictor:
    """Bar-by-bar forecasts with carried state: O(1) work per bar, no pandas."""

    def __init__(self, artifact: Artifact):
        self.features = OnlineFeatures(artifact.feature_spec)
        self.network = StreamingLSTM(artifact.model)
        self.point_index = artifact.lstm.point_index
        self._mean = artifact.scaler.mean.astype(np.float32)
        self._inv_std = (1.0 / artifact.scaler.std).astype(np.float32)
        self._target_scale = artifact.target_scale
        self._scaled = np.empty(len(self._mean), dtype=np.float32)

    @property
    def warmup_bars(self) -> int:
        return self.features.warmup_bars

    def reset(self) -> None:
        self.features.reset()
        self.network.reset()

    def update(self, close_time_ns: int, open_: float, high: float, low: float, close: float, volume: float) -> np.ndarray | None:
        """Feed one closed bar; returns all outputs as log returns (None during warm-up)."""
        row = self.features.update(close_time_ns, open_, high, low, close, volume)
        if row is None:
            return None
        np.subtract(row, self._mean, out=self._scaled, casting="unsafe")
        self._scaled *= self._inv_std
        outputs = self.network.step(self._scaled)
        return outputs * self._target_scale

    def get_state(self) -> dict:
        """Everything fed so far (features and the LSTM's h and c), as JSON-able values."""
        h, c = self.network.state
        return {"features": self.features.get_state(), "h": h.tolist(), "c": c.tolist()}

    def set_state(self, state: dict) -> None:
        """Continue from ``get_state()`` of a predictor of the same artifact."""
        self.features.set_state(state["features"])
        self.network.state = (np.asarray(state["h"]), np.asarray(state["c"]))


class OnlineRidge:
    """The artifact's ridge baseline on the same online features: a benchmark for the LSTM."""

    point_index = 0

    def __init__(self, artifact: Artifact):
        self.features = OnlineFeatures(artifact.feature_spec)
        self._coef = np.asarray(artifact.ridge["coef"], dtype=np.float64)
        self._intercept = float(artifact.ridge["intercept"])

    @property
    def warmup_bars(self) -> int:
        return self.features.warmup_bars

    def reset(self) -> None:
        self.features.reset()

    def update(self, close_time_ns: int, open_: float, high: float, low: float, close: float, volume: float) -> np.ndarray | None:
        row = self.features.update(close_time_ns, open_, high, low, close, volume)
        if row is None:
            return None
        return np.array([row @ self._coef + self._intercept])

    def get_state(self) -> dict:
        return {"features": self.features.get_state()}

    def set_state(self, state: dict) -> None:
        self.features.set_state(state["features"])
