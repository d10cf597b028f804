"""Report figures, written to PNG files.

Figures are built with matplotlib's object API on the Agg canvas, never through pyplot: nothing
is shown, no global backend is switched, and a figure is freed once it goes out of scope.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from backtests.stats import drawdown

DPI = 120
DEFAULT_MAX_POINTS = 4_000


def plot_equity(curves: dict[str, pd.Series], path: str | Path, title: str = "Equity",
                max_points: int = DEFAULT_MAX_POINTS) -> Figure:
    """Equity curves normalized to 1 at their start on top; the first curve's drawdown below.

    The first curve is the strategy, the others its benchmarks. Each line is thinned to about
    ``max_points`` points as in :func:`plot_trades` (every stretch's high and low kept): the figure
    is a few thousand pixels wide, and drawing every bar would cost memory growing with the range.
    """
    if not curves:
        raise ValueError("no equity curves to plot")
    figure = _figure(height=6.5)
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    for name, equity in curves.items():
        line = thin_out(equity / equity.iloc[0], max_points)
        top.plot(_times(line.index), line.to_numpy(), linewidth=1.2, label=name)
    top.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
    top.set_ylabel("equity / starting equity")
    top.set_title(title)
    top.legend(loc="best")

    strategy, equity = next(iter(curves.items()))
    fall = thin_out(-100.0 * drawdown(equity), max_points)
    bottom.fill_between(_times(fall.index), fall.to_numpy(), 0.0, color="tab:red", alpha=0.4, linewidth=0)
    bottom.set_ylabel(f"drawdown (%)\n{strategy}")
    bottom.set_xlabel("time (UTC)")
    _date_axis(bottom)
    return _save(figure, path)


def plot_trades(
    close: pd.Series,
    fills: pd.DataFrame,
    path: str | Path,
    max_points: int = DEFAULT_MAX_POINTS,
    title: str = "Price and fills",
) -> Figure:
    """Close price with buys (green ▲) and sells (red ▼) at their fill price and time.

    A long price line is thinned to about ``max_points`` points, keeping each stretch's high and
    low so spikes survive; fills are drawn from the fills table, so none is ever dropped.
    """
    figure = _figure(height=5.0)
    axes = figure.subplots()
    line = thin_out(close, max_points)
    axes.plot(_times(line.index), line.to_numpy(), color="tab:blue", linewidth=0.8, label="close")
    for side, marker, color in (("BUY", "^", "tab:green"), ("SELL", "v", "tab:red")):
        chosen = fills[fills["side"] == side]
        axes.scatter(
            _times(pd.DatetimeIndex(chosen["ts"])), chosen["price"].to_numpy(), marker=marker, color=color,
            s=36, zorder=3, label=f"{side.lower()} ({len(chosen)})",
        )
    axes.set_title(title)
    axes.set_ylabel("price")
    axes.set_xlabel("time (UTC)")
    axes.legend(loc="best")
    _date_axis(axes)
    return _save(figure, path)


def thin_out(series: pd.Series, max_points: int) -> pd.Series:
    """At most about ``max_points`` points of ``series``: each stretch's low and high, in time order."""
    count = len(series)
    if count <= max_points:
        return series
    stretch = int(np.ceil(count / (max_points // 2)))
    # Pad with NaN to whole stretches; nanargmin/nanargmax skip the padding.
    padded = np.full(int(np.ceil(count / stretch)) * stretch, np.nan)
    padded[:count] = series.to_numpy(dtype=float)
    rows = padded.reshape(-1, stretch)
    starts = np.arange(len(rows)) * stretch
    lows, highs = starts + np.nanargmin(rows, axis=1), starts + np.nanargmax(rows, axis=1)
    return series.iloc[np.unique(np.concatenate([[0, count - 1], lows, highs]))]


def _figure(height: float) -> Figure:
    figure = Figure(figsize=(11, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _times(index: pd.DatetimeIndex) -> np.ndarray:
    # matplotlib takes naive datetime64; the axis is labelled UTC.
    return index.tz_convert("UTC").tz_localize(None).to_numpy()


def _date_axis(axes) -> None:
    locator = AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def _save(figure: Figure, path: str | Path) -> Figure:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return figure
