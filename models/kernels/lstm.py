"""The LSTM advanced one bar at a time: the per-bar kernel behind the strategy's forecasts.

:class:`StreamingLSTM` packs a trained ``models.network.LSTMForecaster``'s weights into one
float32 vector and steps it with :func:`lstm_step`, one numba-compiled call per bar carrying
(h, c). It computes ``LSTMForecaster.forward``'s recurrence, to float32 rounding. Its parts,
``lstm_layers`` and ``head_outputs``, also step the hybrids (models.kernels.hybrids).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit

from models.kernels import aligned
from models.network import LSTMForecaster

# Rational approximation of tanh in float32 (the coefficients of Eigen's and ONNX Runtime's
# vectorized tanh): |error| < 4e-7 against the exact tanh (3.4e-7 measured; tests/models/test_network.py),
# exactly +-1 past the clamp. Plain arithmetic, so the gate loops vectorize (256 values in ~25 ns);
# a loop over libm's tanhf does not (~650 ns), and numba cannot call NumPy's SIMD tanh.
_TANH_CLAMP = np.float32(7.90531110763549805)
_TANH_P = tuple(np.float32(v) for v in (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11,
                                        5.12229709037114e-08, 1.48572235717979e-05, 6.37261928875436e-04,
                                        4.89352455891786e-03))
_TANH_Q = tuple(np.float32(v) for v in (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03,
                                        4.89352518554385e-03))
_HALF = np.float32(0.5)


@njit(cache=True, error_model="numpy")
def tanh32(x):
    x = _TANH_CLAMP if x > _TANH_CLAMP else x
    x = -_TANH_CLAMP if x < -_TANH_CLAMP else x
    x2 = x * x
    p = _TANH_P[0]
    for a in _TANH_P[1:]:
        p = p * x2 + a
    q = _TANH_Q[0]
    for b in _TANH_Q[1:]:
        q = q * x2 + b
    return x * p / q


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _affine(wt, x, b, out):
    """out = W @ x + b, with W (len(out), len(x)) given transposed, flattened row-major in ``wt``.

    Four columns at a time (out += x[i] * W[:, i] + ... + x[i+3] * W[:, i+3]): each output still
    sums its terms in order, so the loop over the outputs vectorizes without reordering any sum
    (only ``contract``: each multiply-add one fused instruction, rounded once). A column at a time
    loads and stores ``out`` for every column; four at a time does so a quarter as often.
    """
    n, m = out.size, x.size
    for j in range(n):
        out[j] = b[j]
    i = 0
    while i + 4 <= m:
        x0, x1, x2, x3 = x[i], x[i + 1], x[i + 2], x[i + 3]
        c0, c1, c2, c3 = i * n, (i + 1) * n, (i + 2) * n, (i + 3) * n  # indexing wt directly: a slice costs ~8 ns
        for j in range(n):
            out[j] = out[j] + wt[c0 + j] * x0 + wt[c1 + j] * x1 + wt[c2 + j] * x2 + wt[c3 + j] * x3
        i += 4
    for i in range(i, m):
        xi, column = x[i], i * n
        for j in range(n):
            out[j] += wt[column + j] * xi


@njit(cache=True, error_model="numpy")
def lstm_layers(params, xh, c, z):
    """One step of every LSTM layer, in place; returns where the LSTM's part of ``params`` ends.

    ``params``: per layer W (4H x (inputs + H), stored transposed) and b (4H), the gates ordered
    i, f, o, g and the sigmoid gates' rows halved. ``xh``: [x, h_0, h_1, ...], so layer l reads
    [h_(l-1), h_l] as one slice; ``c`` (layers, H); ``z`` (4H) scratch.
    """
    layers, hid = c.shape
    n_in = xh.size - layers * hid
    at = 0
    for layer in range(layers):
        inputs = xh[0 if layer == 0 else n_in + (layer - 1) * hid : n_in + (layer + 1) * hid]
        size = 4 * hid * inputs.size
        _affine(params[at : at + size], inputs, params[at + size : at + size + 4 * hid], z)
        at += size + 4 * hid
        for j in range(4 * hid):
            z[j] = tanh32(z[j])
        h, cl = xh[n_in + layer * hid : n_in + (layer + 1) * hid], c[layer]
        for j in range(hid):
            # sigmoid(v) = (1 + tanh(v / 2)) / 2, the halving being in the weights.
            i, f, o = _HALF + _HALF * z[j], _HALF + _HALF * z[hid + j], _HALF + _HALF * z[2 * hid + j]
            cl[j] = f * cl[j] + i * z[3 * hid + j]
            h[j] = o * tanh32(cl[j])
    return at


@njit(cache=True, error_model="numpy")
def head_outputs(params, inputs, y, n_quantiles):
    """The head: ``y`` = W @ inputs + b (``params``: W transposed, then b), the first
    ``n_quantiles`` outputs made a quantile head's (LSTMForecaster.outputs)."""
    n_out = y.size
    _affine(params[: n_out * inputs.size], inputs, params[n_out * inputs.size :], y)
    # Quantile head: the lowest quantile, then softplus gaps summed up.
    for j in range(1, n_quantiles):
        v = float(y[j])
        y[j] = y[j - 1] + (max(v, 0.0) + math.log1p(math.exp(-abs(v))))


@njit(cache=True, error_model="numpy")
def lstm_step(params, xh, c, z, y, n_quantiles):
    """One step of every layer and the head, in place: ``lstm_layers``' arrays, then the head's
    W (n_outputs x H, transposed) and b at the end of ``params``, ``y`` (n_outputs) its outputs."""
    at = lstm_layers(params, xh, c, z)
    head_outputs(params[at:], xh[xh.size - c.shape[1] :], y, n_quantiles)


