"""Volatility-targeted sizing and the volatility gate: the median, the units, what is blocked and what goes out."""

import math

import numpy as np
import pytest

from strategies.config import parse_strategy_config, strategy_settings
from strategies.decision import FLAT, LONG, SHORT, DecisionRule, SizingConfig, decide, reason_text
from strategies.volatility import TrailingMedian, VolatilityGateConfig, VolatilityRisk, annualizer

MINUTE_NS = 60_000_000_000
BARS = {"instrument_id": "BTCUSDT.BINANCE", "bar_type": "BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL", "model_path": "m"}


@pytest.mark.parametrize("window", [1, 2, 7, 50])
def test_trailing_median_is_the_median_of_the_last_window_values_before_the_new_one(window):
    rng = np.random.default_rng(window)
    values = rng.integers(0, 20, size=300).astype(float)  # many ties: removal must take out the right copy
    median = TrailingMedian(window)
    for i, value in enumerate(values):
        expected = np.median(values[i - window:i]) if i >= window else math.nan
        np.testing.assert_equal(median.median_then_push(value), expected)
    assert median.values() == values[-window:].tolist()
    every_tenth = TrailingMedian(window, refresh=10)  # recomputed at the window's fill, then every 10 values
    for i, value in enumerate(values):
        refreshed = window + (i - window) // 10 * 10
        expected = np.median(values[refreshed - window:refreshed]) if i >= window else math.nan
        np.testing.assert_equal(every_tenth.median_then_push(value), expected)
    partly = TrailingMedian(5)
    for value in (3.0, 1.0):
        partly.median_then_push(value)
    assert partly.values() == [3.0, 1.0]


def test_annualizer_converts_the_h_bar_std_to_a_year_of_bars():
    # 1-minute bars, h = 15: 525,600 minutes a year, 35,040 horizons.
    assert annualizer(MINUTE_NS, 15) == pytest.approx(math.sqrt(35_040))
    assert annualizer(3600 * 1_000_000_000, 24) == pytest.approx(math.sqrt(365))  # daily std of hourly bars


def test_sizing_scales_the_base_by_target_over_forecast_and_caps_it():
    sizing = SizingConfig(order_notional=1_000.0, max_notional=3_000.0, target_volatility=0.5)
    assert sizing.notional(lambda: math.nan, 0.25) == pytest.approx(2_000.0)
    assert sizing.notional(lambda: math.nan, 1.0) == pytest.approx(500.0)
    assert sizing.notional(lambda: math.nan, 0.1) == 3_000.0  # capped at max_notional
    for unusable in (None, math.nan, 0.0, -0.2, math.inf):
        assert sizing.notional(lambda: math.nan, unusable) == 0.0
    by_equity = SizingConfig(equity_fraction=0.1, target_volatility=0.4)
    assert by_equity.notional(lambda: 20_000.0, 0.8) == pytest.approx(1_000.0)
    assert SizingConfig().notional(lambda: math.nan, 0.01) == 1_000.0  # no target: the forecast is ignored
    with pytest.raises(ValueError, match="target_volatility must be a positive annualized volatility, not 0"):
        SizingConfig(target_volatility=0.0)


def risk(window=5, multiple=2.0, index=1):
    return VolatilityRisk(VolatilityGateConfig(volatility_gate=multiple, volatility_gate_window=window), index, MINUTE_NS, 15)


def test_the_gate_blocks_new_exposure_and_lets_exits_through():
    gate = risk()
    for sigma in (0.001, 0.002, 0.001, 0.003, 0.002):
        gate.update([0.01, sigma])
    assert gate.shut is None
    gate.update([0.01, 0.0041])  # the median of the five before is 0.002: 0.0041 > 2 × 0.002
    assert gate.shut == "volatility gate: forecast 0.004100 > 2 × trailing median 0.002000"
    _, reason = decide(DecisionRule(0.002502, allow_short=True, min_holding_bars=0), 0.01, None, FLAT, 0)
    blocked = "forecast +0.010000 > 0.002502; volatility gate: forecast 0.004100 > 2 × trailing median 0.002000: no new exposure"
    # An entry from flat is blocked, and the decision says why.
    side, why = gate.gate(LONG, reason, FLAT)
    assert side == FLAT and reason_text(why) == blocked
    # A reversal closes but does not open the new side.
    side, why = gate.gate(SHORT, reason, LONG)
    assert side == FLAT and reason_text(why) == blocked
    # An exit, and holding what is held, go through untouched.
    assert gate.gate(FLAT, "exit", LONG) == (FLAT, "exit")
    assert gate.gate(LONG, "hold", LONG) == (LONG, "hold")
    gate.update([0.01, 0.004])  # median of (0.002, 0.001, 0.003, 0.002, 0.0041) = 0.002: not above 2×
    assert gate.shut is None and gate.gate(LONG, reason, FLAT) == (LONG, reason)
    gate.update([0.01, math.nan])
    assert gate.shut == "volatility gate: the forecast is not finite"


