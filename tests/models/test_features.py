"""Features: the offline and online paths agree, match NautilusTrader's indicators, never look ahead."""

from __future__ import annotations

import json
import math
import statistics
import time
import tomllib

import numpy as np
import pandas as pd
import pytest
from nautilus_trader.indicators import (
    ExponentialMovingAverage,
    MovingAverageConvergenceDivergence,
    MovingAverageType,
    RelativeStrengthIndex,
    SimpleMovingAverage,
)

from marketdata.klines import read_klines, to_bars_frame
from marketdata.timeframes import parse_timeframe
from models.features import FeatureSpec, compute_features, default_spec, forward_log_return
from models.kernels.features import OnlineFeatures, exact_sum, update_features
from tests.conftest import BTC_1H, BTC_1M, ETH_1M, FIXTURE_7D

PARITY_TOLERANCE = 1e-9
NAUTILUS_TOLERANCE = 1e-12


def kline_bars(path, timeframe: str = "1m") -> pd.DataFrame:
    return to_bars_frame(read_klines(path), parse_timeframe(timeframe))


def stream(bars: pd.DataFrame, online: OnlineFeatures) -> list:
    """Every bar through ``online.update``, in order: the list of what it returned."""
    close_ns = bars.index.as_unit("ns").asi8.tolist()
    columns = [bars[c].tolist() for c in ("high", "low", "close", "volume")]
    return [online.update(t, *bar) for t, *bar in zip(close_ns, *columns)]


def as_matrix(rows: list, width: int) -> np.ndarray:
    """Online rows with NaN rows where it returned None."""
    return np.array([np.full(width, np.nan) if row is None else row for row in rows])


@pytest.fixture(scope="module")
def bars_7d(shared_data) -> pd.DataFrame:
    return kline_bars(shared_data / FIXTURE_7D)


@pytest.fixture(scope="module")
def features_7d(bars_7d) -> pd.DataFrame:
    return compute_features(bars_7d)


# --- the spec ---------------------------------------------------------------------------------


def test_default_spec_columns_and_warmup():
    spec = default_spec()
    assert spec.columns == (
        "ret_1", "ret_5", "ret_15", "ret_60", "vol_15", "vol_60", "close_sma_20", "close_sma_60",
        "close_ema_20", "close_ema_60", "rsi_14", "macd", "macd_signal", "macd_hist", "volume_z_60",
        "hl_range", "tod_sin", "tod_cos", "dow_sin", "dow_cos",
    )
    # EMA 60 (alpha 2/61) is the slowest to forget its seed: (1 - 2/61)**415 <= 1e-6 < (1 - 2/61)**414.
    assert spec.warmup_bars == 415
    # A spec without exponential averages is warm once its longest window is full.
    windows_only = FeatureSpec(ema_periods=(), rsi_periods=(), macd=())
    assert windows_only.warmup_bars == 60


def test_spec_round_trips_through_json_and_has_a_stable_fingerprint():
    spec = FeatureSpec(return_lags=(1, 3), ema_periods=(), macd=(5, 10, 3), day_of_week=False)
    restored = FeatureSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert restored == spec and hash(restored) == hash(spec)
    # Only TOML's types (no null), so an artifact can keep it in TOML too.
    toml = "\n".join(f"{key} = {json.dumps(value)}" for key, value in spec.to_dict().items())
    assert FeatureSpec.from_dict(tomllib.loads(toml)) == spec
    assert restored.fingerprint() == spec.fingerprint() != default_spec().fingerprint()
    # Pinned: the fingerprint does not depend on the process (it is stored in model artifacts).
    assert default_spec().fingerprint() == "7e72c470acabd382"


def test_spec_refuses_what_it_cannot_compute():
    data = default_spec().to_dict()
    with pytest.raises(ValueError, match="version 0; this code computes version 1"):
        FeatureSpec.from_dict({**data, "version": 0})
    with pytest.raises(ValueError, match=r"missing \['rsi_periods'\], unknown \['rsi'\]"):
        FeatureSpec.from_dict({**{k: v for k, v in data.items() if k != "rsi_periods"}, "rsi": [14]})
    for bad in ({"return_lags": (1, 1)}, {"sma_periods": (0,)}, {"volatility_windows": (1,)},
                {"macd": (26, 12, 9)}, {"time_of_day": 1}, {"seed_weight": 0.0}):
        with pytest.raises(ValueError):
            FeatureSpec(**bad)
    with pytest.raises(ValueError, match=r"rsi_periods: \(14,\) vs \(7,\)"):
        default_spec().check_same(FeatureSpec(rsi_periods=(7,)))
    default_spec().check_same(FeatureSpec.from_dict(data))


