"""The backtest report's forecast sections, from predictions.parquet a row group at a time.

Every figure keeps a bounded part of the file: a histogram's counts, a sample of the points,
lines thinned to about ``MAX_LINE_POINTS`` (``backtests.plots.Thinner``), counts of the reasons.
So the file is read a row group at a time (``backtests.predictions_file.file_frames``), twice:
once for each bar type's rows and the forecasts' range, then once per bar type for its figures,
each row beside the rows its realized return (h bars on) and its rolling IC (a window back) need
(``with_context``). Read whole, the predictions and what was computed from them were the largest
step of report.html, and grew with the range: +91 MB for reading the file alone at 512,751 bars.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from backtests.plots import Thinner
from backtests.predictions_file import TimeOrder, bar_type_groups, file_frames, rows_of_bar_type, with_context
from reporting.forecasts import (
    ForecastHistogram,
    bars_window,
    forecast_scatter,
    gate_figure,
    ic_figure,
    ic_series,
    kind_counts,
    point_column,
    realized_returns,
    realized_volatility,
    reasons_figure,
    sorted_counts,
    volatility_lines,
)
from reporting.page import MAX_LINE_POINTS, MAX_SCATTER_POINTS, Section
from strategies.volatility import GATE_REASON


@dataclass
class _Rows:
    """One bar type's rows in the file: how many, its forecasts' range, its bars' step."""

    count: int = 0
    low: float = np.inf
    high: float = -np.inf
    step: pd.Timedelta = pd.NaT  # the median step between the rows of its first row group


def forecast_sections(path: Path, settings: dict) -> list[Section]:
    """Forecast against realized returns, rolling IC, the threshold, volatility and the gate, per bar type."""
    horizon = settings.get("horizon")
    thresholds = settings.get("entry_threshold", {})
    names = pq.read_schema(path).names
    point = point_column(names)
    default = next(iter(thresholds), "")  # a file of one bar type names none
    forecast, gate, volatility = [], [], []
    for bar_type, rows in (_survey(path, point, default) or {default: _Rows()}).items():
        figures = _BarTypeFigures(point, horizon, thresholds.get(bar_type), rows, "volatility" in names)
        columns = [point, "close", "reason", "bar_type"] + (["volatility"] if figures.volatility else [])
        own_rows = (rows_of_bar_type(frame, bar_type) for frame in file_frames(path, columns))
        for frame, new in with_context(own_rows, before=figures.window - 1, after=horizon or 0):
            figures.add(frame, new)
        label = f" ({bar_type})" if bar_type else ""
        forecast += figures.forecast_figures(label)
        volatility += figures.volatility_figures(label)
        gate += figures.gate_figures(label)
    sections = [Section(
        "Forecasts and the entry threshold",
        "A forecast trades only when it clears the entry threshold (dashed): the round-trip taker fee plus a margin, "
        "unless set. The histogram shows how many forecasts could ever trade; the scatter and the rolling IC whether "
        "they knew anything about the return that followed." + ("" if horizon else
                                                                 " (This folder's stats.json names no horizon: "
                                                                 "realized returns cannot be lined up.)"),
        forecast)]
    if volatility:
        sections.append(Section("Volatility", "The network's forecast of the std of the h-bar log return beside the "
                                "volatility realized over those h bars.", volatility))
    sections.append(Section("Decisions and the risk gate", "Each forecast bar's decision, by its logged reason "
                            "(predictions.parquet); the gate keeps new positions out while the volatility forecast "
                            "exceeds a multiple of its trailing median.", gate))
    return sections


def _survey(path: Path, point: str, default: str) -> dict[str, _Rows]:
    """Each bar type's rows, in the file's order; a ValueError naming the file if one's are not in time order."""
    found: dict[str, _Rows] = {}
    order = TimeOrder(str(path))
    for frame in file_frames(path, [point, "bar_type"]):
        for bar_type, own in bar_type_groups(frame, default):
            rows = found.setdefault(bar_type, _Rows())
            order.check(bar_type, own.index)
            values = own[point].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            if len(values):
                rows.low, rows.high = min(rows.low, values.min()), max(rows.high, values.max())
            if pd.isna(rows.step) and len(own) >= 8:
                rows.step = pd.Series(own.index).diff().median()
            rows.count += len(own)
    return found


