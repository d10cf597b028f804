"""The strategy's view of its account: the position counting orders in flight, and equity.

Equity is ``cash + units * close``: on a spot CASH account the quote balance plus the base asset
held; on a linear perpetual the balance plus each position's units times (close - entry). The two
figures change only with fills (and, on futures, funding), so they are read from the account
after a fill and every ``EQUITY_REFRESH_BARS`` calls, not on every bar.
"""

from __future__ import annotations

import math

import numpy as np
from nautilus_trader.model.enums import OrderSide, PriceType
from nautilus_trader.model.events import OrderFilled

from strategies.decision import SizingConfig, instrument_order_quantity
from strategies.kernel import CALLS, CASH, EQUITY_REFRESH_BARS, UNITS
from strategies.safety import ProposedOrder


class AccountView:
    """What the strategy needs to know of its account, read from Nautilus's portfolio and cache."""

    def __init__(self, portfolio, cache, instrument) -> None:
        self._portfolio, self._cache, self._instrument = portfolio, cache, instrument
        self.in_flight: set = set()  # client order ids of our orders the venue has not finished with
        # Cash, units and calls since read (strategies.kernel's CASH, UNITS, CALLS), due to be read: an
        # array, which the strategy's compiled per-bar call reads and counts for the kill switch.
        self.parts = np.array([math.nan, math.nan, EQUITY_REFRESH_BARS])

    def sent(self, client_order_id) -> None:
        self.in_flight.add(client_order_id)

    def order_event(self, event) -> None:
        """Keep track of an order event: done orders leave the in-flight set, fills move equity."""
        # In a live node an order waits in the engines' queues for a while: not yet in flight in
        # the cache's sense, but its fill will change the position all the same.
        order = self._cache.order(event.client_order_id)  # None at OrderInitialized: not cached yet
        if order is not None and order.is_closed:
            self.in_flight.discard(event.client_order_id)
        if isinstance(event, OrderFilled):
            self.parts[CALLS] = EQUITY_REFRESH_BARS  # balances and position changed: read at the next call

    def net_position(self) -> float:
        return float(self._portfolio.net_position(self._instrument.id))

    def expected_position(self) -> float:
        """The signed net position once the orders still in flight are done."""
        position = self.net_position()
        for client_order_id in self.in_flight:
            order = self._cache.order(client_order_id)
            if order is not None and not order.is_closed:
                position += float(order.leaves_qty) * (1 if order.side == OrderSide.BUY else -1)
        return position

    def entry_price(self) -> float:
        """The average opening price of the open position (0.0 if none)."""
        opened = self._cache.positions_open(instrument_id=self._instrument.id)
        return float(opened[0].avg_px_open) if opened else 0.0

    def free_base(self) -> float | None:
        """On a cash account, the base asset free to sell; None on a margin account."""
        account = self._portfolio.account(self._instrument.id.venue)
        if account is None or not account.is_cash_account:
            return None
        free = account.balance_free(self._instrument.base_currency)
        return free.as_double() if free is not None else 0.0

    def proposed(self, side: int, quantity: float, price: float, not_ready: str | None) -> ProposedOrder:
        """An order the strategy wants to submit (side +1 buy, -1 sell), as the safety rails judge it."""
        instrument = self._instrument
        return ProposedOrder(side=side, quantity=quantity, price=price, position=self.expected_position(),
                             size_increment=float(instrument.size_increment), min_quantity=float(instrument.min_quantity or 0),
                             free_base=self.free_base(), not_ready=not_ready)

    def opening_quantity(self, sizing: SizingConfig, close: float, volatility: float | None) -> tuple[float, str | None]:
        """The quantity of a new position opened at ``close`` (``sizing``, at the annualized ``volatility``
        forecast when sized by it), or 0 and why none."""
        return instrument_order_quantity(self._instrument, sizing.notional(lambda: self.equity(close), volatility), close)

    def equity(self, close: float) -> float:
        """Account equity in quote currency, marked at ``close`` (NaN without an account)."""
        parts = self.parts
        if parts[CALLS] >= EQUITY_REFRESH_BARS:
            self.read_parts()
        parts[CALLS] += 1
        return self.marked(close)

    def marked(self, close: float) -> float:
        """The equity of the parts as last read, marked at ``close``, neither read nor counted: on a bar
        the compiled call handed back, which has read them if due and counted the bar already."""
        parts = self.parts
        return float(parts[CASH] + parts[UNITS] * close)

    def read_parts(self) -> None:
        """Read the equity's parts from the account now; with no account yet (NaN), again at the next call."""
        parts = self.parts
        parts[CASH], parts[UNITS] = self._cash_and_units()
        parts[CALLS] = 0 if math.isfinite(parts[CASH]) else EQUITY_REFRESH_BARS - 1

    def _last_price(self, base) -> float:
        """The last price of the venue's ``base``/our quote instrument (NaN if none is known)."""
        quote, venue = self._instrument.quote_currency, self._instrument.id.venue
        for other in self._cache.instruments(venue=venue):
            if other.base_currency == base and other.quote_currency == quote:
                price = self._cache.price(other.id, PriceType.LAST)
                return price.as_double() if price is not None else math.nan
        return math.nan

    def _cash_and_units(self) -> tuple[float, float]:
        instrument = self._instrument
        account = self._portfolio.account(instrument.id.venue)
        if account is None:
            return math.nan, 0.0
        if account.is_cash_account:
            # A pooled backtest's strategies share one cash account: the other instruments' holdings
            # are part of its equity too, marked at their last price (the bar close, in backtests).
            cash, units = 0.0, 0.0
            for currency, total in account.balances_total().items():
                amount = total.as_double()
                if currency == instrument.quote_currency:
                    cash += amount
                elif currency == instrument.base_currency:
                    units += amount
                elif amount:
                    cash += amount * self._last_price(currency)
            return cash, units
        balance = account.balance_total(instrument.get_settlement_currency())
        cash, units = (balance.as_double() if balance else 0.0), 0.0
        for position in self._cache.positions_open(instrument_id=instrument.id):
            units += position.signed_qty
            cash -= position.signed_qty * position.avg_px_open
        return cash, units
