"""The LSTM forecaster: its config, the network, its loss.

Three architectures (``architecture``), all causal and stateful, so each streams bar by bar:

- ``lstm``: stacked LSTM layers, the head reading the top layer's output;
- ``alstm``: as qlib's ALSTM, temporal attention over the top layer's last ``attention_window``
  outputs h_(t-k+1..t) (fewer at a series' start): scores from a small net (Linear, Tanh,
  Linear to one number), softmax over the window, the weighted sum as a context vector; the head
  reads [h_t, context];
- ``cnn_lstm``: a causal 1-D convolution (``conv_kernel`` bars, ``conv_channels`` channels,
  ReLU) over the feature rows, zero rows before the series' start, feeding the LSTM.

The model is stateful. A batch prediction runs ``forward`` over a whole contiguous feature
sequence from zero state and reads the head at every step; the strategy instead steps
``models.kernels.lstm.StreamingLSTM`` (or a hybrid's ``models.kernels.hybrids`` twin) bar by bar
from zero state, carrying (h, c) and what the hybrid needs of the past: the same
recurrence compiled, which agrees to float32 rounding (tests/models/test_network.py checks thousands of
steps). Recomputing a 64-bar window per bar costs ~230 µs in eager torch; one streaming step ~3 µs
(scripts/bench_step.py).

Training feeds long contiguous sequences and leaves the first ``burn_in`` steps of each out of
the loss, so the model learns predictions that do not depend on where its state started.

The head forecasts up to two targets of bar t over (t, t+h] (``models.heads`` builds them and turns
the outputs back into log returns and volatility):

- the return (``return_target``): the log return, or the log return divided by the trailing
  volatility known at t ("vol_normalized"), as one number (regression, MSE loss) or one number
  per quantile (pinball loss); or the probability that it is positive ("direction": one logit,
  binary cross-entropy); or nothing ("none");
- the log realized volatility (``volatility_head``): one number, MSE loss on its standardized value.

The loss is the sum of the two. Quantiles cannot cross: the head gives the lowest quantile and
then non-negative gaps (softplus), summed cumulatively; unlike sorting, no two outputs can swap
roles during training. The point forecast is then the median quantile, so a quantile head must
include 0.5.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

RETURN_TARGETS = ("log_return", "vol_normalized", "direction", "none")
ARCHITECTURES = ("lstm", "alstm", "cnn_lstm")


@dataclass(frozen=True)
class LSTMConfig:
    """The network's shape: the training config's ``[model]`` section, and the artifact's.

    ``n_features`` and ``seed`` are not set in ``[model]``: training sets them from the features
    and ``[training] seed`` (None: not yet known).
    """

    n_features: int | None = None
    hidden_size: int = 64
    num_layers: int = 2
    dropout: float = 0.1  # between LSTM layers, training only
    quantiles: tuple[float, ...] = ()  # () = regression head; e.g. (0.1, 0.5, 0.9)
    burn_in: int = 64  # leading steps of each training sequence left out of the loss
    return_target: str = "log_return"  # log_return, vol_normalized, direction or none (models.heads)
    volatility_head: bool = True  # also forecast the log realized volatility over the horizon
    architecture: str = "lstm"  # lstm, alstm (attention over recent outputs) or cnn_lstm (convolution front end)
    attention_window: int = 16  # alstm: the top layer's last outputs attended over, the current one included
    conv_kernel: int = 3  # cnn_lstm: the bars each convolution reads, the current one included
    conv_channels: int = 32  # cnn_lstm: the convolution's outputs, the LSTM's inputs
    seed: int = 0  # weight initialisation

    def __post_init__(self) -> None:
        # Accept a list (from JSON or TOML) and store a tuple, so the config stays hashable.
        object.__setattr__(self, "quantiles", tuple(float(q) for q in self.quantiles))
        q = self.quantiles
        checks = [
            (self.n_features is None or self.n_features >= 1, f"n_features must be >= 1, not {self.n_features}"),
            (self.hidden_size >= 1 and self.num_layers >= 1, "hidden_size and num_layers must be positive"),
            (0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), not {self.dropout}"),
            (self.burn_in >= 0, f"burn_in must be >= 0, not {self.burn_in}"),
            (all(0.0 < x < 1.0 for x in q), f"quantiles must lie in (0, 1): {q}"),
            (all(a < b for a, b in zip(q, q[1:])), f"quantiles must be increasing: {q}"),
            (not q or 0.5 in q, f"quantiles must include 0.5, the point forecast: {q}"),
            (self.return_target in RETURN_TARGETS, f"return_target must be one of {RETURN_TARGETS}, not {self.return_target!r}"),
            (not q or self.return_target in ("log_return", "vol_normalized"),
             f"quantiles need a return_target of log_return or vol_normalized, not {self.return_target!r}"),
            (self.return_target != "none" or self.volatility_head, "nothing to forecast: return_target none and no volatility_head"),
            (self.architecture in ARCHITECTURES, f"architecture must be one of {ARCHITECTURES}, not {self.architecture!r}"),
            (self.attention_window >= 1, f"attention_window must be >= 1, not {self.attention_window}"),
            (self.conv_kernel >= 1, f"conv_kernel must be >= 1, not {self.conv_kernel}"),
            (self.conv_channels >= 1, f"conv_channels must be >= 1, not {self.conv_channels}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @property
    def state_warmup(self) -> int:
        """Steps of context from a zero state after which a prediction no longer depends on where
        the state started: 4 burn-ins (training scores no step inside the first one)."""
        return 4 * self.burn_in

    @property
    def n_return_outputs(self) -> int:
        """The return head's outputs: one per quantile, one number, or none."""
        return 0 if self.return_target == "none" else len(self.quantiles) or 1

    @property
    def n_outputs(self) -> int:
        """The return head's outputs, then the volatility head's one."""
        return self.n_return_outputs + self.volatility_head

    @property
    def point_index(self) -> int | None:
        """The output that is the point return forecast: the only one, or the median quantile."""
        if self.return_target == "none":
            return None
        return self.quantiles.index(0.5) if self.quantiles else 0

    @property
    def volatility_index(self) -> int | None:
        return self.n_return_outputs if self.volatility_head else None

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
        if config.n_features is None:
            raise ValueError("the network needs n_features (set from the features at training)")
        self.config = config
        # The same seed gives the same weights; fork_rng leaves the caller's global RNG alone.
        hid = config.hidden_size
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            if config.architecture == "cnn_lstm":
                self.conv = nn.Conv1d(config.n_features, config.conv_channels, config.conv_kernel)
            self.lstm = nn.LSTM(
                config.conv_channels if config.architecture == "cnn_lstm" else config.n_features,
                hid,
                config.num_layers,
                batch_first=True,
                # nn.LSTM only drops out between layers, and warns if asked to with one layer.
                dropout=config.dropout if config.num_layers > 1 else 0.0,
            )
            if config.architecture == "alstm":  # qlib's att_net: the scores' dropout is its too
                width = max(hid // 2, 1)
                self.attention = nn.Sequential(
                    nn.Linear(hid, width), nn.Dropout(config.dropout), nn.Tanh(), nn.Linear(width, 1, bias=False)
                )
            self.head = nn.Linear(2 * hid if config.architecture == "alstm" else hid, config.n_outputs)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, ...] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """x (B, T, n_features) -> a prediction at every step (B, T, n_outputs), and the state after.

        ``state``: nn.LSTM's (h, c), each (num_layers, B, hidden_size), and for a hybrid a third
        tensor, what it needs of the past: alstm the top layer's last attention_window - 1 outputs
        (B, up to k - 1, hidden_size), cnn_lstm the last conv_kernel - 1 input rows (B, k - 1,
        n_features). None is the start of a series: zero (h, c), no outputs, zero rows.
        """
        architecture = self.config.architecture
        recurrent = None if state is None else state[:2]
        if architecture == "cnn_lstm":
            before = x.new_zeros(x.shape[0], self.config.conv_kernel - 1, x.shape[2]) if state is None else state[2]
            rows = torch.cat([before, x], dim=1)
            past = rows[:, rows.shape[1] - before.shape[1] :]
            x = F.relu(self.conv(rows.transpose(1, 2))).transpose(1, 2)
        out, (h, c) = self.lstm(x, recurrent)
        if architecture == "alstm":
            out, past = self._attend(out, None if state is None else state[2])
        prediction = self.outputs(self.head(out))
        return prediction, (h, c) if architecture == "lstm" else (h, c, past)

    def _attend(self, out: torch.Tensor, before: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """[h_t, attention context over h_(t-k+1..t)] at every step, and the last k - 1 outputs."""
        k = self.config.attention_window
        seen = torch.cat([out[:, :0] if before is None else before, out], dim=1)  # (B, n + T, H), n <= k - 1
        # The first windows reach back before the series' start: empty slots, weighted zero.
        empty = k - 1 - (seen.shape[1] - out.shape[1])
        scores = F.pad(self.attention(seen).squeeze(-1), (empty, 0), value=-math.inf)  # (B, k - 1 + T)
        weights = torch.softmax(scores.unfold(1, k, 1), dim=-1)  # (B, T, k)
        windows = F.pad(seen, (0, 0, empty, 0)).unfold(1, k, 1)  # (B, T, H, k)
        context = torch.einsum("btk,bthk->bth", weights, windows)
        return torch.cat([out, context], dim=-1), seen[:, max(seen.shape[1] - (k - 1), 0) :]

    def outputs(self, raw: torch.Tensor) -> torch.Tensor:
        """The head's raw numbers with the quantiles made non-crossing (the other outputs as they are)."""
        n = len(self.config.quantiles) if self.config.return_target != "none" else 0
        if n < 2:
            return raw
        quantiles = torch.cat([raw[..., :1], F.softplus(raw[..., 1:n])], dim=-1).cumsum(dim=-1)
        return torch.cat([quantiles, raw[..., n:]], dim=-1)

    def loss(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The return head's loss plus the volatility head's, each a mean over its scored steps.

        pred (B, T, n_outputs); target (B, T, n_targets): the return target (if any), then the
        volatility target (if any), as ``models.heads.network_targets`` builds them; (B, T) when
        there is one. Return: MSE (regression), pinball loss averaged over the quantiles, or
        binary cross-entropy on the logit (direction). Volatility: MSE. ``mask`` (B, T) is True
        where a step is scored; by default every step from ``burn_in`` on. Steps whose target is
        not finite (no forward window yet at the end of a series) are never scored.
        """
        if target.dim() == 2:
            target = target.unsqueeze(-1)
        if mask is None:
            mask = torch.arange(target.shape[1], device=target.device) >= self.config.burn_in
        total, column = pred.new_zeros(()), 0
        if self.config.return_target != "none":
            total = total + self._return_loss(pred[..., : self.config.n_return_outputs], target[..., 0], mask)
            column = 1
        if self.config.volatility_head:
            volatility, scored = _known(target[..., column], mask)
            total = total + _masked_mean((volatility - pred[..., -1]).square(), scored)
        return total

    def _return_loss(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        target, scored = _known(target, mask)
        if self.config.return_target == "direction":
            per_step = F.binary_cross_entropy_with_logits(pred[..., 0], target, reduction="none")
        elif self.config.quantiles:
            err = target.unsqueeze(-1) - pred
            q = pred.new_tensor(self.config.quantiles)
            per_step = torch.maximum(q * err, (q - 1.0) * err).mean(dim=-1)
        else:
            per_step = (target - pred[..., 0]).square()
        return _masked_mean(per_step, scored)


def _known(target: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The target with its unscored steps zeroed (a NaN error times a zero weight is still NaN),
    and the steps scored: masked in and finite."""
    scored = mask & torch.isfinite(target)
    return torch.where(scored, target, 0.0), scored


def _masked_mean(per_step: torch.Tensor, scored: torch.Tensor) -> torch.Tensor:
    return (per_step * scored).sum() / scored.sum().clamp(min=1)


PREDICT_CHUNK = 8192  # bars per forward call when predicting a long series; state carries across


@torch.no_grad()
def predict_series(model: LSTMForecaster, scaled_features: np.ndarray) -> np.ndarray:
    """The batch path: one stateful pass over the whole series, zero state at its first row.

    Returns (rows, n_outputs) in the network's own units (``models.heads.decode`` reads them). Equal to stepping the model bar by
    bar from the same first row, which is what the strategy does.
    """
    model.eval()
    device = next(model.parameters()).device
    outputs, state = [], None
    for start in range(0, len(scaled_features), PREDICT_CHUNK):
        chunk = torch.as_tensor(scaled_features[start : start + PREDICT_CHUNK], dtype=torch.float32, device=device)
        prediction, state = model(chunk.unsqueeze(0), state)
        outputs.append(prediction[0].cpu().numpy())
    return np.concatenate(outputs).astype(np.float64)
