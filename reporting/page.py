"""The page: sections of text, tables and plotly figures assembled into one self-contained HTML file.

plotly.js is written once, inline, into the page's head, so ``report.html`` opens offline and
each figure adds only its data. Figures' long series are thinned before they get here
(:func:`thin`), so a report of months of minute bars stays a few MB.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from backtests.plots import thin_out

REPORT_FILE = "report.html"
# Points per line drawn: enough to see every swing on a wide screen, few enough to keep the file small.
MAX_LINE_POINTS = 3_000
MAX_SCATTER_POINTS = 4_000
FIGURE_HEIGHT = 420

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
p.note { color: #555; max-width: 60em; } p.warning { color: #b00; font-weight: bold; }
div.table { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; } thead th { background: #f4f4f4; }
"""


@dataclass
class Section:
    """A heading, a sentence or two on how to read what follows, then tables and figures in order."""

    title: str
    note: str = ""
    parts: list = field(default_factory=list)  # go.Figure, or HTML text (a table)


def thin(series: pd.Series, max_points: int = MAX_LINE_POINTS) -> pd.Series:
    """A line of at most about ``max_points`` points that keeps each stretch's low and high
    (``backtests.plots.thin_out``), NaNs dropped first."""
    return thin_out(series.dropna(), max_points)


def sample(frame: pd.DataFrame, max_points: int = MAX_SCATTER_POINTS, seed: int = 0) -> pd.DataFrame:
    """At most ``max_points`` rows of a scatter, drawn at random but reproducibly, in their order."""
    if len(frame) <= max_points:
        return frame
    rows = np.sort(np.random.default_rng(seed).choice(len(frame), size=max_points, replace=False))
    return frame.iloc[rows]


def figure(title: str, x_title: str = "", y_title: str = "", height: int = FIGURE_HEIGHT) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, template="plotly_white", height=height,
                      margin={"t": 60, "b": 50, "l": 60, "r": 30}, legend={"orientation": "h", "y": -0.2})
    return fig


def table(rows: dict[str, dict], columns: list[str] | None = None, first: str = "") -> str:
    """An HTML table: one row per key of ``rows``, one column per key of its dict (or ``columns``)."""
    columns = columns or list(dict.fromkeys(key for row in rows.values() for key in row))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in [first, *columns])
    body = "".join(
        "<tr><td>" + html.escape(str(name)) + "</td>" + "".join(f"<td>{cell(row.get(c))}</td>" for c in columns) + "</tr>"
        for name, row in rows.items()
    )
    return f'<div class="table"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def cell(value) -> str:
    """A number to 4 significant digits, n/a for missing or undefined, anything else as text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    if isinstance(value, dict) and set(value) >= {"mean", "std"}:  # a mean and std over seeds
        return cell(value["mean"]) + ("" if not value["std"] else f" ± {cell(value['std'])}")
    return html.escape(str(value))


def paragraph(text: str, kind: str = "note") -> str:
    return f'<p class="{kind}">{html.escape(text)}</p>'


def render(title: str, summary: list[str], sections: list[Section]) -> str:
    """The whole page: plotly.js once in the head, then the summary lines and each section."""
    body = [f"<h1>{html.escape(title)}</h1>", *summary]
    number = 0
    for section in sections:
        body.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.note:
            body.append(paragraph(section.note))
        for part in section.parts:
            if isinstance(part, go.Figure):
                number += 1
                body.append(part.to_html(full_html=False, include_plotlyjs=False, div_id=f"figure-{number}",
                                         config={"responsive": True, "displaylogo": False}))
            else:
                body.append(part)
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body.append(paragraph(f"Written {made} from the files in this folder; `nautilus-lstm report DIR` writes it again."))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style>"
        f"<script type=\"text/javascript\">{get_plotlyjs()}</script></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
