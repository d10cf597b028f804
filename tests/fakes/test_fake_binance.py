"""The fake Binance answers as Binance does, so tests against it mean something."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.parse
import urllib.request

import aiohttp
import msgspec
from cryptography.hazmat.primitives import serialization
import numpy as np
import pandas as pd
import pytest
from tests.conftest import FIXTURE_7D
from tests.fakes.fake_binance_account import ed25519_pair
from tests.fakes.fake_binance import FUTURES, SPOT, FakeBinance

from marketdata.klines import read_klines

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


def test_lost_klines_are_in_no_answer_and_no_limit(shared_data):
    """An outage (lose_klines): the lost bars are in no answer, a limit counts the bars there are, and
    only bars not yet open can be lost."""
    now = FIRST_OPEN + 10 * MINUTE
    server = FakeBinance(now_ms=now)
    server.add_klines(read_klines(shared_data / FIXTURE_7D))
    with pytest.raises(ValueError, match="only before they open"):
        server.lose_klines([now])
    server.lose_klines([now + MINUTE, now + 2 * MINUTE])
    server.now_ms = now + 5 * MINUTE
    with server:
        _, ranged = get(server, f"/api/v3/klines?symbol=BTCUSDT&interval=1m&startTime={now}&limit=3")
        _, latest = get(server, "/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=4")
    assert [k[0] for k in ranged] == [now, now + 3 * MINUTE, now + 4 * MINUTE]
    assert [k[0] for k in latest] == [now, now + 3 * MINUTE, now + 4 * MINUTE, now + 5 * MINUTE]


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
        "BTCUSDT": "PERPETUAL", "ETHUSDT": "PERPETUAL", "HALTUSDT": "PERPETUAL"
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


# -- signed endpoints --------------------------------------------------------------------------

KEY, SECRET = "test-key-0123456789", "test-secret-9876543210"


def signed(fake: FakeBinance, method: str, path: str, params: dict, key: str = KEY, secret: str = SECRET,
           timestamp: int | None = None) -> tuple[int, object]:
    """A request signed as Binance's API wants it: HMAC-SHA256 of the query string under the secret."""
    query = urllib.parse.urlencode({**params, "timestamp": timestamp if timestamp is not None else fake.clock_ms()})
    signature = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    request = urllib.request.Request(f"{fake.url}{path}?{query}&signature={signature}", method=method,
                                     headers={"X-MBX-APIKEY": key})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@pytest.fixture()
def account_fake(fake):
    fake.open_account(KEY, SECRET, balances={"USDT": "10000", "BTC": "0"}, futures_wallet="5000")
    yield fake
    fake.account = None


def test_signatures_keys_and_timestamps_are_checked(account_fake):
    fake = account_fake
    status, account = signed(fake, "GET", "/api/v3/account", {})
    assert status == 200 and account["canTrade"] and {b["asset"]: b["free"] for b in account["balances"]} == {
        "USDT": "10000.00000000", "BTC": "0.00000000"}

    assert signed(fake, "GET", "/api/v3/account", {}, secret="wrong") == (
        400, {"code": -1022, "msg": "Signature for this request is not valid."})
    assert signed(fake, "GET", "/fapi/v2/account", {}, key="someone-else") == (
        401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."})
    assert signed(fake, "GET", "/api/v3/account", {}, timestamp=fake.clock_ms() - 6000)[1]["code"] == -1021
    # A tampered parameter breaks the signature too.
    query = urllib.parse.urlencode({"symbol": "BTCUSDT", "timestamp": fake.clock_ms()})
    signature = hmac.new(SECRET.encode(), query.encode(), hashlib.sha256).hexdigest()
    request = urllib.request.Request(f"{fake.url}/api/v3/allOrders?{query.replace('BTC', 'ETH')}&signature={signature}",
                                     headers={"X-MBX-APIKEY": KEY})
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request)
    assert json.load(error.value)["code"] == -1022
    # Futures listen keys need the API key only, as on Binance; spot's are retired (410 Gone).
    request = urllib.request.Request(f"{fake.url}/fapi/v1/listenKey", method="POST", headers={"X-MBX-APIKEY": KEY})
    with urllib.request.urlopen(request) as response:
        assert len(json.load(response)["listenKey"]) == 64
    for method in ("POST", "PUT", "DELETE"):
        request = urllib.request.Request(f"{fake.url}/api/v3/userDataStream", method=method, headers={"X-MBX-APIKEY": KEY})
        with pytest.raises(urllib.error.HTTPError) as gone:
            urllib.request.urlopen(request)
        assert gone.value.code == 410 and "retired on 2026-02-20" in json.load(gone.value)["msg"]
    assert [r.status for r in fake.requests if r.endpoint in ("account", "allOrders", "listenKey", "userDataStream")][-9:] == [
        200, 400, 401, 400, 400, 200, 410, 410, 410]


