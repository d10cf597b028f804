"""``nautilus-lstm download`` end to end: the real ccxt client against a loopback fake Binance."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.conftest import BTC_1M, FIXTURE_7D, PROJECT_ROOT
from tests.fakes.fake_binance import FUTURES, SPOT, FakeBinance
from nautilus_trader.model.instruments import CryptoPerpetual, CurrencyPair
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from marketdata.catalog import load_bars
from marketdata.klines import read_klines
from marketdata.timeframes import close_time_ns, parse_timeframe
from scripts.cli import main

SPOT_BARS = "BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL"
PERP_BARS = "BTCUSDT-PERP.BINANCE-1-MINUTE-LAST-EXTERNAL"
MINUTE = parse_timeframe("1m")
PAGE = 1000  # bars per klines request the downloader asks for
WEEK_START, WEEK_END = "2025-05-20", "2025-05-27"  # the 7-day fixture file, exactly
WEEK_BARS = 7 * 24 * 60
# The fake exchange's clock: after every bar in the data, whatever the date on this machine.
SERVER_NOW_MS = int(pd.Timestamp("2025-12-01", tz="UTC").timestamp() * 1000)


@pytest.fixture(scope="module")
def week(shared_data) -> pd.DataFrame:
    return read_klines(shared_data / FIXTURE_7D)


@pytest.fixture
def catalog(tmp_path) -> Path:
    return tmp_path / "catalog"


def serve(bars: pd.DataFrame, market: str = SPOT, **settings) -> FakeBinance:
    fake = FakeBinance(**{"now_ms": SERVER_NOW_MS, **settings})
    fake.add_klines(bars, market=market)
    return fake


def download(fake: FakeBinance, catalog: Path, *options: str, since=WEEK_START, until=WEEK_END) -> int:
    argv = ["download", "--exchange", "binance", "--symbol", "BTC/USDT", "--timeframe", "1m", "--since", since]
    argv += ["--until", until] if until else []
    return main(argv + ["--api-url", fake.url, "--data-dir", str(catalog), "--backoff", "0.01", *options])


def start_times(fake: FakeBinance) -> list[int]:
    return [int(request.params["startTime"]) for request in fake.klines_requests()]


def assert_catalog_holds(catalog: Path, bar_type: str, source: pd.DataFrame, price_decimals=2, size_decimals=5):
    """The catalog's bars are the source's: same close times, prices to the tick, volumes to the lot step."""
    held = load_bars(catalog, bar_type)
    expected_close = close_time_ns(source["open_time"].to_numpy(dtype=np.int64), MINUTE)
    np.testing.assert_array_equal(held.index.asi8, expected_close)
    for column in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(held[column].round(price_decimals).to_numpy(), source[column].to_numpy())
    # Nautilus keeps volumes to the instrument's size precision (a few source volumes carry one decimal more).
    step = 10.0**-size_decimals
    np.testing.assert_allclose(held["volume"].to_numpy(), source["volume"].to_numpy(), rtol=0, atol=step / 2 + 1e-9)


def test_download_stores_exactly_the_served_bars_across_pages(week, catalog, capsys):
    with serve(week) as fake:
        assert download(fake, catalog) == 0

    assert_catalog_holds(catalog, SPOT_BARS, week)
    assert start_times(fake) == [int(t) for t in week["open_time"][::PAGE]]
    assert {(request.market, request.endpoint) for request in fake.requests} == {
        (SPOT, "exchangeInfo"), (SPOT, "time"), (SPOT, "klines")  # spot markets only; no endpoint needing keys
    }
    assert {request.params["limit"] for request in fake.klines_requests()} == {str(PAGE)}
    instrument = ParquetDataCatalog(str(catalog)).instruments()[0]
    assert isinstance(instrument, CurrencyPair) and str(instrument.id) == "BTCUSDT.BINANCE"
    assert f"{WEEK_BARS:,} new bars written" in capsys.readouterr().out


def test_rate_limited_requests_are_retried(week, catalog, caplog):
    throttled = frozenset({2, 3, 7})  # two in a row: the backoff must double and try again
    with serve(week, throttle_requests=throttled) as fake:
        assert download(fake, catalog) == 0

    assert_catalog_holds(catalog, SPOT_BARS, week)
    statuses = [request.status for request in fake.klines_requests()]
    assert [number for number, status in enumerate(statuses, 1) if status == 429] == sorted(throttled)
    assert len(statuses) == -(-WEEK_BARS // PAGE) + len(throttled)
    # Each 429 is followed by the same page asked again.
    starts = start_times(fake)
    assert all(starts[n - 1] == starts[n] for n in throttled)
    retries = [record.getMessage() for record in caplog.records if "retry" in record.getMessage()]
    assert all('"code":-1003' in message for message in retries)
    assert [message.rsplit(";", 1)[1] for message in retries] == [
        " retry 1 of 5 in 0.01s", " retry 2 of 5 in 0.02s", " retry 1 of 5 in 0.01s"
    ]


def test_download_gives_up_after_max_retries_with_one_line(week, catalog, caplog):
    with serve(week, throttle_every=1) as fake:
        assert download(fake, catalog, "--max-retries", "2") == 2

    assert len(fake.klines_requests()) == 3
    error = caplog.records[-1]
    assert error.levelno == logging.ERROR
    assert "failed after 3 tries" in error.getMessage() and "429" in error.getMessage()
    assert "\n" not in error.getMessage()


def test_resume_fetches_only_what_the_catalog_lacks(week, catalog):
    with serve(week) as fake:
        assert download(fake, catalog, until="2025-05-23") == 0
        first_run = len(fake.klines_requests())
        assert download(fake, catalog) == 0
        second_run = start_times(fake)[first_run:]
        assert download(fake, catalog) == 0
        third_run = start_times(fake)[first_run + len(second_run) :]

    resume_from = int(pd.Timestamp("2025-05-23", tz="UTC").timestamp() * 1000)
    assert second_run[0] == resume_from
    assert len(second_run) == -(-4 * 24 * 60 // PAGE)
    assert third_run == []
    assert_catalog_holds(catalog, SPOT_BARS, week)


def test_a_hole_in_the_middle_is_filled_without_refetching_what_is_held(week, catalog):
    held = week.iloc[3000:5000]
    with serve(week) as fake:
        assert download(fake, catalog, since="2025-05-22 02:00", until="2025-05-23 11:20") == 0
        assert start_times(fake) == [int(held["open_time"].iloc[0]), int(held["open_time"].iloc[PAGE])]
        assert download(fake, catalog) == 0
        resumed = start_times(fake)[2:]

    expected_pages = [*range(0, 3000, PAGE), *range(5000, WEEK_BARS, PAGE)]
    assert resumed == [int(week["open_time"].iloc[row]) for row in expected_pages]
    assert_catalog_holds(catalog, SPOT_BARS, week)


def test_the_bar_still_forming_is_not_stored(week, catalog):
    server_now = pd.Timestamp("2025-05-20 01:00:30", tz="UTC")
    with serve(week, now_ms=int(server_now.timestamp() * 1000)) as fake:
        assert download(fake, catalog, until=None) == 0

    # The bar opened at 01:00 closes at 01:01: it is forming at 01:00:30. 60 complete bars precede it.
    assert_catalog_holds(catalog, SPOT_BARS, week.iloc[:60])


def test_an_exchange_error_fails_at_once_with_a_clear_message(week, catalog, caplog):
    with serve(week) as fake:  # ETHUSDT is listed, but the fake has no bars for it: Binance's -1121
        argv = ["download", "--symbol", "ETH/USDT", "--timeframe", "1m", "--since", WEEK_START, "--until", WEEK_END]
        assert main(argv + ["--api-url", fake.url, "--data-dir", str(catalog)]) == 2

    assert len(fake.klines_requests()) == 1  # no retries for an error that retrying cannot fix
    message = caplog.records[-1].getMessage()
    assert "binance: fetch ETH/USDT 1m bars from 2025-05-20 00:00:00 UTC failed" in message
    assert '"code":-1121' in message and "Invalid symbol." in message
    assert "\n" not in message and "Traceback" not in caplog.text


def test_a_symbol_the_exchange_does_not_list_is_named(week, catalog, caplog):
    with serve(week) as fake:
        argv = ["download", "--symbol", "DOGE/USDT", "--timeframe", "1m", "--since", WEEK_START]
        assert main(argv + ["--api-url", fake.url, "--data-dir", str(catalog)]) == 2

    assert caplog.records[-1].getMessage() == "binance has no spot market DOGE/USDT"
    assert fake.klines_requests() == []


def test_futures_download_into_the_perpetual(week, catalog):
    # A perpetual ticks in 0.1 and trades in 0.001: serve two days of bars on that grid.
    perp = week.iloc[: 2 * 24 * 60].copy()
    perp[["open", "high", "low", "close"]] = perp[["open", "high", "low", "close"]].round(1)
    perp["volume"] = perp["volume"].round(3)
    with serve(perp, market=FUTURES) as fake:
        assert download(fake, catalog, "--market", "futures", until="2025-05-22") == 0

    assert {request.market for request in fake.requests} == {FUTURES}
    assert len(fake.klines_requests(FUTURES)) == 3
    assert_catalog_holds(catalog, PERP_BARS, perp, price_decimals=1, size_decimals=3)
    instrument = ParquetDataCatalog(str(catalog)).instruments()[0]
    assert isinstance(instrument, CryptoPerpetual)
    assert str(instrument.id) == "BTCUSDT-PERP.BINANCE" and str(instrument.price_increment) == "0.1"


def test_kill_9_leaves_whole_pages_and_the_next_run_completes(week, catalog, tmp_path):
    argv = [sys.executable, "-m", "scripts.cli", "download", "--symbol", "BTC/USDT", "--timeframe", "1m"]
    argv += ["--since", WEEK_START, "--until", WEEK_END, "--data-dir", str(catalog)]

    with serve(week, delay_s=0.1) as fake:
        # Kill twice at different moments: while waiting for an answer, then just after one came.
        for kill_after_requests, extra_wait in ((4, 0.0), (8, 0.12)):
            stderr_path = tmp_path / f"stderr-{kill_after_requests}.txt"
            with stderr_path.open("w") as stderr:
                process = subprocess.Popen(
                    argv + ["--api-url", fake.url], cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=stderr
                )
                _wait_for(lambda: len(fake.klines_requests()) >= kill_after_requests or process.poll() is not None)
                time.sleep(extra_wait)
                process.send_signal(signal.SIGKILL)  # a no-op if it has ended: the assertion below tells
                returncode = process.wait()
            assert returncode == -signal.SIGKILL, stderr_path.read_text()

            held = load_bars(catalog, SPOT_BARS)
            assert 0 < len(held) < WEEK_BARS and len(held) % PAGE == 0
            assert_catalog_holds(catalog, SPOT_BARS, week.iloc[: len(held)])

        fake.delay_s = 0.0
        before = len(fake.klines_requests())
        assert download(fake, catalog) == 0
        assert start_times(fake)[before] == int(week["open_time"].iloc[len(held)])

    assert_catalog_holds(catalog, SPOT_BARS, week)
    assert not any((catalog / ".staging").glob("*"))


@pytest.mark.slow
def test_full_quarter_download_is_identical_and_fast(shared_data, catalog):
    source = read_klines(shared_data / BTC_1M)
    assert len(source) == 130_708
    last_close = pd.Timestamp(int(source["open_time"].iloc[-1]) + MINUTE.ms, unit="ms", tz="UTC")
    with serve(source) as fake:
        started = time.perf_counter()
        assert download(fake, catalog, until=last_close.isoformat()) == 0
        seconds = time.perf_counter() - started

    print(f"\nfull loopback download of {len(source):,} bars: {seconds:.1f}s")
    assert seconds <= 30
    assert len(fake.klines_requests()) == -(-len(source) // PAGE)
    assert_catalog_holds(catalog, SPOT_BARS, source)


def _wait_for(condition, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)