def test_the_gate_waits_for_a_full_window_and_compares_with_forecasts_before_this_one():
    gate = risk(window=3)
    gate.update([0.0, 0.001])
    gate.update([0.0, 0.1])  # huge, but only one forecast before it
    assert gate.shut is None
    gate.update([0.0, 0.001])
    gate.update([0.0, 0.0021])  # window (0.001, 0.1, 0.001): median 0.001
    assert gate.shut is not None
    # Off: no gate at all; and a forecaster without volatility changes nothing.
    for idle in (risk(multiple=None), risk(index=None)):
        for sigma in (0.001,) * 10 + (1.0,):
            idle.update([0.0, sigma])
        assert idle.shut is None and idle.gate(LONG, "r", FLAT) == (LONG, "r") and idle.state() is None
    assert risk(index=None).annual is None


def test_state_restores_the_window():
    gate = risk(window=4)
    for sigma in (0.001, 0.002, 0.003, 0.004, 0.005):
        gate.update([0.0, sigma])
    restored = risk(window=4)
    restored.restore(gate.state())
    for sigma in (0.02, 0.006):
        gate.update([0.0, sigma])
        restored.update([0.0, sigma])
        assert restored.shut == gate.shut
    assert restored.state() == gate.state() == [0.004, 0.005, 0.02, 0.006]


def test_annualized_forecast_for_sizing():
    gate = risk()
    gate.update([0.0, 0.002])
    assert gate.annual == pytest.approx(0.002 * math.sqrt(35_040))


def test_no_look_ahead_perturbing_later_forecasts_changes_nothing_before():
    rng = np.random.default_rng(3)
    sigmas = np.exp(rng.normal(-6.5, 0.6, size=400))
    changed = sigmas.copy()
    t = 250
    changed[t + 1:] *= rng.uniform(0.2, 5.0, size=changed.size - t - 1)
    sizing = SizingConfig(target_volatility=0.5)

    def decisions(series):
        gate = risk(window=60)
        out = []
        for sigma in series:
            gate.update([0.0, float(sigma)])
            out.append((gate.gate(LONG, "r", FLAT), sizing.notional(lambda: math.nan, gate.annual)))
        return out

    base, perturbed = decisions(sigmas), decisions(changed)
    assert base[:t + 1] == perturbed[:t + 1]
    assert base[t + 1:] != perturbed[t + 1:]
    assert any(decision[0] == (FLAT, decision[0][1]) and "volatility gate" in reason_text(decision[0][1]) for decision in base)


def test_a_target_volatility_without_a_volatility_forecast_fails_fast():
    config = parse_strategy_config(strategy_settings(BARS, {"target_volatility": 0.5, "forecaster": "ridge"}))
    with pytest.raises(ValueError, match=r"target_volatility needs a volatility forecast, and m \(ridge\) has none"):
        VolatilityRisk.of(config, None, MINUTE_NS, 15)
    assert VolatilityRisk.of(config, 2, MINUTE_NS, 15).index == 2


def test_flat_settings_reach_the_volatility_groups():
    config = parse_strategy_config(strategy_settings(BARS, {"target_volatility": 0.4, "volatility_gate": 3.0,
                                                            "volatility_gate_window": 600}))
    assert config.sizing == SizingConfig(target_volatility=0.4)
    assert config.volatility == VolatilityGateConfig(volatility_gate=3.0, volatility_gate_window=600)
    assert parse_strategy_config(strategy_settings(BARS, {"volatility_gate": None})).volatility.volatility_gate is None
    for bad, message in (({"volatility_gate": 0.0}, "volatility_gate must be a positive multiple"),
                         ({"volatility_gate_window": 0}, "volatility_gate_window must be at least 1 bar")):
        with pytest.raises(ValueError, match=message):
            parse_strategy_config(strategy_settings(BARS, bad))