def logon(fake: FakeBinance, secret: str = SECRET, key: str = KEY, request_id: int = 1) -> dict:
    """A ``session.logon`` request, signed as Nautilus signs it (HMAC, or Ed25519 for a PEM key)."""
    params = {"apiKey": key, "timestamp": fake.clock_ms()}
    payload = urllib.parse.urlencode(params)
    if secret.startswith("-----BEGIN"):
        private = serialization.load_pem_private_key(secret.encode(), password=None)
        signature = base64.b64encode(private.sign(payload.encode())).decode()
    else:
        signature = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return {"id": request_id, "method": "session.logon", "params": {**params, "signature": signature}}


async def ws_api(url: str, requests: list[dict]) -> list[dict]:
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        answers = []
        for request in requests:
            await ws.send_str(json.dumps(request))
            answers.append(json.loads((await ws.receive(timeout=2)).data))
    return answers


def test_spot_market_order_fills_at_the_last_close_and_streams_it(account_fake, shared_data):
    fake = account_fake

    async def order_while_listening() -> tuple[list[dict], tuple[int, object], list[dict]]:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(fake.ws_api_url(SPOT)) as ws:
                answers = []
                for request in (logon(fake), {"id": 2, "method": "userDataStream.subscribe"}):
                    await ws.send_str(json.dumps(request))
                    answers.append(json.loads((await ws.receive(timeout=2)).data))
                answer = await asyncio.get_running_loop().run_in_executor(None, lambda: signed(
                    fake, "POST", "/api/v3/order",
                    {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01000", "newClientOrderId": "O-1"}))
                events = [json.loads((await ws.receive(timeout=2)).data) for _ in range(3)]
        return answers, answer, events

    (logged_on, subscribed), (status, order), events = asyncio.run(order_while_listening())
    assert logged_on["status"] == 200 and logged_on["result"]["apiKey"] == KEY
    assert subscribed == {"id": 2, "status": 200, "result": {"subscriptionId": subscribed["result"]["subscriptionId"]}, "rateLimits": []}
    close = read_klines(shared_data / FIXTURE_7D).iloc[89]["close"]  # the last bar closed at 01:30:30
    assert status == 200 and order["status"] == "FILLED" and order["clientOrderId"] == "O-1"
    assert order["fills"] == [{"price": f"{close:.8f}", "qty": "0.01000000", "commission": "0.00001000",
                               "commissionAsset": "BTC", "tradeId": order["orderId"]}]
    subscription = subscribed["result"]["subscriptionId"]
    assert [(e["subscriptionId"], e["event"]["e"], e["event"].get("x")) for e in events] == [
        (subscription, "executionReport", "NEW"), (subscription, "executionReport", "TRADE"),
        (subscription, "outboundAccountPosition", None)]
    events = [{"data": e["event"]} for e in events]
    assert events[1]["data"]["L"] == f"{close:.8f}" and events[1]["data"]["c"] == "O-1"
    assert {b["a"]: b["f"] for b in events[2]["data"]["B"]} == {"BTC": "0.00999000", "USDT": f"{10000 - 0.01 * close:.8f}"}
    _, trades = signed(fake, "GET", "/api/v3/myTrades", {"symbol": "BTCUSDT"})
    assert [(t["qty"], t["isBuyer"]) for t in trades] == [("0.01000000", True)]
    # Binance's checks: the size step, the balance (the fee came out of the BTC bought).
    assert signed(fake, "POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.000015"})[1] == {
        "code": -1013, "msg": "Filter failure: LOT_SIZE"}
    assert signed(fake, "POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.01000"})[1][
        "code"] == -2010


def test_futures_leverage_positions_and_reduce_only(account_fake):
    fake = account_fake
    order = {"symbol": "BTCUSDT", "type": "MARKET", "positionSide": "BOTH"}
    assert signed(fake, "POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": 2})[1]["leverage"] == 2
    assert signed(fake, "GET", "/fapi/v1/positionSide/dual", {}) == (200, {"dualSidePosition": False})
    assert signed(fake, "POST", "/fapi/v1/order", {**order, "side": "BUY", "quantity": "0.200"})[1] == {
        "code": -2019, "msg": "Margin is insufficient."}  # 0.2 BTC at 2x needs ~10,500 USDT of margin
    status, opened = signed(fake, "POST", "/fapi/v1/order", {**order, "side": "BUY", "quantity": "0.050"})
    assert status == 200 and opened["status"] == "FILLED" and opened["executedQty"] == "0.050"
    _, risk = signed(fake, "GET", "/fapi/v3/positionRisk", {"symbol": "BTCUSDT"})
    assert [(p["positionAmt"], p["entryPrice"], p["positionSide"]) for p in risk] == [("0.050", opened["avgPrice"], "BOTH")]
    assert signed(fake, "POST", "/fapi/v1/order", {**order, "side": "SELL", "quantity": "0.060", "reduceOnly": "true"})[1][
        "code"] == -2022
    signed(fake, "POST", "/fapi/v1/order", {**order, "side": "SELL", "quantity": "0.050", "reduceOnly": "true"})
    assert signed(fake, "GET", "/fapi/v3/positionRisk", {})[1] == []
    _, trades = signed(fake, "GET", "/fapi/v1/userTrades", {"symbol": "BTCUSDT"})
    assert [(t["side"], t["qty"], t["commissionAsset"]) for t in trades] == [("BUY", "0.050", "USDT"), ("SELL", "0.050", "USDT")]
    _, account = signed(fake, "GET", "/fapi/v2/account", {})
    fees = sum(float(t["commission"]) for t in trades)
    assert float(account["totalWalletBalance"]) == pytest.approx(5000 - fees)


