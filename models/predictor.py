"""Predictions from an artifact, the two ways: offline over a DataFrame, online bar by bar.

Both run the same steps: features (models.features) → the artifact's scaler → the LSTM from a
zero state at the first bar whose features are defined → decoded into forecasts
(models.heads: log returns, direction odds, volatility). The online path is what the strategy
calls on every bar; tests hold the two to 1e-5 on real bars, in the network's own units.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.artifact import Artifact
from models.dataset import build_dataset
from models.heads import (
    decoded_point_index,
    decoded_volatility_index,
    forecast_rows,
    kernel_heads,
    output_names,
)
from models.kernels.features import OnlineFeatures
from models.kernels.hybrids import streaming_network
from models.kernels.predict import PREDICT_BAR


def batch_predict(artifact: Artifact, bars: pd.DataFrame) -> pd.DataFrame:
    """One row per bar after the features' warm-up: the decoded forecasts (``output_columns``)."""
    data = build_dataset(bars, artifact.feature_spec, artifact.config.training.horizon)
    outputs = forecast_rows(artifact.model, artifact.scaler, artifact.scales, data)
    return pd.DataFrame(outputs, index=data.index, columns=output_columns(artifact))


def output_columns(artifact: Artifact, forecaster: str = "lstm") -> list[str]:
    """What a forecaster of the artifact outputs per bar: the LSTM's (models.heads.output_names),
    the ridge baseline's point forecast."""
    return output_names(artifact.lstm) if forecaster == "lstm" else ["prediction"]


class OnlinePredictor:
    """Bar-by-bar forecasts with carried state: O(1) work per bar, one compiled call, no pandas.

    ``features`` and ``network`` (the artifact's architecture's streaming network) hold the
    state (reset, get_state/set_state, state); ``update`` runs their kernels together in the
    architecture's ``predict_bar``. Construction compiles it (or loads it from numba's cache) so
    the first bar is fast.
    """

    def __init__(self, artifact: Artifact):
        self.features = OnlineFeatures(artifact.feature_spec)
        self.network = streaming_network(artifact.model)
        self._predict_bar = PREDICT_BAR[artifact.lstm.architecture]
        self.point_index = decoded_point_index(artifact.lstm)
        self.volatility_index = decoded_volatility_index(artifact.lstm)
        scaler = np.stack([artifact.scaler.mean, artifact.scaler.std]).astype(np.float64)
        heads = kernel_heads(artifact.lstm, artifact.scales, artifact.feature_spec, artifact.config.training.horizon)
        self._out = np.zeros(len(output_names(artifact.lstm)))
        # Everything predict_bar takes after the bar, bound once: no attribute lookups per bar.
        self._arrays = (*self.features._kernel_arrays, scaler, *self.network._kernel_arrays, heads, self._out)
        self._predict_bar(0, 1.0, 1.0, 1.0, 1.0, *(a.copy() if isinstance(a, np.ndarray) else a for a in self._arrays))

    @property
    def warmup_bars(self) -> int:
        return self.features.warmup_bars

    def reset(self) -> None:
        self.features.reset()
        self.network.reset()

    def update(self, close_time_ns: int, high: float, low: float, close: float, volume: float) -> np.ndarray | None:
        """Feed one closed bar; returns the decoded outputs (``output_columns``; None during warm-up)."""
        if self._predict_bar(close_time_ns, high, low, close, volume, *self._arrays):
            return self._out.copy()
        return None

    def get_state(self) -> dict:
        """Everything fed so far (features; the network's h, c and a hybrid's past), as JSON-able values."""
        network = {name: value.tolist() for name, value in zip(self.network.state_names, self.network.state)}
        return {"features": self.features.get_state(), **network}

    def set_state(self, state: dict) -> None:
        """Continue from ``get_state()`` of a predictor of the same artifact."""
        self.features.set_state(state["features"])
        self.network.state = tuple(np.asarray(state[name]) for name in self.network.state_names)


class OnlineRidge:
    """The artifact's ridge baseline on the same online features: a benchmark for the LSTM."""

    point_index = 0
    volatility_index = None

    def __init__(self, artifact: Artifact):
        self.features = OnlineFeatures(artifact.feature_spec)
        self._coef = np.asarray(artifact.ridge["coef"], dtype=np.float64)
        self._intercept = float(artifact.ridge["intercept"])

    @property
    def warmup_bars(self) -> int:
        return self.features.warmup_bars

    def reset(self) -> None:
        self.features.reset()

    def update(self, close_time_ns: int, high: float, low: float, close: float, volume: float) -> np.ndarray | None:
        row = self.features.update(close_time_ns, high, low, close, volume)
        if row is None:
            return None
        return np.array([row @ self._coef + self._intercept])

    def get_state(self) -> dict:
        return {"features": self.features.get_state()}

    def set_state(self, state: dict) -> None:
        self.features.set_state(state["features"])
