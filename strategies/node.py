"""The paper trading node: LSTMStrategy on live Binance data, orders filled by Nautilus's sandbox.

A Nautilus ``TradingNode`` with

- Nautilus's Binance data client (``BinanceDataClientConfig``, spot or USDT-M futures account
  type), for klines (REST history, WebSocket stream) and the best bid/ask;
- Nautilus's sandbox execution client (``SandboxExecutionClientConfig``): a simulated venue with
  the given starting balances and the instrument's fees, filling market orders at the close of
  the latest bar (the ``SandboxPrices`` actor tells it the price: see there why);
- ``LSTMStrategy``, loaded through ``ImportableStrategyConfig`` as in backtests.

Three things Nautilus 1.221 does not do for a paper node, done here:

- The instrument. Nautilus's Binance instrument providers call signed endpoints (the account's
  fee tier), which need API keys. Paper trading needs none, so the provider is told to load
  nothing and the instrument is built as ``nautilus-lstm download`` builds it: from Binance's
  public ``exchangeInfo`` through ccxt, with the venue's default fees
  (``backtests.instruments``). Backtests of downloaded data trade the same instrument.
- API keys. Nautilus's Binance HTTP client refuses to start without a key pair and sends the key
  with every request. Keys in the environment (``BINANCE_API_KEY``/``BINANCE_API_SECRET``) are
  left for Nautilus to read; without them a placeholder pair is passed that can sign nothing. The
  node makes public calls only (``exchangeInfo``, ``klines``) and never logs a key.
- Persistence. Without a cache database Nautilus keeps no strategy state, so the node writes
  ``LSTMStrategy.on_save()`` to ``state.json`` in the run folder on stop and hands it to
  ``on_load`` on the next start with the same run folder.

The run folder (``runs/paper-<UTC start time>`` unless given) holds ``run.json`` (the settings of
each session), ``node.log`` (Nautilus's log), ``predictions.csv`` (every decision, appended as it
is made), ``state.json``, and, written on stop for the session just ended, ``fills.csv``,
``positions.csv``, ``predictions.parquet`` and ``stats.json`` (the backtest report's format,
without benchmarks). The sandbox starts each session from the starting balances: Nautilus's
sandbox keeps no account between runs.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import numpy as np
import msgspec
import pandas as pd
from nautilus_trader.adapters.binance import BINANCE, BinanceAccountType, BinanceDataClientConfig, BinanceLiveDataClientFactory
from nautilus_trader.adapters.sandbox.config import SandboxExecutionClientConfig
from nautilus_trader.adapters.sandbox.factory import SandboxLiveExecClientFactory
from nautilus_trader.common.actor import Actor
from nautilus_trader.common.component import flush_logger
from nautilus_trader.common.config import ActorConfig
from nautilus_trader.config import (
    ImportableActorConfig,
    ImportableStrategyConfig,
    InstrumentProviderConfig,
    LoggingConfig,
    TradingNodeConfig,
)
from nautilus_trader.live.node import TradingNode
from nautilus_trader.model.data import Bar, BarType, QuoteTick
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import Instrument

from backtests.instruments import MARKETS, instrument_id
from backtests.timeframes import timeframe_of_bar_spec
from backtests.stats import equity_curve, fills_from_nautilus, performance_stats
from strategies.lstm_strategy import LSTMStrategy, LSTMStrategyConfig

log = logging.getLogger(__name__)

STRATEGY_PATH = "strategies.lstm_strategy:LSTMStrategy"
CONFIG_PATH = "strategies.lstm_strategy:LSTMStrategyConfig"
STATE_FILE = "state.json"
PREDICTIONS_FILE = "predictions.csv"
# Stands in for a key pair where the environment has none: Nautilus's Binance client needs one
# to start, and paper trading makes public calls only.
PLACEHOLDER_KEY = "public-market-data-only"
KEY_VARIABLES = ("BINANCE_API_KEY", "BINANCE_API_SECRET")

# What a paper run changes in LSTMStrategy's defaults: decisions logged and written down, gaps
# back-filled, a silent feed noticed.
PAPER_STRATEGY_DEFAULTS = {"log_decisions": True, "backfill_gaps": True, "stale_feed_bars": 3.0}
NODE_DEFAULTS = {"trader_id": "PAPER-001", "timeout_post_stop": 2.0}
NODE_KEYS = {"trader_id", "timeout_connection", "timeout_reconciliation", "timeout_portfolio",
             "timeout_disconnection", "timeout_post_stop", "timeout_shutdown"}
SANDBOX_KEYS = {"default_leverage"}
PAPER_KEYS = {"model", "symbol", "market", "balance", "run_dir", "api_url", "ws_url", "flatten_on_stop"}
CONFIG_SECTIONS = {"paper", "strategy", "node", "sandbox"}


@dataclass(frozen=True)
class PaperSettings:
    model_path: Path
    symbol: str  # unified, e.g. BTC/USDT
    market: str = "spot"
    balance: str = "10000 USDT"  # starting balance of the sandbox account, in the quote currency
    run_dir: Path | None = None  # default: runs/paper-<UTC start time>
    api_url: str | None = None  # Binance REST base URL (default: Binance's)
    ws_url: str | None = None  # Binance market-stream base URL (default: Binance's)
    flatten_on_stop: bool = True
    log_level: str = "INFO"
    strategy: dict = field(default_factory=dict)  # LSTMStrategyConfig fields
    node: dict = field(default_factory=dict)  # TradingNodeConfig fields: NODE_KEYS
    sandbox: dict = field(default_factory=dict)  # SandboxExecutionClientConfig fields: SANDBOX_KEYS

    def __post_init__(self) -> None:
        if self.market not in MARKETS:
            raise ValueError(f"market must be one of {MARKETS}, not {self.market!r}")
        parse_balance(self.balance)
        for section, allowed in (("node", NODE_KEYS), ("sandbox", SANDBOX_KEYS)):
            unknown = set(getattr(self, section)) - allowed
            if unknown:
                raise ValueError(f"unknown [{section}] settings {sorted(unknown)}: expected some of {sorted(allowed)}")


def read_config(path: Path) -> dict:
    """A node TOML file: sections ``[paper]`` (the command's options), ``[strategy]``
    (LSTMStrategyConfig fields), ``[node]`` (trader id, timeouts) and ``[sandbox]`` (leverage).
    API keys have no place in it: they come from the environment only."""
    try:
        raw = tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(raw) - CONFIG_SECTIONS
    if unknown:
        raise ValueError(f"{path}: unknown sections {sorted(unknown)}; expected some of {sorted(CONFIG_SECTIONS)}")
    unknown = set(raw.get("paper", {})) - PAPER_KEYS
    if unknown:
        raise ValueError(f"{path}: unknown [paper] settings {sorted(unknown)}; expected some of {sorted(PAPER_KEYS)}")
    return raw


def parse_balance(text: str) -> tuple[Decimal, str]:
    """``10000USDT`` or ``10000 USDT`` → (10000, "USDT")."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]+)\s*", text)
    if not match or Decimal(match.group(1)) <= 0:
        raise ValueError(f"bad balance {text!r}: expected an amount and a currency, e.g. 10000USDT")
    return Decimal(match.group(1)), match.group(2).upper()