def test_ws_api_logon_checks_keys_and_signatures(account_fake):
    fake = account_fake
    answers = asyncio.run(ws_api(fake.ws_api_url(SPOT), [
        {"id": 1, "method": "userDataStream.subscribe"},  # not logged on yet
        logon(fake, secret="wrong", request_id=2),
        logon(fake, key="someone-else", request_id=3),
        {**logon(fake, request_id=4), "params": {**logon(fake)["params"], "timestamp": fake.clock_ms() - 6000}},
        logon(fake, request_id=5),
        {"id": 6, "method": "session.status"},
        {"id": 7, "method": "userDataStream.start"},  # a futures method
    ]))
    assert [(a["id"], a["status"], a.get("error", {}).get("code")) for a in answers] == [
        (1, 401, -1002), (2, 400, -1022), (3, 401, -2015), (4, 400, -1022), (5, 200, None), (6, 200, None), (7, 400, -1100)]
    assert answers[5]["result"]["apiKey"] == KEY
    # The futures WebSocket API logs on Ed25519 keys only.
    [refused] = asyncio.run(ws_api(fake.ws_api_url(FUTURES), [logon(fake)]))
    assert refused["error"]["code"] == -4056


def test_ed25519_keys_sign_rest_and_ws_api(fake):
    private, public = ed25519_pair()
    fake.open_account(KEY, public_key=public, balances={"USDT": "100"})
    try:
        query = urllib.parse.urlencode({"timestamp": fake.clock_ms()})
        signature = base64.b64encode(serialization.load_pem_private_key(private.encode(), None).sign(query.encode())).decode()
        request = urllib.request.Request(f"{fake.url}/api/v3/account?{query}&{urllib.parse.urlencode({'signature': signature})}",
                                         headers={"X-MBX-APIKEY": KEY})
        with urllib.request.urlopen(request) as response:
            assert response.status == 200
        assert signed(fake, "GET", "/api/v3/account", {}, secret="an-hmac-secret")[1]["code"] == -1022
        other, _ = ed25519_pair()
        answers = asyncio.run(ws_api(fake.ws_api_url(FUTURES), [
            logon(fake, secret=other), logon(fake, secret=private, request_id=2), {"id": 3, "method": "userDataStream.start"}]))
        assert [a["status"] for a in answers] == [400, 200, 200] and answers[0]["error"]["code"] == -1022
        listen_key = answers[2]["result"]["listenKey"]
        assert fake.user_data.listen_keys[listen_key] == FUTURES
    finally:
        fake.account = None
        fake.user_data.listen_keys.clear()


