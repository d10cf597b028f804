"""Walk-forward backtests on real bars: out-of-sample windows, no lost bars, warm context, one report."""

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from nautilus_trader.model.data import BarType

from marketdata.catalog import load_bars
from backtests.report import training_overlap
from backtests.benchmarks import BuyAndHold, BuyAndHoldConfig
from backtests.runner import BacktestSettings, load_inputs, run_strategy
from backtests.stats import STAT_KEYS, fills_from_nautilus, position_series
from backtests.walk_forward import Window, close_at_window_end, plan_windows, run_walk_forward, window_model
from models.artifact import load_artifact
from models.predictor import OnlinePredictor, batch_predict
from reporting.html import write_report_html
from tests.conftest import NETWORK_UNITS_TOLERANCE, network_units_gap
from tests.fakes.training import train_walk_base

BAR_TYPE = "BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL"
INTERVAL = pd.Timedelta(minutes=1)
TRAIN_DAYS, TEST_DAYS, WINDOWS = 2, 1, 3
REPORT_FILES = ["stats.json", "equity.parquet", "fills.csv", "positions.csv", "predictions.parquet", "equity.png", "trades.png", "windows.json"]
BENCHMARKS = ["ridge", "lightgbm", "ema_cross", "buy_and_hold", "vol_target_buy_and_hold"]  # the model has the volatility head (the default)


@pytest.fixture(scope="module")
def walk(catalog, tmp_path_factory):
    """A tiny base model walked forward over three one-day windows; returns (bars, report folder, report)."""
    base = tmp_path_factory.mktemp("base") / "model"
    train_walk_base(catalog, base)
    bars = load_bars(catalog, BAR_TYPE)
    end = bars.index[0] + pd.Timedelta(days=TRAIN_DAYS + WINDOWS * TEST_DAYS) - INTERVAL
    settings = BacktestSettings(model_path=base, catalog=catalog, bar_type=BAR_TYPE, end=end)
    out = tmp_path_factory.mktemp("report")
    report = run_walk_forward(settings, TRAIN_DAYS, TEST_DAYS, out)
    return bars.loc[:end], out, report


def windows_of(out):
    return json.loads((out / "windows.json").read_text())


def test_a_window_already_trained_is_reused_whatever_the_catalog_path_looks_like(walk, catalog, monkeypatch, caplog):
    _, out, _ = walk
    summary = windows_of(out)[0]
    window = Window(summary["window"], *(pd.Timestamp(summary[part][end]) for part in ("train", "test") for end in ("start", "end")))
    model = Path(summary["model"])
    written = (model / "artifact.json").stat().st_mtime_ns
    monkeypatch.chdir(catalog.parent)  # the same catalog, now named relative to the working directory
    settings = BacktestSettings(model_path=model, catalog=Path(catalog.name), bar_type=BAR_TYPE)
    with caplog.at_level(logging.INFO):
        window_model(load_artifact(model).config, settings, window, model)
    assert "reusing the model already trained" in caplog.text
    assert (model / "artifact.json").stat().st_mtime_ns == written


def test_windows_are_contiguous_and_out_of_sample(walk):
    bars, out, _ = walk
    windows = windows_of(out)
    assert len(windows) == WINDOWS
    assert windows[0]["test"]["start"] == (bars.index[0] + pd.Timedelta(days=TRAIN_DAYS)).isoformat()
    for window, following in zip(windows, windows[1:]):
        assert window["test"]["end"] == following["test"]["start"]
    assert windows[-1]["test"]["end"] == (bars.index[-1] + INTERVAL).isoformat()
    horizon = load_artifact(out / "windows" / "01" / "model").config.training.horizon
    for window in windows:
        test_start = pd.Timestamp(window["test"]["start"])
        trained = load_artifact(out / "windows" / f"{window['window']:02d}" / "model").data
        # The last training bar's target (its close `horizon` bars on) ends before the test window.
        assert pd.Timestamp(trained["last_bar_close"]) + horizon * INTERVAL < test_start
        assert pd.Timestamp(trained["first_bar_close"]) >= test_start - pd.Timedelta(days=TRAIN_DAYS) - horizon * INTERVAL
        assert trained["last_bar_close"] == window["train"]["last_bar_close"]


def test_every_test_bar_is_forecast_exactly_once(walk):
    bars, out, _ = walk
    predictions = pd.read_parquet(out / "predictions.parquet")
    tested = bars.loc[pd.Timestamp(windows_of(out)[0]["test"]["start"]):]
    assert predictions.index.equals(tested.index)
    for window in windows_of(out):
        mine = predictions.index[predictions["window"] == window["window"]]
        assert mine[0].isoformat() == window["test"]["first_bar_close"]
        assert mine[-1].isoformat() == window["test"]["last_bar_close"]
        assert len(mine) == window["test"]["bars"]


def test_each_window_starts_from_a_warm_model(walk):
    bars, out, _ = walk
    predictions = pd.read_parquet(out / "predictions.parquet")
    for window in windows_of(out):
        artifact = load_artifact(out / "windows" / f"{window['window']:02d}" / "model")
        first = predictions[predictions["window"] == window["window"]].iloc[0]
        features_warmup = OnlinePredictor(artifact).warmup_bars
        # The strategy's warm-up (LSTMStrategy.on_start): this much history, then the live bar.
        warmup = features_warmup + 4 * artifact.lstm.burn_in
        streamed = batch_predict(artifact, bars.loc[first.name - (warmup + 1) * INTERVAL : first.name]).iloc[-1]
        # The LSTM from a zero state at this very bar: what a cold start would forecast.
        cold = batch_predict(artifact, bars.loc[first.name - features_warmup * INTERVAL : first.name]).iloc[-1]
        assert streamed.name == cold.name == first.name
        assert network_units_gap(streamed["prediction"], first["prediction"], artifact) <= NETWORK_UNITS_TOLERANCE
        assert network_units_gap(cold["prediction"], first["prediction"], artifact) > NETWORK_UNITS_TOLERANCE