class SandboxPricesConfig(ActorConfig, frozen=True):
    instrument_id: InstrumentId
    bar_type: BarType


class SandboxPrices(Actor):
    """Gives Nautilus's sandbox a price to fill at: each live bar's close, as the instrument's quote.

    The sandbox execution client listens to the venue's quotes, trades and books only (topics
    ``data.*.BINANCE.*``); bars (``data.bars.<bar type>``) never reach it, so on bars alone it
    has no market and rejects every order. Binance's own best bid/ask would do, but Nautilus 1.221
    parses it at the precision Binance prints (8 decimals on spot) while the instrument has its
    tick's (2 for BTCUSDT), and on such a quote the sandbox's matching engine raises and the node
    stops. So market orders fill at the close of the latest bar, as in a backtest's bar execution.
    """

    def on_start(self) -> None:
        self.instrument = self.cache.instrument(self.config.instrument_id)
        instrument_id = self.config.instrument_id
        self._topic = f"data.quotes.{instrument_id.venue}.{instrument_id.symbol}"  # the data engine's quote topic
        self._size = self.instrument.max_quantity or self.instrument.make_qty(1_000_000)
        self.subscribe_bars(self.config.bar_type)

    def on_stop(self) -> None:
        self.unsubscribe_bars(self.config.bar_type)

    def on_bar(self, bar: Bar) -> None:
        price = self.instrument.make_price(bar.close.as_double())
        quote = QuoteTick(self.instrument.id, price, price, self._size, self._size, bar.ts_event, bar.ts_init)
        self.cache.add_quote_tick(quote)  # the risk engine prices market orders from it
        self.msgbus.publish(topic=self._topic, msg=quote)


