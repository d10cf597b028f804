"""The backtest's verdict (backtests.verdict): forecasts scored on the backtest's own rows, and lines that say only that."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from backtests.predictions_file import write_frames
from backtests.verdict import FORECAST_COLUMNS, forecast_check, verdict
from strategies.decision_log import read_predictions_parquet

HORIZON = 4


def predictions(forecast: str, n: int = 600, seed: int = 0, bar_type: str = "BTCUSDT.BINANCE-1-HOUR-LAST-EXTERNAL") -> pd.DataFrame:
    """A random walk's closes with a forecast of the next HORIZON bars' log return: the truth plus a
    little noise ("informed"), pure noise larger than the moves ("noise"), or almost zero ("timid")."""
    rng = np.random.default_rng(seed)
    step = rng.normal(0, 0.01 * np.exp(np.sin(np.arange(n) / 50)))  # clustered volatility
    close = 100 * np.exp(np.cumsum(step))
    ahead = np.full(n, 0.0)
    ahead[:-HORIZON] = np.log(close[HORIZON:] / close[:-HORIZON])
    noise = rng.normal(0, 0.02, n)
    prediction = {"informed": ahead + 0.1 * noise, "noise": 3 * noise, "timid": 1e-6 * noise}[forecast]
    index = pd.date_range("2025-06-01", periods=n, freq="h", tz="UTC", name="close_time")
    # The volatility forecast: the realized one over the next h bars, known in hindsight (a perfect one).
    realized = pd.Series(step[::-1] ** 2).rolling(HORIZON).sum().to_numpy()[::-1]
    realized = np.r_[realized[1:], np.nan]
    volatility = np.sqrt(np.where(np.isfinite(realized), realized, 1e-4))
    return pd.DataFrame({"close": close, "prediction": prediction, "volatility": volatility, "bar_type": bar_type}, index=index)


@pytest.mark.parametrize(("forecast", "judged"), [
    ("informed", "beats the random walk"),
    ("noise", "significantly WORSE than the random walk"),
    ("timid", "not significantly different from the random walk"),
])
def test_the_return_forecast_is_judged_by_what_it_measured(tmp_path, forecast, judged):
    write_report(tmp_path, predictions(forecast))
    lines = verdict(tmp_path, horizon=HORIZON)
    assert judged in lines[2]


def test_forecasts_are_scored_on_each_instruments_rows_with_an_outcome_only():
    rows = pd.concat([predictions("informed", n=300), predictions("informed", n=200, seed=1, bar_type="ETHUSDT.BINANCE-1-HOUR-LAST-EXTERNAL")])
    check = forecast_check(rows, HORIZON)
    assert check["rows"] == (300 - HORIZON) + (200 - HORIZON)
    # A volatility forecast that knew the future beats EWMA.
    assert check["volatility"]["qlike"] < check["volatility"]["qlike_ewma"]
    assert check["volatility"]["dm_pvalue_vs_ewma"] < 0.05


def test_the_verdict_reads_only_the_columns_it_scores_and_scores_them_alike(tmp_path):
    """The reasons and quantiles, most of a predictions file, stay unread; the scores are the same."""
    rows = predictions("informed", n=300).assign(reason="forecast +0.001 inside ±0.002", q10=0.0, side=0)
    rows.to_parquet(tmp_path / "predictions.parquet")
    read = read_predictions_parquet(tmp_path / "predictions.parquet", FORECAST_COLUMNS)
    assert list(read.columns) == ["close", "prediction", "volatility", "bar_type"] and read.index.equals(rows.index)
    assert forecast_check(read, HORIZON) == forecast_check(read_predictions_parquet(tmp_path / "predictions.parquet"), HORIZON)
    without_volatility = tmp_path / "no-volatility.parquet"
    rows.drop(columns="volatility").to_parquet(without_volatility)
    assert list(read_predictions_parquet(without_volatility, FORECAST_COLUMNS).columns) == ["close", "prediction", "bar_type"]


def test_changing_a_bar_after_the_last_scored_row_changes_nothing():
    rows = predictions("informed", n=300)
    before = forecast_check(rows, HORIZON)
    rows.iloc[-1, rows.columns.get_loc("prediction")] = 123.0  # no outcome yet: not scored
    assert forecast_check(rows, HORIZON) == before


def test_the_verdict_says_what_traded_what_it_earned_and_where_the_report_is(tmp_path):
    write_report(tmp_path, predictions("timid"))
    lines = verdict(tmp_path, horizon=HORIZON)
    assert 3 <= len(lines) <= 5
    assert "never saw" in lines[0] and "lstm 54" in lines[0] and "ridge 103" in lines[0] and "buy_and_hold 0" in lines[0]
    assert "lstm returned -0.78%" in lines[1] and "buy_and_hold +8.54%" in lines[1]
    assert "it beat ridge; trailed buy_and_hold" in lines[1]
    assert "Volatility forecast" in lines[3]
    assert lines[-1].startswith(f"Report: {tmp_path}/")
    (tmp_path / "report.html").write_text("<html></html>")
    assert verdict(tmp_path, horizon=HORIZON)[-1].startswith(f"Report: {tmp_path / 'report.html'} ")


@pytest.mark.parametrize("returns, outcome", [
    ((0.0, 0.0, 0.0, 0.05), "it matched ridge, lightgbm; trailed buy_and_hold."),  # no model traded: a tie is no loss
    ((0.01, -0.02, 0.01, 0.05), "it beat ridge; matched lightgbm; trailed buy_and_hold."),
    ((0.01, -0.02, -0.03, -0.04), "it beat all of them."),
    ((-0.05, -0.02, -0.03, -0.04), "it beat none of them."),
])
def test_the_verdict_tells_a_tie_from_a_loss(tmp_path, returns, outcome):
    write_report(tmp_path, predictions("timid"))
    stats = json.loads((tmp_path / "stats.json").read_text())
    mine, *theirs = returns
    stats["total_return"] = mine
    stats["benchmarks"] = {name: {"total_return": value, "trades": 0, "fees": 0.0}
                           for name, value in zip(("ridge", "lightgbm", "buy_and_hold"), theirs)}
    (tmp_path / "stats.json").write_text(json.dumps(stats))
    assert verdict(tmp_path, horizon=HORIZON)[1].endswith(outcome)


def test_an_in_sample_backtest_says_so_and_too_few_rows_are_not_scored(tmp_path):
    write_report(tmp_path, predictions("informed", n=HORIZON + 3), in_sample=True)
    lines = verdict(tmp_path, horizon=HORIZON)
    assert "IN-SAMPLE" in lines[0]
    assert lines[2].startswith("Too few rows (3)")
    assert len(lines) == 4


def write_report(folder, rows: pd.DataFrame, in_sample: bool = False) -> None:
    """stats.json as backtests.report writes it (the keys the verdict reads), and predictions.parquet."""
    def figures(total_return, trades):
        return {"total_return": total_return, "trades": trades, "fees": 118.2}
    stats = {
        **figures(-0.007816, 54),
        "benchmarks": {"ridge": figures(-0.02, 103), "buy_and_hold": figures(0.08543, 0)},
        "in_sample": in_sample,
        "settings": {"model": "not-read", "first_bar_close": rows.index[0].isoformat(),
                     "last_bar_close": rows.index[-1].isoformat(), "starting_balance": 10_000.0},
    }
    (folder / "stats.json").write_text(json.dumps(stats))
    rows.to_parquet(folder / "predictions.parquet")


def test_a_file_is_scored_a_row_group_at_a_time_as_its_whole_frame(tmp_path):
    rows = pd.concat([predictions("informed", n=300), predictions("noise", n=250, seed=1, bar_type="ETHUSDT.BINANCE-1-HOUR-LAST-EXTERNAL")])
    path = tmp_path / "predictions.parquet"
    write_frames(path, (rows.iloc[start : start + 7] for start in range(0, len(rows), 7)))
    whole, chunked = forecast_check(rows, HORIZON), forecast_check(path, HORIZON)
    assert whole["rows"] == chunked["rows"] == (300 - HORIZON) + (250 - HORIZON)
    for part in ("returns", "volatility"):
        assert chunked[part] == pytest.approx(whole[part], rel=1e-9)


def test_forecasts_out_of_time_order_are_refused():
    rows = predictions("informed", n=100)
    with pytest.raises(ValueError, match="not in time order"):
        forecast_check(pd.concat([rows.iloc[50:], rows.iloc[:50]]), HORIZON)
