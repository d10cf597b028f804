"""ccxt client construction, the --api-url rewrite, and retries (no network)."""

from __future__ import annotations

from urllib.parse import urlsplit

import ccxt
import pytest

from marketdata.exchange import ExchangeCallError, ExchangeUnreachable, RetryingCalls, RetryPolicy, make_exchange, rewrite_api_urls
from marketdata.instruments import MARKETS

PROXY = "http://127.0.0.1:8080"


def leaves(urls, prefix=""):
    """(dotted key, URL) for every string in a nested dict of URLs."""
    if isinstance(urls, str):
        return [(prefix, urls)]
    return [leaf for key, value in urls.items() for leaf in leaves(value, f"{prefix}.{key}")]


@pytest.mark.parametrize("market", MARKETS)
def test_api_url_replaces_scheme_and_host_of_every_rest_url_and_keeps_paths(market):
    original = dict(leaves(make_exchange("binance", market).urls["api"]))
    rewritten = dict(leaves(make_exchange("binance", market, PROXY).urls["api"]))

    assert len(original) > 10 and rewritten.keys() == original.keys()
    assert all(urlsplit(url).netloc != "127.0.0.1:8080" for url in original.values())
    for key, url in original.items():
        assert rewritten[key] == PROXY + urlsplit(url).path, key


def test_ccxt_builds_its_requests_on_the_rewritten_url():
    spot = make_exchange("binance", "spot", PROXY)
    futures = make_exchange("binance", "futures", PROXY)

    klines = spot.sign("klines", ["public"], "GET", {"symbol": "BTCUSDT"})
    assert klines["url"] == f"{PROXY}/api/v3/klines?symbol=BTCUSDT"
    assert futures.sign("exchangeInfo", ["fapiPublic"], "GET", {})["url"] == f"{PROXY}/fapi/v1/exchangeInfo"


def test_rewrite_keeps_queries_and_leaves_websocket_urls_alone():
    urls = {"rest": "https://api.example.com/v1?x=1", "ws": "wss://stream.example.com/ws", "v2": {"a": "http://b/v2"}}

    assert rewrite_api_urls(urls, PROXY + "/") == {
        "rest": f"{PROXY}/v1?x=1",
        "ws": "wss://stream.example.com/ws",
        "v2": {"a": f"{PROXY}/v2"},
    }


@pytest.mark.parametrize("bad", ["127.0.0.1:8080", "ftp://127.0.0.1", "http://127.0.0.1:8080/api", "http://"])
def test_a_bad_api_url_is_named(bad):
    with pytest.raises(ValueError, match=f"bad API URL '{bad}'"):
        make_exchange("binance", "spot", bad)


def test_clients_per_market():
    spot, futures = make_exchange("binance", "spot"), make_exchange("binance", "futures")

    assert type(spot) is ccxt.binance and spot.options["fetchMarkets"]["types"] == ["spot"]
    assert type(futures) is ccxt.binanceusdm and futures.options["fetchMarkets"]["types"] == ["linear"]
    assert spot.enableRateLimit and not spot.apiKey
    assert type(make_exchange("kraken", "spot")) is ccxt.kraken
    with pytest.raises(ValueError, match="unknown exchange 'binanse'"):
        make_exchange("binanse", "spot")


def test_backoff_doubles_up_to_its_cap():
    policy = RetryPolicy(max_retries=8, backoff_s=0.5, max_backoff_s=10)

    assert [policy.delay_s(retry) for retry in range(1, 8)] == [0.5, 1, 2, 4, 8, 10, 10]
    with pytest.raises(ValueError, match="max retries"):
        RetryPolicy(max_retries=-1)


def failing(*errors, result="done"):
    """A call that raises ``errors`` one per call, then returns ``result``; counts its calls."""
    remaining = list(errors)

    def call():
        call.count += 1
        if remaining:
            raise remaining.pop(0)
        return result

    call.count = 0
    return call


def test_network_errors_are_retried_and_counted():
    calls = RetryingCalls("binance", RetryPolicy(max_retries=3, backoff_s=0))
    call = failing(ccxt.RequestTimeout("binance GET x"), ccxt.DDoSProtection("binance 429 Too Many Requests"))

    assert calls.run("fetch x", call) == "done"
    assert call.count == 3 and calls.retries == 2


def test_running_out_of_retries_fails_on_one_line():
    calls = RetryingCalls("binance", RetryPolicy(max_retries=1, backoff_s=0))
    call = failing(*[ccxt.ExchangeNotAvailable("binance 503\nService Unavailable")] * 2)

    with pytest.raises(ExchangeUnreachable, match=r"^binance: fetch x failed after 2 tries: 503 Service Unavailable$"):
        calls.run("fetch x", call)


def test_other_exchange_errors_are_final():
    calls = RetryingCalls("binance", RetryPolicy(backoff_s=0))
    call = failing(ccxt.BadSymbol('binance {"code":-1121,"msg":"Invalid symbol."}'))

    with pytest.raises(ExchangeCallError, match='^binance: fetch x failed: {"code":-1121,"msg":"Invalid symbol."}$') as error:
        calls.run("fetch x", call)
    assert not isinstance(error.value, ExchangeUnreachable)  # the exchange answered: reaching it again will not help
    assert call.count == 1 and calls.retries == 0
