"""Predictions from an artifact, the two ways: offline over a DataFrame, online bar by bar.

Both run the same steps: features (models.features) → the artifact's scaler → the LSTM from a
zero state at the first bar whose features are defined → decoded into forecasts
(models.heads: log returns, direction odds, volatility). The online path is what the strategy
calls on every bar; tests hold the two to 1e-5 on real bars, in the network's own units.

The artifact's benchmarks (``FORECASTERS``' others: the ridge and LightGBM fitted on the same
rows) forecast the h-bar log return from the same feature row, unscaled: offline with
``batch_predict(..., forecaster=)``, online with OnlineRidge and OnlineLightGBM; tests hold the
two paths to float64 rounding.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from lightgbm.basic import _safe_call

from models.artifact import Artifact, ArtifactError
from models.dataset import build_dataset
from models.heads import (
    decoded_point_index,
    decoded_volatility_index,
    forecast_rows,
    kernel_heads,
    output_names,
)
from models.kernels import aligned, entry_point
from models.kernels.features import OnlineFeatures
from models.kernels.hybrids import streaming_network
from models.kernels.predict import PREDICT_BAR
from models.kernels.trees import SingleRowBooster, predict_bar_lightgbm
from models.pooling import with_cross_returns


def batch_predict(artifact: Artifact, bars: pd.DataFrame, bar_type: str | None = None,
                  others: dict[str, pd.DataFrame] | None = None, forecaster: str = "lstm") -> pd.DataFrame:
    """One row per bar after the features' warm-up: the forecasts (``output_columns``) of
    ``forecaster``. The LSTM's, decoded, for the instrument of ``bar_type`` (None: the artifact's
    only one), with its scaling and one-hot; ``others``: the other instruments' bars by bar type,
    which cross-asset features need. A benchmark's from the bars' own features alone, whatever
    the instrument (as train fitted it)."""
    data = build_dataset(bars, artifact.feature_spec, artifact.config.training.horizon)
    if forecaster != "lstm":
        own = data.features[:, : len(artifact.feature_spec.columns)]
        if forecaster == "ridge":  # RidgeForecast.predict
            forecast = own @ np.asarray(artifact.ridge["coef"]) + artifact.ridge["intercept"]
        else:
            forecast = artifact.lightgbm.predict(own, num_threads=1)
        return pd.DataFrame({"prediction": forecast}, index=data.index)
    scaling = artifact.scaling(bar_type)
    if artifact.config.data.cross_asset:
        data = with_cross_returns(data, artifact.bar_types, artifact.instrument(bar_type).bar_type, others or {})
    outputs = forecast_rows(artifact.model, scaling.scaler, scaling.scales, data, one_hot=scaling.one_hot)
    return pd.DataFrame(outputs, index=data.index, columns=output_columns(artifact))


def output_columns(artifact: Artifact, forecaster: str = "lstm") -> list[str]:
    """What a forecaster of the artifact outputs per bar: the LSTM's (models.heads.output_names),
    a benchmark's (ridge, LightGBM) point forecast."""
    return output_names(artifact.lstm) if forecaster == "lstm" else ["prediction"]


def check_one_instrument_inputs(artifact: Artifact) -> None:
    """An error unless the artifact forecasts from one instrument's bars alone (no cross-asset features)."""
    if artifact.config.data.cross_asset:
        raise ArtifactError(
            f"the model of {', '.join(artifact.bar_types)} uses cross-asset features ([data] cross_asset): it needs "
            "every instrument's bar of a close time before it steps, which this caller does not feed; trade it with "
            "all its instruments in one backtest (backtests.pooled: its strategies share a strategies.cross_barrier), "
            "or retrain without cross_asset"
        )


class OnlineForecasts:
    """What every bar-by-bar forecaster shares: ``forecast`` (a subclass's) fills ``out`` and says
    whether there is a forecast; ``update`` returns it as a new list; ``features`` sets the warm-up."""

    def update(self, close_time_ns: int, high: float, low: float, close: float, volume: float) -> list[float] | None:
        """``forecast``, returning the decoded outputs as a new list (None during warm-up)."""
        return self.out.tolist() if self.forecast(close_time_ns, high, low, close, volume) else None

    @property
    def warmup_bars(self) -> int:
        return self.features.warmup_bars


