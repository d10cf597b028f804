"""The benchmarks every LSTM backtest runs beside it, on the same engine, bars and sizing.

- ``ema_cross``: Nautilus's own EMA-cross example (long-only on spot), unchanged but for
  waiting for its last order to fill before deciding again;
- ``buy_and_hold``: buy once at the first bar, hold to the end;
- ``vol_target_buy_and_hold`` (models that forecast volatility): long only, sized as the strategy
  sizes (``SizingConfig.notional``: base × target volatility / the model's forecast, annualized),
  re-sized only when the wanted quantity drifts more than ``REBALANCE_BAND`` from the held one, so
  that it does not pay fees every bar. Beside ``buy_and_hold`` it shows what sizing alone is
  worth. Its forecasts come from ``models.predictor.OnlinePredictor``, warmed up on the history
  before the first bar as the strategy's are.
"""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path

from nautilus_trader.config import StrategyConfig
from nautilus_trader.examples.strategies.ema_cross import EMACross, EMACrossConfig
from nautilus_trader.examples.strategies.ema_cross_long_only import EMACrossLongOnly, EMACrossLongOnlyConfig
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.trading.strategy import Strategy

from marketdata.timeframes import bar_close_ns
from models.artifact import load_artifact
from models.predictor import OnlinePredictor
from strategies.catchup import CatchUp, default_warmup_bars
from strategies.cross_barrier import CrossBarrier
from strategies.decision import SizingConfig, instrument_order_quantity
from strategies.volatility import annualizer

# It re-sizes only when the wanted quantity differs from the held one by more than this fraction
# of the held one: a forecast that moves a little does not cost a round of fees.
REBALANCE_BAND = 0.25


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
        self.ordered = False  # its own flag, not the cache's orders: a backtest purges closed ones (backtests.ledger)
        self.subscribe_bars(self.config.bar_type)

    def on_bar(self, bar: Bar) -> None:
        if self.portfolio.is_flat(self.instrument.id) and not self.ordered:
            quantity, problem = instrument_order_quantity(self.instrument, self.config.notional, bar.close.as_double())
            if problem:
                raise ValueError(f"buy-and-hold cannot buy: {problem}")
            self.submit_order(self.order_factory.market(self.instrument.id, OrderSide.BUY, self.instrument.make_qty(quantity)))
            self.ordered = True

    def on_stop(self) -> None:
        pass  # holds to the end: the report marks the position at the last close


def rebalance(wanted: float, held: float) -> float:
    """The signed quantity to trade from ``held`` to ``wanted``: none while within ``REBALANCE_BAND`` of the held."""
    return 0.0 if held > 0 and abs(wanted - held) <= REBALANCE_BAND * held else wanted - held


class VolTargetBuyAndHoldConfig(StrategyConfig, frozen=True):
    instrument_id: InstrumentId
    bar_type: BarType
    model_path: str
    sizing: SizingConfig  # with target_volatility set
    warmup_bars: int | None = None  # default: as the strategy's (strategies.catchup.default_warmup_bars)
    request_timeout_s: float = 60.0


class VolTargetBuyAndHold(Strategy):
    """Long only, ``sizing.notional`` at the model's volatility forecast, re-sized past ``REBALANCE_BAND``.

    A cross-asset model's instances share a ``strategies.cross_barrier.CrossBarrier``, as LSTMStrategy's do."""

    barrier: CrossBarrier | None = None  # set by CrossBarrier.share before the start

    def on_start(self) -> None:
        config = self.config
        if config.sizing.target_volatility is None:
            raise ValueError("the volatility-targeted buy-and-hold needs sizing.target_volatility")
        self.instrument = self.cache.instrument(config.instrument_id)
        artifact = load_artifact(Path(config.model_path), bar_type=str(config.bar_type))
        # A pooled model: this instrument's scaling; a cross-asset one: stepped through the barrier.
        self.predictor = OnlinePredictor(artifact, str(config.bar_type), cross_asset=self.barrier is not None)
        self._feed = self.barrier.join(str(config.bar_type), self.predictor, self._update) if self.barrier else self._update
        if self.predictor.volatility_index is None:
            raise ValueError(f"{config.model_path} forecasts no volatility: no volatility-targeted buy-and-hold")
        interval_ns = config.bar_type.spec.timedelta.value
        self._annualizer = annualizer(interval_ns, artifact.config.training.horizon)
        self._start_ns = self.clock.timestamp_ns()
        self._last_ts = 0
        warmup = config.warmup_bars or default_warmup_bars(self.predictor, artifact.lstm)
        self.catch_up = CatchUp(self, config.bar_type, config.request_timeout_s, self._history_answered)
        self.subscribe_bars(config.bar_type)
        self.catch_up.request(self._start_ns - (warmup + 1) * interval_ns, "warm-up")

    def on_historical_data(self, data) -> None:
        if isinstance(data, Bar):
            self.catch_up.history_bar(data)

    def _history_answered(self, why: str, history: list[Bar], held: list[Bar], timed_out: bool) -> None:
        for bar in sorted(history + held, key=lambda bar: bar.ts_event):
            ts = bar_close_ns(bar.ts_event)
            self._feed(bar, ts >= self._start_ns, False, ts)
        if self.barrier:
            self.barrier.caught_up(str(self.config.bar_type))

    def on_bar(self, bar: Bar) -> None:
        if self.catch_up.why:
            self.catch_up.hold(bar)
        else:
            self._feed(bar, True, False, bar_close_ns(bar.ts_event))

    def _update(self, bar: Bar, trade: bool, backfilled: bool, ts: int) -> None:
        """One closed bar (``backfilled``: never, in a backtest; the barrier's step takes it)."""
        if ts <= self._last_ts:
            return
        self._last_ts = ts
        close = bar.close.as_double()
        outputs = self.predictor.update(ts, bar.high.as_double(), bar.low.as_double(), close, bar.volume.as_double())
        instrument_id = self.instrument.id
        waiting = self.cache.orders_inflight_count(instrument_id=instrument_id) or self.cache.orders_open_count(instrument_id=instrument_id)
        if outputs is None or not trade or waiting:
            return  # warming up, or an order is still on its way to fill
        volatility = float(outputs[self.predictor.volatility_index]) * self._annualizer
        if not (math.isfinite(volatility) and volatility > 0):
            return  # no usable forecast: hold what is held
        wanted = self.config.sizing.notional(lambda: math.nan, volatility) / close
        change = rebalance(wanted, float(self.portfolio.net_position(instrument_id)))
        quantity, problem = instrument_order_quantity(self.instrument, abs(change) * close, close)
        if change and not problem:
            side = OrderSide.BUY if change > 0 else OrderSide.SELL
            self.submit_order(self.order_factory.market(instrument_id, side, self.instrument.make_qty(quantity)))

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
