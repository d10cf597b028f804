"""Model inputs: one definition of every feature, computed two ways.

- ``compute_features(bars, spec)``: offline, vectorized over a bars DataFrame (training).
- ``models.kernels.features.OnlineFeatures(spec).update(...)``: online, one bar at a time in
  O(1) (inside the strategy), one compiled numba call per bar.

Both follow the same formulas in the same column order; ``tests/models/test_features.py`` streams real
bars through both and holds them to 1e-9. Bars are those of ``marketdata.catalog.load_bars``:
indexed by CLOSE time, so row t holds only what is known when bar t closes.

The default features, one row per bar t (c = close, log = natural log):

| column          | definition                                                                  |
|-----------------|-----------------------------------------------------------------------------|
| ret_k           | log(c[t] / c[t-k]), k in return_lags                                        |
| vol_w           | sample std (ddof=1) of the last w one-bar log returns                       |
| close_sma_n     | log(c / SMA_n(c)): distance from the simple moving average                  |
| close_ema_n     | log(c / EMA_n(c)), EMA alpha = 2/(n+1) seeded with the first close          |
| rsi_n           | Wilder RSI in 0..1: avg gain / (avg gain + avg loss), averages alpha = 1/n  |
| macd            | (EMA_fast - EMA_slow) / c: the MACD line divided by the close, scale-free   |
| macd_signal     | EMA_signal(MACD line) / c                                                   |
| macd_hist       | (MACD line - signal) / c                                                    |
| volume_z_w      | (v - mean_w(v)) / std_w(v) over the last w volumes (ddof=1), 0 if std is 0  |
| hl_range        | (high - low) / c                                                            |
| tod_sin/cos     | sin/cos of the time of day of the bar's CLOSE time (UTC)                    |
| dow_sin/cos     | sin/cos of the phase of the week (0 at Monday 00:00 UTC) of the CLOSE time  |

Rows are consecutive bars: a gap in the data is not seen (fill or split around gaps first).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

# Bump when a formula changes: a model artifact made with another version then refuses to load.
FEATURES_VERSION = 1

TAU = 2.0 * math.pi
DAY_NS = 86_400 * 10**9
WEEK_NS = 7 * DAY_NS
MONDAY_NS = 4 * DAY_NS  # 1970-01-05, the first Monday of the epoch (which began on a Thursday)


def ema_alpha(period: int) -> float:
    """Smoothing of an EMA of ``period`` bars (NautilusTrader's ExponentialMovingAverage)."""
    return 2.0 / (period + 1.0)


def wilder_alpha(period: int) -> float:
    """Wilder's smoothing, used by the RSI (NautilusTrader's WilderMovingAverage)."""
    return 1.0 / period


def phase(close_ns, period_ns: int, origin_ns: int = 0):
    """Angle (radians) of a close time within a day or week; ints or int64 arrays alike."""
    return ((close_ns - origin_ns) % period_ns) / period_ns * TAU


@dataclass(frozen=True)
class FeatureSpec:
    """Which features, with which parameters. An empty tuple or False turns a group off.

    It is stored in model artifacts through ``to_dict``/``from_dict`` (plain JSON/TOML values);
    two specs compute the same features exactly when they are equal (same ``fingerprint``).
    """

    return_lags: tuple[int, ...] = (1, 5, 15, 60)
    volatility_windows: tuple[int, ...] = (15, 60)
    sma_periods: tuple[int, ...] = (20, 60)
    ema_periods: tuple[int, ...] = (20, 60)
    rsi_periods: tuple[int, ...] = (14,)
    macd: tuple[int, ...] = (12, 26, 9)  # fast, slow, signal
    volume_z_windows: tuple[int, ...] = (60,)
    high_low_range: bool = True
    time_of_day: bool = True
    day_of_week: bool = True
    # An exponential average is warm once its first input weighs at most this much: from then on
    # a feature no longer depends on where the history began, so a strategy warmed up on
    # `warmup_bars` bars sees the values training saw.
    seed_weight: float = 1e-6

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(f.default, tuple):
                value = tuple(value)  # lists from JSON/TOML
                object.__setattr__(self, f.name, value)
                if not all(type(v) is int and v > 0 for v in value) or len(set(value)) != len(value):
                    raise ValueError(f"{f.name} must hold distinct positive integers, got {list(value)}")
            elif isinstance(f.default, bool) and type(value) is not bool:
                raise ValueError(f"{f.name} must be true or false, got {value!r}")
        for name in ("volatility_windows", "volume_z_windows"):
            if min(getattr(self, name), default=2) < 2:
                raise ValueError(f"{name}: a standard deviation needs windows of 2 bars or more")
        if self.macd and (len(self.macd) != 3 or self.macd[0] >= self.macd[1]):
            raise ValueError(f"macd must be (fast, slow, signal) with fast < slow, or empty; got {list(self.macd)}")
        if not 0.0 < self.seed_weight < 1.0:
            raise ValueError(f"seed_weight must be in (0, 1), got {self.seed_weight!r}")

    @property
    def columns(self) -> tuple[str, ...]:
        """Feature names in column order (both paths write them in this order)."""
        names = [f"ret_{k}" for k in self.return_lags]
        names += [f"vol_{w}" for w in self.volatility_windows]
        names += [f"close_sma_{n}" for n in self.sma_periods]
        names += [f"close_ema_{n}" for n in self.ema_periods]
        names += [f"rsi_{n}" for n in self.rsi_periods]
        names += ["macd", "macd_signal", "macd_hist"] if self.macd else []
        names += [f"volume_z_{w}" for w in self.volume_z_windows]
        names += ["hl_range"] if self.high_low_range else []
        names += ["tod_sin", "tod_cos"] if self.time_of_day else []
        names += ["dow_sin", "dow_cos"] if self.day_of_week else []
        return tuple(names)

    @property
    def warmup_bars(self) -> int:
        """Rows before the first fully defined one (all NaN offline, None online)."""
        needs = [0, *self.return_lags, *self.volatility_windows]  # the first one-bar return is row 1
        needs += [n - 1 for n in (*self.sma_periods, *self.volume_z_windows)]
        needs += [self._settled(ema_alpha(n), n) for n in self.ema_periods]
        needs += [self._settled(wilder_alpha(n), n) for n in self.rsi_periods]
        if self.macd:
            _, slow, signal = self.macd
            # The signal averages the MACD line, which is itself settled only from the slow EMA's row.
            needs.append(self._settled(ema_alpha(slow), slow) + self._settled(ema_alpha(signal), signal))
        return max(needs)

    def _settled(self, alpha: float, period: int) -> int:
        """First row at which an exponential average's seed (row 0) weighs at most seed_weight."""
        return max(period - 1, math.ceil(math.log(self.seed_weight) / math.log1p(-alpha)))

    def to_dict(self) -> dict:
        """Plain values (lists, ints, floats, bools) for JSON or TOML, with the formulas' version."""
        data = {"version": FEATURES_VERSION}
        for f in fields(self):
            value = getattr(self, f.name)
            data[f.name] = list(value) if isinstance(value, tuple) else value
        return data

    @classmethod
    def from_dict(cls, data: Mapping) -> FeatureSpec:
        """Inverse of ``to_dict``; every field must be there, and nothing else."""
        data = dict(data)
        version = data.pop("version", None)
        if version != FEATURES_VERSION:
            raise ValueError(f"feature spec of version {version!r}; this code computes version {FEATURES_VERSION}")
        names = {f.name for f in fields(cls)}
        if set(data) != names:
            missing, unknown = sorted(names - set(data)), sorted(set(data) - names)
            raise ValueError(f"feature spec: missing {missing}, unknown {unknown}")
        return cls(**data)

    def fingerprint(self) -> str:
        """Short stable hash of ``to_dict()``: equal specs, equal fingerprints."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def check_same(self, other: FeatureSpec) -> None:
        """Raise ValueError naming the differing fields when ``other`` computes other features."""
        if other != self:
            diffs = [
                f"{f.name}: {getattr(self, f.name)!r} vs {getattr(other, f.name)!r}"
                for f in fields(self)
                if getattr(self, f.name) != getattr(other, f.name)
            ]
            raise ValueError("feature specs differ: " + "; ".join(diffs))


def default_spec() -> FeatureSpec:
    return FeatureSpec()


# ---------------------------------------------------------------------------------------------
# Offline: whole DataFrame at once.


def compute_features(bars: pd.DataFrame, spec: FeatureSpec | None = None) -> pd.DataFrame:
    """Features of every bar: same index as ``bars``, float64 ``spec.columns``, NaN in warm-up rows.

    ``bars``: float OHLCV columns indexed by a tz-aware DatetimeIndex of bar CLOSE times.
    """
    spec = spec or default_spec()
    _check_bars(bars)
    close, volume = bars["close"].astype(np.float64), bars["volume"].astype(np.float64)
    log_close = np.log(close)
    ret1 = log_close.diff()
    # The RSI's averages start from a zero change on the first bar, as NautilusTrader's do.
    delta = close.diff().fillna(0.0)
    out = {}
    for k in spec.return_lags:  # log return over k bars
        out[f"ret_{k}"] = log_close - log_close.shift(k)
    for w in spec.volatility_windows:  # realized volatility: std of one-bar log returns
        out[f"vol_{w}"] = ret1.rolling(w).std()
    for n in spec.sma_periods:  # log distance from the simple moving average
        out[f"close_sma_{n}"] = np.log(close / close.rolling(n).mean())
    for n in spec.ema_periods:  # log distance from the exponential moving average
        out[f"close_ema_{n}"] = np.log(close / _ewm(close, ema_alpha(n)))
    for n in spec.rsi_periods:  # Wilder's RSI, 0..1 (0.5 when the price has never moved)
        gain = _ewm(delta.clip(lower=0.0), wilder_alpha(n)).to_numpy()
        loss = _ewm((-delta).clip(lower=0.0), wilder_alpha(n)).to_numpy()
        total = gain + loss
        out[f"rsi_{n}"] = np.divide(gain, total, out=np.full_like(total, 0.5), where=total > 0)
    if spec.macd:  # MACD line, signal and histogram, in units of the close
        fast, slow, signal = spec.macd
        line = _ewm(close, ema_alpha(fast)) - _ewm(close, ema_alpha(slow))
        signal_line = _ewm(line, ema_alpha(signal))
        out["macd"] = line / close
        out["macd_signal"] = signal_line / close
        out["macd_hist"] = (line - signal_line) / close
    for w in spec.volume_z_windows:  # volume z-score against its own recent window
        mean, std = volume.rolling(w).mean().to_numpy(), volume.rolling(w).std().to_numpy()
        out[f"volume_z_{w}"] = np.divide(volume.to_numpy() - mean, std, out=np.zeros(len(std)), where=std > 0)
    if spec.high_low_range:  # the bar's range relative to its close
        out["hl_range"] = (bars["high"] - bars["low"]) / close
    close_ns = bars.index.as_unit("ns").asi8
    if spec.time_of_day:  # hour of the day (of the close), on a circle
        out["tod_sin"], out["tod_cos"] = _sin_cos(phase(close_ns, DAY_NS))
    if spec.day_of_week:  # phase of the week (of the close), on a circle
        out["dow_sin"], out["dow_cos"] = _sin_cos(phase(close_ns, WEEK_NS, MONDAY_NS))
    features = pd.DataFrame(out, index=bars.index)[list(spec.columns)].astype(np.float64)
    features.iloc[: spec.warmup_bars] = np.nan
    return features


def forward_log_return(bars: pd.DataFrame, horizon: int) -> pd.Series:
    """Target of row t: log(close[t+h] / close[t]), known only h bars later (NaN in the last h rows)."""
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1 bar, got {horizon}")
    log_close = np.log(bars["close"].astype(np.float64))
    return (log_close.shift(-horizon) - log_close).rename(f"fwd_ret_{horizon}")


def _ewm(series: pd.Series, alpha: float) -> pd.Series:
    # adjust=False is the recursion e = alpha * x + (1 - alpha) * e, seeded with the first value.
    return series.ewm(alpha=alpha, adjust=False).mean()


def _sin_cos(angle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.sin(angle), np.cos(angle)


def _check_bars(bars: pd.DataFrame) -> None:
    missing = {"open", "high", "low", "close", "volume"} - set(bars.columns)
    if missing:
        raise ValueError(f"bars lack columns {sorted(missing)}")
    index = bars.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise ValueError("bars must be indexed by a tz-aware DatetimeIndex of bar close times")
    if not index.is_monotonic_increasing or not index.is_unique:
        raise ValueError("bars' close times must be strictly increasing")
