"""The paper trading node, and the building blocks the live node (``strategies.live``) shares.

The paper node is LSTMStrategy on live Binance data, orders filled by Nautilus's sandbox:

A Nautilus ``TradingNode`` with

- Nautilus's Binance data client (``BinanceDataClientConfig``, spot or USDT-M futures account
  type), for klines (REST history, WebSocket stream) and the best bid/ask;
- Nautilus's sandbox execution client (``SandboxExecutionClientConfig``): a simulated venue with
  the given starting balances and the instrument's fees, filling market orders at the close of
  the latest bar (the ``BarQuotes`` actor tells it the price: see there why);
- ``LSTMStrategy``, loaded through ``ImportableStrategyConfig`` as in backtests.

The data client reads Binance's LIVE public market data with no API key (Nautilus 1.231's data
client needs none), on the routes of ``strategies.binance_clients.binance_routes`` (USDT-M futures
klines on ``/market``). Two things Nautilus does not do for a paper node, done here (the live
node shares both):

- The instrument. Nautilus's Binance instrument providers call signed endpoints (the account's
  fee tier), which need API keys. Paper trading needs none, so the provider is told to load
  nothing and the instrument is built as ``nautilus-lstm download`` builds it: from Binance's
  public ``exchangeInfo`` through ccxt, with the venue's default fees
  (``backtests.instruments``). Backtests of downloaded data trade the same instrument.
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
from nautilus_trader.adapters.binance.common.enums import BinanceEnvironment
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
from models.jsonio import dumps
from strategies.lstm_strategy import LSTMStrategy, LSTMStrategyConfig

log = logging.getLogger(__name__)

STRATEGY_PATH = "strategies.lstm_strategy:LSTMStrategy"
CONFIG_PATH = "strategies.lstm_strategy:LSTMStrategyConfig"
STATE_FILE = "state.json"
PREDICTIONS_FILE = "predictions.csv"

# What a node on live data (paper or live) changes in LSTMStrategy's defaults: decisions logged
# and written down, gaps back-filled, a silent feed noticed.
LIVE_DATA_STRATEGY_DEFAULTS = {"log_decisions": True, "backfill_gaps": True, "stale_feed_bars": 3.0}
NODE_DEFAULTS = {"trader_id": "PAPER-001", "timeout_post_stop": 2.0}
NODE_KEYS = {"trader_id", "timeout_connection", "timeout_reconciliation", "timeout_portfolio",
             "timeout_disconnection", "timeout_post_stop", "timeout_shutdown"}
SANDBOX_KEYS = {"default_leverage"}
PAPER_KEYS = {"model", "symbol", "market", "balance", "run_dir", "api_url", "ws_url", "flatten_on_stop"}
LIVE_KEYS = {"model", "symbol", "market", "network", "run_dir", "api_url", "ws_url", "ws_api_url", "ws_user_url",
             "flatten_on_stop", "leverage"}
COMMAND_KEYS = {"paper": PAPER_KEYS, "live": LIVE_KEYS}  # each command's own section of a node TOML file
CONFIG_SECTIONS = {*COMMAND_KEYS, "strategy", "limits", "node", "sandbox"}


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
    """A node TOML file: sections ``[paper]`` and ``[live]`` (each command's options),
    ``[strategy]`` (LSTMStrategyConfig fields), ``[limits]`` (the live node's safety rails),
    ``[node]`` (trader id, timeouts) and ``[sandbox]`` (paper leverage). API keys have no place
    in it: they come from the environment only."""
    try:
        raw = tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(raw) - CONFIG_SECTIONS
    if unknown:
        raise ValueError(f"{path}: unknown sections {sorted(unknown)}; expected some of {sorted(CONFIG_SECTIONS)}")
    for command, allowed in COMMAND_KEYS.items():
        unknown = set(raw.get(command, {})) - allowed
        if unknown:
            raise ValueError(f"{path}: unknown [{command}] settings {sorted(unknown)}; expected some of {sorted(allowed)}")
    return raw


def command_settings(raw: dict, command: str, args, sections: tuple[str, ...]) -> dict:
    """The settings of ``command``'s node, as keyword arguments: its section of the node file
    ``raw`` overridden by the command line's options (``args``' attributes of the same names that
    are not None), the log level, and the file's ``sections`` (e.g. ``strategy``)."""
    options = dict(raw.get(command, {}))
    options.update({name: getattr(args, name) for name in COMMAND_KEYS[command] if getattr(args, name, None) is not None})
    for name in ("model", "symbol"):
        if not options.get(name):
            raise ValueError(f"--{name} is required (on the command line or in the [{command}] section of --config)")
    model, run_dir = options.pop("model"), options.pop("run_dir", None)
    return {
        **options,
        "model_path": Path(model),
        "run_dir": Path(run_dir) if run_dir else None,
        "log_level": "DEBUG" if args.verbose else "INFO",
        **{section: raw.get(section, {}) for section in sections},
    }


def parse_balance(text: str) -> tuple[Decimal, str]:
    """``10000USDT`` or ``10000 USDT`` → (10000, "USDT")."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]+)\s*", text)
    if not match or Decimal(match.group(1)) <= 0:
        raise ValueError(f"bad balance {text!r}: expected an amount and a currency, e.g. 10000USDT")
    return Decimal(match.group(1)), match.group(2).upper()


class BarQuotesConfig(ActorConfig, frozen=True):
    instrument_id: InstrumentId
    bar_type: BarType


class BarQuotes(Actor):
    """Each live bar's close as the instrument's quote: the price Nautilus's sandbox fills market
    orders at (paper), and the price its RiskEngine reckons a market order's notional at (both).

    The sandbox execution client listens to the venue's quotes, trades and books only (topics
    ``data.*.BINANCE.*``); bars (``data.bars.<bar type>``) never reach it, so on bars alone it
    has no market and rejects every order. Binance's own best bid/ask would do, but Nautilus 1.221
    parsed it at the precision Binance prints (8 decimals on spot) while the instrument has its
    tick's (2 for BTCUSDT), and on such a quote the sandbox's matching engine raised and the node
    stopped (not rechecked on 1.231). So market orders fill at the close of the latest bar, as in a
    backtest's bar execution, which keeps paper fills comparable with backtests either way.
    The RiskEngine, without a quote or trade, lets a market order through unchecked.
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
    data_client = BinanceDataClientConfig(
        account_type=BinanceAccountType.SPOT if spot else BinanceAccountType.USDT_FUTURES,
        environment=BinanceEnvironment.LIVE,  # Binance's real market data; orders go to the sandbox
        base_url_http=settings.api_url,
        base_url_ws=settings.ws_url,
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
    strategy = strategy_config(LIVE_DATA_STRATEGY_DEFAULTS, settings.strategy, {
        "instrument_id": str(instrument.id),
        "bar_type": bar_type,
        "model_path": str(settings.model_path),
        "predictions_path": str(run_dir / PREDICTIONS_FILE),
        "close_positions_on_stop": settings.flatten_on_stop,
    })
    return TradingNodeConfig(
        **{**NODE_DEFAULTS, **settings.node},
        logging=logging_config(run_dir, settings.log_level),
        data_clients={BINANCE: data_client},
        exec_clients={BINANCE: sandbox},
        actors=[bar_quotes(instrument, bar_type)],
        strategies=[ImportableStrategyConfig(strategy_path=STRATEGY_PATH, config_path=CONFIG_PATH, config=strategy)],
    )


def strategy_config(defaults: dict, settings: dict, fixed: dict) -> dict:
    """LSTMStrategyConfig fields: the node's ``defaults``, the user's ``[strategy]`` ``settings``
    over them, and what the node decides (``fixed``) over both; checked before the node starts
    (Nautilus would ignore an unknown field)."""
    strategy = {**defaults, **settings, **fixed}
    unknown = set(strategy) - {f.name for f in msgspec.structs.fields(LSTMStrategyConfig)}
    if unknown:
        raise ValueError(f"bad [strategy] settings: LSTMStrategyConfig has no {sorted(unknown)}")
    try:
        LSTMStrategyConfig.parse(json.dumps(strategy))
    except msgspec.MsgspecError as exc:
        raise ValueError(f"bad [strategy] settings: {exc}") from None
    return strategy


def logging_config(run_dir: Path, level: str) -> LoggingConfig:
    """Nautilus's log on the console and appended to ``node.log`` in the run folder. (Nautilus's
    own size rotation would name the file by its start time instead: rotate with logrotate.)"""
    return LoggingConfig(
        log_level=level,
        log_level_file=level,
        log_directory=str(run_dir),
        log_file_name="node",
        log_colors=False,
    )


def bar_quotes(instrument: Instrument, bar_type: str) -> ImportableActorConfig:
    return ImportableActorConfig(
        actor_path="strategies.node:BarQuotes",
        config_path="strategies.node:BarQuotesConfig",
        config={"instrument_id": str(instrument.id), "bar_type": bar_type},
    )


def run_paper(settings: PaperSettings) -> Path:
    """Run the paper node until SIGINT or SIGTERM; returns the run folder."""
    run = open_run(settings.model_path, settings.symbol, settings.market, settings.api_url, settings.run_dir, "paper",
                   settings.strategy)
    config = node_config(settings, run.instrument, run.bar_type, run.run_dir)
    session = start_session(run, {
        "model": str(settings.model_path),
        "symbol": settings.symbol,
        "market": settings.market,
        "balance": settings.balance,
        "api_url": settings.api_url,
        "ws_url": settings.ws_url,
        "flatten_on_stop": settings.flatten_on_stop,
        "strategy": settings.strategy,
    })
    log.info("paper trading %s %s with %s; run folder %s; stop with Ctrl-C (SIGINT) or SIGTERM",
             settings.symbol, settings.market, settings.model_path, run.run_dir)
    run_node(config, run, session, BinanceLiveDataClientFactory, SandboxLiveExecClientFactory,
             starting_balance=float(parse_balance(settings.balance)[0]))
    return run.run_dir


@dataclass(frozen=True)
class OpenedRun:
    """A run about to start: the instrument traded, the model's bar type and the run folder."""

    instrument: Instrument
    bar_type: str
    run_dir: Path
    started: pd.Timestamp


def open_run(model_path: Path, symbol: str, market: str, api_url: str | None, run_dir: Path | None, mode: str,
             strategy: dict, create: bool = True) -> OpenedRun:
    """Check that the model fits the market and the run folder fits the model; fetch the
    instrument; create the run folder (default ``runs/<mode>-<UTC start time>``) unless told not to."""
    from models.artifact import load_artifact
    from models.predictor import output_columns

    artifact = load_artifact(model_path)
    expected = instrument_id(symbol, market)
    if artifact.data["instrument_id"] != str(expected):
        raise ValueError(f"{model_path} was trained on {artifact.data['instrument_id']} bars, not {expected} ({symbol} {market})")
    instrument = fetch_instrument(symbol, market, artifact.bar_type, api_url)
    started = pd.Timestamp.now(tz="UTC")
    run_dir = Path(run_dir or Path("runs") / f"{mode}-{started:%Y%m%dT%H%M%SZ}")
    if create:
        run_dir.mkdir(parents=True, exist_ok=True)
    lstm = strategy.get("forecaster", "lstm") == "lstm"
    _check_run_dir(run_dir, instrument, artifact.bar_type, output_columns(artifact) if lstm else ["prediction"])
    return OpenedRun(instrument, artifact.bar_type, run_dir, started)


def run_node(config: TradingNodeConfig, run: OpenedRun, session: dict, data_factory, exec_factory,
             starting_balance: float | None) -> None:
    """Build the TradingNode (the instrument in its cache first), hand the strategy its saved
    state, run until the node stops (SIGINT, SIGTERM or a shutdown from within) and write the
    session's files; with a ``starting_balance``, its ``stats.json`` too."""
    node = TradingNode(config=config)
    node.cache.add_instrument(run.instrument)
    node.add_data_client_factory(BINANCE, data_factory)
    node.add_exec_client_factory(BINANCE, exec_factory)
    node.build()
    strategy = next(s for s in node.trader.strategies() if isinstance(s, LSTMStrategy))
    state = _read_state(run.run_dir)
    if state:
        strategy.load(state)
    try:
        node.run()
    finally:
        try:
            _finish_session(node, strategy, run.run_dir, session, starting_balance)
        finally:
            node.dispose()
            flush_logger()  # or the log file loses its last lines


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


def start_session(run: OpenedRun, settings: dict) -> dict:
    """Append the session (its ``settings`` and what it trades) to the run folder's ``run.json``."""
    path = run.run_dir / "run.json"
    record = json.loads(path.read_text()) if path.exists() else {"sessions": []}
    session = {
        "started": run.started.isoformat(),
        **settings,
        "instrument_id": str(run.instrument.id),
        "bar_type": run.bar_type,
        "fees": {"maker": str(run.instrument.maker_fee), "taker": str(run.instrument.taker_fee)},
    }
    record["sessions"].append(session)
    _write_json(path, record)
    return session


def _finish_session(node: TradingNode, strategy: LSTMStrategy, run_dir: Path, session: dict, starting_balance: float | None) -> None:
    """State, fills, positions and predictions of the session just ended; stats where the
    starting balance is known."""
    state = strategy.save()
    if state:
        _write_json(run_dir / STATE_FILE, {key: value.decode() for key, value in state.items()})
    fills_report = node.trader.generate_fills_report()
    fills_report.to_csv(run_dir / "fills.csv")
    node.trader.generate_positions_report().to_csv(run_dir / "positions.csv")
    predictions = strategy.predictions_frame()
    predictions.to_parquet(run_dir / "predictions.parquet")

    stopped = pd.Timestamp.now(tz="UTC")
    warmup = [pd.Timestamp(t, unit="ns", tz="UTC").isoformat() for t in strategy.warmup_range] if strategy.warmup_range else None
    if starting_balance is not None:
        _write_stats(run_dir, session, fills_from_nautilus(fills_report), predictions["close"], starting_balance, stopped, warmup)
    record = json.loads((run_dir / "run.json").read_text())
    record["sessions"][-1].update(stopped=stopped.isoformat(), ready=strategy.ready, decisions=len(predictions),
                                  fills=len(fills_report), warmup=warmup)
    _write_json(run_dir / "run.json", record)
    log.info("stopped: %d decisions, %d fills; run folder %s", len(predictions), len(fills_report), run_dir)


def _write_stats(run_dir: Path, session: dict, fills: pd.DataFrame, close: pd.Series, balance: float,
                 stopped: pd.Timestamp, warmup: list[str] | None) -> None:
    """``stats.json``: the backtest report's statistics of the session, without benchmarks."""
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
            "model": session["model"],
            "bar_type": session["bar_type"],
            "first_bar_close": close.index[0].isoformat() if len(close) else None,
            "last_bar_close": close.index[-1].isoformat() if len(close) else None,
            "starting_balance": balance,
            "strategy": session["strategy"],
            "mode": "paper",
            "started": session["started"],
            "stopped": stopped.isoformat(),
            "warmup": warmup,
        },
    }
    _write_json(run_dir / "stats.json", report)


def _read_state(run_dir: Path) -> dict[str, bytes]:
    path = run_dir / STATE_FILE
    if not path.exists():
        return {}
    return {key: value.encode() for key, value in json.loads(path.read_text()).items()}


def _write_json(path: Path, value) -> None:
    staging = path.with_name(path.name + ".tmp")
    staging.write_text(dumps(value))
    os.replace(staging, path)
