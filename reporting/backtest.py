"""The backtest report (plain, pooled and walk-forward), from the files the backtest wrote.

It reads ``stats.json``, ``equity.parquet``, ``fills.csv``, and, where present,
``predictions.parquet`` and ``windows.json`` (``backtests.report``, ``backtests.walk_forward``).

The equity chart is NautilusTrader's own tearsheet chart (``create_equity_curve``) fed the bar
returns of equity.parquet compounded per period. Nautilus's full tearsheet
(``create_tearsheet``) needs the ``BacktestEngine`` of a run, gone once the run has written its
folder, and draws one benchmark; so the rest (drawdown of every strategy, fills, forecasts, the
gate) is plotly directly, from the folder's files alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pyarrow.parquet as pq
from nautilus_trader.analysis.tearsheet import (
    create_equity_curve,
    create_monthly_returns_heatmap,
)

from backtests.plots import DrawdownLine, Thinner
from backtests.predictions_file import file_frames
from backtests.report import EQUITY_FILE
from backtests.stats import STAT_KEYS
from reporting.forecast_file import forecast_sections
from reporting.page import MAX_LINE_POINTS, Section, figure, paragraph, table


def backtest_page(folder: Path) -> tuple[str, list[str], list[Section]]:
    """The title, summary and sections of a backtest folder's report."""
    stats = _read_json(folder / "stats.json")
    equity = _read_equity(folder)
    settings = stats.get("settings", {})
    names = [column.removeprefix("equity_") for column in equity.columns if column.startswith("equity_")]
    main = names[0]
    windows = _read_json(folder / "windows.json") if (folder / "windows.json").is_file() else None
    kind = ("walk-forward " if windows is not None else "") + ("pooled backtest" if "bar_types" in settings else "backtest")
    traded = settings.get("bar_types") or [settings.get("bar_type", "")]
    title = f"{kind.capitalize()}: {main} on {', '.join(traded)}"
    summary = [paragraph(f"{settings.get('first_bar_close', '?')} to {settings.get('last_bar_close', '?')}, "
                         f"{stats.get('bars', equity.rows)} bars, model {settings.get('model', '?')}, "
                         f"starting balance {settings.get('starting_balance', '?')}.")]
    if stats.get("in_sample"):
        summary.append(paragraph("IN-SAMPLE: the bars traded overlap the model's training data (stats.json: training).",
                                 "warning"))
    rows = {main: {key: stats.get(key) for key in STAT_KEYS}, **{n: {k: s.get(k) for k in STAT_KEYS}
                                                                   for n, s in stats.get("benchmarks", {}).items()}}
    sections = [
        Section("Statistics", "stats.json, one row per strategy; each benchmark ran on the same bars, engine, fees and "
                "sizing. Sharpe and Sortino are of daily returns annualized with 365 days; max_drawdown marks every bar.",
                [table(rows, first="strategy")]),
        Section("Equity and drawdown", "Each strategy's mark-to-market equity over its starting equity "
                "(NautilusTrader's equity-curve chart), and below it the fall from each one's running peak.",
                [_equity_figure(equity, names), _drawdown_figure(equity, names)]),
    ]
    if equity.span >= pd.Timedelta(days=60):
        sections[-1].parts.append(create_monthly_returns_heatmap(equity.compounded(f"return_{main}", "1D"),
                                                                 title=f"Monthly returns of {main} (%)"))
    if windows is not None:
        sections.append(_windows_section(windows, main))
    if "instruments" in stats:
        sections.append(Section("Each instrument alone", "Each instrument's own figures per strategy, as if its fills "
                                 "alone had traded from the whole starting balance.",
                                 [table({f"{key} {name}": {k: s.get(k) for k in STAT_KEYS}
                                         for key, per in stats["instruments"].items() for name, s in per.items()})]))
    fills = _read_fills(folder / "fills.csv")
    sections.append(Section("Fills on price", f"{main}'s fills at their price and time; the close thinned to about "
                            f"{MAX_LINE_POINTS} points per instrument, each stretch's high and low kept.",
                            [_fills_figure(equity, column.removeprefix("close_"), fills)
                             for column in equity.columns if column.startswith("close_")]))
    predictions_path = folder / "predictions.parquet"
    if predictions_path.is_file():
        sections += forecast_sections(predictions_path, settings)
    return title, summary, sections


