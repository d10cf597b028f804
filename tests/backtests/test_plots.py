"""Report figures: PNG files that open, long price lines thinned without losing extremes or fills."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from marketdata.klines import read_klines, to_bars_frame
from backtests.plots import EquityLines, Thinner, plot_equity, plot_trades, thin_out
from backtests.stats import FILL_COLUMNS, equity_curve
from marketdata.timeframes import parse_timeframe
from tests.conftest import FIXTURE_7D

M1 = parse_timeframe("1m")


@pytest.fixture(scope="module")
def close(shared_data) -> pd.Series:
    return to_bars_frame(read_klines(shared_data / FIXTURE_7D), M1)["close"]


@pytest.fixture(scope="module")
def fills(close) -> pd.DataFrame:
    """A buy and a sell every 1,001 bars: bars the thinned price line mostly leaves out."""
    bars = np.arange(17, len(close), 1_001)
    sides = np.where(np.arange(len(bars)) % 2 == 0, "BUY", "SELL")
    prices = close.to_numpy()[bars]
    return pd.DataFrame(
        {"ts": close.index[bars], "side": sides, "quantity": 0.01, "price": prices, "fee": prices * 1e-5},
        columns=FILL_COLUMNS,
    )


def assert_png(path, min_bytes=20_000):
    assert path.stat().st_size > min_bytes
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width >= 1000 and image.height >= 500


def test_plot_equity_writes_a_png(tmp_path, close, fills):
    curves = {
        "scripted": equity_curve(fills, close, 10_000.0),
        "buy and hold": 10_000.0 * close / close.iloc[0],
    }
    path = tmp_path / "report" / "equity.png"
    figure = plot_equity(curves, path, title="BTC/USDT 1m: scripted fills vs buy and hold")
    assert_png(path)
    top, bottom = figure.axes
    assert [text.get_text() for text in top.get_legend().get_texts()] == list(curves)
    assert all(line.get_ydata()[0] == 1.0 for line in top.get_lines()[:2])  # normalized at the start
    assert bottom.get_ylabel().startswith("drawdown")


def test_plot_trades_writes_a_png_and_draws_every_fill(tmp_path, close, fills):
    path = tmp_path / "trades.png"
    figure = plot_trades(close, fills, path, max_points=1_000, title="BTC/USDT 1m fills")
    assert_png(path)
    (axes,) = figure.axes
    (price_line,) = axes.get_lines()
    assert len(price_line.get_xdata()) <= 1_000 + 2
    buys, sells = (collection.get_offsets() for collection in axes.collections)
    assert len(buys) + len(sells) == len(fills)
    np.testing.assert_array_equal(np.asarray(buys)[:, 1], fills.loc[fills["side"] == "BUY", "price"])


def test_thin_out_keeps_each_stretch_extremes_and_both_ends(close):
    thinned = thin_out(close, 500)
    assert len(thinned) <= 502
    assert thinned.index.is_monotonic_increasing
    assert thinned.index[0] == close.index[0] and thinned.index[-1] == close.index[-1]
    assert thinned.max() == close.max() and thinned.min() == close.min()
    short = close.iloc[:100]
    assert thin_out(short, 500).equals(short)


@pytest.mark.parametrize("max_points", [7, 40, 500, 5_000])
def test_a_series_thinned_a_chunk_at_a_time_gives_the_whole_series_line(close, max_points, monkeypatch):
    monkeypatch.setattr("backtests.plots.BLOCK_ROWS", 61)  # a long series reduced a block at a time, too
    rng = np.random.default_rng(max_points)
    series = close.iloc[:3_001]
    cuts = np.sort(rng.integers(0, len(series), size=9))
    thinner = Thinner(len(series), max_points)
    for part in np.split(np.arange(len(series)), cuts):
        thinner.add(series.iloc[part])
    line = thinner.line()
    assert line.equals(thin_out(series, max_points))
    assert line.index[0] == series.index[0] and line.index[-1] == series.index[-1]
    assert line.min() == series.min() and line.max() == series.max() and len(line) <= max_points + 2


def test_equity_lines_made_a_chunk_at_a_time_are_the_whole_curves_lines(close, fills):
    curves = {"scripted": equity_curve(fills, close, 10_000.0), "buy and hold": 10_000.0 * close / close.iloc[0]}
    whole, chunked = EquityLines(list(curves), len(close), 300), EquityLines(list(curves), len(close), 300)
    for name, equity in curves.items():
        whole.add(name, equity)
        for start in range(0, len(equity), 997):
            chunked.add(name, equity.iloc[start : start + 997])
    for name in curves:
        assert chunked.lines()[name].equals(whole.lines()[name])
        assert chunked.lines()[name].iloc[0] == 1.0 and len(whole.lines()[name]) <= 302
    assert chunked.fall().equals(whole.fall()) and chunked.fall().min() < 0
