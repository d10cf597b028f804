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
