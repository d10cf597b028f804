"""Safety rails: what an order must pass before it goes out, and when to stop.

The strategy asks :meth:`SafetyRails.review` about every order before submitting it (where an
order limit is set: the live node's rails), calls :meth:`SafetyRails.check` on a timer, and
:meth:`SafetyRails.drawdown_breached` on every bar it decides on. One rule runs through all of it: **no rail stands between
the strategy and flat.** Only an order that adds exposure (opens, adds to or flips the position)
can be blocked; an order that only reduces the position always goes out, at most cut to what a
spot account holds. Limits (all optional, in the instrument's quote currency):

- ``max_order_notional``: no order adding exposure worth more than this;
- ``max_position_notional``: no order that leaves a position worth more than this;
- ``max_orders_per_minute``: no order adding exposure once this many orders went out in the
  last 60 seconds;
- ``daily_loss_limit``: once equity is this far below the day's starting equity (the first seen
  after 00:00 UTC), flatten and add no exposure until the next UTC day;
- ``kill_file``: once this file exists, flatten and stop the node;
- ``max_drawdown`` (0.25 by default, in backtests too): the kill switch. Once equity falls this
  fraction below its peak, flatten and trade no more (a fraction, not an amount).

Orders adding exposure also wait for the strategy to be ready (warm-up done, feed not stale).
Nautilus's RiskEngine backs some of these up (see ``nodes.live``); its checks apply to
every order, which is why the rails proper live here.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd

from strategies.kernel import drawdown_core

ORDER_RATE_WINDOW_NS = 60_000_000_000
ORDER_LIMITS = ("max_order_notional", "max_position_notional", "max_orders_per_minute", "daily_loss_limit", "kill_file")


class SafetyLimits(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The rails' limits (None: no such limit). Amounts are in the quote currency."""

    max_order_notional: float | None = None
    max_position_notional: float | None = None
    max_orders_per_minute: int | None = None
    daily_loss_limit: float | None = None
    kill_file: str | None = None
    max_drawdown: float | None = 0.25

    def __post_init__(self) -> None:
        for name in ("max_order_notional", "max_position_notional", "max_orders_per_minute", "daily_loss_limit"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive, not {value}")
        if self.max_drawdown is not None and not 0 < self.max_drawdown < 1:
            raise ValueError(f"max_drawdown must be a fraction between 0 and 1, not {self.max_drawdown}")

    @property
    def guards_orders(self) -> bool:
        """Whether any limit on orders or on a timer is set (the live node's rails), beyond the kill switch."""
        return any(getattr(self, name) is not None for name in ORDER_LIMITS)


@dataclass(frozen=True)
class ProposedOrder:
    """An order the strategy wants to submit, and what the rails need to know to judge it."""

    side: int  # +1 buy, -1 sell
    quantity: float
    price: float  # the latest close: what the order's notional is reckoned at
    position: float  # signed, counting the orders still in flight
    size_increment: float
    min_quantity: float
    free_base: float | None = None  # spot: the base asset the account may sell; None on futures
    not_ready: str | None = None  # why the strategy may not add exposure yet (warm-up, stale feed)

    @property
    def adds_exposure(self) -> bool:
        after = self.position + self.side * self.quantity
        return abs(after) > abs(self.position) or after * self.position < 0


class SafetyRails:
    """The limits, the orders sent in the last minute, the day's starting equity, the equity's
    peak and the halts."""

    def __init__(self, limits: SafetyLimits):
        self.limits = limits
        self.halted: str | None = None  # why no exposure may be added (a daily loss), until the next UTC day
        self.drawdown_halted = False  # the kill switch fired: flat for good
        self.peak_equity = np.zeros(1)  # the kill switch's, in an array the strategy's compiled per-bar call updates
        self._sent_ns: deque[int] = deque()
        self._day: str | None = None
        self._day_start_equity = math.nan

    # -- orders --------------------------------------------------------------------------------

    def review(self, order: ProposedOrder, now_ns: int) -> tuple[float, str | None]:
        """The quantity that may go out (0: none) and why it was blocked or cut (None: as asked)."""
        if not order.adds_exposure:
            return _sellable(order)
        problem = self._exposure_problem(order, now_ns)
        return (0.0, problem) if problem else (order.quantity, None)

    def sent(self, now_ns: int) -> None:
        """An order went out (counted for ``max_orders_per_minute``)."""
        self._sent_ns.append(now_ns)

    def _exposure_problem(self, order: ProposedOrder, now_ns: int) -> str | None:
        limits = self.limits
        if self.halted:
            return f"halted: {self.halted}"
        if order.not_ready:
            return order.not_ready
        if not math.isfinite(order.price):
            return "no price to reckon the order's notional at"
        notional = order.quantity * order.price
        if limits.max_order_notional is not None and notional > limits.max_order_notional:
            return f"order notional {notional:.2f} exceeds max_order_notional {limits.max_order_notional:g}"
        position_notional = abs(order.position + order.side * order.quantity) * order.price
        if limits.max_position_notional is not None and position_notional > limits.max_position_notional:
            return f"position notional {position_notional:.2f} would exceed max_position_notional {limits.max_position_notional:g}"
        while self._sent_ns and self._sent_ns[0] <= now_ns - ORDER_RATE_WINDOW_NS:
            self._sent_ns.popleft()
        if limits.max_orders_per_minute is not None and len(self._sent_ns) >= limits.max_orders_per_minute:
            return f"{len(self._sent_ns)} orders in the last minute: max_orders_per_minute is {limits.max_orders_per_minute}"
        return None

    # -- on a timer ----------------------------------------------------------------------------

    def kill_requested(self) -> bool:
        return self.limits.kill_file is not None and Path(self.limits.kill_file).exists()

    def check(self, now_ns: int, equity: float) -> str | None:
        """Why to flatten and halt now (the daily loss limit was just reached), or None. A new
        UTC day starts from the equity first seen in it and lifts a daily-loss halt."""
        day = pd.Timestamp(now_ns, unit="ns", tz="UTC").strftime("%Y-%m-%d")
        if day != self._day:
            self._day, self._day_start_equity, self.halted = day, equity, None
        elif math.isnan(self._day_start_equity):
            self._day_start_equity = equity
        loss = self._day_start_equity - equity
        limit = self.limits.daily_loss_limit
        if limit is None or self.halted or not loss >= limit:
            return None
        self.halted = (f"daily loss {loss:.2f} reached daily_loss_limit {limit:g} (equity {self._day_start_equity:.2f} "
                       f"at the start of {day} UTC, {equity:.2f} now)")
        return self.halted

    def drawdown_breached(self, equity: float) -> str | None:
        """Why to flatten and halt for good (equity just fell ``max_drawdown`` below its peak), or None.
        An unknown (NaN) equity is no evidence of a drawdown."""
        limit = self.limits.max_drawdown
        if limit is None:
            return None
        breached, self.peak_equity[0] = drawdown_core(equity, self.peak_equity[0], limit)  # strategies.kernel
        if self.drawdown_halted or not breached:
            return None
        self.drawdown_halted = True
        return f"equity {equity:.2f} is {1 - equity / self.peak_equity[0]:.2%} below its peak"

    # -- across restarts -----------------------------------------------------------------------

    def state(self) -> dict:
        start = None if math.isnan(self._day_start_equity) else self._day_start_equity
        return {"day": self._day, "day_start_equity": start, "halted": self.halted}

    def restore(self, state: dict) -> None:
        start = state["day_start_equity"]
        self._day, self._day_start_equity, self.halted = state["day"], math.nan if start is None else float(start), state["halted"]


def _sellable(order: ProposedOrder) -> tuple[float, str | None]:
    """A reducing order, cut on spot to the base asset the account holds (Binance takes its fee
    on a buy out of the asset bought, so a position is a little more than the balance behind it)."""
    if order.free_base is None or order.side > 0 or order.quantity <= order.free_base:
        return order.quantity, None
    steps = math.floor(order.free_base / order.size_increment + 1e-9)
    quantity = steps * order.size_increment
    if quantity < max(order.min_quantity, order.size_increment):
        return 0.0, f"nothing to sell: {order.free_base:g} free is below the minimum quantity (dust)"
    return quantity, f"cut from {order.quantity:g} to the {order.free_base:g} free"
