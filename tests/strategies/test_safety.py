"""The live node's safety rails: which orders they block, cut or let through, and when they halt."""

import math

import pytest

from strategies.safety import ProposedOrder, SafetyLimits, SafetyRails

SECOND = 1_000_000_000
NOON = 1_755_518_400 * SECOND  # 2025-08-18 12:00 UTC


def order(side: int = 1, quantity: float = 0.01, position: float = 0.0, **changes) -> ProposedOrder:
    return ProposedOrder(**{"side": side, "quantity": quantity, "price": 100_000.0, "position": position,
                            "size_increment": 0.00001, "min_quantity": 0.00001, **changes})


def test_orders_adding_exposure_meet_every_limit():
    rails = SafetyRails(SafetyLimits(max_order_notional=1_500, max_position_notional=2_500, max_orders_per_minute=3))

    assert rails.review(order(quantity=0.01), NOON) == (0.01, None)
    assert rails.review(order(quantity=0.02), NOON) == (0.0, "order notional 2000.00 exceeds max_order_notional 1500")
    assert rails.review(order(quantity=0.01, position=0.02), NOON) == (
        0.0, "position notional 3000.00 would exceed max_position_notional 2500")
    # A sell that flips a long into a short adds exposure on the other side.
    assert rails.review(order(side=-1, quantity=0.03, position=0.01), NOON)[1].startswith("position notional 2000.00") is False
    assert rails.review(order(side=-1, quantity=0.04, position=0.01), NOON) == (
        0.0, "order notional 4000.00 exceeds max_order_notional 1500")
    for second in range(3):
        rails.sent(NOON + second * SECOND)
    assert rails.review(order(), NOON + 59 * SECOND) == (0.0, "3 orders in the last minute: max_orders_per_minute is 3")
    assert rails.review(order(), NOON + 61 * SECOND) == (0.01, None)  # the first has left the window
    assert rails.review(order(not_ready="warm-up not complete"), NOON) == (0.0, "warm-up not complete")


def test_no_rail_stands_between_the_strategy_and_flat():
    rails = SafetyRails(SafetyLimits(max_order_notional=10, max_position_notional=10, max_orders_per_minute=1))
    rails.sent(NOON)
    rails.halted = "daily loss"

    closing = order(side=-1, quantity=0.05, position=0.05, not_ready="stale feed")
    assert rails.review(closing, NOON) == (0.05, None)
    assert rails.review(order(side=1, quantity=0.02, position=-0.05), NOON) == (0.02, None)  # reduces a short
    assert rails.review(order(quantity=0.01), NOON) == (0.0, "halted: daily loss")


def test_spot_sells_are_cut_to_the_free_balance():
    rails = SafetyRails(SafetyLimits())
    # Bought 0.00500 BTC; Binance kept 0.1% of it as the fee.
    held = order(side=-1, quantity=0.005, position=0.005, free_base=0.004995)
    assert rails.review(held, NOON) == (pytest.approx(0.00499), "cut from 0.005 to the 0.004995 free")
    dust = order(side=-1, quantity=0.00001, position=0.00001, free_base=0.000005)
    assert rails.review(dust, NOON) == (0.0, "nothing to sell: 5e-06 free is below the minimum quantity (dust)")
    assert rails.review(order(side=-1, quantity=0.005, position=0.005, free_base=0.01), NOON) == (0.005, None)


def test_daily_loss_limit_halts_until_the_next_utc_day():
    rails = SafetyRails(SafetyLimits(daily_loss_limit=100))

    assert rails.check(NOON, 10_000) is None  # the day's starting equity
    assert rails.check(NOON + SECOND, 9_950) is None
    reason = rails.check(NOON + 2 * SECOND, 9_899)
    assert reason == ("daily loss 101.00 reached daily_loss_limit 100 (equity 10000.00 at the start of 2025-08-18 UTC, "
                      "9899.00 now)")
    assert rails.check(NOON + 3 * SECOND, 9_800) is None  # reported once
    assert rails.review(order(), NOON) == (0.0, f"halted: {reason}")

    # A restart the same day stays halted; the next day starts afresh.
    restarted = SafetyRails(rails.limits)
    restarted.restore(rails.state())
    assert restarted.halted == reason and restarted.check(NOON + 4 * SECOND, 9_800) is None
    assert restarted.check(NOON + 12 * 3600 * SECOND, 9_800) is None and restarted.halted is None
    assert restarted.review(order(), NOON + 12 * 3600 * SECOND) == (0.01, None)


def test_kill_file(tmp_path):
    rails = SafetyRails(SafetyLimits(kill_file=str(tmp_path / "KILL")))
    assert not rails.kill_requested()
    (tmp_path / "KILL").touch()
    assert rails.kill_requested()
    assert not SafetyRails(SafetyLimits()).kill_requested()


@pytest.mark.parametrize("limits, message", [
    (dict(max_order_notional=0), "max_order_notional must be positive, not 0"),
    (dict(max_orders_per_minute=-1), "max_orders_per_minute must be positive, not -1"),
])
def test_bad_limits(limits, message):
    with pytest.raises(ValueError, match=message):
        SafetyLimits(**limits)


def test_drawdown_kill_switch_fires_once_below_the_peak_and_stays():
    rails = SafetyRails(SafetyLimits(max_drawdown=0.1))
    assert not SafetyLimits(max_drawdown=0.1).guards_orders  # the kill switch alone is no live rail
    assert [rails.drawdown_breached(e) for e in (1_000.0, 1_200.0, 1_081.0)] == [None, None, None]  # 9.9% below 1,200
    assert rails.drawdown_breached(1_079.0) == "equity 1079.00 is 10.08% below its peak"
    assert rails.drawdown_halted and rails.drawdown_breached(500.0) is None  # halted for good: reported once
    assert SafetyRails(SafetyLimits(max_drawdown=None)).drawdown_breached(1.0) is None
    unknown = SafetyRails(SafetyLimits(max_drawdown=0.1))
    assert [unknown.drawdown_breached(e) for e in (1_000.0, math.nan, 950.0)] == [None, None, None]  # NaN: no evidence
    assert not unknown.drawdown_halted


@pytest.mark.parametrize("bad, message", [
    ({"max_drawdown": 1.5}, "max_drawdown must be a fraction between 0 and 1, not 1.5"),
    ({"max_drawdown": 0.0}, "max_drawdown must be a fraction between 0 and 1, not 0.0"),
    ({"daily_loss_limit": -1.0}, "daily_loss_limit must be positive, not -1.0"),
])
def test_limits_are_checked(bad, message):
    with pytest.raises(ValueError, match=message):
        SafetyLimits(**bad)
