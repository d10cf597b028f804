"""The fake Binance answers as Binance does, so tests against it mean something."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request

import aiohttp
import numpy as np
import pandas as pd
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


# -- market streams ----------------------------------------------------------------------------


def live_seconds(bars: pd.DataFrame, count: int) -> pd.DataFrame:
    """``count`` real bars re-stamped one second apart, the first opening now (closing in a second)."""
    now_s = int(time.time())
    out = bars.iloc[:count][["open_time", "open", "high", "low", "close", "volume"]].reset_index(drop=True)
    out["open_time"] = (now_s + np.arange(count)) * 1000
    return out


async def read_stream(url: str, seconds: float, send: list[dict] = ()) -> list[dict]:
    messages = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        for message in send:
            await ws.send_str(json.dumps(message))
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = await ws.receive(timeout=left)
            except asyncio.TimeoutError:
                break
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            messages.append(json.loads(message.data))
    return messages


def test_kline_stream_in_binance_format(shared_data):
    bars = live_seconds(read_klines(shared_data / FIXTURE_7D), 4)
    fake = FakeBinance()
    fake.add_klines(bars, interval="1s")
    with fake:
        url = fake.ws_url(SPOT) + "/stream?streams=btcusdt@kline_1s"
        messages = asyncio.run(read_stream(url, 2.7, send=[{"method": "LIST_SUBSCRIPTIONS", "id": 7}]))

    assert messages[0] == {"result": ["btcusdt@kline_1s"], "id": 7}
    klines = messages[1:]
    assert {m["stream"] for m in klines} == {"btcusdt@kline_1s"}
    closed = [m["data"]["k"] for m in klines if m["data"]["k"]["x"]]
    forming = [m["data"]["k"] for m in klines if not m["data"]["k"]["x"]]
    assert len(closed) >= 2 and forming  # each bar: forming halfway, closed at its close
    first = closed[0]
    row = bars[bars["open_time"] == first["t"]].iloc[0]
    assert first["T"] == first["t"] + 999 and first["i"] == "1s" and first["s"] == "BTCUSDT"
    assert first["c"] == f"{row['close']:.8f}" and first["v"] == f"{row['volume']:.8f}"
    assert klines[-1]["data"]["e"] == "kline" and klines[-1]["data"]["E"] >= first["T"]


def test_subscribe_raw_streams_drops_and_silence(shared_data):
    bars = live_seconds(read_klines(shared_data / FIXTURE_7D), 12)
    fake = FakeBinance()
    fake.add_klines(bars, interval="1s")
    with fake:
        # A raw stream (no wrapper), and a live subscription answered as Binance does.
        raw = asyncio.run(read_stream(fake.ws_url(SPOT) + "/ws/btcusdt@kline_1s", 1.6))
        subscribed = asyncio.run(read_stream(
            fake.ws_url(SPOT) + "/stream?streams=ethusdt@kline_1s",
            1.6, send=[{"method": "SUBSCRIBE", "params": ["btcusdt@kline_1s"], "id": 1}],
        ))
        # Silenced: the connection stays open, no kline comes.
        fake.silence_streams(1.5)
        silent = asyncio.run(read_stream(fake.ws_url(SPOT) + "/stream?streams=btcusdt@kline_1s", 1.2))

        async def dropped() -> tuple[int, int]:
            async with aiohttp.ClientSession() as session, session.ws_connect(fake.ws_url(SPOT) + "/ws/btcusdt@kline_1s") as ws:
                cut = await asyncio.get_running_loop().run_in_executor(None, lambda: fake.drop_streams(refuse_s=5))
                closed = await ws.receive(timeout=2)
                try:
                    await session.ws_connect(fake.ws_url(SPOT) + "/ws/btcusdt@kline_1s")
                    status = 101
                except aiohttp.WSServerHandshakeError as error:
                    status = error.status
                return cut, (closed.type, status)

        cut, (closed_type, status) = asyncio.run(dropped())

    assert raw and all(m["e"] == "kline" and m["k"]["i"] == "1s" for m in raw)
    assert subscribed[0] == {"result": None, "id": 1} and subscribed[1]["stream"] == "btcusdt@kline_1s"
    assert not [m for m in silent if m["data"]["k"]["x"]]  # no closed kline while silenced
    assert fake.events("silenced")
    assert cut == 1 and closed_type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR) and status == 503
    assert [e.kind for e in fake.stream_events][-2:] == ["drop", "refuse"]


def test_futures_have_no_one_second_klines(fake):
    with pytest.raises(ValueError, match="Binance has no 1s klines on futures"):
        FakeBinance().add_klines(pd.DataFrame(columns=["open_time", "open", "high", "low", "close", "volume"]), interval="1s", market=FUTURES)
    assert get(fake, "/fapi/v1/klines?symbol=BTCUSDT&interval=1s") == (400, {"code": -1120, "msg": "Invalid interval."})
