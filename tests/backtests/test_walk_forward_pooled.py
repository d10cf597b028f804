"""A walk-forward backtest of two instruments in one account: a pooled model per window."""

import json

import pandas as pd
import pytest

from backtests.runner import BacktestSettings
from backtests.walk_forward_pooled import run_pooled_walk_forward
from models.artifact import load_artifact
from reporting.html import write_report_html
from tests.fakes.training import BAR_TYPE
from tests.models.test_pooling import ETH, pooled  # noqa: F401  (the module fixture: a catalog and a pooled model)


def test_each_window_retrains_the_pooled_model_and_trades_both_in_one_account(pooled, tmp_path):  # noqa: F811
    catalog, model, _ = pooled
    settings = BacktestSettings(model_path=model, catalog=catalog, bar_types=(BAR_TYPE, ETH),
                                end=pd.Timestamp("2025-05-21 12:00", tz="UTC"), strategy={"entry_threshold": 1e-5})
    report = run_pooled_walk_forward(settings, train_days=1.0, test_days=0.25, out=tmp_path / "wf")
    windows = json.loads((tmp_path / "wf" / "windows.json").read_text())
    assert [w["window"] for w in windows] == [1, 2]
    for window in windows:
        assert set(window["test"]["bars"]) == {BAR_TYPE, ETH} and not window["in_sample"]
        artifact = load_artifact(window["model"])
        assert artifact.bar_types == [BAR_TYPE, ETH]  # each window's model is pooled, trained on its own past
        assert pd.Timestamp(artifact.instrument(ETH).data["last_bar_close"]) < pd.Timestamp(window["test"]["start"])
    # The account carries from window to window, and the stitched report ends where the last window did.
    for name in ("lstm", "buy_and_hold"):
        first, second = (w["strategies"][name] for w in windows)
        assert second["starting_balance"] == pytest.approx(first["ending_equity"])
        assert report["benchmarks"].get(name, report)["total_return"] == pytest.approx(second["ending_equity"] / 10_000 - 1)
    fills = pd.read_csv(tmp_path / "wf" / "fills.csv")
    assert set(fills["instrument_id"]) == {"BTCUSDT.BINANCE", "ETHUSDT.BINANCE"} and set(fills["window"]) == {1, 2}
    assert len(set(fills["account_id"].dropna())) == 1
    assert report["settings"]["bar_types"] == [BAR_TYPE, ETH] and not report["in_sample"]
    page = write_report_html(tmp_path / "wf").read_text()
    assert "Walk-forward pooled backtest" in page and "Each instrument alone" in page and "window 2<" in page
