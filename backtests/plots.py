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
BLOCK_ROWS = 65_536  # rows a Thinner pads and reduces at a time


def plot_equity(curves: dict[str, pd.Series], path: str | Path, title: str = "Equity",
                max_points: int = DEFAULT_MAX_POINTS) -> Figure:
    """Equity curves normalized to 1 at their start on top; the first curve's drawdown below.

    The first curve is the strategy, the others its benchmarks. Each line is thinned to about
    ``max_points`` points as in :func:`plot_trades` (every stretch's high and low kept): the figure
    is a few thousand pixels wide, and drawing every bar would cost memory growing with the range.
    """
    if not curves:
        raise ValueError("no equity curves to plot")
    lines = EquityLines(list(curves), len(next(iter(curves.values()))), max_points)
    for name, equity in curves.items():
        lines.add(name, equity)
    return plot_equity_lines(lines, path, title)


class EquityLines:
    """:func:`plot_equity`'s lines, each curve given a chunk at a time in time order: normalized to
    its first equity and thinned (:class:`Thinner`), and the first curve's drawdown thinned."""

    def __init__(self, names: list[str], count: int, max_points: int = DEFAULT_MAX_POINTS) -> None:
        self.names = names
        self._lines = {name: Thinner(count, max_points) for name in names}
        self._first: dict[str, float] = {}
        self._fall = DrawdownLine(count, max_points)

    def add(self, name: str, equity: pd.Series) -> None:
        if not len(equity):
            return
        first = self._first.setdefault(name, float(equity.iloc[0]))
        self._lines[name].add(equity / first)
        if name == self.names[0]:
            self._fall.add(equity)

    def lines(self) -> dict[str, pd.Series]:
        return {name: thinner.line() for name, thinner in self._lines.items()}

    def fall(self) -> pd.Series:
        return self._fall.line()


class DrawdownLine:
    """An equity curve's fall from its running peak in percent (-100 x ``backtests.stats.drawdown``),
    the curve given a chunk at a time in time order, thinned (:class:`Thinner`; NaNs dropped)."""

    def __init__(self, count: int, max_points: int) -> None:
        self._thinner, self._peak = Thinner(count, max_points), -np.inf

    def add(self, equity: pd.Series) -> None:
        if not len(equity):
            return
        self._thinner.add(-100.0 * drawdown(equity, self._peak).dropna())
        self._peak = max(self._peak, float(equity.max()))

    def line(self) -> pd.Series:
        return self._thinner.line()


def plot_equity_lines(lines: EquityLines, path: str | Path, title: str = "Equity") -> Figure:
    """:func:`plot_equity` of lines made a chunk at a time."""
    figure = _figure(height=6.5)
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    for name, line in lines.lines().items():
        top.plot(_times(line.index), line.to_numpy(), linewidth=1.2, label=name)
    top.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
    top.set_ylabel("equity / starting equity")
    top.set_title(title)
    top.legend(loc="best")

    fall = lines.fall()
    bottom.fill_between(_times(fall.index), fall.to_numpy(), 0.0, color="tab:red", alpha=0.4, linewidth=0)
    bottom.set_ylabel(f"drawdown (%)\n{lines.names[0]}")
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
    thinner = Thinner(len(series), max_points)
    thinner.add(series)
    return thinner.line()


class Thinner:
    """:func:`thin_out` of a series given a chunk at a time, in order, of at most ``count`` rows in
    all: the stretches lie where they would in the whole series, so the line is the same, and what
    is held is one stretch and the points kept (a report's lines over any range in flat memory)."""

    def __init__(self, count: int, max_points: int) -> None:
        self.stretch = 1 if count <= max_points else int(np.ceil(count / (max_points // 2)))
        self._kept: list[pd.Series] = []  # the points kept so far, in order
        self._open: pd.Series | None = None  # the rows of the stretch not yet whole
        self._last: pd.Series | None = None  # the last row given
        self._rows = 0  # rows given so far
        self._kept_to = -1  # the position of the last point kept

    def add(self, series: pd.Series) -> None:
        if not len(series):
            return
        start = self._rows - (len(self._open) if self._open is not None else 0)
        if self._open is not None:
            series = pd.concat([self._open, series])
        self._rows = start + len(series)
        whole = len(series) // self.stretch * self.stretch
        block = self.stretch * max(1, BLOCK_ROWS // self.stretch)  # whole stretches: a long series' copy made a block at a time
        for first in range(0, whole, block):
            self._keep(series.iloc[first : min(first + block, whole)], start + first)
        self._open, self._last = series.iloc[whole:], series.iloc[-1:]

    def line(self) -> pd.Series:
        """The points kept: the first and last rows, and each stretch's low and high."""
        if self._open is not None:
            self._keep(self._open, self._rows - len(self._open))
            self._open = None
        if self._kept_to < self._rows - 1:
            self._kept.append(self._last)
            self._kept_to = self._rows - 1
        return pd.concat(self._kept) if self._kept else pd.Series(dtype=float)

    def _keep(self, rows: pd.Series, start: int) -> None:
        """Each stretch's low and high of ``rows`` (at ``start`` in the whole: whole stretches but for
        the last), and the very first row."""
        if not len(rows):
            return
        padded = np.full(-(-len(rows) // self.stretch) * self.stretch, np.nan)  # NaN-padded to whole stretches
        padded[: len(rows)] = rows.to_numpy(dtype=float)
        blocks = padded.reshape(-1, self.stretch)
        starts = np.arange(len(blocks)) * self.stretch
        picked = np.concatenate([starts + np.nanargmin(blocks, axis=1), starts + np.nanargmax(blocks, axis=1)])
        if start == 0:
            picked = np.append(picked, 0)
        picked = np.unique(picked)
        self._kept.append(rows.iloc[picked])
        self._kept_to = start + int(picked[-1])


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
