"""``nautilus-lstm import-klines`` as a user runs it: what is refused, and that a refusal writes nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from marketdata.catalog import load_bars
from marketdata.klines import KLINE_COLUMNS, read_klines
from scripts.cli import main
from tests.conftest import ETH_1M, FIXTURE_7D

BTC_BARS = "BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL"


@pytest.fixture(scope="module")
def week(shared_data) -> pd.DataFrame:
    return read_klines(shared_data / FIXTURE_7D)


def write_csv(path: Path, bars: pd.DataFrame, columns=KLINE_COLUMNS) -> Path:
    bars[list(columns)].to_csv(path, index=False)
    return path


def import_file(path: Path, catalog: Path, *options: str, symbol="BTC/USDT") -> int:
    return main(["import-klines", str(path), "--symbol", symbol, "--timeframe", "1m", "--data-dir", str(catalog), *options])


def catalog_files(catalog: Path) -> dict[str, int]:
    """Every catalog file and its modification time: what a refused write must leave as it was."""
    return {str(path.relative_to(catalog)): path.stat().st_mtime_ns for path in catalog.rglob("*.parquet")}


def test_a_header_in_another_order_imports_the_canonical_files_bars(tmp_path, week, capsys):
    bars = week.iloc[:500]
    canonical = write_csv(tmp_path / "canonical.csv", bars)
    reordered = write_csv(tmp_path / "reordered.csv", bars, ["open_time", "close", "high", "low", "open", "volume"])
    assert import_file(canonical, tmp_path / "a") == 0
    assert import_file(reordered, tmp_path / "b") == 0
    assert "500 new bars written" in capsys.readouterr().out
    by_name = load_bars(tmp_path / "b", BTC_BARS)
    assert by_name.equals(load_bars(tmp_path / "a", BTC_BARS))
    assert np.array_equal(by_name["open"].to_numpy(), bars["open"].to_numpy())


def test_an_unknown_header_name_is_refused_naming_the_file(tmp_path, week, caplog):
    path = write_csv(tmp_path / "named.csv", week.iloc[:10].rename(columns={"volume": "vol"}),
                     ["open_time", "open", "high", "low", "close", "vol"])
    assert import_file(path, tmp_path / "catalog") == 2
    assert f"{path}, line 1: unknown column 'vol' in the header" in caplog.text
    assert not (tmp_path / "catalog").exists()


def test_a_price_finer_than_the_tick_at_line_8002_writes_nothing(tmp_path, week, caplog):
    bars = week.iloc[:9000].copy()
    row = 8000  # line 8002: the header is line 1
    low, high = bars.loc[row, "low"], bars.loc[row, "high"]
    assert high - low > 0.02
    bars.loc[row, "close"] = round(low + 0.01, 2) + 0.005  # 3 decimals, inside the bar's range
    path = write_csv(tmp_path / "fine.csv", bars)

    fresh = tmp_path / "fresh"
    assert import_file(path, fresh) == 2
    assert f"{path}, line 8002: close {bars.loc[row, 'close']} has 3 decimals but BTCUSDT.BINANCE ticks in 0.01" in caplog.text
    assert not fresh.exists()  # not even the instrument

    held = tmp_path / "held"
    assert import_file(write_csv(tmp_path / "first.csv", week.iloc[:100]), held) == 0
    before = catalog_files(held)
    assert import_file(path, held) == 2
    assert catalog_files(held) == before
    assert len(load_bars(held, BTC_BARS)) == 100


def test_a_file_that_disagrees_with_held_bars_is_refused_naming_the_first_differing_bar(tmp_path, week, caplog):
    catalog = tmp_path / "catalog"
    assert import_file(write_csv(tmp_path / "held.csv", week.iloc[:300]), catalog) == 0
    before = catalog_files(catalog)
    other = week.iloc[200:600].copy()  # 100 bars over held times, 300 new ones
    other.loc[250, "close"] = other.loc[250, "low"]  # still a valid bar, but not the one held
    other.loc[260, "volume"] = 0.5
    assert other.loc[250, "close"] != week.loc[250, "close"]
    path = write_csv(tmp_path / "other.csv", other)

    assert import_file(path, catalog) == 2
    opened = pd.Timestamp(int(week.loc[250, "open_time"]), unit="ms").strftime("%Y-%m-%d %H:%M")
    assert (f"{path}, line 52: the bar opened {opened} differs from the one {catalog} ({BTC_BARS}) holds: "
            f"close {other.loc[250, 'close']} here, {week.loc[250, 'close']} held "
            "(2 of 100 bars at times both have differ); nothing written") in caplog.text
    assert catalog_files(catalog) == before  # the 300 new bars neither


def test_an_eth_file_imported_as_btc_is_refused_and_force_imports_it(tmp_path, week, shared_data, caplog, capsys):
    catalog = tmp_path / "catalog"
    assert import_file(write_csv(tmp_path / "btc.csv", week.iloc[:300]), catalog) == 0
    eth = read_klines(shared_data / ETH_1M).iloc[300:600]  # the next 300 minutes, of ETH
    path = write_csv(tmp_path / "eth.csv", eth)

    assert import_file(path, catalog) == 2
    ratio = week.loc[299, "close"] / eth["close"].iloc[0]
    assert (f"{path}, line 2: close {eth['close'].iloc[0]} (bar opened 2025-05-20 05:00) is {ratio:.1f}x off the close "
            f"{week.loc[299, 'close']} of the bar opened 2025-05-20 04:59 that {catalog} ({BTC_BARS}) holds") in caplog.text
    assert "import it with --force" in caplog.text
    assert len(load_bars(catalog, BTC_BARS)) == 300

    assert import_file(path, catalog, "--force") == 0
    assert "300 new bars written" in capsys.readouterr().out
    assert len(load_bars(catalog, BTC_BARS)) == 600


def test_bars_in_gaps_of_held_files_are_reported_not_called_already_there(tmp_path, week, capsys):
    catalog = tmp_path / "catalog"
    gappy = week.iloc[:300].drop(index=range(100, 105))
    assert import_file(write_csv(tmp_path / "gappy.csv", gappy), catalog) == 0
    capsys.readouterr()
    assert import_file(write_csv(tmp_path / "whole.csv", week.iloc[:300]), catalog) == 0
    assert ("0 new bars written to {0} as {1}; 295 already there, skipped; 5 not written: they fall in gaps "
            "inside files the catalog holds").format(catalog, BTC_BARS) in capsys.readouterr().out
