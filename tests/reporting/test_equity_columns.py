"""An equity file without rows is refused (reporting.backtest._read_equity)."""

import pandas as pd
import pytest

from reporting.backtest import _read_equity


def test_an_equity_file_without_rows_is_refused_naming_it(tmp_path):
    empty = pd.DataFrame({"equity_lstm": pd.Series(dtype=float)}, index=pd.DatetimeIndex([], tz="UTC", name="close_time"))
    empty.to_parquet(tmp_path / "equity.parquet")
    with pytest.raises(ValueError, match=r"equity.parquet holds no equity_NAME column or no rows"):
        _read_equity(tmp_path)
