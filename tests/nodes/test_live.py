"""The live node: its command, its config, and end to end against the loopback fake Binance.

The end-to-end tests run the real ``nautilus-lstm live`` command (a TradingNode with Nautilus's
own Binance data and execution clients) against the fake, which speaks Binance's 2026 protocol
(user data over the WebSocket API on spot, routed USDT-M streams), refuses what Binance retired,
checks every signature against the test keys and fills market orders at the latest close. Spot,
HMAC keys: 1-second bars replayed around the present (``tests/fakes/node_harness``), trading, rails, a
``kill -9`` with a position open, a restart that reconciles it, the kill file. Futures, Ed25519
keys, the demo environment: a position left by an earlier node, reconciled; the listen key
expired mid-run and recovered; flattened by the kill file.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import socket
import sys
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from nautilus_trader.trading.config import StrategyFactory
from tests.fakes.fake_binance import FUTURES, SPOT, FakeBinance
from tests.fakes.fake_binance_account import ed25519_pair

from backtests.runner import BacktestSettings, load_inputs, run_strategy
from models.artifact import load_artifact
from models.predictor import batch_predict
from scripts.cli import main
from nodes.live import ENVIRONMENTS, LiveSettings, key_variables, live_node_config, prepare_live
from nodes.run_folder import OpenedRun
from strategies.decision import entry_threshold
from tests.fakes.node_harness import (
    HISTORY_BARS,
    REPLAY_FIRST_ROW,
    close_times,
    restamp,
    start_node,
    train_tiny_model,
    wait_for,
    wait_for_exit,
)

KEY = "live-test-key-b7Kq2LmZ9xW4pR1sT6vY3nA8cE5dF0gH"  # what the fake's account answers to
SECRET = "live-test-secret-Qz8Wn3Xr6Tp1Lk4Jm7Hb2Vc5Nd9Sf0Gy"
PERP_BAR_TYPE = "BTCUSDT-PERP.BINANCE-1-MINUTE-LAST-EXTERNAL"
MINUTE_MS = 60_000
# Trade often (the test adds an entry threshold the tiny model's forecasts cross often), wait
# only a few bars after a gap; rails the strategy meets: 500 USDT positions under 600 USDT
# limits, and at most 2 orders a minute adding exposure, which its trading soon runs into.
STRATEGY = {"gap_cooldown_bars": 5, "min_holding_bars": 1, "order_notional": 500.0}
LIMITS = {"max_order_notional": 600.0, "max_position_notional": 600.0, "max_orders_per_minute": 2, "daily_loss_limit": 1000.0}
# The end-to-end nodes' [node]: after stopping, the live node waits out the whole timeout_post_stop (5 s by
# default) for late events; from the loopback fake the flattening fill comes within milliseconds of the stop.
NODE = {"timeout_post_stop": 1.0}


def write_config(path: Path, **sections: dict) -> Path:
    path.write_text("".join(f"[{name}]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())
                            for name, values in sections.items()))
    return path


def live_command(model: Path, fake: FakeBinance, market: str, run_dir: Path, config: Path, *options: str) -> list[str]:
    """The live command pointed at the fake's routes: REST, market streams, the WebSocket API and
    (futures) the /private user-data route."""
    user_stream = ["--ws-user-url", fake.user_stream_url()] if market == FUTURES else []
    return [
        sys.executable, "-m", "scripts.cli", "live", "--model", str(model), "--symbol", "BTC/USDT", "--market", market,
        "--config", str(config), "--run-dir", str(run_dir), "--api-url", fake.url, "--ws-url", fake.ws_url(market),
        "--ws-api-url", fake.ws_api_url(market), *user_stream, *options,
    ]


def keys_for(market: str, network: str | None = None, secret: str = SECRET) -> dict[str, str]:
    """The environment holding the test key pair where the node looks for it (its market's default network)."""
    return dict(zip(key_variables(market, network or LiveSettings(Path("m"), "BTC/USDT", market).network), (KEY, secret)))


def run_until_killed(command: list[str], out: Path, waiting_for: str, environment: dict[str, str], before_kill=None) -> None:
    """Run the live node until ``waiting_for`` shows in its output (and ``before_kill(node)``
    returns), then stop it with the kill file."""
    run_dir = Path(command[command.index("--run-dir") + 1])
    node = start_node(command, out, environment)
    try:
        wait_for(lambda: waiting_for in out.read_text(), 60, repr(waiting_for), node, out)
        if before_kill is not None:
            before_kill(node)
        (run_dir / "KILL").touch()
        wait_for_exit(node, out, "the kill file")
    finally:
        node.kill()


def orders_sent(fake: FakeBinance) -> list[dict]:
    return [r.params for r in fake.requests if (r.method, r.endpoint) == ("POST", "order")]


def holding(text: str, *paths: Path) -> list[Path]:
    """The files among ``paths`` that contain ``text``."""
    return [path for path in paths if path.is_file() and text.encode() in path.read_bytes()]


# -- command line and configuration ------------------------------------------------------------


def test_mainnet_needs_the_explicit_flag_and_explicit_limits(tmp_path, capsys):
    with FakeBinance() as fake:
        config = write_config(tmp_path / "node.toml", limits={"max_order_notional": 500.0})
        argv = ["live", "--model", str(tmp_path / "model"), "--symbol", "BTC/USDT", "--config", str(config),
                "--api-url", fake.url, "--dry-run-config"]
        assert main([*argv, "--mainnet"]) == 2
        assert main([*argv, "--mainnet", "--i-understand-this-trades-real-money"]) == 2
        assert fake.requests == []  # refused before anything reached the exchange
    messages = capsys.readouterr().err
    assert "mainnet trades real money: give --mainnet together with --i-understand-this-trades-real-money" in messages
    assert "mainnet needs explicit limits: set max_position_notional, daily_loss_limit in the [limits] section" in messages
    with pytest.raises(ValueError, match="mainnet trades real money"):
        LiveSettings(model_path=Path("m"), symbol="BTC/USDT", network="mainnet")  # a config file cannot acknowledge


@pytest.mark.parametrize("changes, message", [
    (dict(limits={"max_order_notionl": 1.0}), "bad \\[limits\\] settings: Object contains unknown field `max_order_notionl`"),
    (dict(limits={"daily_loss_limit": -5.0}), "bad \\[limits\\] settings: daily_loss_limit must be positive, not -5.0"),
    (dict(leverage=3), "leverage is for futures"),
    (dict(market="futures", leverage=0), "leverage must be a whole number from 1 to 125, not 0"),
    (dict(network="paper"), "network must be one of"),
    (dict(node={"cache": {}}), "unknown \\[node\\] settings \\['cache'\\]"),
    (dict(ws_user_url="ws://127.0.0.1:1/private"), "--ws-user-url is for futures"),
])
def test_bad_live_settings(changes, message):
    with pytest.raises(ValueError, match=message):
        LiveSettings(**{"model_path": Path("m"), "symbol": "BTC/USDT", **changes})


def test_key_variables_are_the_ones_nautilus_reads(monkeypatch):
    from nautilus_trader.adapters.binance import BinanceAccountType
    from nautilus_trader.adapters.binance.common.credentials import get_api_key, get_api_secret

    for market, account_type in (("spot", BinanceAccountType.SPOT), ("futures", BinanceAccountType.USDT_FUTURES)):
        for network, environment in ENVIRONMENTS.items():
            key, secret = key_variables(market, network)
            monkeypatch.setenv(key, f"{market}-{network}-key")
            monkeypatch.setenv(secret, f"{market}-{network}-secret")
            assert (get_api_key(account_type, environment), get_api_secret(account_type, environment)) == (
                f"{market}-{network}-key", f"{market}-{network}-secret")
    assert key_variables("spot", "demo") == key_variables("futures", "demo") == ("BINANCE_DEMO_API_KEY", "BINANCE_DEMO_API_SECRET")


@pytest.mark.parametrize("market, network, expected", [
    ("spot", None, ("TESTNET", "https://testnet.binance.vision", "wss://stream.testnet.binance.vision",
                    "wss://ws-api.testnet.binance.vision/ws-api/v3", None)),
    ("futures", None, ("DEMO", "https://demo-fapi.binance.com", "wss://demo-fstream.binance.com",
                       "wss://testnet.binancefuture.com/ws-fapi/v1", "wss://demo-fstream.binance.com")),
    ("spot", "mainnet", ("LIVE", "https://api.binance.com", "wss://stream.binance.com:9443",
                         "wss://ws-api.binance.com:443/ws-api/v3", None)),
    # Binance's routed USDT-M streams (2026-04-23): market data on /market, user data on /private.
    ("futures", "mainnet", ("LIVE", "https://fapi.binance.com", "wss://fstream.binance.com/market",
                            "wss://ws-fapi.binance.com/ws-fapi/v1", "wss://fstream.binance.com/private")),
])
def test_routes_per_environment(market, network, expected):
    settings = LiveSettings(Path("m"), "BTC/USDT", market, network, real_money=True,
                            limits={"max_order_notional": 1.0, "max_position_notional": 1.0, "daily_loss_limit": 1.0})
    routes = settings.routes()
    assert (settings.environment.value, routes.rest, routes.market_data, routes.ws_api, routes.user_data) == expected


def test_overrides_reach_nautilus_and_binance_hosts_are_routed(tmp_path):
    from marketdata.instruments import offline_instrument

    settings = LiveSettings(Path("m"), "BTC/USDT", "futures", "mainnet", real_money=True, api_url="https://fapi.binance.com",
                            ws_url="wss://fstream.binance.com", ws_user_url="wss://fstream.binance.com/ws",
                            limits={"max_order_notional": 1.0, "max_position_notional": 1.0, "daily_loss_limit": 1.0})
    assert (settings.routes().market_data, settings.routes().user_data) == (
        "wss://fstream.binance.com/market", "wss://fstream.binance.com/private")  # as Nautilus reroutes them
    run = OpenedRun(offline_instrument("BTC/USDT", "futures", None), "BTCUSDT-PERP.BINANCE-1-MINUTE-LAST-EXTERNAL", tmp_path, None,
                    "built-in markets")
    config = live_node_config(settings, run)
    data, execution = config.data_clients["BINANCE"], config.exec_clients["BINANCE"]
    assert data.environment == execution.environment == ENVIRONMENTS["mainnet"]
    assert (data.base_url_ws, execution.base_url_ws, execution.base_url_ws_stream) == (
        "wss://fstream.binance.com", None, "wss://fstream.binance.com/ws")
    assert data.api_key is None and execution.api_key is None  # Nautilus reads the execution key from the environment
    # A loopback host passes through unchanged, as in the end-to-end tests below.
    loopback = LiveSettings(Path("m"), "BTC/USDT", "futures", ws_url="ws://127.0.0.1:1/futures/market")
    assert loopback.routes().market_data == "ws://127.0.0.1:1/futures/market"


def test_paper_and_live_refuse_an_older_nautilus(monkeypatch, capsys):
    from importlib import metadata

    real_version = metadata.version
    monkeypatch.setattr(metadata, "version", lambda name: "1.221.0" if name == "nautilus_trader" else real_version(name))
    for command in ("paper", "live"):
        assert main([command, "--model", "m", "--symbol", "BTC/USDT"]) == 2
    assert capsys.readouterr().err.count("nautilus_trader 1.221.0 is installed, but paper and live need 1.231.0 or newer") == 2


def test_the_sample_node_toml_is_a_valid_live_config():
    from scripts.node_config import command_settings, read_config
    from tests.conftest import PROJECT_ROOT

    raw = read_config(PROJECT_ROOT / "deploy" / "node.toml")
    settings = LiveSettings(**command_settings(raw, "live", argparse.Namespace(verbose=False), ("strategy", "limits", "node")))
    assert settings.network == "testnet" and settings.limits["max_order_notional"] >= settings.strategy["order_notional"]
    # Its limits are enough for mainnet too, once the operator acknowledges real money.
    LiveSettings(**{**settings.__dict__, "network": "mainnet", "real_money": True})


def test_dry_run_prints_the_plan_and_creates_nothing(second_bars_model, tmp_path, capsys, monkeypatch):
    for name in key_variables("spot", "testnet"):
        monkeypatch.delenv(name, raising=False)
    volatility = {"target_volatility": 0.6, "volatility_gate": 3.0, "volatility_gate_window": 600}
    config = write_config(tmp_path / "node.toml", strategy={**STRATEGY, **volatility}, limits=LIMITS)
    run_dir = tmp_path / "run"
    with FakeBinance(now_ms=1_747_699_200_000) as fake:
        argv = ["live", "--model", str(second_bars_model), "--symbol", "BTC/USDT", "--config", str(config),
                "--run-dir", str(run_dir), "--api-url", fake.url, "--dry-run-config"]
        assert main(argv) == 0
        plan = capsys.readouterr().out
        assert main(argv[:-1]) == 2  # for real: refused without keys
        rest = fake.url
    assert "no API key: set BINANCE_TESTNET_API_KEY and BINANCE_TESTNET_API_SECRET in the environment" in capsys.readouterr().err
    assert not run_dir.exists()
    assert "venue        Binance spot TESTNET" in plan
    assert f"REST         {rest}" in plan and "market data  wss://stream.testnet.binance.vision" in plan
    assert "user data    wss://ws-api.testnet.binance.vision/ws-api/v3 (WebSocket API: session.logon, userDataStream.subscribe)" in plan
    assert "BINANCE_TESTNET_API_KEY / BINANCE_TESTNET_API_SECRET from the environment (NOT SET" in plan
    assert "instrument   BTCUSDT.BINANCE (Binance exchangeInfo): tick 0.01, size step 0.00001" in plan
    assert "sizing       500 USDT per position × 0.6 / forecast volatility (annualized), capped" in plan
    assert "vol gate     no new exposure while the forecast volatility exceeds 3 × its median of 600 bars" in plan
    assert re.search(r"max_order_notional\s+600 USDT\s+\[strategy; RiskEngine backstop 1200 USDT per order \(spot\)\]", plan)
    assert re.search(r"max_orders_per_minute\s+2\s+\[strategy; RiskEngine backstop 4/00:01:00\]", plan)
    assert re.search(r"daily_loss_limit\s+1000 USDT", plan) and f"kill_file              {run_dir / 'KILL'}" in plan


def test_dry_run_offline_reads_the_instrument_from_the_catalog(second_bars_model, tmp_path, capsys):
    catalog = second_bars_model.parent / "catalog"  # where train_tiny_model imported the model's bars and instrument
    with FakeBinance(now_ms=1_747_699_200_000) as fake:
        argv = ["live", "--model", str(second_bars_model), "--symbol", "BTC/USDT", "--run-dir", str(tmp_path / "run"),
                "--api-url", fake.url, "--dry-run-config"]
        assert main(argv) == 0
        from_binance = capsys.readouterr().out
        asked = len(fake.requests)
        assert main([*argv, "--catalog", str(catalog)]) == 0
        from_catalog = capsys.readouterr().out
        assert len(fake.requests) == asked  # nothing asked of the exchange
        assert main([*argv[:-1], "--catalog", str(catalog)]) == 2  # a node that trades takes Binance's instrument
    assert "--catalog is for --dry-run-config" in capsys.readouterr().err
    assert f"instrument   BTCUSDT.BINANCE (catalog {catalog}): tick 0.01" in from_catalog
    # The same plan, down to the instrument's filters and taker fee, but for where the instrument came from.
    assert from_catalog.replace(f"catalog {catalog}", "Binance exchangeInfo") == from_binance


def test_dry_run_without_the_network_or_a_catalog_says_so_in_one_line(second_bars_model, caplog):
    with socket.socket() as probe:  # a port nothing listens on: as unreachable as Binance is offline
        probe.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{probe.getsockname()[1]}"
    assert main(["live", "--model", str(second_bars_model), "--symbol", "BTC/USDT", "--api-url", nowhere, "--dry-run-config"]) == 2
    said = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(said) == 1 and "\n" not in said[0], said  # no retries, no traceback: one line
    assert said[0].startswith("the dry run needs the instrument: binance: load markets failed after 1 try")
    assert said[0].endswith("give --api-url, connect to the network, or give --catalog with a catalog holding BTC/USDT spot")


def test_the_strategy_starts_with_the_threshold_the_plan_prints(second_bars_model, tmp_path):
    """One function (RuleConfig.threshold) computes the entry threshold for both, from the same
    config and instrument: the plan's line and the threshold the started strategy trades on agree."""
    catalog = second_bars_model.parent / "catalog"
    settings = LiveSettings(second_bars_model, "BTC/USDT", strategy={"entry_margin": 0.0007}, limits=LIMITS,
                            run_dir=tmp_path / "run")  # no entry_threshold: the taker fee's round trip + the margin
    plan = prepare_live(settings, dry_run=True, catalog=catalog)
    printed = re.search(r"entry threshold (\d\.\d{6}) \(log return\)", plan.text)[1]
    assert printed == f"{entry_threshold(float(plan.run.instrument.taker_fee), 0.0007):.6f}" == "0.002702"

    strategy = StrategyFactory.create(plan.config.strategies[0])  # the strategy the node would build
    backtest = BacktestSettings(model_path=second_bars_model, catalog=catalog, bar_type=plan.run.bar_type)
    closes = load_inputs(backtest)[1].close().index
    bars = load_inputs(replace(backtest, start=closes[-20]))[1]  # the last 20: their warm-up comes from the catalog before them
    run = run_strategy("lstm", strategy, backtest, plan.run.instrument, bars)
    assert f"{strategy.rule.threshold:.6f}" == printed
    assert len(run.predictions) == 20 and run.predictions["reason"].str.endswith(f"inside ±{printed}").all()


# -- end to end --------------------------------------------------------------------------------


@pytest.mark.slow
def test_spot_trading_rails_restart_and_kill_file(second_bars_model, real_bars, tmp_path):
    model = second_bars_model
    now_ms = (time.time_ns() // 1_000_000 // 1000 + 1) * 1000
    served = restamp(real_bars.iloc[REPLAY_FIRST_ROW:REPLAY_FIRST_ROW + HISTORY_BARS + 400], now_ms - HISTORY_BARS * 1000)
    forecasts = batch_predict(load_artifact(model), served.set_index(close_times(served)).drop(columns="open_time"))
    strategy = {**STRATEGY, "entry_threshold": float(forecasts["q0.5"].median())}
    config = write_config(tmp_path / "node.toml", strategy=strategy, limits=LIMITS, node=NODE)
    run_dir = tmp_path / "run"
    out1, out2 = tmp_path / "session1.out", tmp_path / "session2.out"

    fake = FakeBinance()
    fake.add_klines(served, interval="1s")
    account = fake.open_account(KEY, SECRET, balances={"USDT": "10000", "BTC": "0"})
    price = Decimal(str(served["close"].iloc[-1]))
    with fake:
        # Session 1: warm up and buy; kill -9 with the position open.
        node = start_node(live_command(model, fake, SPOT, run_dir, config), out1, keys_for(SPOT))
        try:
            # Wait until the node itself has booked the fill (not only the venue), then kill it.
            wait_for(lambda: account.balances["BTC"] * price > 100 and "PositionOpened(" in out1.read_text(),
                     60, "a long position, booked by the node", node, out1)
        finally:
            node.kill()
            node.wait()
        sent_before_kill, requests_before_restart = len(orders_sent(fake)), len(fake.requests)
        held = account.balances["BTC"]

        # Session 2: Nautilus reconciles the position and the strategy manages it; it trades
        # until the order rate rail blocks an order; the kill file stops it.
        run_until_killed(live_command(model, fake, SPOT, run_dir, config), out2, "orders in the last minute", keys_for(SPOT))
        events = fake.user_events(SPOT)
        requests = list(fake.requests)
        ws_api_events = fake.events("ws-api")

    log1, log2 = out1.read_text(), out2.read_text()
    sent = orders_sent(fake)

    # Orders: market orders with the right side, the instrument's precision and Nautilus's ids.
    assert sent_before_kill == 1 and len(sent) >= 4
    for order in sent:
        assert order["type"] == "MARKET" and order["side"] in ("BUY", "SELL") and order["symbol"] == "BTCUSDT"
        assert re.fullmatch(r"0\.\d{5}", order["quantity"]) and Decimal(order["quantity"]) >= Decimal("0.00001")
        assert re.fullmatch(r"O-\d{8}-\d{6}-001-000-\d+", order["newClientOrderId"])
    assert len({order["newClientOrderId"] for order in sent}) == len(sent)
    assert [o["side"] for o in sent[:2]] == ["BUY", "SELL"]  # spot: long only, each position closed
    # Every signed request was signed right: none was refused.
    signed = [r for r in requests if r.endpoint in ("account", "order", "allOrders", "myTrades", "openOrders")]
    assert signed and all(r.status == 200 for r in signed), [(r.endpoint, r.body) for r in signed if r.status != 200]
    # User data over the WebSocket API, in each session; never the retired REST listen keys.
    ws_api = [(e.detail["request"]["method"], e.detail["status"]) for e in ws_api_events]
    assert ws_api.count(("session.logon", 200)) == ws_api.count(("userDataStream.subscribe", 200)) == 2, ws_api
    assert not [r for r in requests if r.endpoint == "userDataStream"]

    # Fills came back over the user-data stream and moved Nautilus's portfolio.
    trades = [e for e in events if e["e"] == "executionReport" and e["x"] == "TRADE"]
    assert len(trades) == len(sent)
    for trade in trades:
        filled = re.search(rf"OrderFilled\(instrument_id=BTCUSDT\.BINANCE, client_order_id={trade['c']}, venue_order_id={trade['i']}, "
                           rf".*?trade_id={trade['t']}, .*?order_side={trade['S']}, .*?last_qty=(\S+), last_px=(\S+) USDT", log1 + log2)
        assert filled and Decimal(filled[1]) == Decimal(trade["l"]) and Decimal(filled[2].replace("_", "")) == Decimal(trade["L"]), trade
    assert re.search(r"PositionOpened\(instrument_id=BTCUSDT\.BINANCE.*?side=LONG", log1)
    assert "AccountState(account_id=BINANCE-SPOT-master" in log1

    # Rails: nothing before the warm-up; a blocked order with its reason, and nothing sent for it.
    assert log1.index("warm-up done") < log1.index("OrderSubmitted")
    blocked = re.search(r"BUY order blocked: (\d) orders in the last minute: max_orders_per_minute is 2", log2)
    assert blocked and int(blocked[1]) >= 2
    assert log2.count("LSTMStrategy: <--[EVT] OrderSubmitted(") == len(sent) - sent_before_kill  # every order submitted reached Binance

    # Restart: reconciled from the venue's orders and trades, not bought again, then managed.
    picked_up = re.search(r"the venue holds a LONG position of ([\d.e-]+): managing it", log2)
    assert held > 0 and picked_up and Decimal(picked_up[1]) == Decimal(sent[0]["quantity"])  # the BUY before the kill
    assert {"allOrders", "myTrades"} <= {r.endpoint for r in requests[requests_before_restart:]}
    after_restart = sent[sent_before_kill:]
    assert after_restart[0]["side"] == "SELL", after_restart  # no duplicate: it closed what it held
    assert "kill file" in log2 and account.balances["BTC"] * price < 5  # flat but for dust

    # No key or secret anywhere.
    files = [out1, out2, *run_dir.iterdir()]
    assert holding(KEY, *files) == holding(SECRET, *files) == []
    assert f"API key {KEY[:4]}...{KEY[-4:]} has trading permissions" in log1  # masked by Nautilus


@pytest.fixture(scope="module")
def perp_bars(real_bars):
    return real_bars.drop(columns="line").round({"open": 1, "high": 1, "low": 1, "close": 1, "volume": 3})  # the contract's precision


@pytest.fixture(scope="module")
def perp_model(perp_bars, tmp_path_factory) -> Path:
    return train_tiny_model(tmp_path_factory.mktemp("perp-model"), perp_bars.iloc[:4000], PERP_BAR_TYPE, "1m", "futures")


def test_mainnet_futures_plan_shows_the_routed_streams(perp_model, tmp_path, capsys):
    config = write_config(tmp_path / "node.toml", strategy=STRATEGY, limits=LIMITS)
    with FakeBinance(now_ms=1_747_699_200_000) as fake:
        assert main(["live", "--model", str(perp_model), "--symbol", "BTC/USDT", "--market", "futures", "--config", str(config),
                     "--api-url", fake.url, "--mainnet", "--i-understand-this-trades-real-money", "--dry-run-config"]) == 0
    plan = capsys.readouterr().out
    assert "venue        Binance futures LIVE (MAINNET: REAL MONEY)" in plan
    assert "market data  wss://fstream.binance.com/market" in plan
    assert "user data    wss://fstream.binance.com/private (listen key from the REST listenKey; WebSocket API " \
           "wss://ws-fapi.binance.com/ws-fapi/v1)" in plan
    assert "BINANCE_API_KEY / BINANCE_API_SECRET from the environment (NOT SET" in plan


@pytest.mark.slow
def test_futures_position_reconciled_and_flattened_by_the_kill_file(perp_bars, perp_model, tmp_path):
    """On the demo environment (the futures default), with an Ed25519 key: the listen key comes
    from the futures WebSocket API; Binance expires it mid-run and the node takes a new one."""
    now_ms = time.time_ns() // 1_000_000 // MINUTE_MS * MINUTE_MS
    history = restamp(perp_bars.iloc[REPLAY_FIRST_ROW:REPLAY_FIRST_ROW + HISTORY_BARS], now_ms - HISTORY_BARS * MINUTE_MS, MINUTE_MS)
    model = perp_model
    config = write_config(tmp_path / "node.toml", strategy=STRATEGY, limits=LIMITS, live={"leverage": 2}, node=NODE)
    run_dir, out = tmp_path / "run", tmp_path / "node.out"
    private_key, public_key = ed25519_pair()

    fake = FakeBinance(demo=True)
    fake.add_klines(history, interval="1m", market=FUTURES)
    account = fake.open_account(KEY, public_key=public_key, futures_wallet="10000")

    def expire_listen_key(node) -> None:
        """Expire the listen key; wait until the node has taken a new one (and reconciled)."""
        assert fake.expire_listen_keys() == 1
        wait_for(lambda: len(listen_keys_started()) == 2, 30, "a new listen key", node, out)

    def listen_keys_started() -> list:
        return [e for e in fake.events("ws-api") if e.detail["request"]["method"] == "userDataStream.start" and e.detail["status"] == 200]

    with fake:
        # An earlier node's long position: its order and trade are on the venue.
        info = fake.symbol_info(FUTURES, "BTCUSDT")
        account.market_order(FUTURES, info, {"side": "BUY", "type": "MARKET", "quantity": "0.010",
                                             "newClientOrderId": "O-20250101-000000-001-000-1"},
                             fake.last_close(FUTURES, "BTCUSDT"), fake.clock_ms() - 5000)
        run_until_killed(live_command(model, fake, FUTURES, run_dir, config), out, "managing it",
                         keys_for(FUTURES, secret=private_key), before_kill=expire_listen_key)
        requests = list(fake.requests)
        events = fake.user_events(FUTURES)
        connects = fake.events("connect")

    log = out.read_text()
    assert "the venue holds a LONG position of 0.01: managing it" in log
    assert [(r.method, r.params["leverage"]) for r in requests if r.endpoint == "leverage"] == [("POST", "2")]
    assert account.leverage["BTCUSDT"] == 2
    assert {"account", "positionRisk", "positionSide/dual", "symbolConfig", "allOrders", "userTrades"} <= {
        r.endpoint for r in requests}
    assert not [r for r in requests if r.endpoint == "listenKey"]  # Ed25519: listen keys from the WebSocket API
    # Today's routes only: klines on /market, user data on /private (twice: the expired key's and its successor's).
    assert {e.route for e in connects} == {"market", "private", "ws-api"}
    assert sum(e.route == "private" for e in connects) == 2
    assert "listenKeyExpired" in [e["e"] for e in events]
    [close] = orders_sent(fake)
    assert (close["side"], close["quantity"], close["reduceOnly"].lower(), close["positionSide"]) == ("SELL", "0.010", "true", "BOTH")
    assert account.positions["BTCUSDT"].amount == 0
    trade = next(e["o"] for e in events if e["e"] == "ORDER_TRADE_UPDATE" and e["o"]["x"] == "TRADE")
    assert trade["c"] == close["newClientOrderId"]
    assert re.search(rf"OrderFilled\(instrument_id=BTCUSDT-PERP\.BINANCE, client_order_id={trade['c']}", log)
    files = [out, *run_dir.iterdir()]
    secret_line = private_key.splitlines()[1]
    assert holding(KEY, *files) == holding(secret_line, *files) == []