class StreamingLSTM:
    """Advances a trained LSTMForecaster one bar at a time, carrying (h, c) between calls.

    One numba-compiled call per step on preallocated float32 arrays, chosen by measurement
    (scripts/bench_step.py; median µs per step, 2 layers, hidden 64, 20 features, real bars, one
    thread, 2-core AMD EPYC): 2.6 here, 10.2 for the NumPy float32 step it replaced (one np.dot
    per layer; every NumPy call costs about a microsecond of dispatch); earlier, with 16 features,
    torch ops on preallocated tensors took 19, torch.lstm_cell 27, a one-step nn.LSTM call 114.
    What bounds it now is reading the 216 KB of weights from L2 each step, not the arithmetic.
    Float32 matches the torch model to ~1e-7. OnlinePredictor runs ``kernel`` on these same
    arrays (``_kernel_arrays``) from its own kernel.

    The hybrids (models.kernels.hybrids) extend it: their kernel takes lstm_step's arrays and
    then their own (``_hybrid_arrays``), and their state adds what they carry of the past.
    """

    kernel = staticmethod(lstm_step)
    state_names = ("h", "c")  # the names of ``state``'s arrays (OnlinePredictor.get_state's keys)

    def __init__(self, model: LSTMForecaster):
        cfg = model.config
        n_in, hid, layers = model.lstm.input_size, cfg.hidden_size, cfg.num_layers
        self.config = cfg
        # One buffer [x, h_0, h_1, ...]: layer l reads its input and its own previous h as the
        # contiguous slice [h_(l-1), h_l], so the step never concatenates or copies vectors.
        self._xh = aligned(np.zeros(n_in + layers * hid, np.float32))
        self._x = self._xh[:n_in]  # where a bar's features go (a hybrid may put them elsewhere)
        self._h = self._xh[n_in:].reshape(layers, hid)
        self._c = aligned(np.zeros((layers, hid), np.float32))
        self._z = aligned(np.zeros(4 * hid, np.float32))
        # PyTorch orders the gates i, f, g, o; put g last so the three sigmoid gates are one
        # slice, and halve their rows: sigmoid(z) = (1 + tanh(z / 2)) / 2, so tanh serves all.
        order = torch.cat([torch.arange(0, 2 * hid), torch.arange(3 * hid, 4 * hid), torch.arange(2 * hid, 3 * hid)])
        scale = torch.ones(4 * hid, 1)
        scale[: 3 * hid] = 0.5
        parts = []
        with torch.no_grad():
            lstm = model.lstm
            for layer in range(layers):
                w = torch.cat([getattr(lstm, f"weight_ih_l{layer}"), getattr(lstm, f"weight_hh_l{layer}")], dim=1)
                b = getattr(lstm, f"bias_ih_l{layer}") + getattr(lstm, f"bias_hh_l{layer}")
                parts += [(w[order] * scale).T, b[order] * scale[:, 0]]
            parts += [model.head.weight.T, model.head.bias]
        self._params = packed(parts)
        self._y = aligned(np.zeros(cfg.n_outputs, np.float32))
        self._y_out = self._y.view()
        self._y_out.flags.writeable = False
        n_quantiles = len(cfg.quantiles) if cfg.return_target != "none" else 0
        with torch.no_grad():
            hybrid = self._hybrid_arrays(model)
        # What the kernel takes (OnlinePredictor calls it from its kernel).
        self._kernel_arrays = (self._params, self._xh, self._c, self._z, self._y, n_quantiles, *hybrid)
        # Compile now (or load numba's cache) on throwaway state, not on the first bar.
        self.kernel(*(a.copy() if isinstance(a, np.ndarray) else a for a in self._kernel_arrays))

    def _hybrid_arrays(self, model: LSTMForecaster) -> tuple[np.ndarray, ...]:
        """A hybrid's weights and state, the kernel's arguments after lstm_step's."""
        return ()

    def step(self, x: np.ndarray) -> np.ndarray:
        """Feed one bar's features (n_features,); return its prediction (n_outputs,).

        The returned array is a read-only view that the next step overwrites: copy it to keep it.
        """
        if x.shape != self._x.shape:
            raise ValueError(f"expected features of shape {self._x.shape}, got {x.shape}")
        self._x[:] = x
        self.kernel(*self._kernel_arrays)
        return self._y_out

    def reset(self) -> None:
        """Back to zero state, as at the start of a batch prediction."""
        self._h[:] = 0.0
        self._c[:] = 0.0

    @property
    def state(self) -> tuple[np.ndarray, ...]:
        """Copies of (h, c), each (num_layers, hidden_size), and a hybrid's past: forward's state
        for one sequence (``state_names``)."""
        return self._h.copy(), self._c.copy(), *self._past()

    @state.setter
    def state(self, value: tuple[np.ndarray, ...]) -> None:
        if len(value) != len(self.state_names):
            raise ValueError(f"expected the state {self.state_names}, got {len(value)} arrays")
        h, c, *past = (np.asarray(v, np.float32) for v in value)
        if h.shape != self._h.shape or c.shape != self._c.shape:
            raise ValueError(f"expected h and c of shape {self._h.shape}, got {h.shape} and {c.shape}")
        self._set_past(*past)  # checks its own shapes before anything changes
        self._h[:] = h
        self._c[:] = c

    def _past(self) -> tuple[np.ndarray, ...]:
        return ()

    def _set_past(self) -> None:
        pass


def packed(parts: list[torch.Tensor]) -> np.ndarray:
    """Tensors flattened row-major into one float32 vector, in order: what the kernels read."""
    return aligned(np.concatenate([_to_numpy(p).ravel() for p in parts]))


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)
