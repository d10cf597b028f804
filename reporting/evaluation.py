"""The evaluate report, from ``metrics.json`` and ``forecasts.parquet`` (``models.evaluate``,
``models.evaluation_forecasts``): the verdict, the metric tables, each fold's IC, and the
forecasts against what came true, from the test rows alone."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from models.evaluate import REPORTED, VOLATILITY_REPORTED
from models.evaluation_forecasts import FORECASTS_FILE
from reporting.forecasts import (
    forecast_scatter,
    ic_window,
    rolling_ic,
    threshold_histogram,
    volatility_lines,
)
from reporting.page import Section, figure, paragraph, table, thin

# Drawn beside the network in the forecast charts; the rest are in the tables.
SHOWN_BASELINES = ("ridge", "lightgbm", "momentum")
SHOWN_VOLATILITY = ("ewma", "har", "garch")


def evaluation_page(folder: Path) -> tuple[str, list[str], list[Section]]:
    metrics = json.loads((folder / "metrics.json").read_text())
    data = metrics.get("data", {})
    title = f"Evaluation: {metrics.get('horizon', '?')}-bar forecasts, seeds {metrics.get('seeds', '?')}"
    summary = [paragraph(f"Data {data.get('first_bar_close', data.get('start', '?'))} to "
                         f"{data.get('last_bar_close', data.get('end', '?'))}; {len(metrics.get('folds', []))} walk-forward "
                         "folds, every model trained on each fold's past and scored on its test block.")]
    if metrics.get("verdict"):
        summary.append(f"<p><b>Verdict.</b> {html.escape(metrics['verdict'])}</p>")
    sections = [Section("Returns: out-of-sample metrics", "Mean ± std over seeds, pooled over the test folds.",
                        [table({name: {k: entry.get(k) for k in REPORTED} for name, entry in metrics.get("models", {}).items()},
                               first="model"), _fold_ic(metrics.get("models", {}))])]
    volatility = metrics.get("volatility", {})
    if volatility.get("models"):
        sections.append(Section("Volatility: out-of-sample metrics", volatility.get("target", ""),
                                [table({name: {k: entry.get(k) for k in VOLATILITY_REPORTED}
                                        for name, entry in volatility["models"].items()}, first="model")]))
    path = folder / FORECASTS_FILE
    if path.is_file():
        sections += _forecast_sections(pd.read_parquet(path), metrics.get("horizon"))
    else:
        sections.append(Section("Forecasts", f"{path.name} is not in this folder (written by evaluate since the report "
                                "existed): re-run evaluate to see the forecasts beside what came true."))
    return title, summary, sections


def _fold_ic(models: dict) -> go.Figure:
    fig = figure("IC per test fold (mean over seeds)", "fold", "IC")
    for name, entry in models.items():
        ics = [fold.get("ic", {}).get("mean") for fold in entry.get("folds", [])]
        if any(ic is not None and np.isfinite(ic) for ic in ics):
            fig.add_trace(go.Bar(x=list(range(1, len(ics) + 1)), y=ics, name=name))
    fig.add_hline(y=0, line={"color": "grey"})
    return fig


def _forecast_sections(forecasts: pd.DataFrame, horizon) -> list[Section]:
    sections = []
    for bar_type, own in forecasts.groupby("bar_type"):
        own = own.sort_index()
        realized = own["realized_return"]
        models = [c.removeprefix("return_") for c in own if c.startswith("return_")]
        shown = [name for name in ("lstm", *SHOWN_BASELINES) if name in models]
        parts = [forecast_scatter(own[f"return_{name}"], realized, None, f"{name}: forecast against realized") for name in shown[:2]]
        parts.append(rolling_ic({name: (own[f"return_{name}"], realized) for name in shown}, ic_window(own.index),
                                "Rolling IC over the test rows"))
        if "lstm" in models:
            parts.append(threshold_histogram(own["return_lstm"], None, "Distribution of the network's forecasts"))
        sections.append(Section(f"Return forecasts, {bar_type}", f"{horizon}-bar log return forecasts of the test rows "
                                "(first seed) against the return that followed.", parts))
        volatility = {c.removeprefix("log_volatility_"): c for c in own if c.startswith("log_volatility_")}
        chosen = {name: thin(np.exp(own[column])) for name, column in volatility.items() if name == "lstm" or name in SHOWN_VOLATILITY}
        if chosen:
            sections.append(Section(f"Volatility forecasts, {bar_type}", "The std of the h-bar log return: each "
                                    "model's forecast beside the realized volatility of those h bars.",
                                    [volatility_lines(chosen, thin(np.exp(own["realized_log_volatility"])),
                                                      "Volatility forecasts against realized", "std of the h-bar log return")]))
    return sections