def _equity_figure(equity: EquityFile, names: list[str]) -> go.Figure:
    period = _period(equity.span)
    main, *benchmarks = names
    compare = "buy_and_hold" if "buy_and_hold" in benchmarks else (benchmarks[0] if benchmarks else None)
    fig = create_equity_curve(
        equity.compounded(f"return_{main}", period),
        benchmark_returns=equity.compounded(f"return_{compare}", period) if compare else None,
        benchmark_name=compare or "Benchmark",
        title="Equity / starting equity",
    )
    fig.data[0].name = main
    for name in benchmarks:
        if name != compare:
            line = (1 + equity.compounded(f"return_{name}", period)).cumprod()
            fig.add_trace(go.Scatter(x=line.index, y=line.to_numpy(), mode="lines", name=name))
    fig.update_layout(showlegend=True, height=450, xaxis_title="time (UTC)")
    return fig


def _drawdown_figure(equity: EquityFile, names: list[str]) -> go.Figure:
    fig = figure("Drawdown (%)", "time (UTC)", "fall from the running peak (%)", height=320)
    for name in names:
        fall = equity.thinned_fall(f"equity_{name}")
        fig.add_trace(go.Scatter(x=fall.index, y=fall.to_numpy(), mode="lines", name=name,
                                 fill="tozeroy" if name == names[0] else None))
    return fig


def _fills_figure(equity: EquityFile, instrument: str, fills: pd.DataFrame) -> go.Figure:
    close = equity.thinned(f"close_{instrument}")
    fig = figure(f"{instrument}: close and fills", "time (UTC)", "price")
    fig.add_trace(go.Scatter(x=close.index, y=close.to_numpy(), mode="lines", name="close", line={"width": 1}))
    own = fills[fills["instrument_id"] == instrument] if "instrument_id" in fills else fills
    for side, symbol, color in (("BUY", "triangle-up", "green"), ("SELL", "triangle-down", "red")):
        chosen = own[own["order_side"] == side]
        fig.add_trace(go.Scatter(x=chosen["ts_event"], y=chosen["last_px"], mode="markers", name=f"{side.lower()} ({len(chosen)})",
                                 marker={"symbol": symbol, "color": color, "size": 9}))
    return fig


def _windows_section(windows: list[dict], main: str) -> Section:
    rows, returns = {}, {}
    for window in windows:
        per = window.get("stats") or window.get("strategies") or {}
        key = f"window {window['window']}"
        rows[key] = {"test start": window["test"]["start"], "test end": window["test"]["end"],
                     "in sample": window.get("in_sample"), **{f"{n} return": s.get("total_return") for n, s in per.items()}}
        for name, stats in per.items():
            returns.setdefault(name, {})[window["window"]] = stats.get("total_return")
    fig = figure("Return per test window", "window", "total return")
    for name, per_window in returns.items():
        fig.add_trace(go.Bar(x=list(per_window), y=list(per_window.values()), name=name))
    return Section("Walk-forward windows", f"windows.json: each window's model trained on the days before it, its test "
                   f"days traded out of sample; {main} and each benchmark's return per window.", [table(rows), fig])


def _period(span: pd.Timedelta) -> str:
    """The shortest of 1 min, 5 min, 15 min, 1 h, 4 h, 1 day giving at most ``MAX_LINE_POINTS`` periods over ``span``."""
    for period in ("1min", "5min", "15min", "1h", "4h", "1D"):
        if span / pd.Timedelta(period) <= MAX_LINE_POINTS:
            return period
    return "7D"


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise ValueError(f"{path} not found: not a report folder of `nautilus-lstm backtest`")
    return json.loads(path.read_text())


