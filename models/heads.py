"""What the network learns to forecast, and how its outputs become forecasts a trader reads.

Targets of bar t, over (t, t+h] (known only h bars later: NaN in the last h rows):

- the return (``LSTMConfig.return_target``): r = log(close[t+h] / close[t]) ("log_return"),
  r / sigma_t ("vol_normalized"), or 1 if r > 0 else 0 ("direction");
- the volatility (``LSTMConfig.volatility_head``): the log realized volatility
  (``models.volatility.log_realized_vol``).

sigma_t, the trailing volatility known at t's close: the feature ``vol_w`` of the widest window w
(the std of the last w one-bar log returns) times sqrt(h), floored like the volatility target.
Normalizing by it lets one network see calm and wild stretches alike.

The network sees them in its own units, scaled by statistics of the fitting rows only
(:class:`TargetScales`): the return target divided by its std (direction: as it is), the log
volatility standardized.

Decoded outputs, in :func:`output_names`' order (the strategy, ``batch_predict`` and ``evaluate``
read these): the return forecast as a log return over the horizon (``prediction``, or one column
per quantile), for "direction" the probability ``p_up`` then ``prediction``, the expected log
return; then ``volatility``, the forecast std of the h-bar log return (exp of the log forecast).
The expected return of a direction forecast is (2p - 1) sqrt(2/pi) sigma, sigma the volatility
forecast (sigma_t without a volatility head): E|r| of a zero-mean normal return of std sigma,
signed by the odds. The strategy's rule then trades it against costs like any point forecast.
``models.kernels.predict.decode_bar`` is the same decoding per bar; tests hold the two together.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from models.dataset import Dataset, Scaler, network_inputs
from models.features import FeatureSpec
from models.network import LSTMConfig, LSTMForecaster, predict_series
from models.volatility import RETURN_FLOOR

# The kernels take the return target as a number.
RETURN_KINDS = {"log_return": 0, "vol_normalized": 1, "direction": 2, "none": 3}
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


@dataclass(frozen=True)
class TargetScales:
    """The targets' scales, fitted on the training rows only."""

    return_scale: float  # the return target's std (1 for direction)
    volatility_mean: float  # the log volatility target's mean and std
    volatility_std: float

    @classmethod
    def fit(cls, config: LSTMConfig, data: Dataset, sigma: np.ndarray | None, rows: slice) -> TargetScales:
        returns = return_target(config, data.target, sigma)[rows] if config.return_target != "none" else None
        return_scale = 1.0 if returns is None or config.return_target == "direction" else float(np.nanstd(returns))
        volatility = data.volatility[rows]
        scales = cls(return_scale, float(np.nanmean(volatility)), float(np.nanstd(volatility)))
        if not (scales.return_scale > 0 and scales.volatility_std > 0):
            raise ValueError("the training targets have no variance: too few bars or a constant price")
        return scales

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> TargetScales:
        return cls(**raw)


def sigma_column(spec: FeatureSpec) -> int:
    """The column of ``vol_w``, w the widest volatility window: sigma_t's source."""
    if not spec.volatility_windows:
        raise ValueError("return_target vol_normalized and direction need a volatility feature: "
                         "set [features] volatility_windows")
    return spec.columns.index(f"vol_{max(spec.volatility_windows)}")


def needs_sigma(config: LSTMConfig) -> bool:
    return config.return_target == "vol_normalized" or (config.return_target == "direction" and not config.volatility_head)


def trailing_sigma(config: LSTMConfig, data: Dataset) -> np.ndarray | None:
    """sigma_t of every row, or None when the heads do not need it."""
    if not needs_sigma(config):
        return None
    root_h = math.sqrt(data.horizon)
    return np.maximum(data.features[:, sigma_column(data.spec)] * root_h, RETURN_FLOOR * root_h)


