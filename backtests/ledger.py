"""A backtest's memory flat in its trades: Nautilus's cache purged of closed orders as the run goes.

Nautilus's cache keeps every order with all its events, and the account every state it went
through, for the whole run: what a strategy that trades often adds grows with its trades. Measured
on the 3-month BTC/USDT 1-minute file (the EMA-cross benchmark, 5,142 orders over 120,627 bars,
tracemalloc): 2.8 KB an order, 1.0 KB an account state (one a fill), 1.8 KB a closed round trip's
position (NETTING keeps each as a pickled snapshot).

Between chunks of bars (``backtests.feed.feed_engine``) :meth:`TradeLedger.purge` keeps each closed
order's fill events (``OrderFilled``, 0.85 KB each: what the fills report is made of), then purges the closed
orders (``Cache.purge_closed_orders``) and every account state but the last
(``Cache.purge_account_events``: no report reads them, and the account's balances are its own).
Closed positions stay in the report's main run: the positions report needs a row per round trip,
which Nautilus already keeps compactly as that pickled snapshot, and a purged position would need its
row kept all the same. A benchmark's run (``keep_positions`` False) has no positions report, so its
closed positions and their snapshots go too (``Cache.purge_closed_positions``): the EMA cross held
2,570 snapshots on the 3-month file.

After the run :meth:`TradeLedger.fills_report` is ``trader.generate_fills_report()``: Nautilus's
own ``ReportProvider`` over the purged orders' fills and the orders still cached, in the cache's
order (by client order id), so the table is the one an unpurged run gives
(``tests/backtests/test_ledger.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from nautilus_trader.analysis.reporter import ReportProvider
from nautilus_trader.backtest.engine import BacktestEngine
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.identifiers import ClientOrderId


@dataclass(frozen=True)
class PurgedOrder:
    """What the fills report reads of a purged order: its fill events."""

    events: tuple[OrderFilled, ...]


class TradeLedger:
    """The fills of the closed orders purged from ``engine``'s cache, and the purging."""

    def __init__(self, engine: BacktestEngine, keep_positions: bool = True) -> None:
        self._cache = engine.kernel.cache
        self._keep_positions = keep_positions
        self._clock = engine.kernel.clock
        self._purged: dict[ClientOrderId, PurgedOrder] = {}

    def purge(self) -> None:
        """Purge the closed orders (their fills kept), the account states but the last and, unless
        the positions are kept, the closed positions."""
        now = self._clock.timestamp_ns()
        closed = self._cache.orders_closed()
        self._cache.purge_closed_orders(now)
        for order in closed:
            fills = tuple(event for event in order.events if isinstance(event, OrderFilled))
            # Nautilus keeps an order whose linked (contingent) order is still open: not purged yet.
            if fills and self._cache.order(order.client_order_id) is None:
                self._purged[order.client_order_id] = PurgedOrder(fills)
        self._cache.purge_account_events(now)
        if not self._keep_positions:
            self._cache.purge_closed_positions(now)

    def fills_report(self) -> pd.DataFrame:
        """``trader.generate_fills_report()`` as if nothing had been purged: one row per fill."""
        orders = {**self._purged, **{order.client_order_id: order for order in self._cache.orders()}}
        return ReportProvider.generate_fills_report([orders[key] for key in sorted(orders)])