# --- offline == online ------------------------------------------------------------------------


def assert_parity(bars: pd.DataFrame, spec: FeatureSpec) -> None:
    offline = compute_features(bars, spec)
    rows = stream(bars, OnlineFeatures(spec))
    warmup = spec.warmup_bars
    assert sum(row is None for row in rows) == warmup
    assert all(row is None for row in rows[:warmup])
    assert offline.iloc[:warmup].isna().all(axis=None)
    assert not offline.iloc[warmup:].isna().any(axis=None)
    assert offline.dtypes.eq(np.float64).all() and list(offline.columns) == list(spec.columns)
    online = np.array(rows[warmup:])
    assert online.dtype == np.float64 and online.shape == (len(bars) - warmup, len(spec.columns))
    worst = pd.Series(np.abs(online - offline.to_numpy()[warmup:]).max(axis=0), index=spec.columns)
    assert (worst <= PARITY_TOLERANCE).all(), worst[worst > PARITY_TOLERANCE]


def test_online_matches_offline_on_the_7_day_fixture(bars_7d):
    assert_parity(bars_7d, default_spec())


def test_online_matches_offline_with_another_spec(bars_7d):
    spec = FeatureSpec(return_lags=(2,), volatility_windows=(5,), sma_periods=(), ema_periods=(3, 7),
                       rsi_periods=(2, 30), macd=(), volume_z_windows=(10, 90), high_low_range=False,
                       time_of_day=False, seed_weight=1e-3)
    assert_parity(bars_7d, spec)


@pytest.mark.parametrize(("name", "timeframe"), [(BTC_1M, "1m"), (ETH_1M, "1m"), (BTC_1H, "1h")])
def test_online_matches_offline_on_full_files(shared_data, name, timeframe):
    # 130,708 bars (73,284 with gaps for 1h): running sums must not drift; about 2 s each.
    assert_parity(kline_bars(shared_data / name, timeframe), default_spec())


def test_online_state_survives_a_save_and_reset(bars_7d):
    whole = OnlineFeatures()
    expected = as_matrix(stream(bars_7d, whole), len(whole.spec.columns))
    first, second = OnlineFeatures(), OnlineFeatures()
    stream(bars_7d.iloc[:5000], first)
    second.set_state(json.loads(json.dumps(first.get_state())))
    resumed = as_matrix(stream(bars_7d.iloc[5000:], second), len(whole.spec.columns))
    np.testing.assert_array_equal(resumed, expected[5000:])
    with pytest.raises(ValueError, match="another feature spec"):
        OnlineFeatures(FeatureSpec(rsi_periods=(7,))).set_state(first.get_state())
    whole.reset()
    np.testing.assert_array_equal(as_matrix(stream(bars_7d, whole), len(whole.spec.columns)), expected)


def test_online_update_is_fast(bars_7d):
    online = OnlineFeatures()
    close_ns = bars_7d.index.as_unit("ns").asi8.tolist()
    columns = [bars_7d[c].tolist() for c in ("high", "low", "close", "volume")]
    clock, timings = time.perf_counter_ns, []
    for t, *bar in zip(close_ns, *columns):
        start = clock()
        online.update(t, *bar)
        timings.append(clock() - start)
    median_us = statistics.median(timings[online.warmup_bars:]) / 1000
    # About 1 µs on the 2-core development machine (5.5 µs in pure Python before the kernel).
    assert median_us < 10, f"median online update {median_us:.1f} µs"


def test_construction_compiles_the_kernel_for_what_bars_pass(bars_7d):
    online = OnlineFeatures()
    compiled = list(update_features.signatures)
    assert compiled
    stream(bars_7d.iloc[:1000], online)  # Python ints and floats, as the strategy passes them
    assert list(update_features.signatures) == compiled  # nothing compiled on a bar


