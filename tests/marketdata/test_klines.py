"""Reading Binance kline files in every layout they come in."""

import gzip

import numpy as np
import pytest

from marketdata.klines import KlineFileError, read_klines
from tests.conftest import BTC_1H, FIXTURE_7D

ROWS_6 = [
    "1747699200000,105573.73,105597.10,105554.31,105554.32,10.82647",
    "1747699260000,105554.32,105609.89,105554.31,105604.68,6.48334",
]
TAIL_12 = ",1747699259999,1143000.1,1200,5.1,540000.2,0"


def write(path, lines, gz=False):
    text = "\n".join(lines) + "\n"
    if gz:
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("header", [False, True])
@pytest.mark.parametrize("columns", [6, 12])
def test_reads_every_layout(tmp_path, gz, header, columns):
    rows = ROWS_6 if columns == 6 else [row + TAIL_12 for row in ROWS_6]
    if header:
        names = "open_time,open,high,low,close,volume"
        if columns == 12:
            names += ",close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore"
        rows = [names] + rows
    path = write(tmp_path / ("k.csv.gz" if gz else "k.csv"), rows, gz=gz)
    bars = read_klines(path)
    assert list(bars["open_time"]) == [1747699200000, 1747699260000]
    assert bars["close"].tolist() == [105554.32, 105604.68]
    assert bars["volume"].tolist() == [10.82647, 6.48334]
    assert list(bars["line"]) == ([2, 3] if header else [1, 2])


def test_microsecond_open_times_become_milliseconds(tmp_path):
    rows = [row.replace("1747699200000", "1747699200000000").replace("1747699260000", "1747699260000000") for row in ROWS_6]
    bars = read_klines(write(tmp_path / "us.csv", rows))
    assert list(bars["open_time"]) == [1747699200000, 1747699260000]


def test_second_timestamps_are_refused(tmp_path):
    with pytest.raises(KlineFileError, match=r"s\.csv, line 1: .*looks like seconds"):
        read_klines(write(tmp_path / "s.csv", ["1747699200,1,1,1,1,1"]))


def test_garbage_text_names_file_line_and_field(tmp_path):
    rows = ROWS_6 + ["1747699320000,105604.68,abc,105554.31,105604.68,1.0"]
    with pytest.raises(KlineFileError, match=r"bad\.csv, line 3: high is not a number: 'abc'"):
        read_klines(write(tmp_path / "bad.csv", rows))


def test_wrong_column_count(tmp_path):
    with pytest.raises(KlineFileError, match="7 columns"):
        read_klines(write(tmp_path / "c7.csv", [row + ",1" for row in ROWS_6]))


def test_ragged_rows_name_the_file(tmp_path):
    with pytest.raises(KlineFileError, match=r"ragged\.csv: not a kline CSV.*line 3"):
        read_klines(write(tmp_path / "ragged.csv", ROWS_6 + ["1747699320000,1,1,1,1,1,9"]))


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(KlineFileError, match="empty"):
        read_klines(tmp_path / "empty.csv")
    with pytest.raises(KlineFileError, match="no such file"):
        read_klines(tmp_path / "absent.csv")


def test_real_files(shared_data):
    bars = read_klines(shared_data / FIXTURE_7D)
    assert len(bars) == 10_080
    assert bars["open_time"].iloc[0] == 1747699200000  # 2025-05-20 00:00 UTC
    assert np.all(np.diff(bars["open_time"]) == 60_000)
    hourly = read_klines(shared_data / BTC_1H)
    assert len(hourly) == 73_284


BINANCE_12 = ("open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
              "taker_buy_quote_volume,ignore").split(",")


def test_a_header_in_another_order_is_read_by_name(tmp_path):
    canonical = read_klines(write(tmp_path / "canonical.csv", ROWS_6))
    order = [0, 4, 2, 3, 1, 5]  # open_time,close,high,low,open,volume: open and close swapped
    names = ["open_time", "open", "high", "low", "close", "volume"]
    rows = [",".join(names[i] for i in order)] + [",".join(row.split(",")[i] for i in order) for row in ROWS_6]
    reordered = read_klines(write(tmp_path / "reordered.csv", rows))
    assert reordered.drop(columns="line").equals(canonical.drop(columns="line"))
    assert reordered["open"].tolist() == [105573.73, 105554.32]


def test_binance_12_column_names_in_any_order_and_case(tmp_path):
    rows = [row + TAIL_12 for row in ROWS_6]
    order = [6, 11, 4, 0, 9, 1, 3, 8, 2, 7, 10, 5]
    header = ",".join(BINANCE_12[i].upper() if i % 2 else BINANCE_12[i] for i in order)
    shuffled = [header] + [",".join(row.split(",")[i] for i in order) for row in rows]
    bars = read_klines(write(tmp_path / "k12.csv", shuffled))
    assert list(bars["open_time"]) == [1747699200000, 1747699260000]
    assert bars["close"].tolist() == [105554.32, 105604.68] and bars["volume"].tolist() == [10.82647, 6.48334]
    # Other tools' names for the same columns.
    aliases = "open_time,open,high,low,close,volume,close_time,quote_asset_volume,number_of_trades," \
              "taker_buy_base_asset_volume,taker_buy_quote_asset_volume,ignore"
    assert len(read_klines(write(tmp_path / "aliases.csv", [aliases] + rows))) == 2


@pytest.mark.parametrize("header, message", [
    ("open_time,open,high,low,close,vol", r"unknown column 'vol' in the header"),
    ("open_time,open,high,low,close", r"the header lacks volume"),
    ("open_time,open,high,low,close,close", r"column 'close' appears twice"),
])
def test_a_header_naming_unknown_or_missing_columns_is_refused(tmp_path, header, message):
    width = header.count(",") + 1
    rows = [header] + [",".join(row.split(",")[:width]) for row in ROWS_6]
    with pytest.raises(KlineFileError, match=rf"named\.csv, line 1: {message}"):
        read_klines(write(tmp_path / "named.csv", rows))
