"""A cross-asset pooled model traded in one backtest: its strategies share a CrossBarrier
(strategies.cross_barrier), and their per-bar forecasts equal the offline batch ones, with gaps
and without, and see nothing of the other instrument's future."""

import json

import numpy as np
import pandas as pd
import pytest
from nautilus_trader.model.data import BarType
from nautilus_trader.persistence.wranglers import BarDataWrangler

from backtests.pooled import load_all_inputs, pooled_strategies, run_pooled, symbol_tag
from backtests.runner import BacktestSettings, run_strategies
from backtests.walk_forward_pooled import run_pooled_walk_forward
from marketdata.catalog import bars_frame, load_bars
from models.artifact import load_artifact
from models.predictor import batch_predict, output_columns
from models.train import train_model
from scripts.cli import main
from strategies.cross_barrier import CrossBarrier
from tests.conftest import NETWORK_UNITS_TOLERANCE, assert_no_look_ahead
from tests.fakes.training import BAR_TYPE, tiny_config
from tests.models.test_cross_asset import cross  # noqa: F401  (the module fixture: a cross-asset model)
from tests.models.test_pooling import ETH, TRAIN_END, pooled  # noqa: F401  (cross's own fixture)

START = pd.Timestamp("2025-05-21 12:00", tz="UTC")  # after the model's training data
END = pd.Timestamp("2025-05-21 16:00", tz="UTC")
GAP = pd.Timestamp("2025-05-21 13:30", tz="UTC")  # a close time ETH's bar is taken out of
LOOK = pd.Timestamp("2025-05-21 14:00", tz="UTC")  # the "now" of the look-ahead test
ORDER = (BAR_TYPE, ETH)


@pytest.fixture(scope="module")
def engine_inputs(cross):  # noqa: F811
    catalog, model, _ = cross
    settings = BacktestSettings(model_path=model, catalog=catalog, bar_types=ORDER, start=START, end=END,
                                strategy={"entry_threshold": 1e-5})
    instruments, bars = load_all_inputs(settings)
    return settings, instruments, bars


def run_lstm(engine_inputs, bars: dict):
    """The LSTM strategies alone over ``bars`` (Nautilus bars per bar type) in one engine; their run."""
    settings, instruments, _ = engine_inputs
    strategies = pooled_strategies(settings, instruments, bars)["lstm"]
    assert all(isinstance(s.barrier, CrossBarrier) for s in strategies) and strategies[0].barrier is strategies[1].barrier
    merged = sorted((bar for each in bars.values() for bar in each), key=lambda bar: bar.ts_event)
    return run_strategies("lstm", strategies, settings, instruments, merged)


def forecasts(run, bar_type: str, columns: list[str]) -> pd.DataFrame:
    predictions = run.predictions
    return predictions.loc[predictions["bar_type"] == bar_type, columns]


def assert_equals_offline(run, artifact, catalog, eth: pd.DataFrame) -> None:
    """Every in-strategy forecast equals batch_predict's over the catalog's bars (ETH's: ``eth``) to 1e-5."""
    frames = {BAR_TYPE: load_bars(catalog, BAR_TYPE, end=END), ETH: eth}
    columns = output_columns(artifact)
    for bar_type in ORDER:
        online = forecasts(run, bar_type, columns)
        offline = batch_predict(artifact, frames[bar_type], bar_type, others=frames)
        traded = offline.loc[START:END]
        assert online.index.equals(traded.index), bar_type  # every bar traded is forecast
        gap = np.max(np.abs(online.to_numpy() - traded.loc[online.index].to_numpy()))
        assert gap / artifact.instrument(bar_type).scales.return_scale <= NETWORK_UNITS_TOLERANCE, bar_type


def test_a_cross_asset_model_trades_both_instruments_as_offline(cross, engine_inputs):  # noqa: F811
    catalog, model, _ = cross
    run = run_lstm(engine_inputs, engine_inputs[2])
    artifact = load_artifact(model)
    assert artifact.config.data.cross_asset
    assert_equals_offline(run, artifact, catalog, load_bars(catalog, ETH, end=END))
    # Each instrument's orders went out from its own strategy, on the bar after the decision.
    fills = run.fills
    assert set(fills["instrument_id"]) == {"BTCUSDT.BINANCE", "ETHUSDT.BINANCE"}
    for bar_type in ORDER:
        mine = fills[fills["instrument_id"] == str(BarType.from_str(bar_type).instrument_id)]
        assert set(mine["strategy_id"]) == {f"LSTMStrategy-{symbol_tag(bar_type)}"}


def test_a_missing_bar_is_resolved_by_the_next_close_time_as_offline(cross, engine_inputs):  # noqa: F811
    catalog, model, _ = cross
    bars = engine_inputs[2]
    gapped = {BAR_TYPE: bars[BAR_TYPE], ETH: [bar for bar in bars[ETH] if bar.ts_event != GAP.value]}
    assert len(gapped[ETH]) == len(bars[ETH]) - 1
    run = run_lstm(engine_inputs, gapped)
    artifact = load_artifact(model)
    eth = load_bars(catalog, ETH, end=END).drop(GAP)
    assert_equals_offline(run, artifact, catalog, eth)  # BTC's row at GAP had ETH's return 0, as offline
    # and that 0 mattered: BTC's forecast at GAP is not the one with ETH's bar there.
    whole = batch_predict(artifact, load_bars(catalog, BAR_TYPE, end=END), BAR_TYPE,
                          others={ETH: load_bars(catalog, ETH, end=END)})
    btc = forecasts(run, BAR_TYPE, ["prediction"])["prediction"]
    assert abs(btc.loc[GAP] - whole.loc[GAP, "prediction"]) / artifact.instrument(BAR_TYPE).scales.return_scale > 1e-4


