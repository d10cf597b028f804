"""The strategy's whole per-bar forecast as one compiled call: features, scaling, LSTM step, outputs."""

from __future__ import annotations

from numba import njit

from models.kernels.features import update_features
from models.kernels.lstm import lstm_step


@njit(cache=True, error_model="numpy")
def predict_bar(close_time_ns, high, low, close, volume, index, coefficients, state, row, scaler,
                 params, xh, c, z, y, target_scale, out) -> bool:
    """OnlinePredictor.update as one compiled call: features, scaling, LSTM step, outputs.

    The features' arrays (models.features), then ``scaler`` (2, n_features: mean, std), the
    StreamingLSTM's arrays (models.network), the target scale and ``out`` (n_outputs, float64).
    False during the features' warm-up, when nothing else runs.
    """
    if not update_features(index, coefficients, state, row, close_time_ns, high, low, close, volume):
        return False
    for i in range(row.size):  # Scaler.transform in float64, then float32 as the batch path feeds torch
        xh[i] = (row[i] - scaler[0, i]) / scaler[1, i]
    lstm_step(params, xh, c, z, y)
    for i in range(y.size):  # back to log returns, in float64 as batch_predict
        out[i] = float(y[i]) * target_scale
    return True
