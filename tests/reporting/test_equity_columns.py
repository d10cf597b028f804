"""The backtest report reads equity.parquet a column at a time (reporting.backtest.EquityFile)."""

import pandas as pd
import pytest

from reporting.backtest import EquityFile, _read_equity


def test_each_column_read_alone_is_the_whole_frames(backtest_folder):
    whole = pd.read_parquet(backtest_folder / "equity.parquet")
    equity = EquityFile(backtest_folder / "equity.parquet")
    assert equity.columns == list(whole.columns) and equity.rows == len(whole) > 0
    assert equity.span == whole.index[-1] - whole.index[0]
    for column in whole:
        pd.testing.assert_series_equal(equity[column], whole[column])


def test_an_equity_file_without_rows_is_refused_naming_it(tmp_path):
    empty = pd.DataFrame({"equity_lstm": pd.Series(dtype=float)}, index=pd.DatetimeIndex([], tz="UTC", name="close_time"))
    empty.to_parquet(tmp_path / "equity.parquet")
    with pytest.raises(ValueError, match=r"equity.parquet holds no equity_NAME column or no rows"):
        _read_equity(tmp_path)
