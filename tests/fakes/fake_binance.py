"""A loopback fake of Binance's REST API and market streams, for driving real, unmodified clients in tests.

REST: one server speaks both APIs, as Binance's hosts do, told apart by path: spot under
``/api/v3`` and USDT-M futures under ``/fapi/v1``. Point a client at it by replacing the scheme
and host of its API URLs with :attr:`FakeBinance.url` (``nautilus-lstm download --api-url`` does
that). Served: ``ping``, ``time``, ``exchangeInfo`` (recorded responses from ``tests/fakes/fixtures``)
and ``klines`` (bars loaded with :meth:`FakeBinance.add_klines`, in Binance's 12-field array
layout). What the bar files lack (quote volume, trade count, taker volumes) is served as zero.

WebSocket market streams: a second server, at :meth:`FakeBinance.ws_url` (one base URL per
market, as Binance has ``stream.binance.com`` and ``fstream.binance.com``; on futures the
``/market`` route, as Binance has routed USDT-M streams since 2026-04-23: the old root,
:meth:`FakeBinance.retired_ws_url`, takes connections and subscriptions and sends nothing, as
Binance's does). It speaks the
protocol of Binance's market streams: ``/stream?streams=a/b`` (combined: every message wrapped
as ``{"stream": ..., "data": ...}``) and ``/ws/<stream>`` (raw), the live ``SUBSCRIBE``,
``UNSUBSCRIBE`` and ``LIST_SUBSCRIPTIONS`` requests (answered ``{"result": ..., "id": ...}``),
and pings every 20 seconds. Kline streams (``btcusdt@kline_1m``) push the loaded bars as the
wall clock reaches them: the forming kline (``"x": false``) halfway through the interval, the
closed one (``"x": true``) at its close. Bars missing from a series (an exchange outage) are
neither streamed nor served. With a frozen clock nothing is streamed.

Signed endpoints: after :meth:`FakeBinance.open_account` (a key pair, spot balances, a USDT-M
wallet) the fake serves the account endpoints Nautilus's Binance execution client calls
(:data:`ACCOUNT_ROUTES`): account and balances, new/query/cancel order, open orders, all
orders, trades, listen keys; on futures also position risk, position mode, symbol config and
leverage. A request must carry the account's key in ``X-MBX-APIKEY`` (else ``-2014``/``-2015``,
HTTP 401) and, where Binance signs, a ``signature`` of its other parameters under the account's
key, HMAC-SHA256 or Ed25519 (else ``-1022``), and a ``timestamp`` within its ``recvWindow`` (else
``-1021``). Orders are filled by :class:`fake_binance_account.FakeAccount` at the close of the
symbol's latest closed bar, and each fill is pushed where Binance pushes user data today
(``fake_binance_user``): on spot over the WebSocket API (``/api/v3/userDataStream`` answers 410,
as it has since 2026-02-20), on futures on the ``/private`` route of a listen key. Futures
conditional orders are refused with ``-4120`` (the Algo Order API took them on 2025-12-09).

For tests of clients under stress the fake can answer klines requests with HTTP 429 and
Binance's ``-1003`` body, pace its answers, freeze its clock, drop every stream connection and
refuse new ones for a while (:meth:`FakeBinance.drop_streams`), and keep connections open but
silent (:meth:`FakeBinance.silence_streams`); it records every request and stream event.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pandas as pd
from aiohttp import WSMsgType, web

from marketdata.klines import read_klines
from marketdata.timeframes import parse_timeframe
from tests.fakes.fake_binance_account import DEFAULT_LEVERAGE, FUTURES, SPOT, BinanceError, FakeAccount, Printer
from tests.fakes.fake_binance_user import LISTEN_KEY_MISSING, Session, UserData, check_timestamp

FIXTURES = Path(__file__).resolve().parent / "fixtures"

API_PREFIXES = {"/api/v3/": SPOT, "/fapi/v1/": FUTURES, "/fapi/v2/": FUTURES, "/fapi/v3/": FUTURES}
PUBLIC_ENDPOINTS = {"ping": "_ping", "time": "_time", "exchangeInfo": "_info", "klines": "_klines"}  # GET, /api/v3/ and /fapi/v1/
SIGNED, API_KEY = "signed", "api-key"  # what an account endpoint asks of a request
# The account endpoints Nautilus's Binance execution client calls: (method, path) -> (handler, security).
ACCOUNT_ROUTES = {
    ("GET", "/api/v3/account"): ("_spot_account", SIGNED),
    ("POST", "/api/v3/order"): ("_new_order", SIGNED),
    ("GET", "/api/v3/order"): ("_query_order", SIGNED),
    ("DELETE", "/api/v3/order"): ("_cancel_order", SIGNED),
    ("GET", "/api/v3/openOrders"): ("_open_orders", SIGNED),
    ("DELETE", "/api/v3/openOrders"): ("_cancel_order", SIGNED),
    ("GET", "/api/v3/allOrders"): ("_all_orders", SIGNED),
    ("GET", "/api/v3/myTrades"): ("_user_trades", SIGNED),
    ("GET", "/fapi/v2/account"): ("_futures_account", SIGNED),
    ("GET", "/fapi/v3/positionRisk"): ("_position_risk", SIGNED),
    ("GET", "/fapi/v1/positionSide/dual"): ("_position_mode", SIGNED),
    ("GET", "/fapi/v1/symbolConfig"): ("_symbol_config", SIGNED),
    ("POST", "/fapi/v1/leverage"): ("_set_leverage", SIGNED),
    ("POST", "/fapi/v1/order"): ("_new_order", SIGNED),
    ("GET", "/fapi/v1/order"): ("_query_order", SIGNED),
    ("DELETE", "/fapi/v1/order"): ("_cancel_order", SIGNED),
    ("GET", "/fapi/v1/openOrders"): ("_open_orders", SIGNED),
    ("DELETE", "/fapi/v1/allOpenOrders"): ("_cancel_all_futures_orders", SIGNED),
    ("GET", "/fapi/v1/allOrders"): ("_all_orders", SIGNED),
    ("GET", "/fapi/v1/userTrades"): ("_user_trades", SIGNED),
    ("POST", "/fapi/v1/listenKey"): ("_new_listen_key", API_KEY),
    ("PUT", "/fapi/v1/listenKey"): ("_keep_listen_key", API_KEY),
    ("DELETE", "/fapi/v1/listenKey"): ("_close_listen_key", API_KEY),
}
# Routes Binance has retired: answered HTTP 410 Gone, as Binance answers them.
RETIRED_ROUTES = {
    ("POST", "/api/v3/userDataStream"): "spot listen keys were retired on 2026-02-20: use the WebSocket API's userDataStream.subscribe",
    ("PUT", "/api/v3/userDataStream"): "spot listen keys were retired on 2026-02-20: use the WebSocket API's userDataStream.subscribe",
    ("DELETE", "/api/v3/userDataStream"): "spot listen keys were retired on 2026-02-20: use the WebSocket API's userDataStream.unsubscribe",
}
# Futures conditional orders moved to the Algo Order API on 2025-12-09.
ALGO_ORDER_TYPES = {"STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"}
EXCHANGE_INFO = {SPOT: "binance_spot_exchange_info.json", FUTURES: "binance_usdm_exchange_info.json"}
INTERVALS = ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M")
MARKET_INTERVALS = {SPOT: INTERVALS, FUTURES: INTERVALS[1:]}  # USDT-M futures have no 1-second klines
DEFAULT_KLINES_LIMIT = 500
MAX_KLINES_LIMIT = {SPOT: 1000, FUTURES: 1500}

WS_PING_INTERVAL_S = 20.0  # Binance spot pings every 20 s and drops a client that stays silent for a minute

TOO_MANY_REQUESTS = (
    "Too many requests; current limit of IP(127.0.0.1) is 6000 requests per minute. "
    "Please use the websocket for live updates to avoid bans."
)


@dataclass(frozen=True)
class RecordedRequest:
    market: str | None
    endpoint: str  # the path after the API version, e.g. klines, order, positionSide/dual
    params: dict[str, str]
    status: int
    method: str = "GET"
    body: object = None  # the JSON answer


@dataclass(frozen=True)
class StreamEvent:
    """Something the stream server did: ``connect``, ``refuse``, ``subscribe``, ``unsubscribe``,
    ``drop``, ``kline`` (a closed kline sent: ``detail`` is its open time), ``silenced`` (one
    not sent because the streams were silenced), ``user`` (a user-data event sent: ``detail`` is
    the event) or ``ws-api`` (a WebSocket API request answered: its request and status).
    ``route`` is the connection's: market, public, retired, private or ws-api."""

    kind: str
    market: str
    detail: object = None
    wall_ms: int = 0
    route: str = ""