def test_exact_sum_is_fsum(bars_7d):
    # The window sums are recomputed with it once per lap of a ring: it must be as good as fsum.
    rng = np.random.default_rng(0)
    log_returns = np.diff(np.log(bars_7d["close"].to_numpy()))
    cases = [bars_7d["volume"].to_numpy()[:60], log_returns[:15], log_returns[:60], bars_7d["close"].to_numpy()[:20],
             np.array([1e16, 1.0, -1e16, 3.0]), rng.standard_normal(1000) * 10.0 ** rng.integers(-8, 8, 1000)]
    for values in cases:
        assert exact_sum(values, False) == math.fsum(values)
        assert exact_sum(values, True) == math.fsum(values * values)


# --- NautilusTrader's indicators --------------------------------------------------------------


def nautilus_values(indicator, inputs) -> np.ndarray:
    values = []
    for x in inputs:
        indicator.update_raw(x)  # what handle_bar(bar) does with bar.close
        values.append(indicator.value)
    return np.array(values)


def test_ema_and_sma_ratios_are_nautilus_averages(bars_7d, features_7d):
    close = bars_7d["close"].to_numpy()
    warm = default_spec().warmup_bars
    for n in default_spec().ema_periods:
        ema = nautilus_values(ExponentialMovingAverage(n), close)
        expected = np.log(close / ema)[warm:]
        np.testing.assert_allclose(features_7d[f"close_ema_{n}"].to_numpy()[warm:], expected, rtol=0, atol=NAUTILUS_TOLERANCE)
    for n in default_spec().sma_periods:
        sma = nautilus_values(SimpleMovingAverage(n), close)
        expected = np.log(close / sma)[warm:]
        np.testing.assert_allclose(features_7d[f"close_sma_{n}"].to_numpy()[warm:], expected, rtol=0, atol=NAUTILUS_TOLERANCE)


def test_rsi_is_nautilus_rsi_with_wilder_averages(bars_7d, features_7d):
    close = bars_7d["close"].to_numpy()
    warm = default_spec().warmup_bars
    ours = features_7d["rsi_14"].to_numpy()[warm:]
    wilder = nautilus_values(RelativeStrengthIndex(14, MovingAverageType.WILDER), close)[warm:]
    np.testing.assert_allclose(ours, wilder, rtol=0, atol=NAUTILUS_TOLERANCE)
    # Deliberate: Nautilus's default RSI averages with alpha 2/(n+1), not Wilder's 1/n.
    default = nautilus_values(RelativeStrengthIndex(14), close)[warm:]
    assert np.abs(ours - default).max() > 0.05


def test_rsi_of_a_flat_market_is_neutral_where_nautilus_says_1():
    index = pd.date_range("2025-01-01 00:01", periods=500, freq="1min", tz="UTC", name="close_time")
    flat = pd.DataFrame(1.0, index=index, columns=["open", "high", "low", "close", "volume"])
    rsi = compute_features(flat)["rsi_14"].iloc[-1]
    online = stream(flat, OnlineFeatures())[-1][default_spec().columns.index("rsi_14")]
    assert rsi == online == 0.5
    assert nautilus_values(RelativeStrengthIndex(14, MovingAverageType.WILDER), [1.0] * 500)[-1] == 1.0


def test_macd_is_nautilus_macd_over_the_close(bars_7d, features_7d):
    close = bars_7d["close"].to_numpy()
    warm = default_spec().warmup_bars
    line = nautilus_values(MovingAverageConvergenceDivergence(12, 26), close)
    # Nautilus's MACD has no signal line: it is an EMA(9) of the MACD line.
    signal = nautilus_values(ExponentialMovingAverage(9), line)
    for column, expected in (("macd", line), ("macd_signal", signal), ("macd_hist", line - signal)):
        ours = features_7d[column].to_numpy()[warm:]
        np.testing.assert_allclose(ours, (expected / close)[warm:], rtol=0, atol=NAUTILUS_TOLERANCE)


# --- time, target, leakage --------------------------------------------------------------------


