"""The strategy's whole per-bar forecast as one compiled call: features, scaling, network step, decoding."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from models.heads import SQRT_2_OVER_PI
from models.kernels.features import update_features
from models.kernels.hybrids import alstm_step, cnn_lstm_step
from models.kernels.lstm import lstm_step


@njit(cache=True, error_model="numpy")
def decode_bar(y, row, heads, out) -> None:
    """``models.heads.decode`` for one bar: the network's outputs ``y`` to forecasts in ``out``.

    ``heads`` (float64): return kind (models.heads.RETURN_KINDS), return outputs, volatility head
    (0/1), return scale, volatility mean and std, the column of sigma_t's feature in ``row`` (-1:
    unused), sqrt(horizon), the return floor. Float64 throughout, as the batch path (numba's float()
    of a float32 stays float32, hence np.float64).
    """
    kind, n_return, has_volatility = int(heads[0]), int(heads[1]), heads[2] > 0
    return_scale, volatility_mean, volatility_std = heads[3], heads[4], heads[5]
    sigma = math.nan
    if heads[6] >= 0:
        sigma = max(row[int(heads[6])] * heads[7], heads[8] * heads[7])
    volatility = math.nan
    if has_volatility:
        volatility = math.exp(np.float64(y[y.size - 1]) * volatility_std + volatility_mean)
        out[out.size - 1] = volatility
    if kind == 0:
        for i in range(n_return):
            out[i] = np.float64(y[i]) * return_scale
    elif kind == 1:
        for i in range(n_return):
            out[i] = np.float64(y[i]) * return_scale * sigma
    elif kind == 2:
        p_up = 1.0 / (1.0 + math.exp(-np.float64(y[0])))
        out[0] = p_up
        out[1] = (2.0 * p_up - 1.0) * SQRT_2_OVER_PI * (volatility if has_volatility else sigma)


@njit(cache=True, error_model="numpy")
def scaled_features(close_time_ns, high, low, close, volume, index, coefficients, state, row, scaler, x) -> bool:
    """The bar's features (models.features' arrays) scaled into the network's input ``x``; False
    during the features' warm-up. ``scaler`` (2, n_features): mean, std."""
    if not update_features(index, coefficients, state, row, close_time_ns, high, low, close, volume):
        return False
    for i in range(row.size):  # Scaler.transform in float64, then float32 as the batch path feeds torch
        x[i] = (row[i] - scaler[0, i]) / scaler[1, i]
    return True


# OnlinePredictor.update as one compiled call per architecture: features, scaling, network step,
# decoding. Each takes the bar, the features' arrays, ``scaler``, the streaming network's arrays
# (models.kernels.lstm, models.kernels.hybrids), ``heads`` (see decode_bar) and ``out`` (the
# decoded outputs, float64); False during the features' warm-up, when nothing else runs.


@njit(cache=True, error_model="numpy")
def predict_bar(close_time_ns, high, low, close, volume, index, coefficients, state, row, scaler,
                params, xh, c, z, y, n_quantiles, heads, out) -> bool:
    if not scaled_features(close_time_ns, high, low, close, volume, index, coefficients, state, row, scaler, xh):
        return False
    lstm_step(params, xh, c, z, y, n_quantiles)
    decode_bar(y, row, heads, out)
    return True


@njit(cache=True, error_model="numpy")
def predict_bar_alstm(close_time_ns, high, low, close, volume, index, coefficients, state, row, scaler,
                      params, xh, c, z, y, n_quantiles, attention, outputs, scores, ring, reads, heads, out) -> bool:
    if not scaled_features(close_time_ns, high, low, close, volume, index, coefficients, state, row, scaler, xh):
        return False
    alstm_step(params, xh, c, z, y, n_quantiles, attention, outputs, scores, ring, reads)
    decode_bar(y, row, heads, out)
    return True


@njit(cache=True, error_model="numpy")
def predict_bar_cnn_lstm(close_time_ns, high, low, close, volume, index, coefficients, state, row, scaler,
                         params, xh, c, z, y, n_quantiles, conv, rows, heads, out) -> bool:
    if not scaled_features(close_time_ns, high, low, close, volume, index, coefficients, state, row, scaler,
                           rows[rows.shape[0] - 1]):
        return False
    cnn_lstm_step(params, xh, c, z, y, n_quantiles, conv, rows)
    decode_bar(y, row, heads, out)
    return True


PREDICT_BAR = {"lstm": predict_bar, "alstm": predict_bar_alstm, "cnn_lstm": predict_bar_cnn_lstm}
