"""The paper trading node: LSTMStrategy on live Binance data, orders filled by Nautilus's sandbox.

A Nautilus ``TradingNode`` with

- Nautilus's Binance data client (``BinanceDataClientConfig``, spot or USDT-M futures account
  type), for klines (REST history, WebSocket stream), reading Binance's LIVE public market data
  with no API key (Nautilus 1.231's data client needs none), on the routes of
  ``nodes.binance_clients.binance_routes`` (USDT-M futures klines on ``/market``);
- Nautilus's sandbox execution client (``SandboxExecutionClientConfig``): a simulated venue with
  the given starting balances and the instrument's fees, filling market orders at the close of
  the latest bar (the ``BarQuotes`` actor tells it the price: see there why);
- ``LSTMStrategy``, loaded through ``ImportableStrategyConfig`` as in backtests.

The instrument: Nautilus's Binance instrument providers call signed endpoints (the account's fee
tier), which need API keys. Paper trading needs none, so the provider is told to load nothing
and the instrument is built as ``nautilus-lstm download`` builds it, from Binance's public
``exchangeInfo`` through ccxt with the venue's default fees (``marketdata.download.fetch_instrument``).
The live node does the same. The run folder is ``nodes.run_folder``'s; the sandbox starts each
session from the starting balances (Nautilus's sandbox keeps no account between runs).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from nautilus_trader.adapters.binance import BINANCE, BinanceAccountType, BinanceDataClientConfig, BinanceLiveDataClientFactory
from nautilus_trader.adapters.binance.common.enums import BinanceEnvironment
from nautilus_trader.adapters.sandbox.config import SandboxExecutionClientConfig
from nautilus_trader.adapters.sandbox.factory import SandboxLiveExecClientFactory
from nautilus_trader.config import InstrumentProviderConfig, TradingNodeConfig
from nautilus_trader.model.instruments import Instrument

from marketdata.instruments import MARKETS
from nodes.bar_quotes import bar_quotes
from nodes.run_folder import (
    PREDICTIONS_FILE,
    check_node_settings,
    logging_config,
    node_settings,
    open_run,
    run_node,
    start_session,
    strategy_config,
)

log = logging.getLogger(__name__)

SANDBOX_KEYS = {"default_leverage"}


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
        check_node_settings(self.node)
        unknown = set(self.sandbox) - SANDBOX_KEYS
        if unknown:
            raise ValueError(f"unknown [sandbox] settings {sorted(unknown)}: expected some of {sorted(SANDBOX_KEYS)}")


def parse_balance(text: str) -> tuple[Decimal, str]:
    """``10000USDT`` or ``10000 USDT`` → (10000, "USDT")."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]+)\s*", text)
    if not match or Decimal(match.group(1)) <= 0:
        raise ValueError(f"bad balance {text!r}: expected an amount and a currency, e.g. 10000USDT")
    return Decimal(match.group(1)), match.group(2).upper()


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
    strategy = strategy_config(settings.strategy, {
        "instrument_id": str(instrument.id),
        "bar_type": bar_type,
        "model_path": str(settings.model_path),
        "predictions_path": str(run_dir / PREDICTIONS_FILE),
        "close_positions_on_stop": settings.flatten_on_stop,
    })
    return TradingNodeConfig(
        **node_settings("paper", settings.node),
        logging=logging_config(run_dir, settings.log_level),
        data_clients={BINANCE: data_client},
        exec_clients={BINANCE: sandbox},
        actors=[bar_quotes(instrument, bar_type)],
        strategies=[strategy],
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