def test_the_other_instruments_future_bars_move_no_forecast_at_or_before_t(cross, engine_inputs):  # noqa: F811
    settings, instruments, bars = engine_inputs
    eth_instrument = instruments[ORDER.index(ETH)]
    columns = output_columns(load_artifact(cross[1]))

    def predict(eth: pd.DataFrame) -> pd.DataFrame:
        """BTC's and ETH's in-strategy forecasts with ETH's bars ``eth``, side by side."""
        eth_bars = BarDataWrangler(BarType.from_str(ETH), eth_instrument).process(eth.rename_axis("timestamp"))
        run = run_lstm((settings, instruments, bars), {BAR_TYPE: bars[BAR_TYPE], ETH: eth_bars})
        return forecasts(run, BAR_TYPE, columns).join(forecasts(run, ETH, columns), rsuffix="_eth", how="outer")

    assert_no_look_ahead(predict, bars_frame(bars[ETH]), LOOK)


def test_the_backtest_command_trades_a_cross_asset_model_with_all_its_instruments(cross, tmp_path, caplog):  # noqa: F811
    catalog, model, _ = cross
    out = tmp_path / "report"
    args = ["backtest", "--model", str(model), "--catalog", str(catalog), "--start", "2025-05-21 12:00",
            "--end", "2025-05-21 13:00"]
    assert main([*args, "--out", str(out)]) == 0
    stats = json.loads((out / "stats.json").read_text())
    assert stats["settings"]["bar_types"] == list(ORDER)
    predictions = pd.read_parquet(out / "predictions.parquet")
    assert set(predictions["bar_type"]) == set(ORDER)
    # Not one instrument alone: its forecasts need the other's bars.
    assert main([*args, "--bar-type", BAR_TYPE, "--out", str(tmp_path / "no")]) == 2
    assert "uses cross-asset features" in caplog.text and "trades " in caplog.text and not (tmp_path / "no").exists()


def test_a_walk_forward_retrains_the_cross_asset_model_and_trades_it_as_offline(cross, tmp_path):  # noqa: F811
    catalog, model, _ = cross
    settings = BacktestSettings(model_path=model, catalog=catalog, bar_types=ORDER, end=pd.Timestamp("2025-05-21 12:00", tz="UTC"))
    run_pooled_walk_forward(settings, train_days=1.0, test_days=0.25, out=tmp_path / "wf")
    windows = json.loads((tmp_path / "wf" / "windows.json").read_text())
    predictions = pd.read_parquet(tmp_path / "wf" / "predictions.parquet")
    assert [w["window"] for w in windows] == [1, 2]
    for window in windows:
        artifact = load_artifact(window["model"])
        assert artifact.config.data.cross_asset  # each window's model is the base config's: cross-asset too
        end = pd.Timestamp(window["test"]["end"])
        frames = {b: load_bars(catalog, b, end=end) for b in ORDER}
        for bar_type in ORDER:
            mine = predictions[(predictions["window"] == window["window"]) & (predictions["bar_type"] == bar_type)]
            assert len(mine) == window["test"]["bars"][bar_type]  # every bar of the window forecast
            offline = batch_predict(artifact, frames[bar_type], bar_type, others=frames)
            gap = np.max(np.abs(mine["prediction"].to_numpy() - offline.loc[mine.index, "prediction"].to_numpy()))
            assert gap / artifact.instrument(bar_type).scales.return_scale <= NETWORK_UNITS_TOLERANCE


def test_the_vol_targeted_benchmark_of_a_cross_asset_model_steps_through_its_own_barrier(cross, tmp_path):  # noqa: F811
    catalog = cross[0]
    config = tiny_config(catalog, max_epochs=1).override(data={"bar_types": list(ORDER), "end": TRAIN_END, "cross_asset": True})
    train_model(config, tmp_path / "model")
    artifact = load_artifact(tmp_path / "model")
    assert artifact.lstm.volatility_head
    settings = BacktestSettings(model_path=tmp_path / "model", catalog=catalog, bar_types=ORDER, start=START, end=END,
                                strategy={"target_volatility": 0.5})
    _, runs = run_pooled(settings)
    fills = runs["vol_target_buy_and_hold"].fills
    assert set(fills["instrument_id"]) == {"BTCUSDT.BINANCE", "ETHUSDT.BINANCE"}  # each instrument's own, one account
    frames = {b: load_bars(catalog, b, end=END) for b in ORDER}
    for bar_type in ORDER:  # the volatility forecasts it sizes by are the strategy's, equal to offline
        online = forecasts(runs["lstm"], bar_type, ["volatility"])["volatility"]
        offline = batch_predict(artifact, frames[bar_type], bar_type, others=frames)["volatility"]
        assert online.index.equals(offline.loc[START:END].index)
        assert np.max(np.abs(np.log(online) - np.log(offline.loc[online.index]))) <= NETWORK_UNITS_TOLERANCE