def return_target(config: LSTMConfig, log_return: np.ndarray, sigma: np.ndarray | None) -> np.ndarray:
    """The return target in natural units (NaN where the log return is)."""
    if config.return_target == "vol_normalized":
        return log_return / sigma
    if config.return_target == "direction":
        return np.where(np.isnan(log_return), np.nan, (log_return > 0).astype(np.float64))
    return log_return


def network_targets(config: LSTMConfig, data: Dataset, sigma: np.ndarray | None, scales: TargetScales) -> np.ndarray:
    """(rows, n_targets) float32 in the network's units: the return target, then the volatility one."""
    columns = []
    if config.return_target != "none":
        scale = 1.0 if config.return_target == "direction" else scales.return_scale  # a probability stays one
        columns.append(return_target(config, data.target, sigma) / scale)
    if config.volatility_head:
        columns.append((data.volatility - scales.volatility_mean) / scales.volatility_std)
    return np.stack(columns, axis=1).astype(np.float32)


def output_names(config: LSTMConfig) -> list[str]:
    names = {"none": [], "direction": ["p_up", "prediction"]}.get(
        config.return_target, [f"q{q:g}" for q in config.quantiles] or ["prediction"])
    return names + (["volatility"] if config.volatility_head else [])


def decoded_point_index(config: LSTMConfig) -> int | None:
    """Where the point return forecast is among the decoded outputs (None: no return head)."""
    return 1 if config.return_target == "direction" else config.point_index


def decoded_volatility_index(config: LSTMConfig) -> int | None:
    return len(output_names(config)) - 1 if config.volatility_head else None


def kernel_heads(config: LSTMConfig, scales: TargetScales, spec: FeatureSpec, horizon: int) -> np.ndarray:
    """What ``models.kernels.predict.decode_bar`` needs to decode like :func:`decode`, as one array."""
    column = sigma_column(spec) if needs_sigma(config) else -1
    return np.array([RETURN_KINDS[config.return_target], config.n_return_outputs, config.volatility_head,
                     scales.return_scale, scales.volatility_mean, scales.volatility_std, column,
                     math.sqrt(horizon), RETURN_FLOOR], dtype=np.float64)


def decode(config: LSTMConfig, scales: TargetScales, raw: np.ndarray, sigma: np.ndarray | None) -> np.ndarray:
    """The network's outputs (rows, n_outputs) as forecasts (rows, len(output_names)), float64."""
    raw = np.asarray(raw, dtype=np.float64)
    columns = []
    volatility = None
    if config.volatility_head:
        volatility = np.exp(raw[:, -1] * scales.volatility_std + scales.volatility_mean)
    n = config.n_return_outputs
    if config.return_target in ("log_return", "vol_normalized"):
        returns = raw[:, :n] * scales.return_scale
        columns.append(returns * sigma[:, None] if config.return_target == "vol_normalized" else returns)
    elif config.return_target == "direction":
        p_up = 1.0 / (1.0 + np.exp(-raw[:, 0]))
        spread = volatility if volatility is not None else sigma
        columns.append(np.stack([p_up, (2.0 * p_up - 1.0) * SQRT_2_OVER_PI * spread], axis=1))
    if volatility is not None:
        columns.append(volatility[:, None])
    return np.concatenate(columns, axis=1)


def forecast_rows(model: LSTMForecaster, scaler: Scaler, scales: TargetScales, data: Dataset, stop: int | None = None,
                  one_hot: np.ndarray | None = None, start: int = 0) -> np.ndarray:
    """Decoded forecasts (rows, len(output_names)) of rows [0, stop), from one stateful pass from
    row ``start`` (NaN before it): what the strategy says bar by bar from the same first bar.
    ``one_hot``: a pooled model's instrument id feature (models.pooling), appended to every scaled row."""
    stop = len(data) if stop is None else stop
    raw = np.full((stop, model.config.n_outputs), np.nan)
    raw[start:] = predict_series(model, network_inputs(scaler, data.features[start:stop], one_hot))
    sigma = trailing_sigma(model.config, data)
    return decode(model.config, scales, raw, None if sigma is None else sigma[:stop])
