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
row kept all the same. A benchmark's run (``main`` False) has no positions report, so its
closed positions and their snapshots go too (``Cache.purge_closed_positions``): the EMA cross held
2,570 snapshots on the 3-month file.

After the run :meth:`TradeLedger.fills_report` is ``trader.generate_fills_report()``: Nautilus's
own ``ReportProvider`` over the purged orders' fills and the orders still cached, in the cache's
order (by client order id), so the table is the one an unpurged run gives
(``tests/backtests/test_ledger.py``). A benchmark's run keeps less of each fill: only the report's
columns that its readers use (``BENCHMARK_FILL_COLUMNS``), their repeated words shared, kept as the
orders are purged instead of the ``OrderFilled`` events, and its report is made of those rows, the
same values in the same order as Nautilus's report gives them. Nautilus's report builds a dict of
some 25 fields per fill and a frame of them all; for the EMA cross over the 3-month file (5,142
fills) that left about 8 MB more in the process than a quarter of the file did.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd
from nautilus_trader.analysis.reporter import ReportProvider
from nautilus_trader.backtest.engine import BacktestEngine
from nautilus_trader.core.datetime import unix_nanos_to_dt
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.identifiers import ClientOrderId

# The fills report's columns a benchmark's run is read for: backtests.stats.fills_from_nautilus, the
# walk-forward's window-end fill (backtests.walk_forward.close_at_window_end) and the pooled split by instrument.
BENCHMARK_FILL_COLUMNS = ("strategy_id", "instrument_id", "order_side", "order_type", "last_qty", "last_px",
                          "currency", "commission", "liquidity_side", "ts_event", "ts_init")
# Those that repeat from fill to fill, held once each.
_SHARED_WORDS = frozenset(("strategy_id", "instrument_id", "order_side", "order_type", "currency", "liquidity_side"))


@dataclass(frozen=True)
class PurgedOrder:
    """What the fills report reads of a purged order: its fill events."""

    events: tuple[OrderFilled, ...]


class TradeLedger:
    """The fills of the closed orders purged from ``engine``'s cache, and the purging. ``main`` False:
    a benchmark's run, whose closed positions go too and whose fills are kept as ``BENCHMARK_FILL_COLUMNS``."""

    def __init__(self, engine: BacktestEngine, main: bool = True) -> None:
        self._cache = engine.kernel.cache
        self._main = main
        self._clock = engine.kernel.clock
        # By order: a PurgedOrder (main), or its fills' rows (a benchmark's).
        self._purged: dict[ClientOrderId, PurgedOrder | list[tuple]] = {}

    def purge(self) -> None:
        """Purge the closed orders (their fills kept), the account states but the last and, in a
        benchmark's run, the closed positions."""
        now = self._clock.timestamp_ns()
        closed = self._cache.orders_closed()
        self._cache.purge_closed_orders(now)
        for order in closed:
            fills = tuple(event for event in order.events if isinstance(event, OrderFilled))
            # Nautilus keeps an order whose linked (contingent) order is still open: not purged yet.
            if fills and self._cache.order(order.client_order_id) is None:
                self._purged[order.client_order_id] = PurgedOrder(fills) if self._main else fill_rows(fills)
        self._cache.purge_account_events(now)
        if not self._main:
            self._cache.purge_closed_positions(now)

    def fills_report(self) -> pd.DataFrame:
        """``trader.generate_fills_report()`` as if nothing had been purged: one row per fill (a
        benchmark's: its ``BENCHMARK_FILL_COLUMNS``)."""
        cached = {order.client_order_id: order for order in self._cache.orders()}
        if self._main:
            orders = {**self._purged, **cached}
            return ReportProvider.generate_fills_report([orders[key] for key in sorted(orders)])
        rows = {**self._purged, **{key: fill_rows(order.events) for key, order in cached.items()}}
        return benchmark_fills_report(rows)


def fill_rows(events: Iterable) -> list[tuple]:
    """Each fill among ``events`` as its ``BENCHMARK_FILL_COLUMNS``, the values Nautilus's report holds."""
    rows = []
    for event in events:
        if isinstance(event, OrderFilled):
            fields = OrderFilled.to_dict(event)
            rows.append(tuple(sys.intern(fields[name]) if name in _SHARED_WORDS else fields[name]
                              for name in BENCHMARK_FILL_COLUMNS))
    return rows


def benchmark_fills_report(rows: dict[ClientOrderId, list[tuple]]) -> pd.DataFrame:
    """Nautilus's fills report (``ReportProvider.generate_fills_report``) of these orders' fill rows,
    its ``BENCHMARK_FILL_COLUMNS`` only: indexed and sorted by client order id, times as datetimes."""
    flat = [(key.value, *row) for key in sorted(rows) for row in rows[key]]
    if not flat:
        return pd.DataFrame()
    report = pd.DataFrame(flat, columns=["client_order_id", *BENCHMARK_FILL_COLUMNS]).set_index("client_order_id").sort_index()
    report["ts_event"] = [unix_nanos_to_dt(ts or 0) for ts in report["ts_event"]]
    report["ts_init"] = [unix_nanos_to_dt(ts) for ts in report["ts_init"]]
    return report
