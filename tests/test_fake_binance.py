"""The fake Binance answers as Binance does, so tests against it mean something."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from conftest import FIXTURE_7D
from fake_binance import FUTURES, SPOT, FakeBinance

from backtests.klines import read_klines

FIRST_OPEN = 1747699200000  # 2025-05-20 00:00 UTC, the fixture's first bar
MINUTE = 60_000


@pytest.fixture(scope="module")
def fake(shared_data):
    bars = read_klines(shared_data / FIXTURE_7D)
    server = FakeBinance(now_ms=FIRST_OPEN + 90 * MINUTE + 30_000)  # the bar opened at 01:30 is forming
    server.add_klines(bars)
    server.add_klines(bars.round({"open": 1, "high": 1, "low": 1, "close": 1, "volume": 3}), market=FUTURES)
    with server:
        yield server


def get(fake: FakeBinance, path: str) -> tuple[int, object]:
    try:
        with urllib.request.urlopen(fake.url + path) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_spot_klines_in_binance_layout(fake):
    status, klines = get(fake, "/api/v3/klines?symbol=BTCUSDT&interval=1m&startTime=1747699200000&limit=2")

    assert status == 200
    assert klines[0] == [
        1747699200000, "105573.73000000", "105597.10000000", "105554.31000000", "105554.32000000", "10.82647000",
        1747699259999, "0.00000000", 0, "0.00000000", "0.00000000", "0",
    ]
    assert klines[1][0] == FIRST_OPEN + MINUTE


def test_futures_klines_print_the_contract_precision(fake):
    status, klines = get(fake, "/fapi/v1/klines?symbol=BTCUSDT&interval=1m&startTime=1747699200000&limit=1")

    assert status == 200 and klines[0][1:6] == ["105573.70", "105597.10", "105554.30", "105554.30", "10.826"]


def test_start_end_and_limit_bound_open_times(fake):
    start, end = FIRST_OPEN + 10 * MINUTE, FIRST_OPEN + 14 * MINUTE
    _, ranged = get(fake, f"/api/v3/klines?symbol=BTCUSDT&interval=1m&startTime={start}&endTime={end}&limit=1000")
    _, latest = get(fake, f"/api/v3/klines?symbol=BTCUSDT&interval=1m&endTime={end}&limit=3")
    _, default = get(fake, "/api/v3/klines?symbol=BTCUSDT&interval=1m")

    assert [k[0] for k in ranged] == [start + i * MINUTE for i in range(5)]  # endTime is inclusive
    assert [k[0] for k in latest] == [end - 2 * MINUTE, end - MINUTE, end]
    # No bounds: the latest bars by the server's clock, the forming one included, as Binance does.
    assert len(default) == 91 and default[-1][0] == FIRST_OPEN + 90 * MINUTE


def test_limits_per_market(fake):
    assert get(fake, "/api/v3/klines?symbol=BTCUSDT&interval=1m&startTime=0&limit=1001") == (
        400, {"code": -1130, "msg": "Data sent for parameter 'limit' is not valid."}
    )
    assert get(fake, "/fapi/v1/klines?symbol=BTCUSDT&interval=1m&startTime=0&limit=1500")[0] == 200


def test_errors_in_binance_format(fake):
    assert get(fake, "/api/v3/klines?symbol=FOOUSDT&interval=1m") == (400, {"code": -1121, "msg": "Invalid symbol."})
    assert get(fake, "/api/v3/klines?symbol=BTCUSDT&interval=7m") == (400, {"code": -1120, "msg": "Invalid interval."})
    assert get(fake, "/api/v3/klines?interval=1m")[1]["code"] == -1102
    assert get(fake, "/api/v3/nothing")[0] == 404


def test_exchange_info_time_and_ping(fake):
    status, info = get(fake, "/api/v3/exchangeInfo")
    spot_btc = next(entry for entry in info["symbols"] if entry["symbol"] == "BTCUSDT")
    _, futures_info = get(fake, "/fapi/v1/exchangeInfo")

    assert status == 200 and info["serverTime"] == fake.now_ms
    assert {f["filterType"] for f in spot_btc["filters"]} >= {"PRICE_FILTER", "LOT_SIZE", "NOTIONAL"}
    assert {e["symbol"]: e["contractType"] for e in futures_info["symbols"]} == {
        "BTCUSDT": "PERPETUAL", "ETHUSDT": "PERPETUAL"
    }
    assert get(fake, "/fapi/v1/time") == (200, {"serverTime": fake.now_ms})
    assert get(fake, "/api/v3/ping") == (200, {})


def test_throttling_by_request_number(shared_data):
    server = FakeBinance(throttle_every=3, throttle_requests=frozenset({1}))
    server.add_klines(read_klines(shared_data / FIXTURE_7D).iloc[:10])
    with server:
        answers = [get(server, "/api/v3/klines?symbol=BTCUSDT&interval=1m") for _ in range(7)]
        get(server, "/api/v3/ping")  # only klines requests are numbered

    statuses = [status for status, _ in answers]
    assert statuses == [429, 200, 429, 200, 200, 429, 200]
    assert answers[0][1]["code"] == -1003 and answers[0][1]["msg"].startswith("Too many requests;")
    assert [request.status for request in server.klines_requests(SPOT)] == statuses
    assert len(server.requests) == 8
