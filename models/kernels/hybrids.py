"""The hybrids advanced one bar at a time: ``alstm`` and ``cnn_lstm`` (models.network).

Each is StreamingLSTM (models.kernels.lstm) with the hybrid's part around the same LSTM layers
and head (``lstm_layers``, ``head_outputs``): one numba-compiled call per bar, float32, carrying
what forward's state carries, so it equals the batch pass to float32 rounding
(tests/models/test_hybrids.py).

- alstm keeps the top layer's last ``attention_window`` outputs in a ring, each with its
  attention score, computed once when the output is made: a step scores one new output and
  reads the window, O(k H) on top of the LSTM's step.
- cnn_lstm keeps the last ``conv_kernel`` feature rows; the convolution is one affine map of
  them, then ReLU, into the LSTM's input.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from models.kernels import aligned
from models.kernels.lstm import StreamingLSTM, _affine, head_outputs, lstm_layers, lstm_step, packed, tanh32
from models.network import LSTMForecaster


@njit(cache=True, error_model="numpy")
def attention_score(attention, h, z):
    """qlib's att_net for one output ``h``: v . tanh(W h + b). ``attention``: W (A x H, stored
    transposed), b (A), v (A); ``z`` scratch of at least A."""
    width = attention.size // (h.size + 2)
    u = z[:width]
    _affine(attention[: h.size * width], h, attention[h.size * width : (h.size + 1) * width], u)
    for j in range(width):  # a loop of its own vectorizes; tanh32 inside the sum would not
        u[j] = tanh32(u[j])
    v = attention[(h.size + 1) * width :]
    score = np.float32(0.0)
    for j in range(width):
        score += v[j] * u[j]
    return score


@njit(cache=True, error_model="numpy")
def alstm_step(params, xh, c, z, y, n_quantiles, attention, outputs, scores, ring, reads):
    """lstm_step with attention: the head reads ``reads`` = [h_t, context].

    ``outputs`` (k, H) and ``scores`` (k): the top layer's last outputs and their scores, a ring
    whose slots [0, ring[0]) are filled, ring[1] the next one written (slot 0 after a reset).
    The context is the softmax-weighted sum of the filled slots: h_(t-k+1..t), fewer at the start.
    """
    at = lstm_layers(params, xh, c, z)
    hid = c.shape[1]
    h = xh[xh.size - hid :]
    slot, k = ring[1], scores.size
    outputs[slot] = h
    scores[slot] = attention_score(attention, h, z)
    ring[0] = min(ring[0] + 1, k)
    ring[1] = (slot + 1) % k
    filled = ring[0]
    top = scores[0]
    for i in range(1, filled):
        top = max(top, scores[i])
    context = reads[hid:]
    context[:] = 0.0
    total = np.float32(0.0)
    oldest = (ring[1] - filled) % k
    for n in range(filled):  # oldest first, however the ring lies: a restored one sums alike
        i = (oldest + n) % k
        weight = np.float32(math.exp(scores[i] - top))
        total += weight
        for j in range(hid):
            context[j] += weight * outputs[i, j]
    for j in range(hid):
        context[j] /= total
    reads[:hid] = h
    head_outputs(params[at:], reads, y, n_quantiles)


@njit(cache=True, error_model="numpy")
def cnn_lstm_step(params, xh, c, z, y, n_quantiles, conv, rows):
    """lstm_step on the convolution of ``rows`` (k, n_features), the last k feature rows with this
    bar's last; then the rows move up one, so the next bar's go last. ``conv``: the convolution
    as one affine map of the k rows (C x k n_features, stored transposed), then its bias (C)."""
    channels = xh.size - c.size
    window, front = rows.reshape(rows.size), xh[:channels]
    _affine(conv[: window.size * channels], window, conv[window.size * channels :], front)
    for j in range(channels):
        front[j] = max(front[j], np.float32(0.0))
    lstm_step(params, xh, c, z, y, n_quantiles)
    width = rows.shape[1]
    for i in range(window.size - width):  # forward, so each value is read before it is overwritten
        window[i] = window[i + width]


class StreamingALSTM(StreamingLSTM):
    """StreamingLSTM with qlib's temporal attention over the top layer's last k outputs.

    Its state adds ``window``: the last k - 1 outputs, oldest first (fewer near the start), as
    forward's third state tensor for one sequence.
    """

    kernel = staticmethod(alstm_step)
    state_names = ("h", "c", "window")

    def _hybrid_arrays(self, model: LSTMForecaster) -> tuple[np.ndarray, ...]:
        hid, k = model.config.hidden_size, model.config.attention_window
        first, _, _, last = model.attention  # Linear, Dropout, Tanh, Linear(-> 1, no bias)
        self._attention = packed([first.weight.T, first.bias, last.weight[0]])
        self._outputs = aligned(np.zeros((k, hid), np.float32))
        self._scores = aligned(np.zeros(k, np.float32))
        self._ring = aligned(np.zeros(2, np.int64))  # slots filled, next slot
        self._reads = aligned(np.zeros(2 * hid, np.float32))
        return self._attention, self._outputs, self._scores, self._ring, self._reads

    def reset(self) -> None:
        super().reset()
        self._ring[:] = 0

    def _past(self) -> tuple[np.ndarray]:
        k = self._scores.size
        kept = min(int(self._ring[0]), k - 1)
        return (self._outputs[(int(self._ring[1]) - kept + np.arange(kept)) % k],)

    def _set_past(self, window: np.ndarray) -> None:
        k, hid = self._outputs.shape
        if window.size == 0:  # [] in JSON has lost its width
            window = window.reshape(0, hid)
        if window.ndim != 2 or window.shape[1] != hid or len(window) > k - 1:
            raise ValueError(f"expected a window of at most {k - 1} outputs of {hid}, got shape {window.shape}")
        self._outputs[: len(window)] = window
        for i, h in enumerate(self._outputs[: len(window)]):  # the same scores as when they were made
            self._scores[i] = attention_score(self._attention, h, self._z)
        self._ring[:] = len(window), len(window) % k


class StreamingCNNLSTM(StreamingLSTM):
    """StreamingLSTM behind a causal convolution over the last k feature rows.

    Its state adds ``rows``: the last k - 1 feature rows, oldest first (zeros before the start),
    as forward's third state tensor for one sequence.
    """

    kernel = staticmethod(cnn_lstm_step)
    state_names = ("h", "c", "rows")

    def _hybrid_arrays(self, model: LSTMForecaster) -> tuple[np.ndarray, ...]:
        k, n_features = model.config.conv_kernel, model.config.n_features
        # Conv1d's weight is (C, n_features, k); as one map of the rows flattened oldest first:
        # column j * n_features + f is weight[:, f, j].
        weight = model.conv.weight.permute(2, 1, 0).reshape(k * n_features, -1)
        self._conv = packed([weight, model.conv.bias])
        self._rows = aligned(np.zeros((k, n_features), np.float32))
        self._x = self._rows[k - 1]
        return self._conv, self._rows

    def reset(self) -> None:
        super().reset()
        self._rows[:] = 0.0

    def _past(self) -> tuple[np.ndarray]:
        return (self._rows[:-1].copy(),)

    def _set_past(self, rows: np.ndarray) -> None:
        expected = self._rows[:-1].shape
        if rows.size == 0 and expected[0] == 0:  # [] in JSON has lost its width
            rows = rows.reshape(expected)
        if rows.shape != expected:
            raise ValueError(f"expected rows of shape {expected}, got {rows.shape}")
        self._rows[:-1] = rows


STREAMING = {"lstm": StreamingLSTM, "alstm": StreamingALSTM, "cnn_lstm": StreamingCNNLSTM}


def streaming_network(model: LSTMForecaster) -> StreamingLSTM:
    """The per-bar twin of ``model``, by its architecture."""
    return STREAMING[model.config.architecture](model)