class EquityFile:
    """equity.parquet, read a row group at a time (``backtests.report.write_equity`` writes
    ``EQUITY_ROWS`` rows to each): each figure keeps a bounded part of a column (compounded per
    period, thinned), so what the report holds of the file does not grow with its range. Read whole,
    the close times and each column of a year of minutes were 4 MB apiece, and reading them, the
    compounding and the drawdowns of a backtest and its five benchmarks took report.html's peak up
    by 150 MB at 512,751 bars."""

    def __init__(self, path: Path) -> None:
        self.path = path
        stored = pq.ParquetFile(path)
        self.rows = stored.metadata.num_rows
        self.columns = [name for name in stored.schema_arrow.names if name != "close_time"]
        # The first and last close times, from the first and last row groups alone.
        ends = [stored.read_row_group(group, columns=["close_time"]).column(0).to_pandas()
                for group in (0, stored.num_row_groups - 1) if self.rows]
        self.start = ends[0].iloc[0] if self.rows else None
        self.span = ends[-1].iloc[-1] - self.start if self.rows else pd.Timedelta(0)

    def chunks(self, column: str) -> Iterator[pd.Series]:
        """The column, a row group at a time, on the close times."""
        for frame in file_frames(self.path, [column]):
            yield frame[column]

    def compounded(self, column: str, period: str) -> pd.Series:
        """The bar returns of ``column`` compounded over each period ending at its right edge (equity at period ends):
        ``(1 + returns).resample(period, closed="right", label="right").prod() - 1``, a row group at a time."""
        origin = self.start.floor("D")  # resample's own ("start_day"), for every row group alike
        parts = [(1 + chunk).resample(period, closed="right", label="right", origin=origin).prod() for chunk in self.chunks(column)]
        if not parts:
            return pd.Series(dtype=float)
        # A period two row groups share is the product of both parts; one between them without a bar grows by nothing.
        return pd.concat(parts).groupby(level=0).prod().asfreq(period, fill_value=1.0) - 1

    def thinned(self, column: str) -> pd.Series:
        """The column thinned for a line (``reporting.page.thin``)."""
        thinner = Thinner(self.rows, MAX_LINE_POINTS)
        for chunk in self.chunks(column):
            thinner.add(chunk.dropna())
        return thinner.line()

    def thinned_fall(self, column: str) -> pd.Series:
        """The fall of the equity ``column`` from its running peak, in percent, thinned for a line (``DrawdownLine``)."""
        fall = DrawdownLine(self.rows, MAX_LINE_POINTS)
        for chunk in self.chunks(column):
            fall.add(chunk)
        return fall.line()


def _read_equity(folder: Path) -> EquityFile:
    path = folder / EQUITY_FILE
    if not path.is_file():
        raise ValueError(f"{path} not found: the folder was written before equity.parquet existed; re-run the backtest")
    equity = EquityFile(path)
    if not any(column.startswith("equity_") for column in equity.columns) or not equity.rows:
        raise ValueError(f"{path} holds no equity_NAME column or no rows")
    return equity


def _read_fills(path: Path) -> pd.DataFrame:
    """fills.csv (Nautilus's fills report); a run without fills writes it without columns."""
    fills = pd.read_csv(path) if path.is_file() else pd.DataFrame()
    if fills.empty:
        return pd.DataFrame({"ts_event": pd.Series(dtype="datetime64[ns, UTC]"), "order_side": pd.Series(dtype=object),
                             "last_px": pd.Series(dtype=float), "instrument_id": pd.Series(dtype=object)})
    fills["ts_event"] = pd.to_datetime(fills["ts_event"], utc=True)
    fills["last_px"] = fills["last_px"].astype(float)
    return fills
