"""The trading rule on its own."""

import math

import pytest

from marketdata.instruments import BUILTIN_MARKETS, instrument_from_market
from strategies.decision import (
    FLAT,
    LONG,
    SHORT,
    DecisionRule,
    RuleConfig,
    decide,
    entry_threshold,
    order_quantity,
    reason_text,
    stop_triggered,
)

RULE = DecisionRule(threshold=0.0025, allow_short=True, min_holding_bars=3)


def test_threshold_is_round_trip_fee_plus_margin():
    assert entry_threshold(0.001, 0.0005) == pytest.approx(-math.log(1 - 0.002) + 0.0005)
    assert entry_threshold(0.0005, 0.0) == pytest.approx(0.0010005, rel=1e-4)


def test_the_strategys_default_threshold_is_the_instruments_round_trip_taker_fee_plus_margin():
    spot = instrument_from_market(BUILTIN_MARKETS[("BTC/USDT", "spot")], "spot")
    perp = instrument_from_market(BUILTIN_MARKETS[("BTC/USDT", "futures")], "futures")
    assert (float(spot.taker_fee), float(perp.taker_fee)) == (0.001, 0.0005)  # Binance's VIP 0 taker fees
    margin = 0.0003
    assert DecisionRule.of(RuleConfig(entry_margin=margin), spot, horizon=5).threshold == pytest.approx(
        -math.log(1 - 2 * 0.001) + margin, rel=1e-12)
    assert DecisionRule.of(RuleConfig(entry_margin=margin), perp, horizon=5).threshold == pytest.approx(
        -math.log(1 - 2 * 0.0005) + margin, rel=1e-12)
    assert DecisionRule.of(RuleConfig(entry_threshold=0.0001), spot, horizon=5).threshold == 0.0001  # given: no fee added


@pytest.mark.parametrize("point, expected", [(0.003, LONG), (-0.003, SHORT), (0.001, FLAT), (-0.0025, FLAT)])
def test_long_short_flat(point, expected):
    assert decide(RULE, point, None, FLAT, 0)[0] == expected


def test_no_short_where_the_venue_cannot():
    side, reason = decide(DecisionRule(0.0025, allow_short=False, min_holding_bars=0), -0.01, None, FLAT, 0)
    assert side == FLAT and reason_text(reason) == "forecast -0.010000 < -0.002500 but this venue cannot short"


@pytest.mark.parametrize("point", [math.nan, math.inf, -math.inf])
def test_never_trades_on_a_bad_forecast(point):
    assert decide(RULE, point, None, LONG, 10) == (LONG, "forecast is not finite: no trade")
    assert decide(RULE, 0.01, (point, 0.02), FLAT, 0)[0] == FLAT


def test_quantile_gate():
    gated = DecisionRule(0.0025, allow_short=True, min_holding_bars=0, quantile_gate=True)
    assert decide(gated, 0.004, (0.003, 0.006), FLAT, 0)[0] == LONG
    side, reason = decide(gated, 0.004, (-0.001, 0.006), FLAT, 0)
    assert side == FLAT and reason_text(reason) == "quantile band [-0.001000, +0.006000] does not clear 0.002500"
    assert decide(gated, -0.004, (-0.006, -0.003), FLAT, 0)[0] == SHORT


def test_minimum_holding_period():
    side, reason = decide(RULE, 0.0, None, LONG, 2)
    assert side == LONG and reason_text(reason) == "forecast +0.000000 inside ±0.002500; held 2 of 3 minimum bars"
    assert decide(RULE, 0.0, None, LONG, 3)[0] == FLAT
    assert decide(RULE, -0.01, None, LONG, 1)[0] == LONG


def test_stops():
    assert stop_triggered(LONG, 100.0, 97.0, 0.02, None).startswith("stop-loss")
    assert stop_triggered(SHORT, 100.0, 103.0, 0.02, None).startswith("stop-loss")
    assert stop_triggered(LONG, 100.0, 105.0, None, 0.05).startswith("take-profit")
    assert stop_triggered(LONG, 100.0, 101.0, 0.02, 0.05) is None
    assert stop_triggered(FLAT, 100.0, 50.0, 0.02, 0.05) is None


def test_order_quantity_rounds_down_to_the_step_and_respects_minimums():
    assert order_quantity(1000.0, 105_000.0, 0.00001, 0.00001, 5.0) == (pytest.approx(0.00952), None)
    quantity, reason = order_quantity(4.0, 105_000.0, 0.00001, 0.00001, 5.0)
    assert quantity == 0.0 and "under the venue minimum" in reason
    quantity, reason = order_quantity(50.0, 105_000.0, 0.001, 0.001, 100.0)
    assert quantity == 0.0 and "minimum quantity" in reason
