"""``report.html`` of any output folder: :func:`write_report_html` is what every command calls
after its run, and what ``nautilus-lstm report DIR`` calls on a folder written before.

The folder's kind is told by its files: ``sweep.json`` (a sweep), ``metrics.json`` (evaluate),
``stats.json`` (a backtest: plain, pooled, or walk-forward with ``windows.json``). The report is
built from those files alone, so it can be written again at any time.
"""

from __future__ import annotations

import logging
from pathlib import Path

from models.jsonio import replacing
from reporting.backtest import backtest_page
from reporting.evaluation import evaluation_page
from reporting.page import REPORT_FILE, render
from reporting.sweep import sweep_page

log = logging.getLogger(__name__)

# Which file says which kind of folder, checked in this order (a sweep folder may hold a backtest's files too).
KINDS = [("sweep.json", "sweep", sweep_page), ("metrics.json", "evaluate", evaluation_page), ("stats.json", "backtest", backtest_page)]


def folder_kind(folder: Path) -> str:
    """``sweep``, ``evaluate`` or ``backtest``; a ValueError naming the folder if it is none of them."""
    for name, kind, _ in KINDS:
        if (Path(folder) / name).is_file():
            return kind
    raise ValueError(f"{folder} holds none of {', '.join(name for name, _, _ in KINDS)}: "
                     "not an output folder of backtest, evaluate or sweep")


def write_report_html(folder: Path) -> Path:
    """Write ``folder/report.html`` from the folder's files (see the module docstring); its path."""
    folder = Path(folder)
    kind = folder_kind(folder)
    page = next(make for _, name, make in KINDS if name == kind)
    title, summary, sections = page(folder)
    path = folder / REPORT_FILE
    with replacing(path) as staging:
        Path(staging).write_text(render(title, summary, sections), encoding="utf-8")
    log.info("report written to %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return path