def fetch_instrument(symbol: str, market: str, bar_type: str, api_url: str | None) -> Instrument:
    """The instrument from Binance's public exchangeInfo, as ``nautilus-lstm download`` builds it
    (an error if Binance has no such market, or no bars of ``bar_type``'s interval)."""
    from backtests.download import DownloadRequest, open_market
    from backtests.exchange import RetryPolicy

    step, aggregation, _ = str(BarType.from_str(bar_type).spec).split("-")  # e.g. 1-MINUTE-LAST
    timeframe = timeframe_of_bar_spec(int(step), aggregation)
    request = DownloadRequest(exchange="binance", symbol=symbol, timeframe=timeframe.text, since_ms=0, market=market, api_url=api_url)
    return open_market(request, RetryPolicy(max_retries=3)).instrument


def node_config(settings: PaperSettings, instrument: Instrument, bar_type: str, run_dir: Path) -> TradingNodeConfig:
    """The TradingNodeConfig of a paper run."""
    spot = settings.market == "spot"
    amount, currency = parse_balance(settings.balance)
    if currency != instrument.quote_currency.code:
        raise ValueError(f"the balance must be in {instrument.quote_currency.code}, the quote currency of {instrument.id}, not {currency}")
    balances = [f"{amount} {currency}"] + ([f"0 {instrument.base_currency.code}"] if spot else [])
    keys_in_environment = all(os.environ.get(name) for name in KEY_VARIABLES)
    data_client = BinanceDataClientConfig(
        account_type=BinanceAccountType.SPOT if spot else BinanceAccountType.USDT_FUTURES,
        base_url_http=settings.api_url,
        base_url_ws=settings.ws_url,
        api_key=None if keys_in_environment else PLACEHOLDER_KEY,
        api_secret=None if keys_in_environment else PLACEHOLDER_KEY,
        instrument_provider=InstrumentProviderConfig(load_all=False),  # its loaders need signed calls
        update_instruments_interval_mins=None,
    )
    sandbox = SandboxExecutionClientConfig(**{
        "venue": instrument.id.venue.value,
        "starting_balances": balances,
        "oms_type": "NETTING",
        "account_type": "CASH" if spot else "MARGIN",
        "default_leverage": Decimal(1),
        **{key: Decimal(str(value)) for key, value in settings.sandbox.items()},
    })
    strategy = {
        **PAPER_STRATEGY_DEFAULTS,
        **settings.strategy,
        "instrument_id": str(instrument.id),
        "bar_type": bar_type,
        "model_path": str(settings.model_path),
        "predictions_path": str(run_dir / PREDICTIONS_FILE),
        "close_positions_on_stop": settings.flatten_on_stop,
    }
    # Unknown or mistyped fields fail here, before the node starts (Nautilus ignores unknown ones).
    unknown = set(strategy) - {f.name for f in msgspec.structs.fields(LSTMStrategyConfig)}
    if unknown:
        raise ValueError(f"bad [strategy] settings: LSTMStrategyConfig has no {sorted(unknown)}")
    try:
        LSTMStrategyConfig.parse(json.dumps(strategy))
    except msgspec.MsgspecError as exc:
        raise ValueError(f"bad [strategy] settings: {exc}") from None
    return TradingNodeConfig(
        **{**NODE_DEFAULTS, **settings.node},
        logging=LoggingConfig(
            log_level=settings.log_level,
            log_level_file=settings.log_level,
            log_directory=str(run_dir),
            log_file_name="node",
            log_colors=False,
        ),
        data_clients={BINANCE: data_client},
        exec_clients={BINANCE: sandbox},
        actors=[ImportableActorConfig(
            actor_path="strategies.node:SandboxPrices",
            config_path="strategies.node:SandboxPricesConfig",
            config={"instrument_id": str(instrument.id), "bar_type": bar_type},
        )],
        strategies=[ImportableStrategyConfig(strategy_path=STRATEGY_PATH, config_path=CONFIG_PATH, config=strategy)],
    )


