"""Bars into the Nautilus catalog: close-time stamping, disjoint files, atomic writes, held bars compared."""

import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from nautilus_trader.model.data import Bar
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from marketdata.catalog import CatalogError, coverage, load_bars, to_nautilus_bars
from marketdata.catalog_writer import WriteOutcome, write_new_bars
from marketdata.instruments import BUILTIN_MARKETS, bar_type, instrument_from_market
from marketdata.klines import read_klines
from marketdata.timeframes import close_time_ns, open_time_ms, parse_timeframe
from tests.conftest import FIXTURE_7D

M1 = parse_timeframe("1m")
BTC = instrument_from_market(BUILTIN_MARKETS[("BTC/USDT", "spot")], "spot")
BTC_1M = bar_type(BTC.id, M1)


@pytest.fixture(scope="module")
def week(shared_data) -> pd.DataFrame:
    return read_klines(shared_data / FIXTURE_7D)


def test_bars_are_stamped_at_their_close():
    first = pd.DataFrame(
        {"open_time": [1747699200000], "open": [105573.73], "high": [105597.10], "low": [105554.31],
         "close": [105554.32], "volume": [10.82647]}
    )
    (bar,) = to_nautilus_bars(first, BTC_1M, BTC, M1)
    close = pd.Timestamp("2025-05-20 00:01", tz="UTC").value  # opened 00:00, known at 00:01
    assert bar.ts_event == close and bar.ts_init == close
    assert close_time_ns(1747699200000, M1) == close and open_time_ms(close, M1) == 1747699200000
    assert str(bar.bar_type) == "BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL"
    assert bar.close.as_double() == 105554.32 and str(bar.volume) == "10.82647"


def test_round_trip_through_nautilus_catalog(tmp_path, week):
    assert write_new_bars(tmp_path, BTC, BTC_1M, week, M1) == WriteOutcome(written=10_080)
    bars = ParquetDataCatalog(str(tmp_path)).bars(bar_types=[str(BTC_1M)])
    assert len(bars) == 10_080
    assert [b.ts_event for b in bars[:2]] == list(close_time_ns(week["open_time"].to_numpy()[:2], M1))
    frame = load_bars(tmp_path, BTC_1M)
    assert np.array_equal(frame["close"].to_numpy(), week["close"].to_numpy())
    assert frame.index[0] == pd.Timestamp("2025-05-20 00:01", tz="UTC")
    instruments = ParquetDataCatalog(str(tmp_path)).instruments()
    assert [i.id for i in instruments] == [BTC.id]


def test_only_missing_bars_are_written_and_files_stay_disjoint(tmp_path, week):
    write_new_bars(tmp_path, BTC, BTC_1M, week.iloc[3000:6000], M1)
    assert write_new_bars(tmp_path, BTC, BTC_1M, week, M1) == WriteOutcome(written=7_080, already_held=3_000)
    intervals = coverage(tmp_path, BTC_1M).intervals
    assert len(intervals) == 3
    assert all(a[1] < b[0] for a, b in zip(intervals, intervals[1:]))
    frame = load_bars(tmp_path, BTC_1M)
    assert np.array_equal(frame["open"].to_numpy(), week["open"].to_numpy())
    assert frame.index.is_unique and frame.index.is_monotonic_increasing


def test_coverage_missing_ranges():
    from marketdata.catalog import Coverage

    held = Coverage([(10, 20), (30, 40)])
    assert held.missing(0, 50) == [(0, 9), (21, 29), (41, 50)]
    assert held.missing(12, 35) == [(21, 29)]
    assert held.missing(10, 20) == []
    assert Coverage([]).missing(5, 6) == [(5, 6)]


WRITER = """
import sys
from marketdata.catalog_writer import write_new_bars
from marketdata.instruments import BUILTIN_MARKETS, bar_type, instrument_from_market
from marketdata.klines import read_klines
from marketdata.timeframes import parse_timeframe
tf = parse_timeframe("1m")
btc = instrument_from_market(BUILTIN_MARKETS[("BTC/USDT", "spot")], "spot")
week = read_klines(sys.argv[2])
print("ready", flush=True)
for start in range(0, len(week), 20):
    write_new_bars(sys.argv[1], btc, bar_type(btc.id, tf), week.iloc[start:start + 20], tf)
"""


@pytest.mark.slow
def test_kill_9_leaves_whole_batches(tmp_path, week, shared_data):
    """SIGKILL a writer at random moments: the catalog always holds whole batches, never a torn file."""
    rng = np.random.default_rng(7)
    most = 0
    for attempt in range(3):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), str(shared_data / FIXTURE_7D)],
            stdout=subprocess.PIPE, text=True,
        )
        assert writer.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.5, 1.5))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        try:
            frame = load_bars(tmp_path, BTC_1M)
        except CatalogError:  # killed before its first batch landed: nothing there, nothing torn
            frame = week.iloc[:0]
        held = len(frame)
        most = max(most, held)
        assert held % 20 == 0
        assert np.array_equal(frame["close"].to_numpy(), week["close"].to_numpy()[:held])
    assert most > 0  # the kills did land mid-run
    # A later writer clears what the killed ones staged (under the lock, so provably abandoned) and completes the set.
    write_new_bars(tmp_path, BTC, BTC_1M, week, M1)
    assert not any((tmp_path / ".staging").iterdir())
    assert np.array_equal(load_bars(tmp_path, BTC_1M)["close"].to_numpy(), week["close"].to_numpy())


def test_load_bars_errors_name_the_problem(tmp_path, week):
    with pytest.raises(CatalogError, match="no catalog at"):
        load_bars(tmp_path / "absent", BTC_1M)
    write_new_bars(tmp_path, BTC, BTC_1M, week.iloc[:10], M1)
    with pytest.raises(CatalogError, match=r"no ETHUSDT\.BINANCE-1-MINUTE-LAST-EXTERNAL bars.*BTCUSDT\.BINANCE-1-MINUTE"):
        load_bars(tmp_path, "ETHUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL")


def test_bar_objects_match_source(week):
    bars = to_nautilus_bars(week.iloc[:50], BTC_1M, BTC, M1)
    assert all(isinstance(b, Bar) for b in bars)
    assert [round(b.high.as_double(), 2) for b in bars] == week["high"].iloc[:50].tolist()


def test_a_catalog_holding_bars_twice_is_named_not_written_to(tmp_path, week):
    """Overlapping files, as unlocked concurrent imports used to leave behind."""
    write_new_bars(tmp_path, BTC, BTC_1M, week.iloc[:300], M1)
    overlapping = to_nautilus_bars(week.iloc[200:400], BTC_1M, BTC, M1)
    ParquetDataCatalog(str(tmp_path)).write_data(overlapping, skip_disjoint_check=True)
    with pytest.raises(CatalogError, match=r"holds BTCUSDT\.BINANCE-1-MINUTE-LAST-EXTERNAL bars twice \(the first "
                       r"closing at 2025-05-20 04:11:00\+00:00\): overlapping files"):
        write_new_bars(tmp_path, BTC, BTC_1M, week.iloc[250:500], M1)