def test_time_features_come_from_the_close_time():
    # The bar that opens Sunday 23:59 UTC closes Monday 00:00: phase 0 of the day and of the week.
    bars = kline_bars_at(["2025-05-25 23:59", "2025-05-26 05:59"])
    online = OnlineFeatures(FeatureSpec(return_lags=(), volatility_windows=(), sma_periods=(), ema_periods=(),
                                        rsi_periods=(), macd=(), volume_z_windows=()))
    offline = compute_features(bars, online.spec)
    expected = [[0.0, 0.0, 1.0, 0.0, 1.0], [0.0, 1.0, 0.0, np.sin(np.pi / 14), np.cos(np.pi / 14)]]
    np.testing.assert_allclose(offline.to_numpy(), expected, atol=1e-15)
    np.testing.assert_allclose(np.array(stream(bars, online)), expected, atol=1e-15)


def kline_bars_at(open_times: list[str]) -> pd.DataFrame:
    """Flat 1-minute bars opening at the given UTC times, indexed by their close time."""
    index = pd.DatetimeIndex(open_times, tz="UTC", name="close_time") + pd.Timedelta(minutes=1)
    return pd.DataFrame(1.0, index=index, columns=["open", "high", "low", "close", "volume"])


def test_forward_log_return_is_the_next_h_bars_return(bars_7d):
    close = bars_7d["close"].to_numpy()
    target = forward_log_return(bars_7d, 15)
    assert target.index.equals(bars_7d.index) and target.name == "fwd_ret_15"
    np.testing.assert_allclose(target.to_numpy()[:-15], np.log(close[15:] / close[:-15]), rtol=0, atol=1e-14)
    assert target.iloc[-15:].isna().all() and not target.iloc[:-15].isna().any()
    with pytest.raises(ValueError):
        forward_log_return(bars_7d, 0)


def perturbed_after(bars: pd.DataFrame, t: int, seed: int = 7) -> pd.DataFrame:
    """``bars`` with every OHLCV value of the rows after row ``t`` changed at random."""
    rng = np.random.default_rng(seed)
    changed = bars.copy()
    later = changed.iloc[t + 1 :]
    changed.iloc[t + 1 :] = later * np.exp(rng.normal(0.0, 0.01, later.shape))
    assert (changed.iloc[t + 1 :] != bars.iloc[t + 1 :]).all(axis=None)
    return changed


def test_no_leakage_offline(bars_7d, features_7d):
    t = 5000
    changed = perturbed_after(bars_7d, t)
    features = compute_features(changed)
    pd.testing.assert_frame_equal(features.iloc[: t + 1], features_7d.iloc[: t + 1], check_exact=True)
    assert (features.iloc[t + 1 :, :16] != features_7d.iloc[t + 1 :, :16]).any(axis=None)
    # The target of row t is the future: it must change (and is never a feature).
    assert forward_log_return(changed, 1).iloc[t] != forward_log_return(bars_7d, 1).iloc[t]


def test_no_leakage_online(bars_7d):
    t = 5000
    width = len(default_spec().columns)
    before = as_matrix(stream(bars_7d.iloc[: t + 1], OnlineFeatures()), width)
    after = as_matrix(stream(perturbed_after(bars_7d, t), OnlineFeatures()), width)
    np.testing.assert_array_equal(after[: t + 1], before)


def test_warm_features_do_not_depend_on_where_history_starts(bars_7d, features_7d):
    # Why the warm-up is longer than Nautilus's `initialized` (period bars): a strategy warmed up on
    # warmup_bars bars must see the values training computed from a much longer history.
    warm = default_spec().warmup_bars
    for start in (1000, 6000):
        late = compute_features(bars_7d.iloc[start:])
        difference = (late.iloc[warm:] - features_7d.iloc[start + warm :]).abs().max(axis=None)
        assert difference < 1e-8


def test_compute_features_wants_close_time_bars(bars_7d):
    with pytest.raises(ValueError, match="tz-aware"):
        compute_features(bars_7d.tz_localize(None))
    with pytest.raises(ValueError, match="increasing"):
        compute_features(bars_7d.iloc[::-1])
    with pytest.raises(ValueError, match="volume"):
        compute_features(bars_7d.drop(columns="volume"))