def test_report_has_every_file_and_statistic(walk):
    _, out, report = walk
    for name in REPORT_FILES:
        assert (out / name).is_file(), name
    stats = json.loads((out / "stats.json").read_text())
    assert set(STAT_KEYS) <= set(stats)
    assert sorted(stats["benchmarks"]) == sorted(BENCHMARKS)
    for name in BENCHMARKS:
        assert set(STAT_KEYS) <= set(stats["benchmarks"][name])
    assert stats["trades"] == report["trades"]
    # The stitched equity of equity.parquet compounds to the stitched total return; the report shows each window.
    equity = pd.read_parquet(out / "equity.parquet")
    assert (1 + equity["return_lstm"]).prod() - 1 == pytest.approx(stats["total_return"], rel=1e-9, abs=1e-12)
    page = write_report_html(out).read_text()
    assert "Walk-forward backtest" in page and "Return per test window" in page and f"window {WINDOWS}<" in page


def test_each_window_records_that_its_model_never_saw_its_bars(walk):
    bars, out, report = walk
    stats, windows = json.loads((out / "stats.json").read_text()), windows_of(out)
    assert stats["in_sample"] is False
    assert [entry["window"] for entry in stats["training"]] == [window["window"] for window in windows] == [1, 2, 3]
    for entry, window in zip(stats["training"], windows):
        assert entry["model"] == window["model"] and entry["in_sample"] is window["in_sample"] is False
        assert entry["trained"] == {key: window["train"][key] for key in ("first_bar_close", "last_bar_close")}
        assert entry["traded"] == {key: window["test"][key] for key in ("first_bar_close", "last_bar_close")}
        assert pd.Timestamp(entry["trained"]["last_bar_close"]) < pd.Timestamp(entry["traded"]["first_bar_close"])
    # The base model was trained on every bar: judged by it, as a plain backtest is, the walk would be in-sample.
    traded = bars.loc[pd.Timestamp(windows[0]["test"]["first_bar_close"]):].index
    assert training_overlap(report["settings"]["model"], traded)["in_sample"]


def test_equity_carries_across_windows(walk):
    _, out, report = walk
    windows = windows_of(out)
    for name in ["lstm", *BENCHMARKS]:
        runs = [window["stats"][name] for window in windows]
        assert runs[0]["starting_balance"] == report["settings"]["starting_balance"]
        for run, following in zip(runs, runs[1:]):
            assert following["starting_balance"] == run["ending_equity"]
        # No jump at a boundary: the stitched return compounds the windows' returns.
        stitched = report if name == "lstm" else report["benchmarks"][name]
        compounded = np.prod([1 + run["total_return"] for run in runs]) - 1
        assert stitched["total_return"] == pytest.approx(compounded, rel=1e-9, abs=1e-12)


def test_a_position_open_at_a_window_end_is_closed_there_at_the_taker_fee(catalog, walk):
    _, out, report = walk
    settings = BacktestSettings(model_path=out / "windows" / "01" / "model", catalog=catalog, bar_type=BAR_TYPE)
    instrument, bars = load_inputs(settings)
    bars = bars.window(bars.close().index[0], bars.close().index[30])  # the first 30
    close = bars.close()
    buy = BuyAndHold(BuyAndHoldConfig(instrument_id=instrument.id, bar_type=BarType.from_str(BAR_TYPE), notional=1_000.0))
    opened = run_strategy("buy_and_hold", buy, settings, instrument, bars).fills
    closed = close_at_window_end(opened, close, instrument, number=7)

    assert closed.iloc[:-1].equals(opened)
    row = closed.iloc[-1]
    assert (row.name, row["order_side"], row["order_type"]) == ("WINDOW-END-07", "SELL", "WINDOW_END")
    assert (row["last_qty"], row["ts_event"]) == (opened.iloc[0]["last_qty"], close.index[-1])
    assert float(row["last_px"]) == close.iloc[-1]
    fee = float(instrument.taker_fee) * float(row["last_qty"]) * close.iloc[-1]
    assert float(row["commission"].split()[0]) == pytest.approx(fee, abs=1e-8)
    assert position_series(fills_from_nautilus(closed), close.index).iloc[-1] == 0.0
    assert close_at_window_end(closed, close, instrument, number=8) is closed  # flat: nothing to add
    # In the walk, buy-and-hold holds at every window end: one round trip per window.
    assert report["benchmarks"]["buy_and_hold"]["trades"] == WINDOWS


def test_windows_tile_the_range_after_the_first_training_span():
    start, day, purge = pd.Timestamp("2025-01-01", tz="UTC"), pd.Timedelta(days=1), 5 * INTERVAL
    windows = plan_windows(start, start + 4.5 * day, 2 * day, day, purge)
    tests = [(w.test_start - start, w.test_end - start) for w in windows]
    assert tests == [(2 * day, 3 * day), (3 * day, 4 * day), (4 * day, 4.5 * day)]  # the last one shorter
    assert all(w.train_end == w.test_start - purge and w.train_start == w.train_end - 2 * day for w in windows)
    assert plan_windows(start, start + day, 2 * day, day, purge) == []
