"""ccxt clients for public market data: which class, where it connects, and retries.

No API keys are read or sent: OHLCV history and market definitions are public.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, TypeVar
from urllib.parse import urlsplit, urlunsplit

import ccxt

log = logging.getLogger(__name__)

T = TypeVar("T")

_REST_SCHEMES = ("http", "https")
_MESSAGE_LIMIT = 300


class ExchangeCallError(ValueError):
    """An exchange call that failed for good. One line naming the exchange and the call."""


class ExchangeUnreachable(ExchangeCallError):
    """An exchange call whose every try failed on the network (no connection, timeouts, 5xx, rate limits)."""


@dataclass(frozen=True)
class RetryPolicy:
    """Retry network errors (timeouts, 5xx, 429/418 rate limits) with exponential backoff."""

    max_retries: int = 5
    backoff_s: float = 1.0  # the first wait; each retry waits twice as long as the one before
    max_backoff_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max retries must be 0 or more, not {self.max_retries}")
        if self.backoff_s < 0 or self.max_backoff_s < 0:
            raise ValueError(f"backoff must be 0 seconds or more, not {self.backoff_s} (max {self.max_backoff_s})")

    def delay_s(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (from 1)."""
        return min(self.backoff_s * 2 ** (retry - 1), self.max_backoff_s)


@dataclass
class RetryingCalls:
    """Runs calls to one exchange under a :class:`RetryPolicy`, counting the retries."""

    exchange_id: str
    policy: RetryPolicy
    retries: int = 0

    def run(self, what: str, call: Callable[[], T]) -> T:
        """``call()``, retried on ``ccxt.NetworkError``; any other ccxt error is final.

        Raises :class:`ExchangeUnreachable` once retries run out, :class:`ExchangeCallError` on a final error.
        """
        retry = 0
        while True:
            try:
                return call()
            except ccxt.NetworkError as exc:  # includes DDoSProtection, RateLimitExceeded, RequestTimeout
                if retry == self.policy.max_retries:
                    tries = f"{retry + 1} tries" if retry else "1 try"
                    raise ExchangeUnreachable(
                        f"{self.exchange_id}: {what} failed after {tries}: {self._describe(exc)}"
                    ) from None
                retry += 1
                delay = self.policy.delay_s(retry)
                log.warning(
                    "%s: %s: %s; retry %d of %d in %.2fs",
                    self.exchange_id, what, self._describe(exc), retry, self.policy.max_retries, delay,
                )
                self.retries += 1
                time.sleep(delay)
            except ccxt.BaseError as exc:
                raise ExchangeCallError(f"{self.exchange_id}: {what} failed: {self._describe(exc)}") from None

    def _describe(self, exc: Exception) -> str:
        """ccxt's message on one line, without the exchange id it starts with, and what caused it."""
        text = " ".join(str(exc).split()).removeprefix(f"{self.exchange_id} ") or type(exc).__name__
        if exc.__cause__ is not None:  # ccxt names only the URL of a failed connection; say how it failed
            text += f" ({type(exc.__cause__).__name__})"
        return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


def make_exchange(exchange_id: str, market: str, api_url: str | None = None) -> ccxt.Exchange:
    """A ccxt client for ``market`` data of ``exchange_id``, with ccxt's rate limiting on.

    Binance spot loads only spot markets; Binance futures use ccxt's USDT-M class
    (``binanceusdm``). ``api_url`` (scheme and host) replaces the host of every REST URL.
    """
    exchange_class = _exchange_class(exchange_id, market)
    options = {}
    if issubclass(exchange_class, ccxt.binance):
        options["fetchCurrencies"] = False  # Binance's currencies endpoint needs API keys
        if exchange_class is ccxt.binance:
            options["fetchMarkets"] = {"types": ["spot"]}  # not the futures APIs' exchangeInfo too
    exchange = exchange_class({"enableRateLimit": True, "options": options})
    if api_url is not None:
        exchange.urls["api"] = rewrite_api_urls(exchange.urls["api"], api_url)
    return exchange


def rewrite_api_urls(api_urls, api_url: str):
    """``api_urls`` (a URL or nested dict of URLs, as in ccxt's ``urls["api"]``) with the scheme
    and host of every REST URL replaced by ``api_url``'s; paths, queries and WebSocket URLs kept."""
    base = urlsplit(api_url)
    if base.scheme not in _REST_SCHEMES or not base.netloc or base.path not in ("", "/") or base.query:
        raise ValueError(f"bad API URL {api_url!r}: expected a scheme and host only, e.g. http://127.0.0.1:8080")
    return _rewrite(api_urls, base.scheme, base.netloc)


def _rewrite(api_urls, scheme: str, netloc: str):
    if isinstance(api_urls, dict):
        return {key: _rewrite(value, scheme, netloc) for key, value in api_urls.items()}
    if isinstance(api_urls, str) and urlsplit(api_urls).scheme in _REST_SCHEMES:
        return urlunsplit(urlsplit(api_urls)._replace(scheme=scheme, netloc=netloc))
    return api_urls


def _exchange_class(exchange_id: str, market: str) -> type[ccxt.Exchange]:
    if exchange_id == "binance" and market == "futures":
        return ccxt.binanceusdm
    if exchange_id not in ccxt.exchanges:
        raise ValueError(f"unknown exchange {exchange_id!r}: expected a ccxt exchange id, e.g. binance")
    return getattr(ccxt, exchange_id)