def run_paper(settings: PaperSettings) -> Path:
    """Run the paper node until SIGINT or SIGTERM; returns the run folder."""
    from models.artifact import load_artifact
    from models.predictor import output_columns

    artifact = load_artifact(settings.model_path)
    expected = instrument_id(settings.symbol, settings.market)
    if artifact.data["instrument_id"] != str(expected):
        raise ValueError(
            f"{settings.model_path} was trained on {artifact.data['instrument_id']} bars, not {expected} "
            f"({settings.symbol} {settings.market})"
        )
    instrument = fetch_instrument(settings.symbol, settings.market, artifact.bar_type, settings.api_url)
    started = pd.Timestamp.now(tz="UTC")
    run_dir = Path(settings.run_dir or Path("runs") / f"paper-{started:%Y%m%dT%H%M%SZ}")
    run_dir.mkdir(parents=True, exist_ok=True)
    lstm = settings.strategy.get("forecaster", "lstm") == "lstm"
    _check_run_dir(run_dir, instrument, artifact.bar_type, output_columns(artifact) if lstm else ["prediction"])
    config = node_config(settings, instrument, artifact.bar_type, run_dir)
    session = _start_session(run_dir, settings, instrument, artifact.bar_type, started)

    node = TradingNode(config=config)
    node.add_data_client_factory(BINANCE, BinanceLiveDataClientFactory)
    node.add_exec_client_factory(BINANCE, SandboxLiveExecClientFactory)
    node.build()
    node.cache.add_instrument(instrument)
    strategy = next(s for s in node.trader.strategies() if isinstance(s, LSTMStrategy))
    state = _read_state(run_dir)
    if state:
        strategy.load(state)
    log.info("paper trading %s %s with %s; run folder %s; stop with Ctrl-C (SIGINT) or SIGTERM",
             settings.symbol, settings.market, settings.model_path, run_dir)
    try:
        node.run()
    finally:
        try:
            _finish_session(node, strategy, run_dir, settings, session)
        finally:
            node.dispose()
            flush_logger()  # or the log file loses its last lines
    return run_dir


def _check_run_dir(run_dir: Path, instrument: Instrument, bar_type: str, outputs: list[str]) -> None:
    """A run folder goes on with the same instrument, bars and model outputs, or not at all."""
    path = run_dir / "run.json"
    if path.exists():
        last = json.loads(path.read_text())["sessions"][-1]
        if (last["instrument_id"], last["bar_type"]) != (str(instrument.id), bar_type):
            raise ValueError(f"{run_dir} is a run of {last['bar_type']}, not {bar_type}: give another --run-dir")
    predictions = run_dir / PREDICTIONS_FILE
    if predictions.exists() and predictions.stat().st_size:
        header = predictions.open().readline().strip().split(",")
        expected = ["close_time", "close", *outputs, "side", "reason"]
        if header != expected:
            raise ValueError(f"{predictions} has columns {header}, this model writes {expected}: give another --run-dir")


