"""The LSTM forecaster, and a lean streaming path that advances it one bar at a time.

The model is stateful. A batch prediction runs ``forward`` over a whole contiguous feature
sequence from zero state and reads the head at every step; the strategy instead steps
:class:`StreamingLSTM` bar by bar from zero state, carrying (h, c). Both compute the same
recurrence, so they agree to float32 rounding (tests/test_network.py checks thousands of steps).
Recomputing a 64-bar window per bar costs ~230 µs in eager torch; one streaming step ~3 µs
(scripts/bench_step.py).

Training feeds long contiguous sequences and leaves the first ``burn_in`` steps of each out of
the loss, so the model learns predictions that do not depend on where its state started.

The target is the forward log return. The head gives either one number (regression, MSE loss)
or one number per quantile (pinball loss). Quantiles cannot cross: the head gives the lowest
quantile and then non-negative gaps (softplus), summed cumulatively; unlike sorting, no two
outputs can swap roles during training. The point forecast is then the median quantile, so a
quantile head must include 0.5.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from numba import njit
from torch import nn


@dataclass(frozen=True)
class LSTMConfig:
    n_features: int
    hidden_size: int = 64
    num_layers: int = 2
    dropout: float = 0.1  # between LSTM layers, training only
    quantiles: tuple[float, ...] = ()  # () = regression head; e.g. (0.1, 0.5, 0.9)
    burn_in: int = 64  # leading steps of each training sequence left out of the loss
    seed: int = 0  # weight initialisation

    def __post_init__(self) -> None:
        # Accept a list (from JSON or TOML) and store a tuple, so the config stays hashable.
        object.__setattr__(self, "quantiles", tuple(float(q) for q in self.quantiles))
        if self.n_features < 1 or self.hidden_size < 1 or self.num_layers < 1:
            raise ValueError(f"n_features, hidden_size and num_layers must be >= 1: {self}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1): {self.dropout}")
        if self.burn_in < 0:
            raise ValueError(f"burn_in must be >= 0: {self.burn_in}")
        q = self.quantiles
        if q and not (0.0 < q[0] and q[-1] < 1.0 and all(a < b for a, b in zip(q, q[1:])) and 0.5 in q):
            raise ValueError(f"quantiles must increase strictly within (0, 1) and include 0.5: {q}")

    @property
    def n_outputs(self) -> int:
        return len(self.quantiles) or 1

    @property
    def point_index(self) -> int:
        """The output that is the point forecast: the only one, or the median quantile."""
        return self.quantiles.index(0.5) if self.quantiles else 0

    def to_dict(self) -> dict:
        return {**asdict(self), "quantiles": list(self.quantiles)}

    @classmethod
    def from_dict(cls, data: dict) -> LSTMConfig:
        return cls(**data)


def pick_device() -> torch.device:
    """CUDA for training when there is one, else CPU. Streaming always runs on the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class LSTMForecaster(nn.Module):
    def __init__(self, config: LSTMConfig):
        super().__init__()
        self.config = config
        # The same seed gives the same weights; fork_rng leaves the caller's global RNG alone.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.lstm = nn.LSTM(
                config.n_features,
                config.hidden_size,
                config.num_layers,
                batch_first=True,
                # nn.LSTM only drops out between layers, and warns if asked to with one layer.
                dropout=config.dropout if config.num_layers > 1 else 0.0,
            )
            self.head = nn.Linear(config.hidden_size, config.n_outputs)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x (B, T, n_features) -> a prediction at every step (B, T, n_outputs), and (h, c).

        ``state`` is nn.LSTM's (h, c), each (num_layers, B, hidden_size); None is zero state.
        """
        out, state = self.lstm(x, state)
        return self.outputs(self.head(out)), state

    def outputs(self, raw: torch.Tensor) -> torch.Tensor:
        if not self.config.quantiles:
            return raw
        return torch.cat([raw[..., :1], F.softplus(raw[..., 1:])], dim=-1).cumsum(dim=-1)

    def loss(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Mean MSE (regression) or pinball loss (mean over quantiles) over the scored steps.

        pred (B, T, n_outputs), target (B, T). ``mask`` (B, T) is True where a step is scored;
        by default every step from ``burn_in`` on. Steps whose target is not finite (no forward
        return yet at the end of a series) are never scored.
        """
        if mask is None:
            mask = torch.arange(target.shape[1], device=target.device) >= self.config.burn_in
        mask = mask & torch.isfinite(target)
        # Zero the unscored targets first: a NaN error times a zero weight is still NaN.
        err = torch.where(mask, target, 0.0).unsqueeze(-1) - pred
        if self.config.quantiles:
            q = pred.new_tensor(self.config.quantiles)
            per_step = torch.maximum(q * err, (q - 1.0) * err).mean(dim=-1)
        else:
            per_step = err.square().squeeze(-1)
        return (per_step * mask).sum() / mask.sum().clamp(min=1)


# Rational approximation of tanh in float32 (the coefficients of Eigen's and ONNX Runtime's
# vectorized tanh): |error| < 4e-7 against the exact tanh (3.4e-7 measured; tests/test_network.py),
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
def _tanh(x):
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


