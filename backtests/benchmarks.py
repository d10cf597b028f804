"""The benchmarks every LSTM backtest runs beside it, on the same engine, bars and sizing.

- ``ema_cross``: Nautilus's own EMA-cross example (long-only on spot), unchanged but for
  waiting for its last order to fill before deciding again;
- ``buy_and_hold``: buy once at the first bar, hold to the end.
"""

from __future__ import annotations

from decimal import Decimal

from nautilus_trader.config import StrategyConfig
from nautilus_trader.examples.strategies.ema_cross import EMACross, EMACrossConfig
from nautilus_trader.examples.strategies.ema_cross_long_only import EMACrossLongOnly, EMACrossLongOnlyConfig
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.trading.strategy import Strategy

from strategies.decision import instrument_order_quantity


class _WaitsForFills:
    """Runs a Nautilus example's ``on_bar`` only when none of its orders is in flight.

    The examples decide from the portfolio's position; with orders filling on the next bar they
    would otherwise order again before the first fill lands, doubling size and fees.
    """

    def on_bar(self, bar: Bar) -> None:
        instrument_id = self.config.instrument_id
        if not (self.cache.orders_inflight_count(instrument_id=instrument_id) or self.cache.orders_open_count(instrument_id=instrument_id)):
            super().on_bar(bar)


class EMACrossBenchmark(_WaitsForFills, EMACross):
    pass


class EMACrossLongOnlyBenchmark(_WaitsForFills, EMACrossLongOnly):
    pass


class BuyAndHoldConfig(StrategyConfig, frozen=True):
    instrument_id: InstrumentId
    bar_type: BarType
    notional: float


class BuyAndHold(Strategy):
    """Buy ``notional`` of quote worth at the first bar and hold it."""

    def on_start(self) -> None:
        self.instrument = self.cache.instrument(self.config.instrument_id)
        self.subscribe_bars(self.config.bar_type)

    def on_bar(self, bar: Bar) -> None:
        if self.portfolio.is_flat(self.instrument.id) and not self.cache.orders(strategy_id=self.id):  # its own, beside others
            quantity, problem = instrument_order_quantity(self.instrument, self.config.notional, bar.close.as_double())
            if problem:
                raise ValueError(f"buy-and-hold cannot buy: {problem}")
            self.submit_order(self.order_factory.market(self.instrument.id, OrderSide.BUY, self.instrument.make_qty(quantity)))

    def on_stop(self) -> None:
        pass  # holds to the end: the report marks the position at the last close


def benchmark_strategies(instrument: Instrument, bar_type: BarType, notional: float, first_close: float) -> dict[str, Strategy]:
    """The benchmarks of ``instrument``'s bars, trading ``notional`` of quote (sized at ``first_close``)."""
    quantity, problem = instrument_order_quantity(instrument, notional, first_close)
    if problem:
        raise ValueError(f"benchmarks cannot size {notional} of quote: {problem}")
    trade_size = Decimal(str(instrument.make_qty(quantity)))
    if instrument.instrument_class.name == "SPOT":
        ema = EMACrossLongOnlyBenchmark(EMACrossLongOnlyConfig(
            instrument_id=instrument.id, bar_type=bar_type, trade_size=trade_size, request_historical_bars=False,
        ))
    else:
        ema = EMACrossBenchmark(EMACrossConfig(
            instrument_id=instrument.id, bar_type=bar_type, trade_size=trade_size,
            subscribe_trade_ticks=False, request_bars=False,
        ))
    return {
        "ema_cross": ema,
        "buy_and_hold": BuyAndHold(BuyAndHoldConfig(instrument_id=instrument.id, bar_type=bar_type, notional=notional)),
    }
