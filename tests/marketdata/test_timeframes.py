"""Bar times: catalog bars and Nautilus's Binance klines map to the same close time."""

import msgspec
import pytest
from nautilus_trader.adapters.binance.common.schemas.market import BinanceCandlestickMsg, BinanceKline
from nautilus_trader.adapters.binance.spot.enums import BinanceSpotEnumParser
from nautilus_trader.model.data import BarType
from nautilus_trader.model.identifiers import InstrumentId

from marketdata.timeframes import bar_close_ns, close_time_ns, parse_timeframe, timeframe_of_bar_spec

OPEN_MS = 1_747_699_200_000  # 2025-05-20 00:00 UTC


@pytest.mark.parametrize("timeframe", ["1s", "1m", "4h"])
def test_rest_and_stream_klines_close_where_catalog_bars_do(timeframe):
    tf = parse_timeframe(timeframe)
    close_ms = OPEN_MS + tf.ms - 1  # Binance's closeTime, "T"
    bar_type = BarType.from_str(f"BTCUSDT.BINANCE-{tf.bar_spec}-EXTERNAL")
    rest = BinanceKline(OPEN_MS, "1.0", "1.0", "1.0", "1.0", "1.0", close_ms, "0", 0, "0", "0", "0").parse_to_binance_bar(bar_type)
    stream = msgspec.json.decode(
        msgspec.json.encode({"stream": f"btcusdt@kline_{timeframe}", "data": {"e": "kline", "E": close_ms + 5, "s": "BTCUSDT", "k": {
            "t": OPEN_MS, "T": close_ms, "s": "BTCUSDT", "i": timeframe, "f": 1, "L": 2, "o": "1.0", "c": "1.0",
            "h": "1.0", "l": "1.0", "v": "1.0", "n": 2, "x": True, "q": "0", "V": "0", "Q": "0", "B": "0"}}}),
        type=BinanceCandlestickMsg,
    ).data.k.parse_to_binance_bar(InstrumentId.from_str("BTCUSDT.BINANCE"), BinanceSpotEnumParser())

    catalog = close_time_ns(OPEN_MS, tf)
    assert rest.ts_event != catalog and stream.ts_event != catalog  # the adapter stamps 1 ms early (and via a float)
    assert bar_close_ns(rest.ts_event) == bar_close_ns(stream.ts_event) == bar_close_ns(catalog) == catalog


def test_timeframe_of_a_bar_spec():
    assert timeframe_of_bar_spec(1, "MINUTE").text == "1m"
    assert timeframe_of_bar_spec(4, "HOUR").bar_spec == "4-HOUR-LAST"
    with pytest.raises(ValueError, match="no timeframe for 100-TICK bars"):
        timeframe_of_bar_spec(100, "TICK")
