"""The LSTM forecaster, and a lean streaming path that advances it one bar at a time.

The model is stateful. A batch prediction runs ``forward`` over a whole contiguous feature
sequence from zero state and reads the head at every step; the strategy instead steps
:class:`StreamingLSTM` bar by bar from zero state, carrying (h, c). Both compute the same
recurrence, so they agree to float32 rounding (tests/test_network.py checks thousands of steps).
Recomputing a 64-bar window per bar costs ~230 µs in eager torch; one streaming step ~10 µs
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

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
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


class StreamingLSTM:
    """Advances a trained LSTMForecaster one bar at a time, carrying (h, c) between calls.

    NumPy float32 on preallocated arrays, chosen by measurement (median µs per step, 2 layers,
    hidden 64, 16 features, one thread, 2-core AMD EPYC): 10 here, 12 in float64, 19 for torch
    ops on preallocated tensors, 27 for torch.lstm_cell, 114 for a one-step nn.LSTM call. Each
    torch call costs microseconds of dispatch, more than the arithmetic at this size. Float32
    matches the torch model to ~1e-7, as float64 does.
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
        # PyTorch orders the gates i, f, g, o; put g last so the three sigmoid gates are one
        # slice, and halve their rows: sigmoid(z) = (1 + tanh(z / 2)) / 2, so one tanh serves all.
        order = torch.cat([torch.arange(0, 2 * hid), torch.arange(3 * hid, 4 * hid), torch.arange(2 * hid, 3 * hid)])
        scale = torch.ones(4 * hid, 1)
        scale[: 3 * hid] = 0.5
        self._layers = []
        with torch.no_grad():
            lstm = model.lstm
            for layer in range(layers):
                w = torch.cat([getattr(lstm, f"weight_ih_l{layer}"), getattr(lstm, f"weight_hh_l{layer}")], dim=1)
                b = getattr(lstm, f"bias_ih_l{layer}") + getattr(lstm, f"bias_hh_l{layer}")
                w = _to_numpy(w[order] * scale)
                b = _to_numpy(b[order] * scale[:, 0])
                start = 0 if layer == 0 else n_in + (layer - 1) * hid
                xh = self._xh[start : n_in + (layer + 1) * hid]
                z = np.empty(4 * hid, np.float32)
                i, f, o, g = z[:hid], z[hid : 2 * hid], z[2 * hid : 3 * hid], z[3 * hid :]
                tmp = np.empty(hid, np.float32)
                self._layers.append((w, b, xh, z, z[: 3 * hid], i, f, o, g, self._c[layer], self._h[layer], tmp))
            self._head_w = _to_numpy(model.head.weight)
            self._head_b = _to_numpy(model.head.bias)
        self._y = np.zeros(cfg.n_outputs, np.float32)
        self._gaps = self._y[1:]  # quantile head: raw gaps above the lowest quantile
        self._y_out = self._y.view()
        self._y_out.flags.writeable = False

    def step(self, x: np.ndarray) -> np.ndarray:
        """Feed one bar's features (n_features,); return its prediction (n_outputs,).

        The returned array is a read-only view that the next step overwrites: copy it to keep it.
        """
        if x.shape != self._x.shape:
            raise ValueError(f"expected features of shape {self._x.shape}, got {x.shape}")
        self._x[:] = x
        for w, b, xh, z, sigmoid_gates, i, f, o, g, c, h, tmp in self._layers:
            np.dot(w, xh, out=z)
            z += b
            np.tanh(z, out=z)
            sigmoid_gates *= 0.5
            sigmoid_gates += 0.5
            c *= f
            np.multiply(i, g, out=tmp)
            c += tmp
            np.tanh(c, out=tmp)
            np.multiply(o, tmp, out=h)
        y = self._y
        np.dot(self._head_w, self._h[-1], out=y)
        y += self._head_b
        if self.config.quantiles:
            np.logaddexp(0.0, self._gaps, out=self._gaps)  # softplus
            np.cumsum(y, out=y)
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
