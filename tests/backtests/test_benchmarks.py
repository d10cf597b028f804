"""The volatility-targeted buy-and-hold's re-sizing rule: trade only past the band."""

import pytest

from backtests.benchmarks import REBALANCE_BAND, rebalance


def test_rebalance_buys_in_then_trades_only_past_the_band():
    assert rebalance(0.02, 0.0) == 0.02  # nothing held: buy the whole wanted quantity
    held = 0.02
    inside = held * (1 + REBALANCE_BAND * 0.9)
    assert rebalance(inside, held) == 0.0 and rebalance(held * (1 - REBALANCE_BAND * 0.9), held) == 0.0
    assert rebalance(held * (1 + REBALANCE_BAND * 1.1), held) == pytest.approx(held * REBALANCE_BAND * 1.1)
    assert rebalance(held * (1 - REBALANCE_BAND * 1.1), held) == pytest.approx(-held * REBALANCE_BAND * 1.1)