@njit(cache=True, error_model="numpy")
def _affine(wt, x, b, out):
    """out = W @ x + b, with W (len(out), len(x)) given transposed, flattened row-major in ``wt``.

    Column by column (out += x[i] * W[:, i]): each output sums its terms in order, and the loop
    over the outputs vectorizes without reordering any sum (no fastmath). Measured as fast as a
    reassociated dot product here: the step is bound by reading the weights from L2.
    """
    n = out.size
    for j in range(n):
        out[j] = b[j]
    for i in range(x.size):
        xi, column = x[i], wt[i * n : (i + 1) * n]
        for j in range(n):
            out[j] += column[j] * xi


@njit(cache=True, error_model="numpy")
def _lstm_step(params, xh, c, z, y):
    """One step of every layer and the head, in place.

    ``params``: per layer W (4H x (inputs + H), stored transposed) and b (4H), the gates ordered
    i, f, o, g and the sigmoid gates' rows halved; then the head's W (n_outputs x H, transposed)
    and b. ``xh``: [x, h_0, h_1, ...], so layer l reads [h_(l-1), h_l] as one slice; ``c``
    (layers, H); ``z`` (4H) scratch; ``y`` (n_outputs) gets the outputs.
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
            z[j] = _tanh(z[j])
        h, cl = xh[n_in + layer * hid : n_in + (layer + 1) * hid], c[layer]
        for j in range(hid):
            # sigmoid(v) = (1 + tanh(v / 2)) / 2, the halving being in the weights.
            i, f, o = _HALF + _HALF * z[j], _HALF + _HALF * z[hid + j], _HALF + _HALF * z[2 * hid + j]
            cl[j] = f * cl[j] + i * z[3 * hid + j]
            h[j] = o * _tanh(cl[j])
    n_out = y.size
    _affine(params[at : at + n_out * hid], xh[xh.size - hid :], params[at + n_out * hid :], y)
    # Quantile head: the lowest quantile, then softplus gaps summed up (a no-op for one output).
    for j in range(1, n_out):
        v = float(y[j])
        y[j] = y[j - 1] + (max(v, 0.0) + math.log1p(math.exp(-abs(v))))


class StreamingLSTM:
    """Advances a trained LSTMForecaster one bar at a time, carrying (h, c) between calls.

    One numba-compiled call per step on preallocated float32 arrays, chosen by measurement
    (scripts/bench_step.py; median µs per step, 2 layers, hidden 64, 20 features, real bars, one
    thread, 2-core AMD EPYC): 2.6 here, 10.2 for the NumPy float32 step it replaced (one np.dot
    per layer; every NumPy call costs about a microsecond of dispatch); earlier, with 16 features,
    torch ops on preallocated tensors took 19, torch.lstm_cell 27, a one-step nn.LSTM call 114.
    What bounds it now is reading the 216 KB of weights from L2 each step, not the arithmetic.
    Float32 matches the torch model to ~1e-7. OnlinePredictor runs ``_lstm_step`` on these same
    arrays from its own kernel.
    """

    def __init__(self, model: LSTMForecaster):
        cfg = model.config
        n_in, hid, layers = cfg.n_features, cfg.hidden_size, cfg.num_layers
        self.config = cfg
        # One buffer [x, h_0, h_1, ...]: layer l reads its input and its own previous h as the
        # contiguous slice [h_(l-1), h_l], so the step never concatenates or copies vectors.
        self._xh = np.zeros(n_in + layers * hid, np.float32)
        self._x = self._xh[:n_in]
        self._h = self._xh[n_in:].reshape(layers, hid)
        self._c = np.zeros((layers, hid), np.float32)
        self._z = np.zeros(4 * hid, np.float32)
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
        self._params = np.concatenate([_to_numpy(p).ravel() for p in parts])
        self._y = np.zeros(cfg.n_outputs, np.float32)
        self._y_out = self._y.view()
        self._y_out.flags.writeable = False
        # What _lstm_step takes (OnlinePredictor calls it from its kernel).
        self._kernel_arrays = (self._params, self._xh, self._c, self._z, self._y)
        # Compile now (or load numba's cache) on throwaway state, not on the first bar.
        _lstm_step(self._params, self._xh.copy(), self._c.copy(), self._z, self._y.copy())

    def step(self, x: np.ndarray) -> np.ndarray:
        """Feed one bar's features (n_features,); return its prediction (n_outputs,).

        The returned array is a read-only view that the next step overwrites: copy it to keep it.
        """
        if x.shape != self._x.shape:
            raise ValueError(f"expected features of shape {self._x.shape}, got {x.shape}")
        self._x[:] = x
        _lstm_step(*self._kernel_arrays)
        return self._y_out

    def reset(self) -> None:
        """Back to zero state, as at the start of a batch prediction."""
        self._h[:] = 0.0
        self._c[:] = 0.0

    @property
    def state(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of (h, c), each (num_layers, hidden_size): forward's state for one sequence."""
        return self._h.copy(), self._c.copy()

    @state.setter
    def state(self, value: tuple[np.ndarray, np.ndarray]) -> None:
        h, c = (np.asarray(v, np.float32) for v in value)
        if h.shape != self._h.shape or c.shape != self._c.shape:
            raise ValueError(f"expected h and c of shape {self._h.shape}, got {h.shape} and {c.shape}")
        self._h[:] = h
        self._c[:] = c


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)