def test_futures_streams_on_today_s_routes(shared_data):
    """Klines on /market only (the retired root acknowledges and stays silent), user data on
    /private by listen key, and a listen key expired mid-run."""
    bars = read_klines(shared_data / FIXTURE_7D).iloc[:6].round({"open": 1, "high": 1, "low": 1, "close": 1, "volume": 3})

    def closing_soon() -> pd.DataFrame:
        """The bars as 1-minute bars, the last of which closes half a second from now."""
        last_open = int(time.time() * 1000) - MINUTE + 500
        return bars.assign(open_time=last_open - np.arange(len(bars))[::-1] * MINUTE)

    fake = FakeBinance()
    fake.add_klines(closing_soon(), interval="1m", market=FUTURES)
    fake.open_account(KEY, SECRET, futures_wallet="5000")
    subscribe = [{"method": "SUBSCRIBE", "params": ["btcusdt@kline_1m"], "id": 1}]
    with fake:
        async def both() -> tuple[list[dict], list[dict]]:
            async def pump():  # once both connections are up
                await asyncio.sleep(0.3)
                fake.add_klines(closing_soon(), interval="1m", market=FUTURES)

            routed, retired, _ = await asyncio.gather(
                read_stream(fake.ws_url(FUTURES) + "/ws/btcusdt@kline_1m", 2.0),
                read_stream(fake.retired_ws_url(FUTURES) + "/stream?streams=btcusdt@kline_1m", 2.0, send=subscribe),
                pump())
            return routed, retired

        routed, retired = asyncio.run(both())
        _, listen = signed(fake, "POST", "/fapi/v1/listenKey", {})

        async def user_stream() -> tuple[list[dict], list[dict]]:
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(fake.user_stream_url() + f"/ws?listenKey={listen['listenKey']}") as ws:
                    await asyncio.get_running_loop().run_in_executor(None, lambda: signed(
                        fake, "POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.010"}))
                    filled = [json.loads((await ws.receive(timeout=2)).data) for _ in range(3)]
                    assert await asyncio.get_running_loop().run_in_executor(None, fake.expire_listen_keys) == 1
                    expired = [json.loads((await ws.receive(timeout=2)).data)]
            return filled, expired

        filled, expired = asyncio.run(user_stream())
        algo = signed(fake, "POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET", "quantity": "0.010",
                                                        "stopPrice": "1"})
        kept = signed(fake, "PUT", "/fapi/v1/listenKey", {"listenKey": listen["listenKey"]})

        async def refused() -> int:
            async with aiohttp.ClientSession() as session:
                try:
                    await session.ws_connect(fake.user_stream_url() + f"?listenKey={listen['listenKey']}")
                except aiohttp.WSServerHandshakeError as error:
                    return error.status
            return 101

        status = asyncio.run(refused())

    assert routed and all(m["e"] == "kline" for m in routed)
    assert retired == [{"result": None, "id": 1}]  # acknowledged, then silence
    assert {e.route for e in fake.events("connect")} == {"market", "retired", "private"}
    assert [(e["e"], e.get("o", {}).get("x")) for e in filled] == [
        ("ORDER_TRADE_UPDATE", "NEW"), ("ORDER_TRADE_UPDATE", "TRADE"), ("ACCOUNT_UPDATE", None)]
    assert expired[0]["e"] == "listenKeyExpired" and expired[0]["listenKey"] == listen["listenKey"]
    assert algo[1]["code"] == -4120
    assert kept == (400, {"code": -1125, "msg": "This listenKey does not exist."}) and status == 400


def test_futures_exchange_info_lists_a_halted_contract_that_nautilus_parses(fake):
    from nautilus_trader.adapters.binance.futures.schemas.market import BinanceFuturesExchangeInfo

    status, info = get(fake, "/fapi/v1/exchangeInfo")
    assert status == 200 and {s["symbol"]: s["status"] for s in info["symbols"]}["HALTUSDT"] == "TRADING_HALT"
    parsed = msgspec.json.decode(json.dumps(info).encode(), type=BinanceFuturesExchangeInfo)
    assert len(parsed.symbols) == len(info["symbols"])