@dataclass(frozen=True)
class _Series:
    interval_ms: int
    open_time: np.ndarray  # int64 ms, ascending
    ohlcv: np.ndarray  # float64, shape (n, 5)
    missing: set[int] = field(default_factory=set)  # open times of bars lost in an outage (lose_klines)


@dataclass
class FakeBinance:
    """The fake server. Use as a context manager, or call :meth:`start` and :meth:`stop`.

    ``now_ms`` freezes the server clock (``/time``, ``serverTime``, and which bars have opened);
    by default it is the wall clock. ``demo`` answers as Binance's futures demo environment does
    where it differs: ``symbolConfig`` reports leverage 0 for a symbol the account never set. ``delay_s`` paces every klines answer
    (``first_delay_s``, if set, the first one instead). ``subscribe_lag_s``: a market stream sends nothing for that long after
    it is subscribed to (in the URL or by SUBSCRIBE), as a stream slow to start does. Klines requests are
    numbered from 1, 429s included; those whose number is in ``throttle_requests``, or a
    multiple of ``throttle_every``, are answered with HTTP 429 and code -1003.
    """

    now_ms: int | None = None
    delay_s: float = 0.0
    first_delay_s: float | None = None
    subscribe_lag_s: float = 0.0
    throttle_every: int | None = None
    throttle_requests: frozenset[int] = frozenset()
    demo: bool = False
    requests: list[RecordedRequest] = field(default_factory=list, init=False)
    _exchange_info: dict[str, dict] = field(default_factory=dict, init=False, repr=False)
    _series: dict[tuple[str, str, str], _Series] = field(default_factory=dict, init=False, repr=False)
    _klines_count: int = field(default=0, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _server: _Server | None = field(default=None, init=False, repr=False)
    stream_events: list[StreamEvent] = field(default_factory=list, init=False)
    _streams: _StreamServer | None = field(default=None, init=False, repr=False)
    account: FakeAccount | None = field(default=None, init=False)
    user_data: UserData = field(init=False, repr=False)
    _account_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.user_data = UserData(self)
        for market, name in EXCHANGE_INFO.items():
            self._exchange_info[market] = json.loads((FIXTURES / name).read_text())

    def add_klines(
        self, bars: pd.DataFrame | Path, *, symbol: str = "BTCUSDT", interval: str = "1m", market: str = SPOT
    ) -> None:
        """Serve ``bars`` (a kline file, or a frame in :func:`marketdata.klines.read_klines` layout)."""
        if self.symbol_info(market, symbol) is None:
            raise ValueError(f"{symbol} is not in the {market} exchangeInfo fixture")
        if interval not in MARKET_INTERVALS[market]:
            raise ValueError(f"Binance has no {interval} klines on {market}")
        frame = read_klines(bars) if isinstance(bars, Path) else bars
        self._series[(market, symbol, interval)] = _Series(
            interval_ms=parse_timeframe(interval).ms,
            open_time=frame["open_time"].to_numpy(dtype=np.int64),
            ohlcv=frame[["open", "high", "low", "close", "volume"]].to_numpy(dtype=np.float64),
        )
        if self._streams is not None:
            self._streams.pump(market, symbol, interval)

    def open_account(self, api_key: str, api_secret: str | None = None, balances: dict[str, str] | None = None,
                     futures_wallet: str = "0", public_key: str | None = None) -> FakeAccount:
        """The account the signed endpoints serve to requests carrying ``api_key`` and signed with
        ``api_secret`` (HMAC) or the private half of ``public_key`` (Ed25519, PEM): spot
        ``balances`` (asset -> amount) and a USDT-M wallet."""
        self.account = FakeAccount(api_key, api_secret, public_key,
                                   {asset: Decimal(amount) for asset, amount in (balances or {}).items()}, Decimal(futures_wallet))
        return self.account

    def symbol_info(self, market: str, symbol: str) -> dict | None:
        """The exchangeInfo entry of ``symbol``, or None where the market does not list it."""
        return next((entry for entry in self._exchange_info[market]["symbols"] if entry["symbol"] == symbol), None)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeBinance:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        threading.Thread(target=self._server.serve_forever, name="fake-binance", daemon=True).start()
        self._streams = _StreamServer(self)
        for market, symbol, interval in self._series:
            self._streams.pump(market, symbol, interval)
        return self

    def stop(self) -> None:
        if self._streams is not None:
            self._streams.stop()
            self._streams = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeBinance:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def ws_url(self, market: str = SPOT) -> str:
        """The base URL of ``market``'s kline streams (clients append ``/stream?streams=...`` or
        ``/ws/...``): spot's root, the futures ``/market`` route."""
        return self._ws_base(market) + ("/market" if market == FUTURES else "")

    def retired_ws_url(self, market: str = FUTURES) -> str:
        """The futures streams' root, retired on 2026-04-23: it takes connections and
        subscriptions, and then sends nothing."""
        return self._ws_base(market)

    def ws_api_url(self, market: str = SPOT) -> str:
        """The WebSocket API: spot's ``/ws-api/v3``, futures' ``/ws-fapi/v1``."""
        return self._ws_base(market) + ("/ws-api/v3" if market == SPOT else "/ws-fapi/v1")

    def user_stream_url(self) -> str:
        """The futures ``/private`` route, where listen-key streams are pushed."""
        return self._ws_base(FUTURES) + "/private"

    def _ws_base(self, market: str) -> str:
        if market not in EXCHANGE_INFO:
            raise ValueError(f"market must be {SPOT!r} or {FUTURES!r}, not {market!r}")
        return f"ws://127.0.0.1:{self._streams.port}/{market}"

    def expire_listen_keys(self) -> int:
        """Expire every futures listen key, as Binance does after an hour without keep-alive:
        ``listenKeyExpired`` is pushed on its stream and the key stops working. Returns how many."""
        keys = self.user_data.expire_listen_keys(FUTURES)
        now = self.clock_ms()
        for key in keys:
            self._streams.push_listen_key_event(key, {"e": "listenKeyExpired", "E": now, "listenKey": key})
        return len(keys)

    # -- stream faults -----------------------------------------------------------------------

    def drop_streams(self, refuse_s: float = 0.0) -> int:
        """Cut every stream connection, as a network failure does (no close frame), and refuse
        new connections (HTTP 503) for ``refuse_s`` seconds. Returns how many were cut."""
        return self._streams.drop(refuse_s)

    def silence_streams(self, seconds: float) -> None:
        """Keep connections open but send no kline for ``seconds`` (a stalled feed). Bars closing
        meanwhile are still served by REST."""
        self._streams.silent_until_ms = self.clock_ms() + int(seconds * 1000)

    def lose_klines(self, open_times_ms: list[int], *, symbol: str = "BTCUSDT", interval: str = "1m", market: str = SPOT) -> None:
        """An outage: the bars opening at ``open_times_ms`` (none open yet) go missing from the exchange
        altogether, neither streamed nor served by REST."""
        if min(open_times_ms) <= self.clock_ms():
            raise ValueError(f"bars can go missing only before they open: {min(open_times_ms)} is not after {self.clock_ms()}")
        self._series[(market, symbol, interval)].missing.update(int(ms) for ms in open_times_ms)

    def stream_connections(self) -> int:
        return len(self._streams.connections)

    # -- what happened -----------------------------------------------------------------------

    def klines_requests(self, market: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.endpoint == "klines" and market in (None, r.market)]

    def events(self, kind: str) -> list[StreamEvent]:
        with self._lock:
            return [event for event in self.stream_events if event.kind == kind]

    def _record(self, kind: str, market: str, detail: object = None, route: str = "") -> None:
        with self._lock:
            self.stream_events.append(StreamEvent(kind, market, detail, int(time.time() * 1000), route))

    def clock_ms(self) -> int:
        return self.now_ms if self.now_ms is not None else int(time.time() * 1000)

    # -- endpoints ---------------------------------------------------------------------------

    def answer(self, method: str, path: str, query: str, body: str = "", api_key: str | None = None) -> tuple[int, object]:
        """(HTTP status, JSON body) for a request; records it. ``query`` and ``body`` are the raw
        (URL-encoded) parameters, ``api_key`` the ``X-MBX-APIKEY`` header."""
        market, endpoint = _split_path(path)
        params = dict(parse_qsl(query)) | dict(parse_qsl(body))
        try:
            if market is None:
                raise BinanceError(HTTPStatus.NOT_FOUND, -1, f"the fake Binance does not serve {path}")
            if method == "GET" and endpoint in PUBLIC_ENDPOINTS and path.startswith(("/api/v3/", "/fapi/v1/")):
                status, answer = HTTPStatus.OK, getattr(self, PUBLIC_ENDPOINTS[endpoint])(market, params)
            elif (method, path) in RETIRED_ROUTES:
                raise BinanceError(HTTPStatus.GONE, -1000, RETIRED_ROUTES[(method, path)])
            elif (method, path) in ACCOUNT_ROUTES:
                handler, security = ACCOUNT_ROUTES[(method, path)]
                account = self._authenticate(security, api_key, query + body, params)
                with self._account_lock:
                    status, answer = HTTPStatus.OK, getattr(self, handler)(account, market, params)
            else:
                raise BinanceError(HTTPStatus.NOT_FOUND, -1, f"the fake Binance does not serve {method} {path}")
        except BinanceError as error:
            status, answer = error.status, error.body
        with self._lock:
            self.requests.append(RecordedRequest(market, endpoint, params, int(status), method, answer))
        return status, answer

    def _authenticate(self, security: str, api_key: str | None, total_params: str, params: dict[str, str]) -> FakeAccount:
        """The account whose key the request carries; for a signed endpoint, its signature of the
        other parameters checked under the account's key (HMAC-SHA256 or Ed25519), and its
        timestamp against the receive window, as Binance does."""
        if not api_key:
            raise BinanceError(HTTPStatus.UNAUTHORIZED, -2014, "API-key format invalid.")
        if self.account is None or api_key != self.account.api_key:
            raise BinanceError(HTTPStatus.UNAUTHORIZED, -2015, "Invalid API-key, IP, or permissions for action.")
        if security == API_KEY:
            return self.account
        signature = params.get("signature", "")
        signed = "&".join(pair for pair in total_params.split("&") if pair and not pair.startswith("signature="))
        if not signature:
            raise BinanceError(HTTPStatus.BAD_REQUEST, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
        if not self.account.verify(signed, signature):
            raise BinanceError(HTTPStatus.BAD_REQUEST, -1022, "Signature for this request is not valid.")
        check_timestamp(params, self.clock_ms())
        return self.account

    def _ping(self, market: str, params: dict[str, str]) -> dict:
        return {}

    def _time(self, market: str, params: dict[str, str]) -> dict:
        return {"serverTime": self.clock_ms()}

    def _info(self, market: str, params: dict[str, str]) -> dict:
        return {**self._exchange_info[market], "serverTime": self.clock_ms()}

    def _klines(self, market: str, params: dict[str, str]) -> list[list]:
        with self._lock:
            self._klines_count += 1
            number = self._klines_count
        delay = self.first_delay_s if number == 1 and self.first_delay_s is not None else self.delay_s
        if delay:
            time.sleep(delay)
        if number in self.throttle_requests or (self.throttle_every and number % self.throttle_every == 0):
            raise BinanceError(HTTPStatus.TOO_MANY_REQUESTS, -1003, TOO_MANY_REQUESTS)
        symbol, interval = _required(params, "symbol"), _required(params, "interval")
        symbol_info = self.symbol_info(market, symbol)
        if symbol_info is None:
            raise BinanceError(HTTPStatus.BAD_REQUEST, -1121, "Invalid symbol.")
        if interval not in MARKET_INTERVALS[market]:
            raise BinanceError(HTTPStatus.BAD_REQUEST, -1120, "Invalid interval.")
        series = self._series.get((market, symbol, interval))
        if series is None:
            # Listed but not loaded: answer as Binance does for a symbol it cannot serve, so
            # tests can provoke a non-network error through a client that knows the market.
            raise BinanceError(HTTPStatus.BAD_REQUEST, -1121, "Invalid symbol.")
        limit = _integer(params, "limit", DEFAULT_KLINES_LIMIT)
        if not 1 <= limit <= MAX_KLINES_LIMIT[market]:
            raise BinanceError(HTTPStatus.BAD_REQUEST, -1130, "Data sent for parameter 'limit' is not valid.")
        start, end = _integer(params, "startTime", None), _integer(params, "endTime", None)

        opened = int(np.searchsorted(series.open_time, self.clock_ms(), side="right"))
        last = opened if end is None else min(opened, int(np.searchsorted(series.open_time, end, side="right")))
        first = 0 if start is None else int(np.searchsorted(series.open_time, start, side="left"))
        rows = np.arange(first, max(first, last))
        if series.missing:
            rows = rows[~np.isin(series.open_time[rows], np.fromiter(series.missing, np.int64))]
        rows = rows[:limit] if start is not None else rows[-limit:]
        decimals = _decimals(symbol_info, market)
        return [_kline(series, row, *decimals) for row in rows]


    # -- account endpoints (signed, or with the API key only) ------------------------------------

    def last_close(self, market: str, symbol: str) -> Decimal:
        """The close of ``symbol``'s latest closed bar (the shortest interval loaded): the price
        market orders fill at."""
        series = sorted((s for (m, sym, _), s in self._series.items() if (m, sym) == (market, symbol)), key=lambda s: s.interval_ms)
        if series:
            closed = int(np.searchsorted(series[0].open_time + series[0].interval_ms, self.clock_ms(), side="right"))
            if closed:
                price_decimals = _decimals(self.symbol_info(market, symbol), market)[0]
                return Decimal(f"{series[0].ohlcv[closed - 1, 3]:.{price_decimals}f}")
        raise BinanceError(HTTPStatus.BAD_REQUEST, -1, f"the fake Binance has no closed {market} bar of {symbol} to fill at")

    def _prices(self, market: str) -> dict[str, Decimal]:
        prices = {}
        for _, symbol, _ in self._series:
            try:
                prices[symbol] = self.last_close(market, symbol)
            except BinanceError:
                pass
        return prices

    def _symbol(self, market: str, params: dict[str, str]) -> dict:
        info = self.symbol_info(market, _required(params, "symbol"))
        if info is None:
            raise BinanceError(HTTPStatus.BAD_REQUEST, -1121, "Invalid symbol.")
        return info

    def _spot_account(self, account: FakeAccount, market: str, params: dict[str, str]) -> dict:
        return account.spot_account(self.clock_ms())

    def _futures_account(self, account: FakeAccount, market: str, params: dict[str, str]) -> dict:
        return account.futures_account(self._prices(market), self.clock_ms())

    def _position_risk(self, account: FakeAccount, market: str, params: dict[str, str]) -> list[dict]:
        infos = {symbol: self.symbol_info(market, symbol) for symbol in account.positions}
        return account.position_risk(infos, self._prices(market), params.get("symbol"))

    def _position_mode(self, account: FakeAccount, market: str, params: dict[str, str]) -> dict:
        return {"dualSidePosition": False}  # one-way mode

    def _symbol_config(self, account: FakeAccount, market: str, params: dict[str, str]) -> list[dict]:
        symbols = [params["symbol"]] if "symbol" in params else [s["symbol"] for s in self._exchange_info[market]["symbols"]]
        untouched = 0 if self.demo else DEFAULT_LEVERAGE  # the demo environment reports 0 for symbols never set
        return [{"symbol": symbol, "marginType": "CROSSED", "isAutoAddMargin": False,
                 "leverage": account.leverage.get(symbol, untouched), "maxNotionalValue": "1000000"} for symbol in symbols]

    def _set_leverage(self, account: FakeAccount, market: str, params: dict[str, str]) -> dict:
        symbol = self._symbol(market, params)["symbol"]
        leverage = _integer(params, "leverage", None)
        if leverage is None or not 1 <= leverage <= 125:
            raise BinanceError(HTTPStatus.BAD_REQUEST, -4028, "Leverage is not valid")
        account.leverage[symbol] = leverage
        return {"leverage": leverage, "maxNotionalValue": "1000000", "symbol": symbol}

    def _new_order(self, account: FakeAccount, market: str, params: dict[str, str]) -> dict:
        info = self._symbol(market, params)
        if market == FUTURES and params.get("type") in ALGO_ORDER_TYPES:
            raise BinanceError(HTTPStatus.BAD_REQUEST, -4120, "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead.")
        fill = account.market_order(market, info, params, self.last_close(market, info["symbol"]), self.clock_ms())
        for event in fill.events:
            self._streams.push_user(market, event)
        return fill.answer

    def _query_order(self, account: FakeAccount, market: str, params: dict[str, str]) -> dict:
        info = self._symbol(market, params)
        return Printer(market, info).order(account.find_order(market, info["symbol"], params))

    def _cancel_order(self, account: FakeAccount, market: str, params: dict[str, str]) -> dict:
        raise BinanceError(HTTPStatus.BAD_REQUEST, -2011, "Unknown order sent.")  # market orders are never open

    def _cancel_all_futures_orders(self, account: FakeAccount, market: str, params: dict[str, str]) -> dict:
        self._symbol(market, params)
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    def _open_orders(self, account: FakeAccount, market: str, params: dict[str, str]) -> list[dict]:
        return []  # market orders fill at once

    def _all_orders(self, account: FakeAccount, market: str, params: dict[str, str]) -> list[dict]:
        return [Printer(market, info).order(order) for info, order in self._orders_of(account, market, params)]

    def _user_trades(self, account: FakeAccount, market: str, params: dict[str, str]) -> list[dict]:
        return [Printer(market, info).trade(order) for info, order in self._orders_of(account, market, params)]

    def _orders_of(self, account: FakeAccount, market: str, params: dict[str, str]) -> list[tuple[dict, dict]]:
        """The symbol's orders within ``startTime``/``endTime``, the last ``limit`` of them."""
        info = self._symbol(market, params)
        start, end = _integer(params, "startTime", 0), _integer(params, "endTime", None)
        orders = [o for o in account.orders[market] if o["symbol"] == info["symbol"] and start <= o["time"] and (end is None or o["time"] <= end)]
        return [(info, order) for order in orders[-_integer(params, "limit", 500):]]

    def _new_listen_key(self, account: FakeAccount, market: str, params: dict[str, str]) -> dict:
        return {"listenKey": self.user_data.new_listen_key(market)}

    def _keep_listen_key(self, account: FakeAccount, market: str, params: dict[str, str]) -> dict:
        live = [key for key, key_market in self.user_data.listen_keys.items() if key_market == market]
        self.user_data.keep_listen_key(params.get("listenKey") or (live[0] if live else None))
        return {}

    def _close_listen_key(self, account: FakeAccount, market: str, params: dict[str, str]) -> dict:
        live = [key for key, key_market in self.user_data.listen_keys.items() if key_market == market]
        self.user_data.close_listen_key(params.get("listenKey") or (live[0] if live else None))
        return {}

    def user_events(self, market: str | None = None) -> list[dict]:
        """The user-data stream events sent, oldest first."""
        return [event.detail for event in self.events("user") if market in (None, event.market)]


class _Server(ThreadingHTTPServer):
    fake: FakeBinance

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that went away (killed) is no error
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as clients expect of Binance

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._answer("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._answer("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._answer("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._answer("DELETE")

    def _answer(self, method: str) -> None:
        url = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        if self.headers.get("Content-Type", "").startswith("application/json"):
            body = ""  # Nautilus sends its parameters in the query string and an empty JSON body
        status, answer = self.server.fake.answer(method, url.path, url.query, body, self.headers.get("X-MBX-APIKEY"))
        payload = json.dumps(answer, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args) -> None:
        pass  # the fake records requests itself; stderr noise would bury test output


def _split_path(path: str) -> tuple[str | None, str]:
    for prefix, market in API_PREFIXES.items():
        if path.startswith(prefix):
            return market, path[len(prefix) :]
    return None, path


def _required(params: dict[str, str], name: str) -> str:
    value = params.get(name, "")
    if not value:
        raise BinanceError(
            HTTPStatus.BAD_REQUEST, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
        )
    return value


def _integer(params: dict[str, str], name: str, default: int | None) -> int | None:
    if name not in params:
        return default
    try:
        return int(params[name])
    except ValueError:
        message = f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'."
        raise BinanceError(HTTPStatus.BAD_REQUEST, -1100, message) from None


def _decimals(symbol_info: dict, market: str) -> tuple[int, int]:
    """Decimals Binance prints prices and sizes with: 8 on spot, the contract's precision on futures."""
    if market == SPOT:
        return symbol_info["quoteAssetPrecision"], symbol_info["baseAssetPrecision"]
    return symbol_info["pricePrecision"], symbol_info["quantityPrecision"]


def _kline(series: _Series, row: int, price_decimals: int, size_decimals: int) -> list:
    """One kline in Binance's layout: numbers as strings, except times and the trade count."""
    open_ms = int(series.open_time[row])
    o, h, l, c, v = series.ohlcv[row]
    return [
        open_ms,
        f"{o:.{price_decimals}f}",
        f"{h:.{price_decimals}f}",
        f"{l:.{price_decimals}f}",
        f"{c:.{price_decimals}f}",
        f"{v:.{size_decimals}f}",
        open_ms + series.interval_ms - 1,
        f"{0:.{price_decimals}f}",
        0,
        f"{0:.{size_decimals}f}",
        f"{0:.{price_decimals}f}",
        "0",
    ]


# -- WebSocket market streams ------------------------------------------------------------------


# What each stream route carries. Binance split the USDT-M streams into /market (klines and the
# rest of the market data), /public (book data) and /private (user data) on 2026-04-23; the old
# root still takes connections and subscriptions, and then sends nothing.
MARKET, PUBLIC, RETIRED, PRIVATE, WS_API = "market", "public", "retired", "private", "ws-api"


@dataclass(eq=False)
class _Connection:
    ws: web.WebSocketResponse
    market: str
    combined: bool  # /stream (messages wrapped with their stream name) rather than /ws
    streams: set[str] = field(default_factory=set)
    route: str = MARKET
    listen_key: str | None = None  # a futures user-data stream's
    session: Session | None = None  # a WebSocket API connection's
    live_from_ms: dict[str, int] = field(default_factory=dict)  # a stream -> the fake clock from which it is sent


class _StreamServer:
    """aiohttp on its own thread and event loop: the fake's market-stream host."""

    def __init__(self, fake: FakeBinance):
        self.fake = fake
        self.connections: set[_Connection] = set()
        self.refuse_until = 0.0  # time.monotonic() before which new connections are refused
        self.silent_until_ms = 0  # fake clock before which no kline is sent
        self._pumps: dict[tuple[str, str, str], asyncio.Task] = {}
        self._routes: dict[str, tuple[str, str]] = {}  # route name -> (market, route)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fake-binance-streams", daemon=True)
        self._thread.start()
        self._runner: web.AppRunner | None = None
        self.port = self._call(self._start())

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    async def _start(self) -> int:
        app = web.Application()
        for market, route, prefix in ((SPOT, MARKET, "/spot"), (FUTURES, MARKET, "/futures/market"),
                                      (FUTURES, PUBLIC, "/futures/public"), (FUTURES, RETIRED, "/futures")):
            name = f"{market}-{route}"
            app.router.add_get(f"{prefix}/stream", self._handle, name=f"{name}.stream")
            app.router.add_get(f"{prefix}/ws/{{stream}}", self._handle, name=f"{name}.ws")
            self._routes[name] = (market, route)
        for path in ("/futures/private", "/futures/private/ws"):
            app.router.add_get(path, self._user_stream)
        app.router.add_get("/spot/ws-api/v3", self._ws_api)
        app.router.add_get("/futures/ws-fapi/v1", self._ws_api)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return site._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def shutdown():
            for task in self._pumps.values():
                task.cancel()
            for connection in list(self.connections):
                connection.ws._req.transport.abort()
            await self._runner.cleanup()

        try:
            self._call(shutdown())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
            self.loop.close()

    def pump(self, market: str, symbol: str, interval: str) -> None:
        """Stream the series from now on (not at all while the fake's clock is frozen)."""
        if self.fake.now_ms is not None:
            return

        def start():
            key = (market, symbol, interval)
            if key in self._pumps:
                self._pumps[key].cancel()
            self._pumps[key] = self.loop.create_task(self._pump(*key))

        self.loop.call_soon_threadsafe(start)

    def drop(self, refuse_s: float) -> int:
        async def cut() -> int:
            self.refuse_until = time.monotonic() + refuse_s
            dropped = list(self.connections)
            for connection in dropped:
                connection.ws._req.transport.abort()  # no close frame: as a network failure looks
                self.connections.discard(connection)
            for connection in dropped:
                self.fake._record("drop", connection.market, sorted(connection.streams), route=connection.route)
            return len(dropped)

        return self._call(cut())

    # -- connections -------------------------------------------------------------------------

    async def _accept(self, request: web.Request) -> web.WebSocketResponse | web.Response:
        if time.monotonic() < self.refuse_until:
            self.fake._record("refuse", request.path.split("/")[1], route=request.path)
            return web.Response(status=503, text="Service Unavailable")
        ws = web.WebSocketResponse(heartbeat=WS_PING_INTERVAL_S, autoping=True)
        await ws.prepare(request)
        return ws

    async def _serve(self, connection: _Connection, on_text) -> None:
        self.connections.add(connection)
        self.fake._record("connect", connection.market, sorted(connection.streams), route=connection.route)
        try:
            async for message in connection.ws:
                if message.type == WSMsgType.TEXT:
                    await on_text(connection, message.data)
        finally:
            self.connections.discard(connection)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        """A market-data stream connection (its route: market, public or retired)."""
        ws = await self._accept(request)
        if not isinstance(ws, web.WebSocketResponse):
            return ws
        market, route = self._routes[request.match_info.route.name.split(".")[0]]
        combined = "stream" not in request.match_info  # /stream?streams=a/b, not /ws/a
        if combined:
            streams = {name for name in request.query.get("streams", "").split("/") if name}
        else:
            streams = {request.match_info["stream"]}
        connection = _Connection(ws, market, combined, streams, route)
        self._subscribe(connection, streams)
        await self._serve(connection, self._request)
        return ws

    def _subscribe(self, connection: _Connection, streams) -> None:
        connection.streams.update(streams)
        connection.live_from_ms.update(dict.fromkeys(streams, self.fake.clock_ms() + int(self.fake.subscribe_lag_s * 1000)))

    async def _user_stream(self, request: web.Request) -> web.StreamResponse:
        """A futures user-data stream on the /private route, named by its listen key."""
        listen_key = request.query.get("listenKey", "")
        if self.fake.user_data.listen_keys.get(listen_key) != FUTURES:
            self.fake._record("refuse", FUTURES, route=PRIVATE)
            return web.json_response(LISTEN_KEY_MISSING.body, status=400)
        ws = await self._accept(request)
        if isinstance(ws, web.WebSocketResponse):
            await self._serve(_Connection(ws, FUTURES, False, route=PRIVATE, listen_key=listen_key), self._request)
        return ws

    async def _ws_api(self, request: web.Request) -> web.StreamResponse:
        """A WebSocket API connection: requests answered by the fake's :class:`UserData`."""
        ws = await self._accept(request)
        if not isinstance(ws, web.WebSocketResponse):
            return ws
        market = request.path.split("/")[1]
        session = Session(market, self.fake.clock_ms())

        async def answer(connection: _Connection, text: str) -> None:
            with self.fake._account_lock:
                reply = self.fake.user_data.answer(session, text)
            self.fake._record("ws-api", market, {"request": json.loads(text) if reply["id"] is not None else text,
                                                 "status": reply["status"]}, route=WS_API)
            await connection.ws.send_str(json.dumps(reply, separators=(",", ":")))

        await self._serve(_Connection(ws, market, False, route=WS_API, session=session), answer)
        return ws

    async def _request(self, connection: _Connection, text: str) -> None:
        """A live request on the connection, answered as Binance does."""
        try:
            request = json.loads(text)
            method, params, request_id = request["method"], request.get("params", []), request["id"]
        except (ValueError, KeyError, TypeError):
            await connection.ws.send_str(json.dumps({"error": {"code": 3, "msg": "Invalid JSON"}}))
            return
        if method == "SUBSCRIBE":
            self._subscribe(connection, params)
            self.fake._record("subscribe", connection.market, list(params), route=connection.route)
            result = None
        elif method == "UNSUBSCRIBE":
            connection.streams.difference_update(params)
            self.fake._record("unsubscribe", connection.market, list(params), route=connection.route)
            result = None
        elif method == "LIST_SUBSCRIPTIONS":
            result = sorted(connection.streams)
        else:
            await connection.ws.send_str(json.dumps({"error": {"code": 2, "msg": f"Invalid request: {method}"}, "id": request_id}))
            return
        await connection.ws.send_str(json.dumps({"result": result, "id": request_id}))

    # -- klines --------------------------------------------------------------------------------

    async def _pump(self, market: str, symbol: str, interval: str) -> None:
        series = self.fake._series[(market, symbol, interval)]
        kline_stream = f"{symbol.lower()}@kline_{interval}"
        decimals = _decimals(self.fake.symbol_info(market, symbol), market)
        row = int(np.searchsorted(series.open_time + series.interval_ms, self.fake.clock_ms(), side="right"))
        while row < len(series.open_time):
            open_ms = int(series.open_time[row])
            if open_ms in series.missing:
                await self._sleep_until(open_ms + series.interval_ms)
                row += 1
                continue
            await self._sleep_until(open_ms + series.interval_ms // 2)
            if self.fake.clock_ms() >= self.silent_until_ms:
                await self._send(market, kline_stream, _kline_event(series, row, symbol, interval, False, self.fake.clock_ms(), *decimals))
            await self._sleep_until(open_ms + series.interval_ms)
            now = self.fake.clock_ms()
            if now < self.silent_until_ms:
                self.fake._record("silenced", market, open_ms)
            else:
                sent = await self._send(market, kline_stream, _kline_event(series, row, symbol, interval, True, now, *decimals))
                if sent:
                    self.fake._record("kline", market, open_ms)
            row += 1

    async def _sleep_until(self, wall_ms: int) -> None:
        delay = (wall_ms - self.fake.clock_ms()) / 1000
        if delay > 0:
            await asyncio.sleep(delay)

    def push_user(self, market: str, event: dict) -> None:
        """Send a user-data ``event`` where Binance sends it, from the stream thread, in the order
        pushed: on spot to each WebSocket API session subscribed to the user data stream, on futures
        to each /private stream of a live listen key. Recorded as a ``user`` event once sent."""

        def receives(connection: _Connection) -> bool:
            if market == SPOT:
                return connection.route == WS_API and connection.session.subscription_id is not None
            return connection.route == PRIVATE and connection.listen_key in self.fake.user_data.listen_keys

        def wrap(connection: _Connection) -> dict:
            return {"subscriptionId": connection.session.subscription_id, "event": event} if market == SPOT else event

        self._push(market, receives, wrap, event)

    def push_listen_key_event(self, listen_key: str, event: dict) -> None:
        """Send ``event`` on the futures streams of ``listen_key`` (even one just expired)."""
        self._push(FUTURES, lambda connection: connection.route == PRIVATE and connection.listen_key == listen_key,
                   lambda connection: event, event)

    def _push(self, market: str, receives, wrap, event: dict) -> None:
        async def send():
            sent = 0
            for connection in list(self.connections):
                if connection.market == market and receives(connection):
                    sent += await self._send_to(connection, wrap(connection))
            if sent:
                self.fake._record("user", market, event)

        asyncio.run_coroutine_threadsafe(send(), self.loop)

    async def _send(self, market: str, stream: str, data: dict) -> int:
        """Send a market-data message on ``stream`` to the connections of the route that carries it."""
        sent, now = 0, self.fake.clock_ms()
        for connection in list(self.connections):
            if (connection.market == market and connection.route == MARKET and stream in connection.streams
                    and now >= connection.live_from_ms.get(stream, 0)):
                sent += await self._send_to(connection, {"stream": stream, "data": data} if connection.combined else data)
        return sent

    async def _send_to(self, connection: _Connection, message: dict) -> int:
        if connection.ws.closed:
            return 0
        try:
            await connection.ws.send_str(json.dumps(message, separators=(",", ":")))
            return 1
        except (ConnectionError, RuntimeError):
            self.connections.discard(connection)
            return 0


def _kline_event(series: _Series, row: int, symbol: str, interval: str, closed: bool, now_ms: int,
                 price_decimals: int, size_decimals: int) -> dict:
    """A kline stream event in Binance's layout (the fields of :func:`_kline`, named)."""
    k = _kline(series, row, price_decimals, size_decimals)
    return {
        "e": "kline", "E": now_ms, "s": symbol,
        "k": {
            "t": k[0], "T": k[6], "s": symbol, "i": interval, "f": -1, "L": -1,
            "o": k[1], "c": k[4], "h": k[2], "l": k[3], "v": k[5], "n": k[8], "x": closed,
            "q": k[7], "V": k[9], "Q": k[10], "B": k[11],
        },
    }