class _BarTypeFigures:
    """What one bar type's figures keep of its rows, added a chunk at a time (each with its context)."""

    def __init__(self, point: str, horizon: int | None, threshold: float | None, rows: _Rows, volatility: bool) -> None:
        self.point, self.horizon, self.threshold, self.volatility = point, horizon, threshold, volatility
        count = rows.count
        self.window = bars_window(rows.step, count)  # the rolling IC's
        self.seen = 0  # rows added so far
        self.histogram = ForecastHistogram(rows.low, rows.high) if np.isfinite(rows.low) else ForecastHistogram(0.0, 0.0)
        # The scatter's rows, at random but reproducibly, in order, as reporting.page.sample draws; chosen
        # among all the rows, so the few without a realized return yet (the last h) are left out of it.
        self.scatter_rows = (np.sort(np.random.default_rng(0).choice(count, size=MAX_SCATTER_POINTS, replace=False))
                             if count > MAX_SCATTER_POINTS else np.arange(count))
        self.scatter: list[pd.DataFrame] = []
        self.ic, self.realized_volatility, self.volatility_forecast = (Thinner(count, MAX_LINE_POINTS) for _ in range(3))
        self.blocked: list[pd.Series] = []  # the volatility forecast where the gate kept an entry out
        self.reasons = kind_counts(pd.Series([], dtype=str))

    def add(self, frame: pd.DataFrame, new: slice) -> None:
        """``frame.iloc[new]``: the next rows; ``frame``: with the rows before and after them (``with_context``)."""
        own = frame.iloc[new]
        self.histogram.add(own[self.point], self.threshold)
        if self.horizon:
            realized = realized_returns(frame["close"], self.horizon)
            start = self.seen
            picked = self.scatter_rows[(self.scatter_rows >= start) & (self.scatter_rows < start + len(own))] - start
            self.scatter.append(pd.DataFrame({"forecast": own[self.point], "realized": realized.iloc[new]}).iloc[picked])
            self.ic.add(ic_series(frame[self.point], realized, self.window).iloc[new].dropna())
            if self.volatility:
                self.realized_volatility.add(realized_volatility(frame["close"], self.horizon).iloc[new].dropna())
        if self.volatility:
            self.volatility_forecast.add(own["volatility"].dropna())
            gated = own["reason"].str.contains(GATE_REASON, regex=False).to_numpy(dtype=bool, na_value=False)
            self.blocked.append(own["volatility"][gated])
        kind_counts(own["reason"], self.reasons)
        self.seen += len(own)

    def forecast_figures(self, label: str) -> list:
        figures = [self.histogram.figure(self.threshold, f"Forecasts against the entry threshold{label}")]
        if self.horizon:
            both = pd.concat(self.scatter).dropna() if self.scatter else pd.DataFrame({"forecast": [], "realized": []})
            figures.append(forecast_scatter(both["forecast"], both["realized"], self.threshold,
                                            f"Forecast against realized {self.horizon}-bar return{label}"))
            figures.append(ic_figure({self.point: self.ic.line()}, self.window, f"Rolling IC{label}"))
        return figures

    def volatility_figures(self, label: str) -> list:
        if not (self.horizon and self.volatility):
            return []
        return [volatility_lines({"lstm": self.volatility_forecast.line()}, self.realized_volatility.line(),
                                 f"Volatility forecast against realized{label}", f"std of the {self.horizon}-bar log return")]

    def gate_figures(self, label: str) -> list:
        figures = [reasons_figure(sorted_counts(self.reasons), f"Why each bar's decision was taken{label}")]
        if self.volatility:
            blocked = pd.concat(self.blocked) if self.blocked else pd.Series(dtype=float)
            figures.append(gate_figure(self.volatility_forecast.line(), blocked, f"The volatility gate{label}"))
        return figures
