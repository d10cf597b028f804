"""Backtests on Nautilus's own engine: the LSTM strategy and its benchmarks on the same bars.

Every strategy runs in a fresh ``BacktestEngine`` with identical venue settings, data and
sizing, so the report compares like with like:

- ``lstm``: LSTMStrategy, loaded through Nautilus's ``ImportableStrategyConfig``;
- ``ridge``: the same strategy and rule fed by the artifact's ridge baseline (same features);
- ``ema_cross``: Nautilus's own EMA-cross example (long-only on spot), unchanged but for
  waiting for its last order to fill before deciding again;
- ``buy_and_hold``: buy once at the first bar, hold to the end.

Orders reach the simulated venue after a 1 ms latency, so a market order decided at a bar's
close fills on the NEXT bar (at its close, Nautilus's bar execution): never on the bar that
produced the decision.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pandas as pd
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.backtest.models import LatencyModel
from nautilus_trader.config import ImportableStrategyConfig, LoggingConfig, StrategyConfig
from nautilus_trader.examples.strategies.ema_cross import EMACross, EMACrossConfig
from nautilus_trader.examples.strategies.ema_cross_long_only import EMACrossLongOnly, EMACrossLongOnlyConfig
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.enums import AccountType, OmsType, OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import Money
from nautilus_trader.trading.config import StrategyFactory
from nautilus_trader.trading.strategy import Strategy

from backtests.catalog import CatalogError, open_catalog, query_bars
from strategies.decision import instrument_order_quantity

log = logging.getLogger(__name__)

LATENCY_NS = 1_000_000  # 1 ms: orders fill on the bar after the decision
STRATEGY_PATH = "strategies.lstm_strategy:LSTMStrategy"
CONFIG_PATH = "strategies.lstm_strategy:LSTMStrategyConfig"


@dataclass(frozen=True)
class BacktestSettings:
    model_path: Path
    catalog: Path
    bar_type: str
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    starting_balance: float = 10_000.0
    maker_fee: float | None = None  # None: the instrument's (the venue's real fees)
    taker_fee: float | None = None
    strategy: dict = field(default_factory=dict)  # LSTMStrategyConfig fields to override


@dataclass
class StrategyRun:
    name: str
    fills: pd.DataFrame
    positions: pd.DataFrame
    predictions: pd.DataFrame | None
    seconds: float


def load_inputs(settings: BacktestSettings) -> tuple[Instrument, list[Bar]]:
    """The instrument (with any fee override) and the bars of the range, or a clear error."""
    catalog = open_catalog(settings.catalog)
    bar_type = BarType.from_str(settings.bar_type)
    instruments = catalog.instruments(instrument_ids=[str(bar_type.instrument_id)])
    if not instruments:
        held = ", ".join(str(i.id) for i in catalog.instruments()) or "none"
        raise CatalogError(f"{settings.catalog} has no instrument {bar_type.instrument_id} (instruments held: {held})")
    instrument = with_fees(instruments[0], settings.maker_fee, settings.taker_fee)
    bars = query_bars(settings.catalog, settings.bar_type, settings.start, settings.end)
    return instrument, bars


def with_fees(instrument: Instrument, maker: float | None, taker: float | None) -> Instrument:
    if maker is None and taker is None:
        return instrument
    raw = type(instrument).to_dict(instrument)
    raw["maker_fee"] = str(Decimal(str(maker)) if maker is not None else instrument.maker_fee)
    raw["taker_fee"] = str(Decimal(str(taker)) if taker is not None else instrument.taker_fee)
    return type(instrument).from_dict(raw)


def run_strategy(name: str, strategy: Strategy, settings: BacktestSettings, instrument: Instrument, bars: list[Bar]) -> StrategyRun:
    """One strategy alone in a fresh engine over ``bars``; warm-up requests are served by the catalog."""
    # Bars carry no quotes, so the risk engine warns on every market order that it cannot price
    # it; those warnings say nothing about the strategy.
    logging = LoggingConfig(log_level="WARNING", log_component_levels={"RiskEngine": "ERROR"})
    engine = BacktestEngine(BacktestEngineConfig(logging=logging))
    is_spot = instrument.instrument_class.name == "SPOT"
    quote = instrument.quote_currency
    balances = [Money(settings.starting_balance, quote)] + ([Money(0, instrument.base_currency)] if is_spot else [])
    engine.add_venue(
        instrument.id.venue,
        oms_type=OmsType.NETTING,
        account_type=AccountType.CASH if is_spot else AccountType.MARGIN,
        starting_balances=balances,
        base_currency=None,
        default_leverage=None if is_spot else Decimal(1),
        latency_model=LatencyModel(base_latency_nanos=LATENCY_NS),
        bar_execution=True,
    )
    engine.add_instrument(instrument)
    engine.add_data(bars)
    engine.kernel.data_engine.register_catalog(open_catalog(settings.catalog))
    engine.add_strategy(strategy)
    started = time.perf_counter()
    try:
        engine.run()
        seconds = time.perf_counter() - started
        fills = engine.trader.generate_fills_report()
        positions = engine.trader.generate_positions_report()
    finally:
        engine.dispose()
    predictions = strategy.predictions_frame() if hasattr(strategy, "predictions_frame") else None
    return StrategyRun(name, fills, positions, predictions, seconds)


def lstm_strategy(settings: BacktestSettings, forecaster: str = "lstm") -> Strategy:
    """LSTMStrategy built the way BacktestNode and TradingNode build it: from an importable config."""
    bar_type = BarType.from_str(settings.bar_type)
    config = {
        "instrument_id": str(bar_type.instrument_id),
        "bar_type": settings.bar_type,
        "model_path": str(settings.model_path),
        "forecaster": forecaster,
        **settings.strategy,
    }
    if forecaster != "lstm":
        config["order_id_tag"] = forecaster.upper()  # a distinct strategy id: LSTMStrategy-RIDGE
    return StrategyFactory.create(ImportableStrategyConfig(strategy_path=STRATEGY_PATH, config_path=CONFIG_PATH, config=config))


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
        if self.portfolio.is_flat(self.instrument.id) and not self.cache.orders():
            quantity, problem = instrument_order_quantity(self.instrument, self.config.notional, bar.close.as_double())
            if problem:
                raise ValueError(f"buy-and-hold cannot buy: {problem}")
            self.submit_order(self.order_factory.market(self.instrument.id, OrderSide.BUY, self.instrument.make_qty(quantity)))

    def on_stop(self) -> None:
        pass  # holds to the end: the report marks the position at the last close


def benchmark_strategies(settings: BacktestSettings, instrument: Instrument, first_close: float) -> dict[str, Strategy]:
    notional = min(settings.strategy.get("order_notional", 1_000.0), settings.strategy.get("max_notional", 100_000.0))
    bar_type = BarType.from_str(settings.bar_type)
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
        "ridge": lstm_strategy(settings, forecaster="ridge"),
        "ema_cross": ema,
        "buy_and_hold": BuyAndHold(BuyAndHoldConfig(instrument_id=instrument.id, bar_type=bar_type, notional=notional)),
    }


def run_all(settings: BacktestSettings) -> tuple[list[Bar], dict[str, StrategyRun]]:
    """The LSTM strategy and every benchmark over the same bars."""
    instrument, bars = load_inputs(settings)
    runs = {"lstm": run_strategy("lstm", lstm_strategy(settings), settings, instrument, bars)}
    for name, strategy in benchmark_strategies(settings, instrument, bars[0].close.as_double()).items():
        runs[name] = run_strategy(name, strategy, settings, instrument, bars)
    return bars, runs


