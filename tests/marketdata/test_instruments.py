"""Instrument ids and definitions follow Nautilus's Binance adapter and ccxt's market data."""

import logging
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from nautilus_trader.model.instruments import CryptoPerpetual, CurrencyPair

from marketdata.instruments import (
    BUILTIN_MARKETS,
    DEFAULT_FEES,
    bar_type,
    ccxt_symbol,
    instrument_from_market,
    instrument_id,
    max_decimals,
    offline_instrument,
)
from marketdata.timeframes import parse_timeframe


def test_ids_follow_the_nautilus_binance_adapter():
    assert str(instrument_id("BTC/USDT", "spot")) == "BTCUSDT.BINANCE"
    assert str(instrument_id("BTC/USDT", "futures")) == "BTCUSDT-PERP.BINANCE"
    assert str(instrument_id("btc/usdt:USDT", "futures", "binanceusdm")) == "BTCUSDT-PERP.BINANCE"
    assert str(bar_type(instrument_id("ETH/USDT", "spot"), parse_timeframe("1m"))) == "ETHUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL"
    assert str(bar_type(instrument_id("ETH/USDT", "futures"), parse_timeframe("4h"))) == "ETHUSDT-PERP.BINANCE-4-HOUR-LAST-EXTERNAL"
    assert ccxt_symbol("BTC/USDT", "futures") == "BTC/USDT:USDT" and ccxt_symbol("BTC/USDT", "spot") == "BTC/USDT"
    with pytest.raises(ValueError, match="expected BASE/QUOTE"):
        instrument_id("BTCUSDT", "spot")
    with pytest.raises(ValueError, match="market must be one of"):
        instrument_id("BTC/USDT", "margin")


def test_spot_pair_from_ccxt_market():
    pair = instrument_from_market(BUILTIN_MARKETS[("BTC/USDT", "spot")], "spot")
    assert isinstance(pair, CurrencyPair)
    assert (pair.price_precision, str(pair.price_increment)) == (2, "0.01")
    assert (pair.size_precision, str(pair.size_increment), str(pair.min_quantity)) == (5, "0.00001", "0.00001")
    assert str(pair.min_notional) == "5.00000000 USDT"
    assert (pair.maker_fee, pair.taker_fee) == DEFAULT_FEES["spot"] == (Decimal("0.001"), Decimal("0.001"))


def test_perpetual_from_ccxt_market():
    perp = instrument_from_market(BUILTIN_MARKETS[("BTC/USDT", "futures")], "futures")
    assert isinstance(perp, CryptoPerpetual)
    assert str(perp.id) == "BTCUSDT-PERP.BINANCE" and str(perp.settlement_currency) == "USDT"
    assert (perp.price_precision, perp.size_precision) == (1, 3)
    assert (perp.maker_fee, perp.taker_fee) == (Decimal("0.0002"), Decimal("0.0005"))
    assert perp.margin_init == Decimal("0.05")


def test_unknown_symbol_infers_precision_and_warns(caplog):
    bars = pd.DataFrame(
        {"open": [0.1234, 0.1235], "high": [0.124, 0.1236], "low": [0.12, 0.1231], "close": [0.1235, 0.12345],
         "volume": [1000.5, 20.25]}
    )
    with caplog.at_level(logging.WARNING):
        pair = offline_instrument("DOGE/USDT", "spot", bars)
    assert str(pair.id) == "DOGEUSDT.BINANCE"
    assert (pair.price_precision, pair.size_precision) == (5, 2)
    assert pair.taker_fee == DEFAULT_FEES["spot"][1]
    assert "inferred from the file" in caplog.text and "DOGE/USDT" in caplog.text


def test_known_pairs_use_builtin_definitions(caplog):
    with caplog.at_level(logging.WARNING):
        pair = offline_instrument("ETH/USDT", "spot", pd.DataFrame())
    assert pair.size_precision == 4 and caplog.text == ""


def test_max_decimals():
    assert max_decimals(np.array([105573.73, 1.0, 2.5])) == 2
    assert max_decimals(np.array([0.00001])) == 5
    assert max_decimals(np.array([3.0])) == 0