def _start_session(run_dir: Path, settings: PaperSettings, instrument: Instrument, bar_type: str, started) -> dict:
    path = run_dir / "run.json"
    record = json.loads(path.read_text()) if path.exists() else {"sessions": []}
    session = {
        "started": started.isoformat(),
        "model": str(settings.model_path),
        "symbol": settings.symbol,
        "market": settings.market,
        "instrument_id": str(instrument.id),
        "bar_type": bar_type,
        "balance": settings.balance,
        "api_url": settings.api_url,
        "ws_url": settings.ws_url,
        "flatten_on_stop": settings.flatten_on_stop,
        "strategy": settings.strategy,
        "fees": {"maker": str(instrument.maker_fee), "taker": str(instrument.taker_fee)},
    }
    record["sessions"].append(session)
    _write_json(path, record)
    return session


def _finish_session(node: TradingNode, strategy: LSTMStrategy, run_dir: Path, settings: PaperSettings, session: dict) -> None:
    """State, fills, positions, predictions and stats of the session just ended."""
    state = strategy.save()
    if state:
        _write_json(run_dir / STATE_FILE, {key: value.decode() for key, value in state.items()})
    fills_report = node.trader.generate_fills_report()
    fills_report.to_csv(run_dir / "fills.csv")
    node.trader.generate_positions_report().to_csv(run_dir / "positions.csv")
    predictions = strategy.predictions_frame()
    predictions.to_parquet(run_dir / "predictions.parquet")

    stopped = pd.Timestamp.now(tz="UTC")
    balance = float(parse_balance(settings.balance)[0])
    close = predictions["close"].rename("close")
    fills = fills_from_nautilus(fills_report)
    if len(fills) and len(close):
        # A paper fill is priced at the latest bar's close, a moment after that close: count it there.
        latest = np.maximum(close.index.searchsorted(fills["ts"], side="right") - 1, 0)
        fills["ts"] = close.index[latest]
    seconds = (stopped - pd.Timestamp(session["started"])).total_seconds()
    if len(close):
        stats = performance_stats(equity_curve(fills, close, balance), fills, close, seconds)
    else:
        stats = {"bars": 0, "run_seconds": seconds}
    report = {
        **stats,
        "benchmarks": {},
        "settings": {
            "model": str(settings.model_path),
            "bar_type": session["bar_type"],
            "first_bar_close": close.index[0].isoformat() if len(close) else None,
            "last_bar_close": close.index[-1].isoformat() if len(close) else None,
            "starting_balance": balance,
            "strategy": settings.strategy,
            "mode": "paper",
            "started": session["started"],
            "stopped": stopped.isoformat(),
            "warmup": [pd.Timestamp(t, unit="ns", tz="UTC").isoformat() for t in strategy.warmup_range] if strategy.warmup_range else None,
        },
    }
    _write_json(run_dir / "stats.json", report)
    record = json.loads((run_dir / "run.json").read_text())
    record["sessions"][-1].update(stopped=stopped.isoformat(), ready=strategy.ready, decisions=len(predictions),
                                  fills=len(fills), warmup=report["settings"]["warmup"])
    _write_json(run_dir / "run.json", record)
    log.info("stopped: %d decisions, %d fills; run folder %s", len(predictions), len(fills), run_dir)


def _read_state(run_dir: Path) -> dict[str, bytes]:
    path = run_dir / STATE_FILE
    if not path.exists():
        return {}
    return {key: value.encode() for key, value in json.loads(path.read_text()).items()}


def _write_json(path: Path, value) -> None:
    staging = path.with_name(path.name + ".tmp")
    staging.write_text(json.dumps(value, indent=2, default=_json_value))
    os.replace(staging, path)


def _json_value(value):
    if isinstance(value, (Decimal,)):
        return str(value)
    return float(value)
