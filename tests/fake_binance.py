"""A loopback fake of Binance's REST API, for driving real, unmodified clients in tests.

One server speaks both APIs, as Binance's hosts do, told apart by path: spot under ``/api/v3``
and USDT-M futures under ``/fapi/v1``. Point a client at it by replacing the scheme and host of
its API URLs with :attr:`FakeBinance.url` (``nautilus-lstm download --api-url`` does that).

Served: ``ping``, ``time``, ``exchangeInfo`` (recorded responses from ``tests/fixtures``) and
``klines`` (bars loaded with :meth:`FakeBinance.add_klines`, in Binance's 12-field array
layout). What the bar files lack (quote volume, trade count, taker volumes) is served as zero.

For tests of clients under stress the fake can answer klines requests with HTTP 429 and
Binance's ``-1003`` body, pace its answers, and freeze its clock; it records every request.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pandas as pd

from backtests.klines import read_klines
from backtests.timeframes import parse_timeframe

FIXTURES = Path(__file__).resolve().parent / "fixtures"

SPOT, FUTURES = "spot", "futures"
API_PREFIXES = {"/api/v3/": SPOT, "/fapi/v1/": FUTURES}
EXCHANGE_INFO = {SPOT: "binance_spot_exchange_info.json", FUTURES: "binance_usdm_exchange_info.json"}
INTERVALS = ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M")
DEFAULT_KLINES_LIMIT = 500
MAX_KLINES_LIMIT = {SPOT: 1000, FUTURES: 1500}

TOO_MANY_REQUESTS = (
    "Too many requests; current limit of IP(127.0.0.1) is 6000 requests per minute. "
    "Please use the websocket for live updates to avoid bans."
)


@dataclass(frozen=True)
class RecordedRequest:
    market: str | None
    endpoint: str
    params: dict[str, str]
    status: int


@dataclass(frozen=True)
class _Series:
    interval_ms: int
    open_time: np.ndarray  # int64 ms, ascending
    ohlcv: np.ndarray  # float64, shape (n, 5)


class _BinanceError(Exception):
    """An error answer in Binance's format: HTTP status and ``{"code": ..., "msg": ...}``."""

    def __init__(self, status: int, code: int, msg: str):
        super().__init__(msg)
        self.status, self.body = status, {"code": code, "msg": msg}


