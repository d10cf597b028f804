"""The live node: LSTMStrategy trading on Binance through Nautilus's Binance clients, behind rails.

A Nautilus ``TradingNode`` with Nautilus's Binance data client and its Binance execution client
(spot, or USDT-M futures), built by ``nodes.binance_clients`` (see there what it changes
and which routes it uses), and ``LSTMStrategy`` with the safety rails of ``strategies.safety``.
Binance's test environments unless told otherwise: spot trades on the spot TESTNET, futures on the
futures DEMO environment (Binance moved its futures testnet there); mainnet needs
``network = "mainnet"`` and an explicit acknowledgement that it trades real money. API keys come
from the environment only, under the names Nautilus 1.231 reads (:func:`key_variables`); HMAC
and Ed25519 keys both work (Nautilus tells them apart by the secret's form); the node never
prints or logs them.

Who enforces what:

- the strategy (``strategies.safety``) enforces every limit on orders that add exposure:
  ``max_order_notional``, ``max_position_notional``, ``max_orders_per_minute``,
  ``daily_loss_limit`` (flatten, then nothing new until the next UTC day), the ``kill_file``
  (flatten and stop; ``<run folder>/KILL`` by default), and no such order before the warm-up is
  done or while the feed is stale; the drawdown kill switch (``max_drawdown``) as ever;
- Nautilus's ``RiskEngine`` backs up the order rate (``max_order_submit_rate``) and, on spot,
  the order notional (``max_notional_per_order``; Nautilus skips that check on margin
  accounts), at :data:`RISK_ENGINE_HEADROOM` times the rails' limits: it checks every order,
  closing ones too, and must never keep the strategy from flattening;
- Nautilus's ``LiveExecEngine`` reconciles orders, fills and positions with Binance at start
  (``reconciliation=True``); the strategy claims its instrument's orders
  (``external_order_claims``), so a position found at start is the strategy's to manage.

Futures run in one-way mode (Binance's default; Nautilus stops at start in hedge mode) at the
``leverage`` given (1 by default), set on Binance at start.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
from nautilus_trader.adapters.binance import BINANCE, BinanceAccountType, BinanceDataClientConfig, BinanceLiveDataClientFactory
from nautilus_trader.adapters.binance.common.credentials import is_ed25519_private_key
from nautilus_trader.adapters.binance.common.enums import BinanceEnvironment
from nautilus_trader.adapters.binance.common.symbol import BinanceSymbol
from nautilus_trader.adapters.binance.config import BinanceExecClientConfig
from nautilus_trader.config import (
    ImportableStrategyConfig,
    InstrumentProviderConfig,
    LiveExecEngineConfig,
    LiveRiskEngineConfig,
    TradingNodeConfig,
)
from nautilus_trader.model.instruments import Instrument

from marketdata.download import INSTRUMENT_RETRY
from marketdata.exchange import ExchangeUnreachable, RetryPolicy
from marketdata.instruments import MARKETS
from models.artifact import artifact_digest
from nodes.bar_quotes import bar_quotes
from nodes.binance_clients import LiveBinanceExecClientFactory, binance_routes
from nodes.run_folder import (
    PREDICTIONS_FILE,
    OpenedRun,
    check_node_settings,
    logging_config,
    node_settings,
    open_run,
    run_node,
    start_session,
    strategy_config,
)
from strategies.config import LSTMStrategyConfig, parse_strategy_config
from strategies.safety import SafetyLimits

log = logging.getLogger(__name__)

# The networks a live node can trade on, as Nautilus names them.
ENVIRONMENTS = {"testnet": BinanceEnvironment.TESTNET, "demo": BinanceEnvironment.DEMO, "mainnet": BinanceEnvironment.LIVE}
NETWORKS = tuple(ENVIRONMENTS)
DEFAULT_NETWORK = {"spot": "testnet", "futures": "demo"}  # Binance's futures testnet moved to the demo environment
KILL_FILE = "KILL"
DEFAULT_LIMITS = {"max_orders_per_minute": 6}
MAINNET_REQUIRED_LIMITS = ("max_order_notional", "max_position_notional", "daily_loss_limit")
RISK_ENGINE_HEADROOM = 2  # the RiskEngine's backstops sit this far above the rails, so closes pass them


def key_variables(market: str, network: str) -> tuple[str, str]:
    """The environment variables holding the API key and secret, as Nautilus 1.231 names them
    (the demo environment has one key for spot and futures)."""
    prefix = {"mainnet": "BINANCE", "demo": "BINANCE_DEMO"}.get(network)
    if prefix is None:
        prefix = "BINANCE_TESTNET" if market == "spot" else "BINANCE_FUTURES_TESTNET"
    return f"{prefix}_API_KEY", f"{prefix}_API_SECRET"


@dataclass(frozen=True)
class LiveSettings:
    model_path: Path
    symbol: str  # unified, e.g. BTC/USDT
    market: str = "spot"
    network: str | None = None  # testnet, demo or mainnet (default: DEFAULT_NETWORK of the market)
    real_money: bool = False  # the operator acknowledged that mainnet trades real money (command line only)
    run_dir: Path | None = None  # default: runs/live-<UTC start time>
    api_url: str | None = None  # Binance REST base URL (default: the network's)
    ws_url: str | None = None  # Binance market-stream base URL (default: the network's)
    ws_api_url: str | None = None  # Binance WebSocket API URL (default: the network's)
    ws_user_url: str | None = None  # futures: the user-data (listen-key) stream base URL (default: the network's)
    flatten_on_stop: bool = True
    leverage: int = 1  # futures
    log_level: str = "INFO"
    strategy: dict = field(default_factory=dict)  # LSTMStrategyConfig fields
    limits: dict = field(default_factory=dict)  # SafetyLimits fields
    node: dict = field(default_factory=dict)  # TradingNodeConfig fields: NODE_KEYS

    def __post_init__(self) -> None:
        if self.market not in MARKETS:
            raise ValueError(f"market must be one of {MARKETS}, not {self.market!r}")
        object.__setattr__(self, "network", self.network or DEFAULT_NETWORK[self.market])
        if self.network not in NETWORKS:
            raise ValueError(f"network must be one of {NETWORKS}, not {self.network!r}")
        if self.network == "mainnet" and not self.real_money:
            raise ValueError("mainnet trades real money: give --mainnet together with --i-understand-this-trades-real-money")
        if self.market == "spot" and self.ws_user_url:
            raise ValueError("--ws-user-url is for futures: spot user data comes over the WebSocket API (--ws-api-url)")
        if not isinstance(self.leverage, int) or not 1 <= self.leverage <= 125:
            raise ValueError(f"leverage must be a whole number from 1 to 125, not {self.leverage!r}")
        if self.market == "spot" and self.leverage != 1:
            raise ValueError("leverage is for futures: spot trades without it")
        check_node_settings(self.node)
        try:
            msgspec.convert(self.limits, SafetyLimits)
        except (msgspec.ValidationError, ValueError) as exc:
            raise ValueError(f"bad [limits] settings: {exc}") from None
        missing = [name for name in MAINNET_REQUIRED_LIMITS if self.network == "mainnet" and name not in self.limits]
        if missing:
            raise ValueError(f"mainnet needs explicit limits: set {', '.join(missing)} in the [limits] section of --config")

    @property
    def account_type(self) -> BinanceAccountType:
        return BinanceAccountType.SPOT if self.market == "spot" else BinanceAccountType.USDT_FUTURES

    @property
    def environment(self) -> BinanceEnvironment:
        return ENVIRONMENTS[self.network]

    def routes(self):
        return binance_routes(self.account_type, self.environment, self.api_url, self.ws_url, self.ws_api_url, self.ws_user_url)


@dataclass(frozen=True)
class LivePlan:
    """A live node ready to start: its config (and its strategy's, parsed), its run and what it will do, in words."""

    settings: LiveSettings
    run: OpenedRun
    config: TradingNodeConfig
    strategy: LSTMStrategyConfig
    text: str


def prepare_live(settings: LiveSettings, dry_run: bool = False, catalog: Path | None = None) -> LivePlan:
    """Everything short of connecting: keys present (unless ``dry_run``), the instrument from the
    network's public exchangeInfo, the node's config and the plan. A dry run creates nothing; it
    may read the instrument from a ``catalog`` instead, offline."""
    if catalog is not None and not dry_run:
        raise ValueError("--catalog is for --dry-run-config: a live node takes its instrument from Binance's exchangeInfo")
    variables = key_variables(settings.market, settings.network)
    missing = [name for name in variables if not os.environ.get(name)]
    if missing and not dry_run:
        raise ValueError(f"no API key: set {' and '.join(missing)} in the environment (keys are read from there only)")
    try:
        # A dry run asks exchangeInfo once: offline, retrying only delays what it has to say.
        run = open_run(settings.model_path, settings.symbol, settings.market, settings.routes().rest, settings.run_dir, "live",
                       settings.strategy, create=not dry_run, catalog=catalog,
                       retry=RetryPolicy(max_retries=0) if dry_run else INSTRUMENT_RETRY)
    except ExchangeUnreachable as exc:
        if not dry_run:
            raise
        raise ValueError(f"the dry run needs the instrument: {exc}; give --api-url, connect to the network, "
                         f"or give --catalog with a catalog holding {settings.symbol} {settings.market}") from None
    config = live_node_config(settings, run)
    strategy = strategy_of(config)
    if Path(strategy.limits.kill_file).exists():
        raise ValueError(f"the kill file {strategy.limits.kill_file} exists: remove it to start the node")
    return LivePlan(settings, run, config, strategy, describe(settings, run, config, strategy, missing))


def run_live(plan: LivePlan) -> None:
    """Run the live node until SIGINT, SIGTERM, the kill file or a fatal error."""
    settings = plan.settings
    session = start_session(plan.run, {
        "model": str(settings.model_path),
        "symbol": settings.symbol,
        "market": settings.market,
        "network": settings.network,
        "api_url": settings.api_url,
        "ws_url": settings.ws_url,
        "ws_api_url": settings.ws_api_url,
        "ws_user_url": settings.ws_user_url,
        "flatten_on_stop": settings.flatten_on_stop,
        "leverage": settings.leverage,
        "strategy": settings.strategy,
        "limits": msgspec.structs.asdict(plan.strategy.limits),
    })
    log.info("trading %s %s on Binance %s with %s; run folder %s; stop with Ctrl-C (SIGINT), SIGTERM or the kill file",
             settings.symbol, settings.market, settings.network, settings.model_path, plan.run.run_dir)
    run_node(plan.config, plan.run, session, BinanceLiveDataClientFactory, LiveBinanceExecClientFactory, starting_balance=None)


def limit_settings(settings: LiveSettings, run_dir: Path) -> dict:
    """The rails' limits the node sets: its defaults, the kill file in the run folder, ``[limits]`` over them."""
    return {**DEFAULT_LIMITS, "kill_file": str(run_dir / KILL_FILE), **settings.limits}


def strategy_of(config: TradingNodeConfig | ImportableStrategyConfig) -> LSTMStrategyConfig:
    """The strategy's config, parsed, of a node config (its one strategy) or of an importable one."""
    importable = config.strategies[0] if isinstance(config, TradingNodeConfig) else config
    return parse_strategy_config(importable.config)


def live_node_config(settings: LiveSettings, run: OpenedRun) -> TradingNodeConfig:
    """The TradingNodeConfig of a live run."""
    instrument = run.instrument
    strategy = strategy_config(settings.strategy, limit_settings(settings, run.run_dir), {
        "instrument_id": str(instrument.id),
        "bar_type": run.bar_type,
        "model_path": str(settings.model_path),
        "predictions_path": str(run.run_dir / PREDICTIONS_FILE),
        "close_positions_on_stop": settings.flatten_on_stop,
        "oms_type": "NETTING",
        "external_order_claims": [str(instrument.id)],
    })
    limits = strategy_of(strategy).limits
    venue = {
        "account_type": settings.account_type,
        "environment": settings.environment,
        "base_url_http": settings.api_url,
        "instrument_provider": InstrumentProviderConfig(load_all=False),  # the node brings the instrument
    }
    # Market data needs no key; the execution client reads its key pair from the environment.
    data_client = BinanceDataClientConfig(**venue, base_url_ws=settings.ws_url, update_instruments_interval_mins=None)
    exec_client = BinanceExecClientConfig(
        **venue,
        base_url_ws=settings.ws_api_url,
        base_url_ws_stream=settings.ws_user_url,
        use_position_ids=False,  # one net position per instrument, as the strategy trades it
        futures_leverages=None if settings.market == "spot" else {BinanceSymbol(instrument.raw_symbol.value): settings.leverage},
    )
    risk = {}
    if limits.max_orders_per_minute:
        risk["max_order_submit_rate"] = f"{RISK_ENGINE_HEADROOM * limits.max_orders_per_minute}/00:01:00"
    if limits.max_order_notional:
        risk["max_notional_per_order"] = {str(instrument.id): math.ceil(RISK_ENGINE_HEADROOM * limits.max_order_notional)}
    return TradingNodeConfig(
        **node_settings("live", settings.node),
        logging=logging_config(run.run_dir, settings.log_level),
        exec_engine=LiveExecEngineConfig(reconciliation=True, graceful_shutdown_on_exception=True),
        risk_engine=LiveRiskEngineConfig(**risk),
        data_clients={BINANCE: data_client},
        exec_clients={BINANCE: exec_client},
        actors=[bar_quotes(instrument, run.bar_type)],
        strategies=[strategy],
    )


def describe(settings: LiveSettings, run: OpenedRun, config: TradingNodeConfig, strategy: LSTMStrategyConfig,
             missing_keys: list[str]) -> str:
    """What the node will do, in words: venue, keys, instrument, model, sizing, limits, files."""
    instrument: Instrument = run.instrument
    limits, sizing = strategy.limits, strategy.sizing
    quote = instrument.quote_currency.code
    network = settings.environment.value + (" (MAINNET: REAL MONEY)" if settings.network == "mainnet" else "")
    routes = settings.routes()
    key, secret = key_variables(settings.market, settings.network)
    kind = "Ed25519" if is_ed25519_private_key(os.environ.get(secret, "")) else "HMAC"
    keys = "NOT SET: " + ", ".join(missing_keys) if missing_keys else f"set, {kind}"
    if settings.market == "spot":
        user_data = f"{routes.ws_api} (WebSocket API: session.logon, userDataStream.subscribe)"
    else:
        listen_key = "WebSocket API userDataStream.start" if kind == "Ed25519" else "REST listenKey"
        user_data = f"{routes.user_data} (listen key from the {listen_key}; WebSocket API {routes.ws_api})"
    threshold = strategy.rule.threshold(float(instrument.taker_fee))
    size = f"{sizing.equity_fraction:g} of equity" if sizing.equity_fraction is not None else f"{sizing.order_notional:g} {quote}"
    vol_target = f" × {sizing.target_volatility:g} / forecast volatility (annualized)" if sizing.target_volatility is not None else ""
    gate = strategy.volatility
    gate = (f"no new exposure while the forecast volatility exceeds {gate.volatility_gate:g} × its median of "
            f"{gate.volatility_gate_window} bars (with a model forecasting volatility)") if gate.volatility_gate is not None else "off"
    shorts = settings.market == "futures" and strategy.rule.allow_short is not False
    risk = config.risk_engine
    notional_backstop = risk.max_notional_per_order.get(str(instrument.id))
    rails = [
        ("max_order_notional", limits.max_order_notional, quote,
         f"strategy; RiskEngine backstop {notional_backstop} {quote} per order" + (" (spot)" if settings.market == "spot" else
                                                                             ": Nautilus skips it on futures") if notional_backstop else "strategy"),
        ("max_position_notional", limits.max_position_notional, quote, "strategy"),
        ("max_orders_per_minute", limits.max_orders_per_minute, "",
         f"strategy; RiskEngine backstop {risk.max_order_submit_rate}" if limits.max_orders_per_minute else "strategy"),
        ("daily_loss_limit", limits.daily_loss_limit, quote, "strategy: flatten, nothing new until the next UTC day"),
        ("max_drawdown", f"{limits.max_drawdown:.0%}" if limits.max_drawdown is not None else None, "", "strategy: flatten and halt"),
        ("kill_file", limits.kill_file, "", "strategy: flatten and stop the node"),
    ]
    lines = [
        "nautilus-lstm live: what this node will do",
        f"  venue        Binance {settings.market} {network}",
        f"  routes       REST         {routes.rest}",
        f"               market data  {routes.market_data}",
        f"               user data    {user_data}",
        f"  API keys     {key} / {secret} from the environment ({keys}); never printed or logged",
        f"  instrument   {instrument.id} ({run.instrument_source}): tick {instrument.price_increment}, "
        f"size step {instrument.size_increment}, min quantity {instrument.min_quantity}, min notional {instrument.min_notional}, "
        f"taker fee {float(instrument.taker_fee):.4%}",
        f"  model        {settings.model_path} ({strategy.forecaster}), bars {run.bar_type}, sha256 {artifact_digest(settings.model_path)[:12]}",
        f"  decisions    entry threshold {threshold:.6f} (log return), {'long and short' if shorts else 'long only'}",
        f"  sizing       {size} per position{vol_target}, capped at max_notional {sizing.max_notional:g} {quote}"
        + (f"; leverage {settings.leverage}x" if settings.market == "futures" else ""),
        f"  vol gate     {gate}",
        "  rails",
        *(f"    {name:<22} {'none' if value is None else f'{value:g}' if isinstance(value, float) else value} {unit}".rstrip()
          + f"   [{who}]" for name, value, unit, who in rails),
        "    orders adding exposure wait for the warm-up and a fresh feed; orders reducing the position always go out",
        f"  on stop      {'flatten' if settings.flatten_on_stop else 'keep the position'} (SIGINT, SIGTERM)",
        "  at start     Nautilus reconciles orders, fills and positions with Binance; the strategy manages what it finds",
        f"  run folder   {run.run_dir}: node.log, predictions.csv, state.json, run.json, fills.csv, positions.csv",
    ]
    return "\n".join(lines)
