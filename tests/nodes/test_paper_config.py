"""The paper node's configuration: what goes to Nautilus, before anything connects."""

from decimal import Decimal
from pathlib import Path

import pytest
from tests.fakes.fake_binance import FakeBinance
from nautilus_trader.adapters.binance import BinanceAccountType
from nautilus_trader.adapters.binance.common.enums import BinanceEnvironment

from marketdata.instruments import offline_instrument
from scripts.cli import main
from nodes.binance_clients import binance_routes
from marketdata.download import fetch_instrument
from nodes.paper import PaperSettings, node_config, parse_balance
from scripts.node_config import read_config

SPOT_BARS = "BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL"
PERP_BARS = "BTCUSDT-PERP.BINANCE-1-MINUTE-LAST-EXTERNAL"


def settings(**changes) -> PaperSettings:
    return PaperSettings(**{"model_path": Path("artifacts/m"), "symbol": "BTC/USDT", **changes})


def test_spot_node(tmp_path):
    instrument = offline_instrument("BTC/USDT", "spot", None)
    paper = settings(balance="2500USDT", api_url="http://127.0.0.1:1", ws_url="ws://127.0.0.1:2", strategy={"order_notional": 100.0})
    config = node_config(paper, instrument, SPOT_BARS, tmp_path)

    data = config.data_clients["BINANCE"]
    assert data.account_type == BinanceAccountType.SPOT
    assert (data.base_url_http, data.base_url_ws) == ("http://127.0.0.1:1", "ws://127.0.0.1:2")
    assert data.api_key is None and data.api_secret is None  # public market data needs no key
    assert data.environment == BinanceEnvironment.LIVE  # Binance's real market data
    assert not data.instrument_provider.load_all and not data.instrument_provider.load_ids
    sandbox = config.exec_clients["BINANCE"]
    assert (sandbox.venue, sandbox.account_type, sandbox.oms_type) == ("BINANCE", "CASH", "NETTING")
    assert sandbox.starting_balances == ["2500 USDT", "0 BTC"]
    [strategy] = config.strategies
    assert strategy.strategy_path == "strategies.lstm_strategy:LSTMStrategy"
    assert strategy.config["sizing"]["order_notional"] == 100.0 and strategy.config["bar_type"] == SPOT_BARS
    assert strategy.config["predictions_path"] == str(tmp_path / "predictions.csv")
    assert strategy.config["feed"]["backfill_gaps"] and strategy.config["feed"]["stale_feed_bars"] == 3.0 and strategy.config["log_decisions"]
    assert strategy.config["close_positions_on_stop"] is True
    assert config.logging.log_directory == str(tmp_path)


def test_futures_node(tmp_path):
    instrument = offline_instrument("BTC/USDT", "futures", None)
    paper = settings(market="futures", flatten_on_stop=False, sandbox={"default_leverage": 2}, node={"trader_id": "PAPER-007"})
    config = node_config(paper, instrument, PERP_BARS, tmp_path)

    data = config.data_clients["BINANCE"]
    assert data.account_type == BinanceAccountType.USDT_FUTURES
    assert data.api_key is None and data.api_secret is None and data.environment == BinanceEnvironment.LIVE
    assert data.base_url_http is None and data.base_url_ws is None  # Binance's own
    # ... which for USDT-M klines is the /market route (Binance retired the unrouted streams on 2026-04-23).
    assert binance_routes(data.account_type, data.environment).market_data == "wss://fstream.binance.com/market"
    sandbox = config.exec_clients["BINANCE"]
    assert sandbox.account_type == "MARGIN" and sandbox.starting_balances == ["10000 USDT"]
    assert sandbox.default_leverage == Decimal(2)
    assert str(config.trader_id) == "PAPER-007"
    assert config.strategies[0].config["close_positions_on_stop"] is False


@pytest.mark.parametrize("change, message", [
    (dict(strategy={"order_notionl": 1}), "bad \\[strategy\\] settings: LSTMStrategyConfig has no \\['order_notionl'\\]"),
    (dict(strategy={"order_notional": "lots"}), "bad \\[strategy\\] settings: Expected `float`"),
    (dict(balance="10000 BTC"), "the balance must be in USDT"),
])
def test_bad_node_settings(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        node_config(settings(**change), offline_instrument("BTC/USDT", "spot", None), SPOT_BARS, tmp_path)


@pytest.mark.parametrize("change, message", [
    (dict(balance="lots"), "bad balance 'lots'"),
    (dict(market="margin"), "market must be one of"),
    (dict(node={"cache": 1}), "unknown \\[node\\] settings \\['cache'\\]"),
    (dict(sandbox={"api_key": "x"}), "unknown \\[sandbox\\] settings"),
])
def test_bad_settings(change, message):
    with pytest.raises(ValueError, match=message):
        settings(**change)


def test_balance_and_config_file(tmp_path):
    assert parse_balance("10000USDT") == (Decimal(10000), "USDT") == parse_balance(" 10000 usdt ")
    path = tmp_path / "node.toml"
    path.write_text('[paper]\nsymbol = "BTC/USDT"\n[strategy]\norder_notional = 50.0\n[keys]\napi_key = "no"\n')
    with pytest.raises(ValueError, match="unknown sections \\['keys'\\]"):
        read_config(path)
    path.write_text('[paper]\napi_key = "no"\n')
    with pytest.raises(ValueError, match="unknown \\[paper\\] settings \\['api_key'\\]"):
        read_config(path)


def test_instrument_from_the_public_exchange_info():
    with FakeBinance(now_ms=1_747_699_200_000) as fake:
        spot = fetch_instrument("BTC/USDT", "spot", SPOT_BARS, fake.url)
        perp = fetch_instrument("BTC/USDT", "futures", PERP_BARS, fake.url)
    assert str(spot.id) == "BTCUSDT.BINANCE" and spot.taker_fee == Decimal("0.001")
    assert str(perp.id) == "BTCUSDT-PERP.BINANCE" and perp.taker_fee == Decimal("0.0005")
    assert {r.endpoint for r in fake.requests} == {"exchangeInfo"}


def test_paper_command_needs_a_model_and_symbol(caplog):
    assert main(["paper", "--symbol", "BTC/USDT"]) == 2
    assert "--model is required" in caplog.text


def test_a_run_folder_goes_on_with_the_same_bars_and_outputs(tmp_path):
    from nodes.run_folder import check_run_dir

    instrument = offline_instrument("BTC/USDT", "spot", None)
    check_run_dir(tmp_path, instrument, SPOT_BARS, ["prediction"])  # a new folder
    (tmp_path / "predictions.csv").write_text("close_time,close,q0.1,q0.5,q0.9,side,reason\n")
    with pytest.raises(ValueError, match="this model writes \\['close_time', 'close', 'prediction'"):
        check_run_dir(tmp_path, instrument, SPOT_BARS, ["prediction"])
    (tmp_path / "run.json").write_text('{"sessions": [{"instrument_id": "BTCUSDT.BINANCE", "bar_type": "BTCUSDT.BINANCE-1-HOUR-LAST-EXTERNAL"}]}')
    with pytest.raises(ValueError, match="is a run of BTCUSDT.BINANCE-1-HOUR-LAST-EXTERNAL, not"):
        check_run_dir(tmp_path, instrument, SPOT_BARS, ["q0.1", "q0.5", "q0.9"])