class OnlinePredictor(OnlineForecasts):
    """Bar-by-bar forecasts with carried state: O(1) work per bar, one compiled call, no pandas.

    ``features`` and ``network`` (the artifact's architecture's streaming network) hold the
    state (reset, get_state/set_state, state); ``forecast`` runs their kernels together in the
    architecture's ``predict_bar``. Construction compiles it (or loads it from numba's cache) so
    the first bar is fast. ``bar_type``: which of the artifact's instruments (None: its only
    one); its scaler, target scales and one-hot are used. ``cross_asset``: the caller writes a
    cross-asset model's columns (``set_cross``) before every ``forecast``; without it such a model is refused.
    """

    def __init__(self, artifact: Artifact, bar_type: str | None = None, cross_asset: bool = False):
        if not cross_asset:
            check_one_instrument_inputs(artifact)
        scaling = artifact.scaling(bar_type)
        self.features = OnlineFeatures(artifact.feature_spec)
        self.network = streaming_network(artifact.model)
        # The network's input is [scaled own features, scaled cross-asset columns, one-hot]:
        # predict_bar writes the own features each bar, set_cross the cross-asset ones, and the
        # one-hot, constant, is written once at the end (and again after a reset).
        own = len(artifact.feature_spec.columns)
        self._cross = slice(own, len(scaling.scaler.mean))
        self._cross_scaler = (scaling.scaler.mean[self._cross], scaling.scaler.std[self._cross])
        self._one_hot = (slice(len(scaling.scaler.mean), None), scaling.one_hot)
        self._write_one_hot()
        self.point_index = decoded_point_index(artifact.lstm)
        self.volatility_index = decoded_volatility_index(artifact.lstm)
        scaler = aligned(np.stack([scaling.scaler.mean, scaling.scaler.std]).astype(np.float64))
        heads = aligned(kernel_heads(artifact.lstm, scaling.scales, artifact.feature_spec, artifact.config.training.horizon))
        self.out = aligned(np.zeros(len(output_names(artifact.lstm))))  # the latest bar's decoded outputs
        # Everything predict_bar takes after the bar, bound once: no attribute lookups per bar.
        self._arrays = (*self.features._kernel_arrays, scaler, *self.network._kernel_arrays, heads, self.out)
        # Compiled (or loaded from numba's cache) now, so the first bar is fast; called past the dispatcher.
        self._predict_bar = entry_point(PREDICT_BAR[artifact.lstm.architecture], 0, 1.0, 1.0, 1.0, 1.0, *self._arrays)

    def reset(self) -> None:
        self.features.reset()
        self.network.reset()
        self._write_one_hot()  # a cnn_lstm's reset zeroes its input rows

    def _write_one_hot(self) -> None:
        at, one_hot = self._one_hot
        self.network._x[at] = one_hot

    def forecast(self, close_time_ns: int, high: float, low: float, close: float, volume: float) -> bool:
        """Feed one closed bar; whether it has a forecast (False during warm-up), its decoded outputs
        (``output_columns``) then in ``out``: what the strategy's per-bar path reads."""
        return self._predict_bar(close_time_ns, high, low, close, volume, *self._arrays)

    def set_cross(self, row: np.ndarray) -> None:
        """The cross-asset columns of the next bar (``models.pooling.CrossReturns.row``), before its ``forecast``."""
        mean, std = self._cross_scaler
        self.network._x[self._cross] = (row - mean) / std

    def get_state(self) -> dict:
        """Everything fed so far (features; the network's h, c and a hybrid's past), as JSON-able values."""
        network = {name: value.tolist() for name, value in zip(self.network.state_names, self.network.state)}
        return {"features": self.features.get_state(), **network}

    def set_state(self, state: dict) -> None:
        """Continue from ``get_state()`` of a predictor of the same artifact."""
        self.features.set_state(state["features"])
        self.network.state = tuple(np.asarray(state[name]) for name in self.network.state_names)


class OnlineBenchmark(OnlineForecasts):
    """A benchmark of the artifact (ridge, LightGBM) on the same online features as the LSTM: its
    point forecast of the h-bar log return, no volatility; its state is the features'."""

    point_index = 0
    volatility_index = None

    def __init__(self, artifact: Artifact):
        self.features = OnlineFeatures(artifact.feature_spec)
        self.out = np.zeros(1)  # the latest bar's forecast

    def reset(self) -> None:
        self.features.reset()

    def get_state(self) -> dict:
        return {"features": self.features.get_state()}

    def set_state(self, state: dict) -> None:
        self.features.set_state(state["features"])


class OnlineRidge(OnlineBenchmark):
    """The artifact's ridge baseline."""

    def __init__(self, artifact: Artifact):
        super().__init__(artifact)
        self._coef = np.asarray(artifact.ridge["coef"], dtype=np.float64)
        self._intercept = float(artifact.ridge["intercept"])

    def forecast(self, close_time_ns: int, high: float, low: float, close: float, volume: float) -> bool:
        row = self.features.update(close_time_ns, high, low, close, volume)
        if row is None:
            return False
        self.out[0] = row @ self._coef + self._intercept
        return True


class OnlineLightGBM(OnlineBenchmark):
    """The artifact's LightGBM baseline: the feature update and the booster's fast single-row
    prediction in one compiled call (models.kernels.trees)."""

    def __init__(self, artifact: Artifact):
        super().__init__(artifact)
        self._booster = SingleRowBooster(artifact.lightgbm, len(artifact.feature_spec.columns))
        self._arrays = (*self.features._kernel_arrays, self._booster.fast_config, np.zeros(1, dtype=np.int64), self.out)
        # Compiled (or loaded from numba's cache) now, so the first bar is fast; called past the dispatcher.
        self._predict_bar = entry_point(predict_bar_lightgbm, 0, 1.0, 1.0, 1.0, 1.0, *self._arrays)

    def forecast(self, close_time_ns: int, high: float, low: float, close: float, volume: float) -> bool:
        status = self._predict_bar(close_time_ns, high, low, close, volume, *self._arrays)
        if status > 0:
            _safe_call(status)  # raises LightGBM's last error
        return status == 0


OnlineForecaster = OnlinePredictor | OnlineRidge | OnlineLightGBM


def online_forecaster(artifact: Artifact, forecaster: str = "lstm", bar_type: str | None = None,
                      cross_asset: bool = False) -> OnlineForecaster:
    """The online predictor of ``forecaster`` (strategies.config.FORECASTERS) for the instrument of
    ``bar_type``; ``cross_asset``: OnlinePredictor's (the benchmarks see their own features only)."""
    if forecaster == "lstm":
        return OnlinePredictor(artifact, bar_type, cross_asset)
    return OnlineRidge(artifact) if forecaster == "ridge" else OnlineLightGBM(artifact)
