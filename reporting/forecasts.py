"""Figures of forecasts beside what came true, shared by the backtest and evaluate reports.

A forecast is the model's h-bar log return made at a bar's close; what came true is
``log(close[t+h] / close[t])`` (``models.features.forward_log_return``), known h bars later. The
volatility forecast is the std of that h-bar return; what came true is the realized volatility
over the same h bars (``models.volatility.log_realized_vol``). The rolling IC is the Pearson
correlation of forecast and outcome over a trailing window of bars.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pyarrow as pa
import pyarrow.compute as pc

from models.features import forward_log_return
from models.volatility import log_realized_vol
from reporting.page import figure, sample, thin
from strategies.volatility import GATE_REASON

# Log returns on axes as percentages to 3 significant digits (0.036%), not SI prefixes (360µ).
RETURN_TICKS = ".3~%"
HISTOGRAM_BINS = 80
IC_CHUNK_ROWS = 50_000  # rows of a rolling IC computed at a time (rolling_corr)

# The decision log's reasons (strategies.decision, strategies.volatility, strategies.safety), by what they mean.
# Checked in order: a composed reason ("...; volatility gate: ...") goes to its first match.
REASON_KINDS = [
    (GATE_REASON, "blocked by the volatility gate"),
    ("minimum bars", "held for the minimum holding time"),
    ("cannot short", "short signal, but the venue cannot short"),
    ("quantile band", "blocked by the quantile gate"),
    ("inside ±", "forecast inside the entry threshold"),
    ("in flight", "waiting for an order in flight"),
    ("stop-loss", "stop-loss exit"),
    ("take-profit", "take-profit exit"),
    ("kill switch", "drawdown kill switch"),
    ("not finite", "forecast not finite"),
    (" > ", "long signal"),
    (" < -", "short signal"),
]


def point_column(columns) -> str:
    """The point forecast among a forecaster's outputs: ``prediction``, else the median quantile."""
    if "prediction" in columns:
        return "prediction"
    quantiles = sorted((c for c in columns if re.fullmatch(r"q[0-9.]+", str(c))), key=lambda c: float(c[1:]))
    if not quantiles:
        raise ValueError(f"no return forecast among the columns {list(columns)}: expected prediction or q0.5")
    return "q0.5" if "q0.5" in quantiles else quantiles[len(quantiles) // 2]


def realized_returns(close: pd.Series, horizon: int) -> pd.Series:
    """The h-bar log return after each bar (NaN for the last h)."""
    return forward_log_return(close.to_frame("close"), horizon)


def realized_volatility(close: pd.Series, horizon: int) -> pd.Series:
    """The realized std of the h-bar log return after each bar (NaN for the last h)."""
    return pd.Series(np.exp(log_realized_vol(close.to_numpy(dtype=float), horizon)), index=close.index)


def reason_counts(reasons: pd.Series) -> pd.Series:
    """How many of ``reasons`` are of each kind (REASON_KINDS: the first listed text a reason holds;
    else its words before the first colon), fewest first."""
    return sorted_counts(kind_counts(reasons))


def kind_counts(reasons: pd.Series, counts: dict[str, int] | None = None) -> dict[str, int]:
    """``counts`` (by kind, REASON_KINDS' first) with the kinds of ``reasons`` added: a chunk of a file's at a time.

    Matched in Arrow, kind by kind: a Python string made of every bar's reason to match it cost
    73 MB at 512,751 bars, the largest step of report.html over a year of 1-minute bars.
    """
    counts = counts if counts is not None else {kind: 0 for _, kind in REASON_KINDS}
    text = pa.array(reasons, type=pa.string(), from_pandas=True)
    left = pc.is_valid(text)  # not yet of a kind
    for needle, kind in REASON_KINDS:
        hit = pc.and_(left, pc.match_substring(text, needle))
        counts[kind] += pc.sum(hit).as_py() or 0
        left = pc.and_not(left, hit)
    others = pd.Series(text.filter(left).to_pylist(), dtype=object).str.split(":").str[0].value_counts()
    for kind, count in others.items():
        counts[kind] = counts.get(kind, 0) + int(count)
    return counts


def sorted_counts(counts: dict[str, int]) -> pd.Series:
    """The kinds that occur, fewest first (ties in REASON_KINDS' order)."""
    return pd.Series({kind: count for kind, count in counts.items() if count}, dtype="int64").sort_values(kind="stable")


def forecast_scatter(forecast: pd.Series, realized: pd.Series, threshold: float | None, title: str) -> go.Figure:
    """Forecast against the outcome, one dot per bar (a sample of them), the entry threshold's lines."""
    both = sample(pd.DataFrame({"forecast": forecast, "realized": realized}).dropna())
    fig = figure(title, "forecast (h-bar log return)", "realized (h-bar log return)")
    fig.update_xaxes(tickformat=RETURN_TICKS)
    fig.update_yaxes(tickformat=RETURN_TICKS)
    fig.add_trace(go.Scatter(x=both["forecast"], y=both["realized"], mode="markers", name="bars",
                             marker={"size": 4, "opacity": 0.35}))
    if threshold is not None:
        for x in (-threshold, threshold):
            fig.add_vline(x=x, line={"color": "firebrick", "dash": "dash"})
    if len(both) > 2 and both["forecast"].std() > 0:
        slope, intercept = np.polyfit(both["forecast"], both["realized"], 1)
        ends = np.array([both["forecast"].min(), both["forecast"].max()])
        fig.add_trace(go.Scatter(x=ends, y=intercept + slope * ends, mode="lines", name=f"fit, slope {slope:.3g}"))
    return fig


def rolling_ic(pairs: dict[str, tuple[pd.Series, pd.Series]], window: int, title: str) -> go.Figure:
    """Each forecaster's correlation with the outcome over the last ``window`` bars (:func:`ic_series`)."""
    return ic_figure({name: thin(ic_series(forecast, realized, window)) for name, (forecast, realized) in pairs.items()},
                     window, title)


def ic_series(forecast: pd.Series, realized: pd.Series, window: int) -> pd.Series:
    """The correlation of forecast and outcome over the last ``window`` bars, the pairs holding a NaN
    left out (at least window // 2 of them); NaN at a bar whose own pair holds one."""
    ic = rolling_corr(forecast, realized, window).replace([np.inf, -np.inf], np.nan)
    return ic.where(forecast.notna() & realized.notna())


def ic_figure(lines: dict[str, pd.Series], window: int, title: str) -> go.Figure:
    """Rolling IC lines, thinned already."""
    fig = figure(title, "time (UTC)", f"IC over {window} bars")
    for name, line in lines.items():
        fig.add_trace(go.Scatter(x=line.index, y=line.to_numpy(), mode="lines", name=name))
    fig.add_hline(y=0, line={"color": "grey", "dash": "dot"})
    return fig


def rolling_corr(x: pd.Series, y: pd.Series, window: int, chunk_rows: int = IC_CHUNK_ROWS) -> pd.Series:
    """pandas' rolling correlation of ``x`` and ``y`` (at least window // 2 pairs), made ``chunk_rows``
    at a time, each chunk with the window - 1 rows before it: pandas' temporaries for the whole
    series at once, about ten arrays of its length, took 63 MB at 512,751 bars."""
    parts = []
    for start in range(0, len(x), chunk_rows):
        first = max(0, start - window + 1)
        ic = x.iloc[first : start + chunk_rows].rolling(window, min_periods=window // 2).corr(y.iloc[first : start + chunk_rows])
        parts.append(ic.iloc[start - first :])
    return pd.concat(parts) if parts else x.iloc[:0].astype(float)


def ic_window(index: pd.DatetimeIndex) -> int:
    """A rolling window of about a day of bars, at least 100 and at most a quarter of the bars."""
    step = pd.Series(index).diff().median() if len(index) >= 8 else pd.NaT
    return bars_window(step, len(index))


def bars_window(step: pd.Timedelta, bars: int) -> int:
    """:func:`ic_window` of ``bars`` bars ``step`` apart (the median step)."""
    if bars < 8:
        return max(2, bars)
    per_day = int(pd.Timedelta(days=1) / step) if step > pd.Timedelta(0) else 100
    return int(max(min(max(per_day, 100), bars // 4), 2))


def threshold_histogram(forecast: pd.Series, threshold: float | None, title: str) -> go.Figure:
    """Where the forecasts fall against the entry threshold: how many could ever trade."""
    values = forecast.dropna()
    histogram = ForecastHistogram(float(values.min()), float(values.max())) if len(values) else ForecastHistogram(0.0, 0.0)
    histogram.add(values, threshold)
    return histogram.figure(threshold, title)


class ForecastHistogram:
    """:func:`threshold_histogram`'s counts, forecasts added a chunk at a time: ``HISTOGRAM_BINS`` bins
    from ``low`` to ``high`` (the forecasts' least and greatest, found beforehand), np.histogram's
    bins for them all at once. Binned here, not in the browser: 80 bars cost the page nothing,
    however many forecasts there are."""

    def __init__(self, low: float, high: float) -> None:
        self.range = (low, high)
        self.counts = np.zeros(HISTOGRAM_BINS, dtype=np.int64)
        self.forecasts = self.clear = 0
        self.reach = 0.0  # the largest |forecast|

    def add(self, forecast: pd.Series, threshold: float | None) -> None:
        values = forecast.dropna().to_numpy()
        if not len(values):
            return
        self.counts += np.histogram(values, bins=HISTOGRAM_BINS, range=self.range)[0]
        self.forecasts += len(values)
        self.clear += int((np.abs(values) > threshold).sum()) if threshold is not None else 0
        self.reach = max(self.reach, float(np.abs(values).max()))

    def figure(self, threshold: float | None, title: str) -> go.Figure:
        if threshold is not None:
            title += (f": {self.clear} of {self.forecasts} forecasts ({self.clear / max(self.forecasts, 1):.1%}) "
                      f"clear ±{threshold:.6f}")
        fig = figure(title, "forecast (h-bar log return)", "bars")
        fig.update_xaxes(tickformat=RETURN_TICKS)
        counts, edges = self.counts, np.histogram_bin_edges(self.range, bins=HISTOGRAM_BINS, range=self.range)
        if not self.forecasts:
            counts, edges = np.zeros(0), np.zeros(1)
        fig.add_trace(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, width=np.diff(edges), name="forecasts"))
        if threshold is not None:
            for x, side, where in ((-threshold, "short entry", "top left"), (threshold, "long entry", "top right")):
                fig.add_vline(x=x, line={"color": "firebrick", "dash": "dash"}, annotation_text=side, annotation_position=where)
            # Both the forecasts and the threshold in view, however far apart.
            reach = max(threshold, self.reach) * 1.1
            fig.update_xaxes(range=[-reach, reach])
        return fig


def volatility_lines(forecasts: dict[str, pd.Series], realized: pd.Series, title: str, y_title: str) -> go.Figure:
    """Volatility forecasts and the realized volatility over time, lines thinned already."""
    fig = figure(title, "time (UTC)", y_title)
    fig.add_trace(go.Scatter(x=realized.index, y=realized.to_numpy(), mode="lines", name="realized", line={"color": "lightgrey"}))
    for name, line in forecasts.items():
        fig.add_trace(go.Scatter(x=line.index, y=line.to_numpy(), mode="lines", name=f"forecast: {name}"))
    return fig


def reasons_figure(counts: pd.Series, title: str) -> go.Figure:
    """How many bars each kind of decision took (:func:`reason_counts` of the decision log's reasons)."""
    fig = figure(title, "bars", "", height=max(250, 60 + 30 * len(counts)))
    fig.add_trace(go.Bar(x=counts.to_numpy(), y=counts.index.tolist(), orientation="h", name="bars",
                         text=counts.to_numpy(), textposition="auto"))
    return fig


def gate_figure(volatility: pd.Series, blocked: pd.Series, title: str) -> go.Figure:
    """The volatility forecast over time (thinned already), and its value at each bar where the
    gate kept a new position out (``blocked``)."""
    fig = figure(title, "time (UTC)", "forecast volatility (std of the h-bar log return)")
    fig.add_trace(go.Scatter(x=volatility.index, y=volatility.to_numpy(), mode="lines", name="volatility forecast"))
    fig.add_trace(go.Scatter(x=blocked.index, y=blocked.to_numpy(), mode="markers", name=f"entry blocked by the gate ({len(blocked)})",
                             marker={"color": "firebrick", "size": 7, "symbol": "x"}))
    return fig
