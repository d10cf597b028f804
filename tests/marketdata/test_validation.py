"""One test per defect the loader must catch, and the report on real dirty data."""

import numpy as np
import pandas as pd
import pytest

from marketdata.instruments import BUILTIN_MARKETS, instrument_from_market
from marketdata.klines import read_klines
from marketdata.timeframes import parse_timeframe
from marketdata.validation import (
    BarValidationError,
    ImplausiblePricesError,
    check_instrument_prices,
    check_seam,
    validate_klines,
)
from tests.conftest import BTC_1H

M1 = parse_timeframe("1m")
T0 = 1747699200000
BTC_PERP = instrument_from_market(BUILTIN_MARKETS[("BTC/USDT", "futures")], "futures")  # ticks in 0.1, prices 556.8..4,529,764


def bars(n=5, overrides=None):
    frame = pd.DataFrame(
        {
            "open_time": T0 + 60_000 * np.arange(n, dtype=np.int64),
            "open": 100.0 + np.arange(n),
            "high": 102.0 + np.arange(n),
            "low": 99.0 + np.arange(n),
            "close": 101.0 + np.arange(n),
            "volume": np.full(n, 3.0),
            "line": np.arange(n) + 2,
        }
    )
    for (column, row), value in (overrides or {}).items():
        frame.loc[row, column] = value
    return frame


def test_clean_bars_pass():
    kept, report = validate_klines(bars(), M1, "clean.csv")
    assert len(kept) == 5 and report.gaps == [] and report.placeholder_open_ms == []


def test_duplicate():
    frame = bars(overrides={("open_time", 3): T0 + 2 * 60_000})
    with pytest.raises(BarValidationError, match=r"dup\.csv, line 5: duplicate bar time 2025-05-20 00:02"):
        validate_klines(frame, M1, "dup.csv")


def test_unsorted():
    frame = bars()
    frame.loc[[1, 2], "open_time"] = frame.loc[[2, 1], "open_time"].to_numpy()
    with pytest.raises(BarValidationError, match=r"line 4: bars out of order: 2025-05-20 00:01 comes after 2025-05-20 00:02"):
        validate_klines(frame, M1, "unsorted.csv")


@pytest.mark.parametrize(
    "column, value",
    [("high", 99.5), ("low", 102.5), ("open", 110.0), ("close", 98.0)],
)
def test_ohlc_violation(column, value):
    with pytest.raises(BarValidationError, match=r"ohlc\.csv, line 4: OHLC violates"):
        validate_klines(bars(overrides={(column, 2): value}), M1, "ohlc.csv")


def test_nonpositive_price_and_negative_volume():
    with pytest.raises(BarValidationError, match="line 3: prices must be positive"):
        validate_klines(bars(overrides={("low", 1): 0.0}), M1, "p.csv")
    with pytest.raises(BarValidationError, match="line 6: volume is negative"):
        validate_klines(bars(overrides={("volume", 4): -1.0}), M1, "v.csv")


def test_nan_names_field_and_counts_rows():
    frame = bars(overrides={("close", 1): np.nan, ("close", 3): np.nan})
    with pytest.raises(BarValidationError, match=r"nan\.csv, line 3: close is missing or not finite \(nan\) \(1 more rows like it\)"):
        validate_klines(frame, M1, "nan.csv")


def test_rows_without_line_numbers_are_named_by_row():
    frame = bars(overrides={("volume", 2): np.inf}).drop(columns="line")
    with pytest.raises(BarValidationError, match=r"page 3, row 3: volume is missing or not finite"):
        validate_klines(frame, M1, "page 3")


def test_off_grid_time():
    with pytest.raises(BarValidationError, match="not on the 1m grid"):
        validate_klines(bars(overrides={("open_time", 4): T0 + 4 * 60_000 + 1}), M1, "grid.csv")


