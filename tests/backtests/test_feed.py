"""Backtests fed from the catalog in chunks give exactly the results of one fed every bar at once."""

import gzip
import json
import re

import numpy as np
import pandas as pd
import pytest

from backtests.feed import load_feed
from backtests.pooled import run_pooled, write_pooled_report
from backtests.report import write_report
from backtests.runner import BacktestSettings, run_all
from marketdata.catalog import CatalogError, query_bars
from marketdata.history import import_klines
from tests.conftest import ETH_1M, FIXTURE_7D
from tests.fakes.training import BAR_TYPE
from tests.models.test_pooling import ETH, pooled  # noqa: F401  (the module fixture: a catalog and a pooled model)

# Both instruments have bars over the whole range (the pooled fixture's ETH ends on 2025-05-23).
START = pd.Timestamp("2025-05-21 12:00", tz="UTC")
END = pd.Timestamp("2025-05-22 22:00", tz="UTC")
SMALL_CHUNK = 300  # bars: the 34-hour range comes in 7 chunks
ALL_AT_ONCE = 10**9  # one chunk: every bar in the engine at once, as before streaming
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def report_files(out) -> dict:
    """What a report folder says, less what differs between any two runs: wall times and random UUIDs."""
    stats = json.loads((out / "stats.json").read_text(), object_hook=lambda d: {k: v for k, v in d.items() if k != "run_seconds"})
    fills = pd.read_csv(out / "fills.csv").drop(columns="event_id")
    return {"stats": stats, "fills": fills.to_csv(), "positions": UUID.sub("UUID", (out / "positions.csv").read_text()),
            "predictions": pd.read_parquet(out / "predictions.parquet")}


def assert_same_reports(a, b) -> None:
    one, other = report_files(a), report_files(b)
    assert one["stats"] == other["stats"]
    assert one["fills"] == other["fills"] and one["positions"] == other["positions"]
    pd.testing.assert_frame_equal(one["predictions"], other["predictions"])


def settings_for(pooled, bar_types, chunk_bars) -> BacktestSettings:  # noqa: F811
    catalog, model, _ = pooled
    return BacktestSettings(model_path=model, catalog=catalog, bar_types=bar_types, start=START, end=END,
                            strategy={"entry_threshold": 1e-5}, chunk_bars=chunk_bars)


def test_the_feeds_closes_and_chunks_are_the_catalogs_bars(pooled):  # noqa: F811
    catalog = pooled[0]
    feed = load_feed(catalog, (BAR_TYPE, ETH), START, END, chunk_bars=SMALL_CHUNK)
    for bar_type in (BAR_TYPE, ETH):
        bars = query_bars(catalog, bar_type, START, END)
        expected = pd.Series([b.close.as_double() for b in bars], name="close",
                             index=pd.DatetimeIndex([b.ts_event for b in bars], tz="UTC", name="close_time"))
        pd.testing.assert_series_equal(feed.close(bar_type), expected)
        assert feed.close(bar_type).dtype == np.float64 and feed.close(bar_type).index.asi8.dtype == np.int64
    chunks = list(feed.chunks("test"))
    assert len(chunks) == 7 and max(map(len, chunks)) <= 2 * SMALL_CHUNK
    merged = sorted(query_bars(catalog, BAR_TYPE, START, END) + query_bars(catalog, ETH, START, END), key=lambda b: b.ts_event)
    key = [(str(b.bar_type), b.ts_event, b.close.as_double()) for b in merged]
    assert [(str(b.bar_type), b.ts_event, b.close.as_double()) for chunk in chunks for b in chunk] == key


def test_the_first_chunk_holds_every_bar_types_first_bar(shared_data, tmp_path):
    """ETH's history starting a day after BTC's: its first bar still goes into the engine's first
    chunk, which registers both bar types' subscriptions (backtests.feed.feed_engine)."""
    eth = tmp_path / "eth.csv.gz"
    with gzip.open(shared_data / ETH_1M, "rt") as src, gzip.open(eth, "wt") as dst:
        dst.writelines(line for number, line in enumerate(src) if number == 0 or 1440 < number <= 2 * 1440)
    catalog = tmp_path / "catalog"
    import_klines(shared_data / FIXTURE_7D, exchange="binance", symbol="BTC/USDT", timeframe="1m", market="spot", catalog_path=catalog)
    import_klines(eth, exchange="binance", symbol="ETH/USDT", timeframe="1m", market="spot", catalog_path=catalog)
    feed = load_feed(catalog, (BAR_TYPE, ETH), chunk_bars=10)
    eth_first = feed.close(ETH).index[0]
    assert eth_first - feed.close().index[0] >= pd.Timedelta(days=1)
    first = [str(b.bar_type) for b in next(feed.chunks("test"))]
    assert first.count(ETH) == 1 and first.count(BAR_TYPE) == len(feed.close().loc[:eth_first])


def test_a_range_without_bars_names_what_the_catalog_holds(pooled):  # noqa: F811
    with pytest.raises(CatalogError, match="holds no .* bars between .*bar types held: .*BTCUSDT"):
        load_feed(pooled[0], (ETH,), pd.Timestamp("2025-05-25", tz="UTC"))  # ETH's bars end on 2025-05-23


def test_a_backtest_fed_in_chunks_equals_one_fed_every_bar_at_once(pooled, tmp_path):  # noqa: F811
    reports = {}
    for chunk_bars in (SMALL_CHUNK, ALL_AT_ONCE):
        settings = settings_for(pooled, (BAR_TYPE,), chunk_bars)
        bars, runs = run_all(settings)
        reports[chunk_bars] = tmp_path / str(chunk_bars)
        write_report(reports[chunk_bars], bars, runs, settings)
    assert len(pd.read_csv(reports[SMALL_CHUNK] / "fills.csv")) > 0  # the strategy traded
    assert_same_reports(reports[SMALL_CHUNK], reports[ALL_AT_ONCE])


def test_a_pooled_backtest_fed_in_chunks_equals_one_fed_every_bar_at_once(pooled, tmp_path):  # noqa: F811
    reports = {}
    for chunk_bars in (SMALL_CHUNK, ALL_AT_ONCE):
        settings = settings_for(pooled, (BAR_TYPE, ETH), chunk_bars)
        bars, runs = run_pooled(settings)
        reports[chunk_bars] = tmp_path / str(chunk_bars)
        write_pooled_report(reports[chunk_bars], bars, runs, settings)
    assert len(pd.read_csv(reports[SMALL_CHUNK] / "fills.csv")) > 0
    assert_same_reports(reports[SMALL_CHUNK], reports[ALL_AT_ONCE])
