"""Backtests on Nautilus's own engine: the LSTM strategy and its benchmarks on the same bars.

Every strategy runs in a fresh ``BacktestEngine`` with identical venue settings, data and
sizing, so the report compares like with like:

- ``lstm``: LSTMStrategy, loaded through Nautilus's ``ImportableStrategyConfig``;
- ``ridge`` and ``lightgbm``: the same strategy, rule and sizing fed by the artifact's ridge or
  LightGBM baseline (fitted on the same rows and features: ``strategies.config.FORECASTERS``);
  they forecast no volatility, so they trade at the base size and ungated (``strategies.volatility``);
- ``ema_cross``, ``buy_and_hold`` and, with a model that forecasts volatility,
  ``vol_target_buy_and_hold``: ``backtests.benchmarks``.

Orders reach the simulated venue after a 1 ms latency, so a market order decided at a bar's
close fills on the NEXT bar (at its close, Nautilus's bar execution): never on the bar that
produced the decision.
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path

import pandas as pd
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.backtest.models import LatencyModel
from nautilus_trader.config import ImportableStrategyConfig, LoggingConfig
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.enums import AccountType, OmsType
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import Money
from nautilus_trader.trading.config import StrategyFactory
from nautilus_trader.trading.strategy import Strategy

from backtests.benchmarks import VolTargetBuyAndHold, VolTargetBuyAndHoldConfig, benchmark_strategies
from backtests.feed import DEFAULT_CHUNK_BARS, BarFeed, feed_engine, load_feed
from backtests.ledger import TradeLedger
from backtests.predictions_file import write_frames
from marketdata.catalog import CatalogLocation, catalog_instrument, catalog_location, open_catalog
from models.artifact import load_artifact
from models.jsonio import scratch_file
from models.predictor import output_columns
from strategies.config import CONFIG_PATH, FORECASTERS, STRATEGY_PATH, LSTMStrategyConfig, parse_strategy_config, strategy_settings
from strategies.decision import SizingConfig
from strategies.decision_log import read_predictions_parquet
from strategies.volatility import DEFAULT_TARGET_VOLATILITY

log = logging.getLogger(__name__)

LATENCY_NS = 1_000_000  # 1 ms: orders fill on the bar after the decision


@dataclass(frozen=True)
class BacktestSettings:
    model_path: Path
    catalog: CatalogLocation  # a local folder or an s3:// URL (a str given is read as catalog_location does)
    bar_type: str = ""  # the one instrument traded; several: bar_types (backtests.pooled), bar_type their first
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    starting_balance: float = 10_000.0
    maker_fee: float | None = None  # None: the instrument's (the venue's real fees)
    taker_fee: float | None = None
    strategy: dict = field(default_factory=dict)  # LSTMStrategyConfig fields to override
    bar_types: tuple[str, ...] = ()  # every instrument traded; default (bar_type,)
    chunk_bars: int = DEFAULT_CHUNK_BARS  # bars read from the catalog at a time (backtests.feed)
    # Purge closed orders from Nautilus's cache between chunks (backtests.ledger); the reports are the same.
    purge_closed_orders: bool = True

    def __post_init__(self):
        object.__setattr__(self, "catalog", catalog_location(self.catalog))
        if not self.bar_types and not self.bar_type:
            raise ValueError("a backtest needs a bar_type, or bar_types")
        object.__setattr__(self, "bar_types", tuple(self.bar_types) or (self.bar_type,))
        if self.bar_type not in ("", self.bar_types[0]):
            raise ValueError(f"bar_type {self.bar_type} is not the first of bar_types {list(self.bar_types)}")
        object.__setattr__(self, "bar_type", self.bar_types[0])


@dataclass
class StrategyRun:
    name: str
    fills: pd.DataFrame
    positions: pd.DataFrame
    # The main strategy's forecasts and decisions (backtests.predictions_file): a scratch file of this
    # run's (models.jsonio.scratch_file), removed with it. None: a benchmark's run.
    predictions_file: Path | None
    seconds: float

    @property
    def predictions(self) -> pd.DataFrame | None:
        """The predictions file, read whole (None: a benchmark's run)."""
        return None if self.predictions_file is None else read_predictions_parquet(self.predictions_file)


def load_inputs(settings: BacktestSettings) -> tuple[Instrument, BarFeed]:
    """The instrument (with any fee override) and the feed of the range's bars, or a clear error."""
    instrument = load_instrument(settings, settings.bar_type)
    return instrument, load_feed(settings.catalog, (settings.bar_type,), settings.start, settings.end, settings.chunk_bars)


def load_instrument(settings: BacktestSettings, bar_type: str) -> Instrument:
    """The catalog's instrument of ``bar_type``, with the settings' fee overrides."""
    stored = catalog_instrument(settings.catalog, BarType.from_str(bar_type).instrument_id)
    return with_fees(stored, settings.maker_fee, settings.taker_fee)


def with_fees(instrument: Instrument, maker: float | None, taker: float | None) -> Instrument:
    if maker is None and taker is None:
        return instrument
    raw = type(instrument).to_dict(instrument)
    raw["maker_fee"] = str(Decimal(str(maker)) if maker is not None else instrument.maker_fee)
    raw["taker_fee"] = str(Decimal(str(taker)) if taker is not None else instrument.taker_fee)
    return type(instrument).from_dict(raw)


def run_strategy(name: str, strategy: Strategy, settings: BacktestSettings, instrument: Instrument, bars: BarFeed,
                 main: bool = True) -> StrategyRun:
    """One strategy alone in a fresh engine over ``bars``; warm-up requests are served by the catalog."""
    return run_strategies(name, [strategy], settings, [instrument], bars, main)


def run_strategies(name: str, strategies: list[Strategy], settings: BacktestSettings, instruments: list[Instrument],
                   bars: BarFeed | list[Bar], main: bool = True) -> StrategyRun:
    """``strategies`` together in a fresh engine over ``bars`` (streamed from the catalog in chunks:
    backtests.feed; or a list of bars a test made): one venue, one account trading every instrument (which must share their venue,
    quote currency and kind). Predictions: each strategy's, with a ``bar_type`` column when there are
    several. ``main`` False, a benchmark's run: the report reads only its fills, so its strategies
    keep no decisions as they run (which held about 0.2 KB a bar), its closed positions are purged as
    it goes (backtests.ledger) and its predictions and positions are None and an empty frame. A main
    run's strategies spill their decisions to scratch files as they go, put into words in its
    predictions file a row group at a time after the run (backtests.predictions_file)."""
    # Bars carry no quotes, so the risk engine warns on every market order that it cannot price
    # it; those warnings say nothing about the strategy.
    logging = LoggingConfig(log_level="WARNING", log_component_levels={"RiskEngine": "ERROR"})
    # Nautilus's post-run analysis only logs its own statistics (at INFO, not shown): the report
    # computes its own (backtests.stats), and the analysis holds a pandas Series per round trip.
    engine = BacktestEngine(BacktestEngineConfig(logging=logging, run_analysis=False))
    instrument = instruments[0]
    is_spot = instrument.instrument_class.name == "SPOT"
    quote = instrument.quote_currency
    balances = [Money(settings.starting_balance, quote)] + ([Money(0, i.base_currency) for i in instruments] if is_spot else [])
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
    for each in instruments:
        engine.add_instrument(each)
    ledger = TradeLedger(engine, main)
    last_ns = feed_engine(engine, bars, name, ledger.purge if settings.purge_closed_orders else None)
    engine.kernel.data_engine.register_catalog(open_catalog(settings.catalog))
    logged = [s for s in strategies if hasattr(s, "keep_decisions")]  # the LSTM strategies, which log decisions
    for strategy in logged:
        strategy.keep_decisions = strategy.spill_decisions = main
    for strategy in strategies:
        engine.add_strategy(strategy)
    # The objects alive before the run (PyTorch's, pandas', Nautilus's) sit out of the cyclic garbage
    # collector until it ends: its full collections, which the strategy's per-bar objects trigger,
    # walked them all (README, Performance: the garbage collector).
    gc.freeze()
    started = time.perf_counter()
    try:
        engine.run(end=last_ns)
        seconds = time.perf_counter() - started
        fills = ledger.fills_report()
        positions = engine.trader.generate_positions_report() if main else pd.DataFrame()
    finally:
        gc.unfreeze()
        engine.dispose()
    run = StrategyRun(name, fills, positions, None, seconds)
    if main and logged:
        run.predictions_file = predictions = scratch_file(run, "predictions")
        several = len(logged) > 1  # each row then names its bar type
        write_frames(predictions, (chunk.assign(bar_type=str(s.config.bar_type)) if several else chunk
                                   for s in logged for chunk in s.log_book.chunks()))
        for strategy in logged:
            strategy.log_book.release()
    return run


def lstm_settings(settings: BacktestSettings, forecaster: str = "lstm") -> dict:
    """LSTMStrategyConfig's fields for the backtest: its bars and model, ``settings.strategy`` over them."""
    fixed = {"instrument_id": str(BarType.from_str(settings.bar_type).instrument_id), "bar_type": settings.bar_type,
             "model_path": str(settings.model_path), "forecaster": forecaster}
    if forecaster == "lstm":
        return strategy_settings(fixed, settings.strategy)
    fixed["order_id_tag"] = forecaster.upper()  # a distinct strategy id: LSTMStrategy-RIDGE, LSTMStrategy-LIGHTGBM
    return strategy_settings(fixed, settings.strategy, {"target_volatility": None})  # it forecasts no volatility


def lstm_strategy(settings: BacktestSettings, forecaster: str = "lstm") -> Strategy:
    """LSTMStrategy built the way BacktestNode and TradingNode build it: from an importable config."""
    config = lstm_settings(settings, forecaster)
    return StrategyFactory.create(ImportableStrategyConfig(strategy_path=STRATEGY_PATH, config_path=CONFIG_PATH, config=config))


def all_strategies(settings: BacktestSettings, instrument: Instrument, first_close: float) -> dict[str, Strategy]:
    """The LSTM strategy, the ridge and LightGBM baselines under the same rule, and the benchmarks, sized alike."""
    config = parse_strategy_config(lstm_settings(settings))
    notional = min(config.sizing.order_notional, config.sizing.max_notional)
    strategies = {
        **{forecaster: lstm_strategy(settings, forecaster) for forecaster in FORECASTERS},  # the LSTM first: the report's main
        **benchmark_strategies(instrument, config.bar_type, notional, first_close),
    }
    if "volatility" in output_columns(load_artifact(settings.model_path)):
        strategies["vol_target_buy_and_hold"] = VolTargetBuyAndHold(vol_target_config(config, notional))
    return strategies


def vol_target_config(config: LSTMStrategyConfig, notional: float) -> VolTargetBuyAndHoldConfig:
    """The volatility-targeted buy-and-hold of the strategy's bars, model and sizing: its target is the
    strategy's ``target_volatility``, else ``DEFAULT_TARGET_VOLATILITY``."""
    sizing = config.sizing
    target = sizing.target_volatility if sizing.target_volatility is not None else DEFAULT_TARGET_VOLATILITY
    return VolTargetBuyAndHoldConfig(
        instrument_id=config.instrument_id, bar_type=config.bar_type, model_path=config.model_path,
        sizing=SizingConfig(order_notional=notional, max_notional=sizing.max_notional, target_volatility=target),
        warmup_bars=config.feed.warmup_bars, request_timeout_s=config.feed.request_timeout_s,
    )


def run_all(settings: BacktestSettings) -> tuple[BarFeed, dict[str, StrategyRun]]:
    """The LSTM strategy and every benchmark over the same bars."""
    instrument, bars = load_inputs(settings)
    strategies = all_strategies(settings, instrument, bars.first_close())
    main = next(iter(strategies))  # the report's forecasts are its alone
    # Each strategy leaves the dict as it runs: its engine's cache and its decision log go with it.
    return bars, {name: run_strategy(name, strategies.pop(name), settings, instrument, bars, main=name == main)
                  for name in list(strategies)}


def decision_settings(settings: BacktestSettings) -> dict:
    """What the strategy's rule decides against, for the report: the model's ``horizon`` (bars a
    forecast looks ahead) and each traded bar type's ``entry_threshold`` (the log return a forecast
    must clear: the explicit one, else the round-trip taker fee, with any fee override, plus the margin)."""
    thresholds = {}
    for bar_type in settings.bar_types:
        stored = catalog_instrument(settings.catalog, BarType.from_str(bar_type).instrument_id)
        taker_fee = float(with_fees(stored, settings.maker_fee, settings.taker_fee).taker_fee)
        rule = parse_strategy_config(lstm_settings(replace(settings, bar_type=bar_type, bar_types=()))).rule
        thresholds[bar_type] = rule.threshold(taker_fee)
    return {"horizon": load_artifact(settings.model_path).config.training.horizon, "entry_threshold": thresholds}
