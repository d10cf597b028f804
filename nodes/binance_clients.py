"""Nautilus's Binance clients as the paper and live nodes configure and build them.

:func:`binance_routes` says where a node's clients connect: the URLs the node hands Nautilus,
resolved as Nautilus 1.231's factories resolve them (so ``--dry-run-config`` shows the real
routes). Binance's own changes it follows:

- spot user data comes over the WebSocket API only (``session.logon``, then
  ``userDataStream.subscribe``); the REST listen keys (``/api/v3/userDataStream``) answer 410 since
  2026-02-20;
- USDT-M futures streams are routed since 2026-04-23: market data on ``/market``, book data on
  ``/public``, user data (a listen key's stream) on ``/private``. Nautilus applies the routes to
  LIVE hosts only (TESTNET and DEMO streams are unrouted) and passes other hosts through unchanged.

The execution clients are Nautilus's own, with two changes.

``LiveBinanceExecClientFactory`` builds the clients Nautilus 1.231's own factory builds (the
same cached HTTP client, instrument provider, credentials from the environment, WebSocket API
user-data client), and:

- **The instrument.** The node builds its instrument from Binance's public exchangeInfo (as
  ``download`` and the paper node do) and puts it in the cache before building; the factory
  adds it to the client's instrument provider too, since the client looks every fill's
  instrument up there and drops a fill it cannot price.
- **Spot reconciliation.** Nautilus (1.221 to 1.231 alike) asks Binance for the orders and trades
  of "active" symbols only, which on spot are those with orders open or positions in the node's
  cache. A restarted node's cache is empty, so a spot position bought before the restart would
  never be found. The spot client here counts the instruments it trades as active:
  reconciliation then fetches their orders and trades, and Nautilus rebuilds the position from
  them. And where Nautilus's spot client answers a position it rebuilt with a report of FLAT
  (Binance has no spot positions), which makes Nautilus book a fill closing it, this one answers
  nothing: on spot the position is what the fills say. ``tests/nodes/test_live.py``'s restart test
  fails without either change.

What 1.221 needed and 1.231 does itself: the API key is logged masked (``live...F0gH``), not in full.
"""

from __future__ import annotations

from dataclasses import dataclass

from nautilus_trader.adapters.binance.common.credentials import get_api_key, get_api_secret
from nautilus_trader.adapters.binance.common.enums import BinanceAccountType, BinanceEnvironment
from nautilus_trader.adapters.binance.common.urls import (
    get_http_base_url,
    get_usdm_ws_route_base_url,
    get_ws_api_base_url,
    get_ws_base_url,
    get_ws_private_base_url,
)
from nautilus_trader.adapters.binance.factories import (
    get_cached_binance_futures_instrument_provider,
    get_cached_binance_http_client,
    get_cached_binance_spot_instrument_provider,
)
from nautilus_trader.adapters.binance.futures.execution import BinanceFuturesExecutionClient
from nautilus_trader.adapters.binance.spot.execution import BinanceSpotExecutionClient
from nautilus_trader.execution.messages import GeneratePositionStatusReports
from nautilus_trader.execution.reports import PositionStatusReport
from nautilus_trader.live.factories import LiveExecClientFactory


@dataclass(frozen=True)
class BinanceRoutes:
    """Where a node's Binance clients connect."""

    rest: str
    market_data: str  # kline streams
    ws_api: str  # the WebSocket API: spot user data, futures listen keys for Ed25519 keys
    user_data: str | None  # futures: the listen-key stream's base (spot user data is on the WebSocket API)


def binance_routes(account_type: BinanceAccountType, environment: BinanceEnvironment, api_url: str | None = None,
                   ws_url: str | None = None, ws_api_url: str | None = None, ws_user_url: str | None = None) -> BinanceRoutes:
    """The routes the clients use, given the node's overrides (None: Binance's), as Nautilus's
    factories and execution client resolve them."""
    routed = environment == BinanceEnvironment.LIVE and account_type == BinanceAccountType.USDT_FUTURES
    market_data = ws_url or get_ws_base_url(account_type, environment, False)
    user_data = None
    if account_type.is_futures:
        user_data = ws_user_url or get_ws_private_base_url(account_type, environment, False)
        if routed:
            user_data = get_usdm_ws_route_base_url(user_data, "private")
    if routed and ws_url:
        market_data = get_usdm_ws_route_base_url(ws_url, "market")
    return BinanceRoutes(
        rest=api_url or get_http_base_url(account_type, environment, False),
        market_data=market_data,
        ws_api=ws_api_url or get_ws_api_base_url(account_type, environment, False),
        user_data=user_data,
    )


class ReconcilingSpotExecutionClient(BinanceSpotExecutionClient):
    """Binance's spot execution client, counting the symbols it trades as having positions, and
    reporting no position status (the position is what the fills say)."""

    async def _get_binance_active_position_symbols(self, symbol: str | None = None) -> set[str]:
        traded = {instrument.raw_symbol.value for instrument in self._instrument_provider.list_all()}
        return traded if symbol is None else traded & {symbol}

    async def generate_position_status_reports(self, command: GeneratePositionStatusReports) -> list[PositionStatusReport]:
        return []


class LiveBinanceExecClientFactory(LiveExecClientFactory):
    """Nautilus's ``BinanceLiveExecClientFactory``, with the changes above."""

    @staticmethod
    def create(loop, name, config, msgbus, cache, clock):
        environment = config.environment or BinanceEnvironment.LIVE
        api_key = config.api_key or get_api_key(config.account_type, environment)
        api_secret = config.api_secret or get_api_secret(config.account_type, environment)
        client = get_cached_binance_http_client(
            clock=clock, account_type=config.account_type, api_key=api_key, api_secret=api_secret,
            key_type=config.key_type, base_url=config.base_url_http, environment=environment, is_us=config.us,
            proxy_url=config.proxy_url,
        )
        if config.account_type.is_spot:
            provider = get_cached_binance_spot_instrument_provider(
                client=client, clock=clock, account_type=config.account_type, environment=environment,
                config=config.instrument_provider, venue=config.venue,
            )
            client_class = ReconcilingSpotExecutionClient
        else:
            provider = get_cached_binance_futures_instrument_provider(
                client=client, clock=clock, account_type=config.account_type, config=config.instrument_provider,
                venue=config.venue,
            )
            client_class = BinanceFuturesExecutionClient
        for instrument in cache.instruments(venue=config.venue):
            provider.add_currency(instrument.base_currency)
            provider.add_currency(instrument.quote_currency)
            provider.add(instrument)
        return client_class(
            loop=loop, client=client, msgbus=msgbus, cache=cache, clock=clock, instrument_provider=provider,
            base_url_ws=config.base_url_ws or get_ws_base_url(config.account_type, environment, config.us),
            account_type=config.account_type, name=name, config=config, environment=environment,
            api_key=api_key, api_secret=api_secret,
        )
