"""report.html in a real browser: headless Chromium opens it offline and must throw no JavaScript
error, draw every chart with data, and show a page that is not blank."""

import json

import numpy as np
import pytest

from reporting.page import REPORT_FILE
from scripts.cli import main
from tests.fakes.report_runs import hand_made_sweep
from tests.reporting.chromium import open_page

# Charts that may rightly hold an empty trace beside full ones (no sells, no gate blocks).
MAY_BE_EMPTY = ("sell (", "buy (", "entry blocked by the gate")


def assert_rendered(view, expected_charts: int) -> None:
    assert not view.errors, f"JavaScript errors: {view.errors}"
    assert len(view.charts) == expected_charts
    for chart in view.charts:
        assert chart["plotted"] and chart["svgs"] > 0, f"{chart['id']} was not drawn"
        assert chart["traces"], f"{chart['id']} has no trace"
        assert sum(trace["points"] or 0 for trace in chart["traces"]) > 0, f"{chart['id']} has no data: {chart['traces']}"
        for trace in chart["traces"]:
            assert trace["points"] or trace["name"].startswith(MAY_BE_EMPTY), f"{chart['id']}: empty trace {trace}"
    pixels = view.screenshot
    assert pixels.std() > 0.05, "the screenshot is blank"
    assert (pixels.mean(axis=2) < 0.9).mean() > 0.02, "the screenshot is nearly all white"


def figure_count(path) -> int:
    return path.read_text().count('<div id="figure-')


def test_backtest_report_in_chromium(backtest_folder, capsys):
    (backtest_folder / REPORT_FILE).unlink(missing_ok=True)
    assert main(["report", str(backtest_folder)]) == 0  # regenerated from the folder's files alone
    path = backtest_folder / REPORT_FILE
    assert f"report written to {path}" in capsys.readouterr().out
    text = path.read_text()
    assert "<script src=" not in text and len(text) < 12e6  # plotly.js inline: opens offline, a few MB
    charts = figure_count(path)
    # Equity, drawdown, fills, threshold, forecast vs realized, rolling IC, volatility, decisions, gate.
    assert charts == 9
    view = open_page(path)
    assert_rendered(view, charts)
    names = {trace["name"] for chart in view.charts for trace in chart["traces"]}
    stats = json.loads((backtest_folder / "stats.json").read_text())
    assert {"lstm", *stats["benchmarks"]} <= names  # every benchmark beside the strategy


def test_sweep_report_in_chromium(tmp_path):
    folder = hand_made_sweep(tmp_path / "sweep")
    assert main(["report", str(folder)]) == 0
    path = folder / REPORT_FILE
    text = path.read_text()
    for heading in ("Leaderboard", "Parameter importances", "Deflated Sharpe ratio", "Probability of backtest overfitting",
                    "Locked segment", "does NOT survive"):
        assert heading in text
    # Leaderboard best first: trial 9 (objective 0.9) heads it; the failed and pruned trials are not on it.
    board = text[text.index("<h2>Leaderboard"):]
    assert board.index("#9") < board.index("#6") and "#10<" not in board and "#11<" not in board
    view = open_page(path)
    assert_rendered(view, figure_count(path))  # objective history, importances, deflated Sharpe, PBO logits
    assert len(view.charts) == 4


def test_a_sweep_without_its_optional_parts_still_reports(tmp_path):
    folder = hand_made_sweep(tmp_path / "bare", with_optional=False)
    assert main(["report", str(folder)]) == 0
    text = (folder / REPORT_FILE).read_text()
    assert "Leaderboard" in text and "Deflated Sharpe ratio" not in text and figure_count(folder / REPORT_FILE) == 1


def test_report_of_a_folder_that_is_no_output_folder_says_so(tmp_path, caplog):
    assert main(["report", str(tmp_path)]) == 2
    assert "holds none of sweep.json, metrics.json, stats.json" in caplog.text


@pytest.mark.parametrize("rows", [100_000])
def test_long_series_are_thinned(rows):
    import pandas as pd

    from reporting.page import MAX_LINE_POINTS, thin

    series = pd.Series(np.sin(np.arange(rows) / 50.0), index=pd.date_range("2025-01-01", periods=rows, freq="min", tz="UTC"))
    series.iloc[54_321] = 5.0  # a one-bar spike survives the thinning
    line = thin(series)
    assert len(line) <= MAX_LINE_POINTS + 2 and line.max() == 5.0


def test_the_browser_check_sees_errors_and_empty_charts(tmp_path):
    """The checks above could fail: a thrown error, a logged one and a chart without data are all seen."""
    import plotly.graph_objects as go

    from reporting.page import Section, render

    page = render("broken", ["<script>console.error('logged'); throw new Error('thrown');</script>"],
                  [Section("empty", parts=[go.Figure()])])
    path = tmp_path / "broken.html"
    path.write_text(page)
    view = open_page(path)
    assert any("thrown" in error for error in view.errors) and any("logged" in error for error in view.errors)
    assert view.charts == [{"id": "figure-1", "plotted": True, "svgs": 3, "traces": []}]
    with pytest.raises(AssertionError, match="JavaScript errors"):
        assert_rendered(view, 1)
