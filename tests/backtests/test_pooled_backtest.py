"""One backtest trading two instruments from one pooled artifact: one engine, one account."""

import json

import empyrical
import numpy as np
import pandas as pd
import pytest

from backtests.pooled import load_all_inputs, pooled_strategies, run_pooled, symbol_tag, write_pooled_report
from backtests.runner import BacktestSettings, run_strategies
from backtests.stats import STAT_KEYS
from marketdata.catalog import load_bars
from models.artifact import load_artifact
from models.predictor import batch_predict
from models.train import train_model
from scripts.cli import main
from strategies.config import FORECASTERS
from tests.fakes.training import BAR_TYPE
from tests.models.test_pooling import ETH, pooled  # noqa: F401  (the module fixture: a catalog and a pooled model)

START = pd.Timestamp("2025-05-21 12:00", tz="UTC")
END = pd.Timestamp("2025-05-22 12:00", tz="UTC")


@pytest.fixture(scope="module")
def report(pooled, tmp_path_factory):  # noqa: F811
    catalog, model, _ = pooled
    settings = BacktestSettings(model_path=model, catalog=catalog, bar_types=(BAR_TYPE, ETH), start=START, end=END,
                                strategy={"entry_threshold": 1e-5})
    bars, runs = run_pooled(settings)
    out = tmp_path_factory.mktemp("pooled-report")
    return settings, bars, runs, write_pooled_report(out, bars, runs, settings), out


def test_both_instruments_trade_in_one_account(report):
    _, _, runs, stats, out = report
    fills = runs["lstm"].fills
    assert set(fills["instrument_id"]) == {"BTCUSDT.BINANCE", "ETHUSDT.BINANCE"}  # one engine's report holds both
    assert set(fills["strategy_id"]) == {f"LSTMStrategy-{symbol_tag(BAR_TYPE)}", f"LSTMStrategy-{symbol_tag(ETH)}"}
    assert set(STAT_KEYS) <= set(stats) and set(stats["benchmarks"]) == {"ridge", "lightgbm", "ema_cross", "buy_and_hold"}
    assert set(stats["instruments"]) == {"BTCUSDT.BINANCE", "ETHUSDT.BINANCE"}
    # The account's fees and trades are its instruments' together.
    per = stats["instruments"]
    assert stats["fees"] == pytest.approx(sum(per[k]["lstm"]["fees"] for k in per)) and stats["fees"] > 0
    assert stats["trades"] == sum(per[k]["lstm"]["trades"] for k in per)
    # Buy-and-hold bought both: the account's end equity is the two positions marked at their last closes.
    hold = runs["buy_and_hold"].fills
    assert set(hold["instrument_id"]) == {"BTCUSDT.BINANCE", "ETHUSDT.BINANCE"}
    saved = json.loads((out / "stats.json").read_text())
    assert saved["settings"]["bar_types"] == [BAR_TYPE, ETH] and not saved["in_sample"]
    assert (out / "trades-BTCUSDT.png").is_file() and (out / "trades-ETHUSDT.png").is_file()
    assert saved["settings"]["entry_threshold"] == {BAR_TYPE: 1e-5, ETH: 1e-5}
    # equity.parquet: the one account's equity and returns per strategy, each instrument's close.
    equity = pd.read_parquet(out / "equity.parquet")
    assert {"close_BTCUSDT.BINANCE", "close_ETHUSDT.BINANCE"} <= set(equity.columns) and equity.notna().all().all()
    for name, figures in {"lstm": saved, **saved["benchmarks"]}.items():
        returns = equity[f"return_{name}"]
        assert (1 + returns).prod() - 1 == pytest.approx(figures["total_return"], rel=1e-9, abs=1e-12), name
        assert -empyrical.max_drawdown(returns) == pytest.approx(figures["max_drawdown"], rel=1e-9, abs=1e-15), name


@pytest.mark.parametrize("forecaster", FORECASTERS)
def test_each_instruments_strategy_forecasts_with_its_own_scaling(report, pooled, forecaster):  # noqa: F811
    """Every forecaster's strategy in the pooled backtest says per bar what batch_predict says offline:
    the LSTM with each instrument's scaling and one-hot, the benchmarks from each instrument's own features
    (the report keeps the LSTM's forecasts alone: a benchmark's group runs here again, keeping its own)."""
    settings, _, runs, _, _ = report
    catalog, model, _ = pooled
    artifact = load_artifact(model)
    if forecaster == "lstm":
        predictions = runs[forecaster].predictions
    else:
        assert runs[forecaster].predictions is None
        instruments, bars = load_all_inputs(settings)
        group = pooled_strategies(settings, instruments, bars)[forecaster]
        predictions = run_strategies(forecaster, group, settings, instruments, bars).predictions
    for bar_type in (BAR_TYPE, ETH):
        mine = predictions[predictions["bar_type"] == bar_type]
        assert len(mine) > 1000
        offline = batch_predict(artifact, load_bars(catalog, bar_type, end=END), bar_type, forecaster=forecaster)
        assert offline.loc[mine.index, "prediction"].nunique() > 100  # a forecast that moves, not a constant
        gap = np.max(np.abs(mine["prediction"].to_numpy() - offline.loc[mine.index, "prediction"].to_numpy()))
        assert gap / artifact.instrument(bar_type).scales.return_scale <= 1e-5


def test_the_backtest_command_trades_every_instrument_of_a_pooled_model(pooled, tmp_path, capsys):  # noqa: F811
    catalog, model, _ = pooled
    out = tmp_path / "report"
    args = ["backtest", "--model", str(model), "--catalog", str(catalog), "--start", "2025-05-22", "--end", "2025-05-22 06:00",
            "--out", str(out)]
    assert main(args) == 0
    assert json.loads((out / "stats.json").read_text())["settings"]["bar_types"] == [BAR_TYPE, ETH]
    page = (out / "report.html").read_text()  # the command wrote the report: each instrument's fills, both thresholds
    assert "Pooled backtest" in page and all(f"{key}: close and fills" in page for key in ("BTCUSDT.BINANCE", "ETHUSDT.BINANCE"))
    assert all(f"Forecasts against the entry threshold ({b})" in page for b in (BAR_TYPE, ETH))
    assert main([*args[:-2], "--bar-type", "SOLUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL", "--out", str(tmp_path / "no")]) == 2


def test_a_volatility_model_adds_the_vol_targeted_benchmark_per_instrument(pooled, tmp_path):  # noqa: F811
    catalog, _, config = pooled
    train_model(config.override(model={"volatility_head": True}), tmp_path / "model")
    settings = BacktestSettings(model_path=tmp_path / "model", catalog=catalog, bar_types=(BAR_TYPE, ETH), start=START, end=END,
                                strategy={"target_volatility": 0.5})
    _, runs = run_pooled(settings)
    fills = runs["vol_target_buy_and_hold"].fills
    assert set(fills["instrument_id"]) == {"BTCUSDT.BINANCE", "ETHUSDT.BINANCE"}  # each instrument's own, one account
    assert runs["lstm"].predictions["volatility"].gt(0).all()