def test_gap_is_reported_not_raised():
    frame = bars(8).drop(index=[3, 4, 6]).reset_index(drop=True)
    kept, report = validate_klines(frame, M1, "gap.csv")
    assert len(kept) == 5
    assert [(g.after_open_ms, g.missing_bars) for g in report.gaps] == [(T0 + 2 * 60_000, 2), (T0 + 5 * 60_000, 1)]
    assert report.missing_bars == 3 and report.largest_gap.missing_bars == 2
    assert "2 gaps, 3 missing bars; largest: 2 bars after 2025-05-20 00:02" in report.summary()


def test_zero_volume_placeholder_policy():
    flat = {("open", 2): 102.0, ("high", 2): 102.0, ("low", 2): 102.0, ("close", 2): 102.0, ("volume", 2): 0.0}
    kept, report = validate_klines(bars(overrides=flat), M1, "flat.csv")
    assert len(kept) == 4 and T0 + 2 * 60_000 not in set(kept["open_time"])
    assert report.placeholder_open_ms == [T0 + 2 * 60_000]
    assert "1 flat zero-volume placeholder bars dropped" in report.summary()
    kept, report = validate_klines(bars(overrides=flat), M1, "flat.csv", placeholder_policy="keep")
    assert len(kept) == 5 and "kept" in report.summary()
    # Zero volume alone (a quiet but moving bar) is not a placeholder.
    kept, report = validate_klines(bars(overrides={("volume", 2): 0.0}), M1, "quiet.csv")
    assert len(kept) == 5 and report.placeholder_open_ms == []


def test_real_dirty_hourly_file(shared_data):
    kept, report = validate_klines(read_klines(shared_data / BTC_1H), parse_timeframe("1h"), BTC_1H)
    # The data README: 28 outage gaps with 128 missing hours, and 4 flat zero-volume placeholders.
    assert len(report.gaps) == 28 and report.missing_bars == 128
    assert [pd.Timestamp(t, unit="ms").strftime("%Y-%m-%d %H:%M") for t in report.placeholder_open_ms] == [
        "2017-09-06 16:00", "2019-06-07 21:00", "2021-02-11 03:00", "2023-03-24 12:00",
    ]
    assert len(kept) == 73_284 - 4


def test_prices_finer_than_the_tick_name_line_field_and_value():
    frame = bars(overrides={("close", 3): 103.05, ("close", 4): 104.25})
    with pytest.raises(BarValidationError, match=r"tick\.csv, line 5: close 103\.05 has 2 decimals but "
                       r"BTCUSDT-PERP\.BINANCE ticks in 0\.1: this is not that instrument's data \(1 more rows like it\)"):
        check_instrument_prices(frame, BTC_PERP, "tick.csv", plausible=False)


def test_prices_far_beyond_the_price_filters_are_implausible_unless_forced():
    cheap = bars()  # prices near 100: a third of BTCUSDT-PERP's minimum price is 185.6
    with pytest.raises(ImplausiblePricesError, match=r"cheap\.csv, line 2: open 100\.0 is more than 3x below "
                       r"BTCUSDT-PERP\.BINANCE's minimum price 556\.8.*--force"):
        check_instrument_prices(cheap, BTC_PERP, "cheap.csv", plausible=True)
    check_instrument_prices(cheap, BTC_PERP, "cheap.csv", plausible=False)
    check_instrument_prices(bars() * [1, 20, 20, 20, 20, 1, 1], BTC_PERP, "near.csv", plausible=True)  # within 3x


def test_seam_refuses_prices_off_the_held_bar_by_more_than_3x():
    frame = bars()  # closes 101..105, opening one minute apart from T0
    check_seam(frame, "ok.csv", T0 + 10 * 60_000, 300.0, "the catalog")  # 105 vs 300: under 3x
    with pytest.raises(ImplausiblePricesError, match=r"eth\.csv, line 6: close 105\.0 \(bar opened 2025-05-20 00:04\) "
                       r"is 3\.8x off the close 400\.0 of the bar opened 2025-05-20 00:10 that the catalog holds"):
        check_seam(frame, "eth.csv", T0 + 10 * 60_000, 400.0, "the catalog")
