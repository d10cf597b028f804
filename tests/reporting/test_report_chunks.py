"""report.html reads equity.parquet and predictions.parquet a row group at a time (reporting.backtest.EquityFile,
reporting.forecast_file): its figures are the same however the files' rows are grouped, so what it holds is
a row group and each figure's bounded part, not the whole range."""

import shutil

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from backtests.predictions_file import write_frames
from backtests.stats import drawdown
from reporting.backtest import backtest_page
from reporting.forecast_file import forecast_sections
from reporting.page import thin
from strategies.decision_log import read_predictions_parquet

FILES = ("equity.parquet", "predictions.parquet")


def regrouped(folder, to, rows: int):
    """A copy of the backtest ``folder`` whose equity and predictions files hold ``rows`` rows a row group; its
    predictions with a volatility forecast, and the gate's reason on every 50th bar."""
    shutil.copytree(folder, to)
    for name in FILES:
        whole = read_predictions_parquet(folder / name)
        if name == "predictions.parquet":
            gated = np.arange(len(whole)) % 50 == 7
            whole = whole.assign(volatility=whole["prediction"].abs() + np.linspace(1e-3, 2e-3, len(whole)),
                                 reason=whole["reason"].where(~gated, "forecast +0.1 > 0.01; volatility gate: 2.1x its median"))
        (to / name).unlink()
        write_frames(to / name, (whole.iloc[start : start + rows] for start in range(0, len(whole), rows)))
    return to


def figures(folder) -> list[go.Figure]:
    return [part for section in backtest_page(folder)[2] for part in section.parts if isinstance(part, go.Figure)]


def traces(fig: go.Figure) -> list[dict]:
    return [{"name": trace.name, "x": trace.x, "y": trace.y} for trace in fig.data]


def test_the_report_is_the_same_whatever_the_row_groups(backtest_folder, tmp_path, monkeypatch):
    # Lines thinned and scatters sampled: fewer points than the 2,000-odd forecasts and 10,000-odd bars.
    for module in ("reporting.backtest", "reporting.forecast_file"):
        monkeypatch.setattr(f"{module}.MAX_LINE_POINTS", 300)
    monkeypatch.setattr("reporting.forecast_file.MAX_SCATTER_POINTS", 400)
    small, whole = (figures(regrouped(backtest_folder, tmp_path / str(rows), rows)) for rows in (997, 10**9))
    assert len(small) == len(whole) == 9  # equity, drawdown, fills; histogram, scatter, IC; volatility; reasons, gate
    compared = 0
    for one, other in zip(small, whole):
        assert one.layout.title.text == other.layout.title.text
        for a, b in zip(traces(one), traces(other), strict=True):
            assert a["name"] == b["name"]
            for axis in ("x", "y"):
                left, right = (np.asarray(() if values is None else values) for values in (a[axis], b[axis]))
                assert left.shape == right.shape, (one.layout.title.text, a["name"], axis)
                if left.dtype.kind == "f":
                    np.testing.assert_allclose(left, right, rtol=1e-12, atol=1e-15)  # a period's product in another order
                else:
                    assert (left == right).all()
                compared += left.size
    assert compared > 5_000


def test_the_equity_file_gives_each_figure_what_the_whole_column_gives(backtest_folder, tmp_path):
    folder = regrouped(backtest_folder, tmp_path / "small", 997)
    from reporting.backtest import EquityFile

    whole = pd.read_parquet(backtest_folder / "equity.parquet")
    equity = EquityFile(folder / "equity.parquet")
    assert equity.columns == list(whole.columns) and equity.rows == len(whole)
    assert equity.span == whole.index[-1] - whole.index[0]
    for column in whole:
        pd.testing.assert_series_equal(pd.concat(list(equity.chunks(column))), whole[column])
    for period in ("5min", "1h", "1D"):
        expected = (1 + whole["return_lstm"]).resample(period, closed="right", label="right").prod() - 1
        pd.testing.assert_series_equal(equity.compounded("return_lstm", period), expected, check_names=False, check_freq=False,
                                       rtol=1e-12)
    pd.testing.assert_series_equal(equity.thinned_fall("equity_buy_and_hold"), -100.0 * thin(drawdown(whole["equity_buy_and_hold"])),
                                   check_names=False)
    pd.testing.assert_series_equal(equity.thinned("close_BTCUSDT.BINANCE"), thin(whole["close_BTCUSDT.BINANCE"]), check_names=False)


def test_a_bar_types_rows_out_of_time_order_are_refused_naming_the_file(backtest_folder, tmp_path):
    rows = read_predictions_parquet(backtest_folder / "predictions.parquet")
    path = tmp_path / "predictions.parquet"
    write_frames(path, [rows.iloc[100:200], rows.iloc[:100]])
    with pytest.raises(ValueError, match=r"predictions.parquet: the rows of .* are not in time order"):
        forecast_sections(path, {"horizon": 15})
