"""The trading rule, as plain functions the strategy calls: easy to read and to test alone.

Forecasts are log returns over the model's horizon. A position must be expected to earn more
than it costs: the entry threshold defaults to the round-trip taker fee plus a margin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

LONG, FLAT, SHORT = 1, 0, -1


@dataclass(frozen=True)
class DecisionRule:
    threshold: float  # |forecast| a trade needs, as a log return
    allow_short: bool
    min_holding_bars: int
    quantile_gate: bool = False  # trade only when the whole quantile band clears the threshold


def entry_threshold(taker_fee: float, margin: float) -> float:
    """Round-trip taker cost plus a margin, as a log return."""
    return -math.log1p(-2.0 * taker_fee) + margin


def decide(rule: DecisionRule, point: float, band: tuple[float, float] | None, side: int, bars_held: int) -> tuple[int, str]:
    """The side to hold next (LONG, FLAT or SHORT) and why.

    ``point`` is the point forecast, ``band`` the lowest and highest quantile forecasts (or
    None), ``side`` the side held now and ``bars_held`` for how many bars.
    """
    if not math.isfinite(point) or (band is not None and not all(math.isfinite(b) for b in band)):
        return side, "forecast is not finite: no trade"
    wanted, reason = FLAT, f"forecast {point:+.6f} inside ±{rule.threshold:.6f}"
    if point > rule.threshold:
        wanted, reason = LONG, f"forecast {point:+.6f} > {rule.threshold:.6f}"
    elif point < -rule.threshold:
        if rule.allow_short:
            wanted, reason = SHORT, f"forecast {point:+.6f} < -{rule.threshold:.6f}"
        else:
            reason = f"forecast {point:+.6f} < -{rule.threshold:.6f} but this venue cannot short"
    if wanted != FLAT and rule.quantile_gate and band is not None:
        low, high = band
        clears = low > rule.threshold if wanted == LONG else high < -rule.threshold
        if not clears:
            wanted, reason = FLAT, f"quantile band [{low:+.6f}, {high:+.6f}] does not clear {rule.threshold:.6f}"
    if side != FLAT and wanted != side and bars_held < rule.min_holding_bars:
        return side, f"{reason}; held {bars_held} of {rule.min_holding_bars} minimum bars"
    return wanted, reason


def stop_triggered(side: int, entry_price: float, close: float, stop_loss: float | None, take_profit: float | None) -> str | None:
    """Why a bar's close hits the stop-loss or take-profit of the position, or None."""
    if side == FLAT or entry_price <= 0:
        return None
    move = side * (close / entry_price - 1.0)
    if stop_loss is not None and move <= -stop_loss:
        return f"stop-loss: {move:+.4%} against the position"
    if take_profit is not None and move >= take_profit:
        return f"take-profit: {move:+.4%} with the position"
    return None


def order_quantity(notional: float, price: float, step: float, min_quantity: float, min_notional: float) -> tuple[float, str | None]:
    """Quantity for a quote ``notional``, rounded DOWN to the size step; 0 and a reason if too small."""
    if price <= 0 or notional <= 0:
        return 0.0, "no notional to trade"
    steps = math.floor(notional / price / step + 1e-9)
    quantity = steps * step
    if quantity < min_quantity or quantity <= 0:
        return 0.0, f"{notional:.2f} of quote buys {quantity:g}, under the minimum quantity {min_quantity:g}"
    if quantity * price < min_notional:
        return 0.0, f"order notional {quantity * price:.2f} is under the venue minimum {min_notional:.2f}"
    return quantity, None


def instrument_order_quantity(instrument, notional: float, price: float) -> tuple[float, str | None]:
    """:func:`order_quantity` with a Nautilus instrument's size step and venue minimums."""
    return order_quantity(
        notional, price, float(instrument.size_increment),
        float(instrument.min_quantity or 0), float(instrument.min_notional or 0),
    )
