"""Nautilus's Binance execution clients as the live node builds them, with three changes.

``LiveBinanceExecClientFactory`` builds the clients Nautilus's own factory builds (the same
cached HTTP client and instrument provider), and:

- **The instrument.** The node builds its instrument from Binance's public exchangeInfo (as
  ``download`` and the paper node do) and puts it in the cache before building; the factory
  adds it to the client's instrument provider too, since the client looks every fill's
  instrument up there and drops a fill it cannot price.
- **Spot reconciliation.** Nautilus 1.221 asks Binance for the orders and trades of "active"
  symbols only, which on spot are those with orders open or positions in the node's cache. A
  restarted node's cache is empty, so a spot position bought before the restart would never be
  found. The spot client here counts the instruments it trades as active: reconciliation then
  fetches their orders and trades, and Nautilus rebuilds the position from them. And where
  Nautilus's spot client answers a position it rebuilt with a report of FLAT (Binance has no
  spot positions), which makes Nautilus book a fill closing it, this one answers nothing: on
  spot the position is what the fills say.
- **The API key.** Nautilus's clients log the key in full on connecting ("API key ... has
  trading permissions"); here they see it redacted to its last four characters.
"""

from __future__ import annotations

from nautilus_trader.adapters.binance.common.urls import get_ws_base_url
from nautilus_trader.adapters.binance.factories import (
    get_cached_binance_futures_instrument_provider,
    get_cached_binance_http_client,
    get_cached_binance_spot_instrument_provider,
)
from nautilus_trader.adapters.binance.futures.execution import BinanceFuturesExecutionClient
from nautilus_trader.adapters.binance.http.client import BinanceHttpClient
from nautilus_trader.adapters.binance.spot.execution import BinanceSpotExecutionClient
from nautilus_trader.execution.messages import GeneratePositionStatusReports
from nautilus_trader.execution.reports import PositionStatusReport
from nautilus_trader.live.factories import LiveExecClientFactory


class ReconcilingSpotExecutionClient(BinanceSpotExecutionClient):
    """Binance's spot execution client, counting the symbols it trades as having positions, and
    reporting no position status (the position is what the fills say)."""

    async def _get_binance_active_position_symbols(self, symbol: str | None = None) -> set[str]:
        traded = {instrument.raw_symbol.value for instrument in self._instrument_provider.list_all()}
        return traded if symbol is None else traded & {symbol}

    async def generate_position_status_reports(self, command: GeneratePositionStatusReports) -> list[PositionStatusReport]:
        return []


class _RedactedKeyClient:
    """What an execution client logs of its HTTP client: the base URL, and the key redacted."""

    def __init__(self, client: BinanceHttpClient):
        self.base_url = client.base_url
        self.api_key = redact(client.api_key)


def redact(key: str) -> str:
    return f"****{key[-4:]}" if len(key) > 12 else "****"


class LiveBinanceExecClientFactory(LiveExecClientFactory):
    """Nautilus's ``BinanceLiveExecClientFactory``, with the changes above."""

    @staticmethod
    def create(loop, name, config, msgbus, cache, clock):
        client = get_cached_binance_http_client(
            clock=clock, account_type=config.account_type, api_key=config.api_key, api_secret=config.api_secret,
            key_type=config.key_type, base_url=config.base_url_http, is_testnet=config.testnet, is_us=config.us,
        )
        if config.account_type.is_spot:
            provider = get_cached_binance_spot_instrument_provider(
                client=client, clock=clock, account_type=config.account_type, is_testnet=config.testnet,
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
        exec_client = client_class(
            loop=loop, client=client, msgbus=msgbus, cache=cache, clock=clock, instrument_provider=provider,
            base_url_ws=config.base_url_ws or get_ws_base_url(config.account_type, config.testnet, config.us),
            config=config, account_type=config.account_type, name=name,
        )
        exec_client._http_client = _RedactedKeyClient(client)  # only ever logged: requests go through `client`
        return exec_client