@dataclass
class FakeBinance:
    """The fake server. Use as a context manager, or call :meth:`start` and :meth:`stop`.

    ``now_ms`` freezes the server clock (``/time``, ``serverTime``, and which bars have opened);
    by default it is the wall clock. ``delay_s`` paces every klines answer. Klines requests are
    numbered from 1, 429s included; those whose number is in ``throttle_requests``, or a
    multiple of ``throttle_every``, are answered with HTTP 429 and code -1003.
    """

    now_ms: int | None = None
    delay_s: float = 0.0
    throttle_every: int | None = None
    throttle_requests: frozenset[int] = frozenset()
    requests: list[RecordedRequest] = field(default_factory=list, init=False)
    _exchange_info: dict[str, dict] = field(default_factory=dict, init=False, repr=False)
    _series: dict[tuple[str, str, str], _Series] = field(default_factory=dict, init=False, repr=False)
    _klines_count: int = field(default=0, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _server: _Server | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        for market, name in EXCHANGE_INFO.items():
            self._exchange_info[market] = json.loads((FIXTURES / name).read_text())

    def add_klines(
        self, bars: pd.DataFrame | Path, *, symbol: str = "BTCUSDT", interval: str = "1m", market: str = SPOT
    ) -> None:
        """Serve ``bars`` (a kline file, or a frame in :func:`backtests.klines.read_klines` layout)."""
        if self.symbol_info(market, symbol) is None:
            raise ValueError(f"{symbol} is not in the {market} exchangeInfo fixture")
        frame = read_klines(bars) if isinstance(bars, Path) else bars
        self._series[(market, symbol, interval)] = _Series(
            interval_ms=parse_timeframe(interval).ms,
            open_time=frame["open_time"].to_numpy(dtype=np.int64),
            ohlcv=frame[["open", "high", "low", "close", "volume"]].to_numpy(dtype=np.float64),
        )

    def symbol_info(self, market: str, symbol: str) -> dict | None:
        """The exchangeInfo entry of ``symbol``, or None where the market does not list it."""
        return next((entry for entry in self._exchange_info[market]["symbols"] if entry["symbol"] == symbol), None)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeBinance:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        threading.Thread(target=self._server.serve_forever, name="fake-binance", daemon=True).start()
        return self

    def stop(self) -> None:
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

    # -- what happened -----------------------------------------------------------------------

    def klines_requests(self, market: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.endpoint == "klines" and market in (None, r.market)]

    def clock_ms(self) -> int:
        return self.now_ms if self.now_ms is not None else int(time.time() * 1000)

    # -- endpoints ---------------------------------------------------------------------------

    def answer(self, path: str, params: dict[str, str]) -> tuple[int, object]:
        """(HTTP status, JSON body) for a GET of ``path``; records the request."""
        market, endpoint = _split_path(path)
        endpoints = {"ping": self._ping, "time": self._time, "exchangeInfo": self._info, "klines": self._klines}
        try:
            if market is None or endpoint not in endpoints:
                raise _BinanceError(HTTPStatus.NOT_FOUND, -1, f"the fake Binance does not serve {path}")
            status, body = HTTPStatus.OK, endpoints[endpoint](market, params)
        except _BinanceError as error:
            status, body = error.status, error.body
        with self._lock:
            self.requests.append(RecordedRequest(market, endpoint, params, int(status)))
        return status, body

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
        if self.delay_s:
            time.sleep(self.delay_s)
        if number in self.throttle_requests or (self.throttle_every and number % self.throttle_every == 0):
            raise _BinanceError(HTTPStatus.TOO_MANY_REQUESTS, -1003, TOO_MANY_REQUESTS)
        symbol, interval = _required(params, "symbol"), _required(params, "interval")
        symbol_info = self.symbol_info(market, symbol)
        if symbol_info is None:
            raise _BinanceError(HTTPStatus.BAD_REQUEST, -1121, "Invalid symbol.")
        if interval not in INTERVALS:
            raise _BinanceError(HTTPStatus.BAD_REQUEST, -1120, "Invalid interval.")
        series = self._series.get((market, symbol, interval))
        if series is None:
            # Listed but not loaded: answer as Binance does for a symbol it cannot serve, so
            # tests can provoke a non-network error through a client that knows the market.
            raise _BinanceError(HTTPStatus.BAD_REQUEST, -1121, "Invalid symbol.")
        limit = _integer(params, "limit", DEFAULT_KLINES_LIMIT)
        if not 1 <= limit <= MAX_KLINES_LIMIT[market]:
            raise _BinanceError(HTTPStatus.BAD_REQUEST, -1130, "Data sent for parameter 'limit' is not valid.")
        start, end = _integer(params, "startTime", None), _integer(params, "endTime", None)

        opened = int(np.searchsorted(series.open_time, self.clock_ms(), side="right"))
        last = opened if end is None else min(opened, int(np.searchsorted(series.open_time, end, side="right")))
        if start is not None:
            first = int(np.searchsorted(series.open_time, start, side="left"))
            rows = range(first, max(first, min(last, first + limit)))
        else:
            rows = range(max(0, last - limit), last)
        decimals = _decimals(symbol_info, market)
        return [_kline(series, row, *decimals) for row in rows]


class _Server(ThreadingHTTPServer):
    fake: FakeBinance

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that went away (killed) is no error
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as clients expect of Binance

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        url = urlsplit(self.path)
        status, body = self.server.fake.answer(url.path, dict(parse_qsl(url.query)))
        payload = json.dumps(body, separators=(",", ":")).encode()
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
        raise _BinanceError(
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
        raise _BinanceError(HTTPStatus.BAD_REQUEST, -1100, message) from None


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
