"""equity.parquet: every strategy's equity and returns per bar, from which an independent library
(empyrical) reproduces stats.json's Sharpe, Sortino and maximum drawdown at the documented annualization."""

import json
import math

import empyrical
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from backtests import report
from backtests.stats import DAYS_PER_YEAR

# Both sides compute the same sums in a different order: agreement to rounding, nothing looser.
TIGHT = 1e-9


def daily_from_bar_returns(returns: pd.Series) -> pd.Series:
    """stats.json's daily returns from equity.parquet, as backtests/report.py documents them."""
    daily = (1 + returns).resample("1D", closed="right", label="right").prod() - 1
    if daily.index[0] == returns.index[0]:  # the first bar closes at midnight: counted in the day after it
        daily.iloc[1] = (1 + daily.iloc[0]) * (1 + daily.iloc[1]) - 1
        daily = daily.iloc[1:]
    return daily


def same(ours, theirs) -> bool:
    """stats.json writes an undefined figure as null; empyrical answers NaN or ±inf for it."""
    if ours is None:
        return not math.isfinite(theirs)
    return theirs == pytest.approx(ours, rel=TIGHT, abs=TIGHT)


def test_empyrical_reproduces_stats_json_from_equity_parquet(backtest_folder):
    stats = json.loads((backtest_folder / "stats.json").read_text())
    equity = pd.read_parquet(backtest_folder / "equity.parquet")
    strategies = {"lstm": stats, **stats["benchmarks"]}
    assert list(equity.columns) == [f"{kind}_{name}" for name in strategies for kind in ("equity", "return")] + [
        "close_BTCUSDT.BINANCE"]
    assert equity.index.name == "close_time" and len(equity) == stats["bars"]
    assert equity.index[0] == equity.index[0].normalize()  # the midnight edge of the daily returns is exercised
    varied = 0
    for name, figures in strategies.items():
        returns = equity[f"return_{name}"]
        assert (1 + returns).prod() - 1 == pytest.approx(figures["total_return"], rel=TIGHT, abs=TIGHT), name
        daily = daily_from_bar_returns(returns)
        assert same(figures["sharpe"], empyrical.sharpe_ratio(daily, annualization=DAYS_PER_YEAR)), name
        assert same(figures["sortino"], empyrical.sortino_ratio(daily, annualization=DAYS_PER_YEAR)), name
        assert -empyrical.max_drawdown(returns) == pytest.approx(figures["max_drawdown"], rel=TIGHT, abs=1e-15), name
        varied += figures["max_drawdown"] > 0 and figures["sharpe"] is not None
    assert varied >= 2  # not a comparison of zeros
    # The equity column is the curve the returns come from.
    lstm = equity["equity_lstm"]
    assert lstm.iloc[-1] / lstm.iloc[0] == pytest.approx((1 + equity["return_lstm"].iloc[1:]).prod(), rel=TIGHT)


def test_equity_parquet_written_a_few_rows_at_a_time_equals_the_whole_frame(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "EQUITY_ROWS", 4)
    index = pd.date_range("2025-08-18 00:01", periods=11, freq="1min", tz="UTC", name="close_time")
    curves = {"lstm": pd.Series(np.linspace(100.0, 110.0, 11) ** 1.5, index=index),
              "buy_and_hold": pd.Series(np.cos(np.arange(11.0)) + 50.0, index=index)}
    starts = {"lstm": 999.0, "buy_and_hold": 50.5}
    close = pd.Series(np.arange(11.0) + 1.0, index=index).drop(index[[0, 5, 6]])  # bars missing: carried
    report.write_equity(tmp_path, report.row_groups_of(curves), starts, {"BTCUSDT.BINANCE": close})

    written = pd.read_parquet(tmp_path / report.EQUITY_FILE)
    whole = {}
    for name, equity in curves.items():
        whole[f"equity_{name}"] = equity
        whole[f"return_{name}"] = equity / equity.shift(1, fill_value=starts[name]) - 1.0
    whole["close_BTCUSDT.BINANCE"] = close.reindex(index).ffill().bfill()
    pd.testing.assert_frame_equal(written, pd.DataFrame(whole, index=index), check_exact=True, check_freq=False)
    assert pq.ParquetFile(tmp_path / report.EQUITY_FILE).num_row_groups == 3  # 4 + 4 + 3 rows
    assert [path.name for path in tmp_path.iterdir()] == [report.EQUITY_FILE]  # no staging file left
