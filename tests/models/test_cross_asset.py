"""Cross-asset features ([data] cross_asset): the other instruments' 1-bar returns at the same
close time, with no look-ahead, zero where a bar is missing, and streaming equal to batch."""

import numpy as np
import pandas as pd
import pytest

from marketdata.catalog import load_bars
from models.artifact import ArtifactError, load_artifact
from models.config import load_config
from models.dataset import build_dataset
from models.features import default_spec
from models.pooling import CrossReturns, cross_columns, with_cross_returns
from models.predictor import OnlinePredictor, batch_predict
from models.train import train_model
from nodes.run_folder import open_run
from tests.conftest import PROJECT_ROOT
from tests.fakes.training import BAR_TYPE, tiny_config
from tests.models.test_pooling import ETH, TRAIN_END, pooled  # noqa: F401  (the module fixture: a catalog and a pooled model)

MINUTE = pd.Timedelta(minutes=1)
T = pd.Timestamp("2025-05-21 06:00", tz="UTC")  # the "now" of the look-ahead tests


@pytest.fixture(scope="module")
def cross(pooled, tmp_path_factory):  # noqa: F811
    catalog = pooled[0]
    # Seed 1: one epoch of it forecasts both signs on the day the cross-asset backtest trades, so it trades.
    config = tiny_config(catalog, max_epochs=1, seed=1).override(
        data={"bar_types": [BAR_TYPE, ETH], "end": TRAIN_END, "cross_asset": True}, model={"volatility_head": False})
    out = tmp_path_factory.mktemp("cross") / "model"
    train_model(config, out)
    end = pd.Timestamp("2025-05-21 12:00", tz="UTC")
    return catalog, out, {b: load_bars(catalog, b, end=end) for b in (BAR_TYPE, ETH)}


def btc_rows(bars: dict) -> pd.DataFrame:
    data = with_cross_returns(build_dataset(bars[BAR_TYPE], default_spec(), 5), [BAR_TYPE, ETH], BAR_TYPE, bars)
    return pd.DataFrame(data.features, index=data.index)


def perturbed_future(bars: dict, after: pd.Timestamp) -> dict:
    """ETH's bars after ``after`` changed (prices scaled, a stretch removed); BTC's untouched."""
    eth = bars[ETH].copy()
    later = eth.index > after
    eth.loc[later, ["open", "high", "low", "close"]] *= 1.3
    eth = eth.drop(eth.index[later][10:40])
    return {BAR_TYPE: bars[BAR_TYPE], ETH: eth}


def test_the_cross_column_is_the_other_instruments_return_at_the_same_close(cross):
    _, _, bars = cross
    rows = btc_rows(bars)
    eth = bars[ETH]["close"]
    column = rows.iloc[:, -1]  # BTC's one cross column: ETH's
    assert cross_columns([BAR_TYPE, ETH], BAR_TYPE) == [f"ret1@{ETH}"]
    assert column.loc[T] == pytest.approx(np.log(eth.loc[T] / eth.loc[T - MINUTE]), abs=1e-15)
    # A missing ETH bar: zero at it, and zero at the next bar (whose previous bar is missing).
    gap = {BAR_TYPE: bars[BAR_TYPE], ETH: bars[ETH].drop(T)}
    gapped = btc_rows(gap).iloc[:, -1]
    assert gapped.loc[T] == 0.0 and gapped.loc[T + MINUTE] == 0.0
    assert gapped.loc[T + 2 * MINUTE] == column.loc[T + 2 * MINUTE] != 0.0
    assert gapped.drop([T, T + MINUTE]).equals(column.drop([T, T + MINUTE]))


def test_the_other_instruments_future_moves_nothing_at_or_before_t(cross):
    _, model, bars = cross
    changed = perturbed_future(bars, T)
    before, after = btc_rows(bars), btc_rows(changed)
    assert before.loc[:T].equals(after.loc[:T])
    assert not before.loc[T + MINUTE :].equals(after.loc[T + MINUTE :])  # the perturbation does reach later rows

    artifact = load_artifact(model)
    forecast = batch_predict(artifact, bars[BAR_TYPE], BAR_TYPE, others=bars)
    moved = batch_predict(artifact, changed[BAR_TYPE], BAR_TYPE, others=changed)
    pd.testing.assert_frame_equal(forecast.loc[:T], moved.loc[:T])
    assert np.max(np.abs(forecast.loc[T + MINUTE :].to_numpy() - moved.loc[T + MINUTE :].to_numpy())) > 1e-9


def test_streaming_equals_batch_with_cross_asset_columns(cross):
    _, model, bars = cross
    artifact = load_artifact(model)
    order = [BAR_TYPE, ETH]
    bars = {BAR_TYPE: bars[BAR_TYPE], ETH: bars[ETH].drop(T)}  # with a gap in ETH
    predictors = [OnlinePredictor(artifact, b, cross_asset=True) for b in order]
    returns = CrossReturns(len(order), MINUTE.value)
    streamed = {b: {} for b in order}
    times = sorted(set(bars[BAR_TYPE].index) | set(bars[ETH].index))
    for ts in times:
        here = [k for k, b in enumerate(order) if ts in bars[b].index]
        for k in here:  # every instrument's bar of this close time first ...
            returns.update(k, ts.value, float(bars[order[k]].loc[ts, "close"]))
        for k in here:  # ... then each steps
            predictors[k].set_cross(returns.row(k, ts.value))
            bar = bars[order[k]].loc[ts]
            out = predictors[k].update(ts.value, bar["high"], bar["low"], bar["close"], bar["volume"])
            if out is not None:
                streamed[order[k]][ts] = out[0]
    for b in order:
        batch = batch_predict(artifact, bars[b], b, others=bars)["prediction"]
        online = pd.Series(streamed[b])
        assert online.index.equals(batch.index)
        assert np.max(np.abs(online - batch)) / artifact.instrument(b).scales.return_scale <= 1e-5


def test_a_caller_that_cannot_feed_cross_columns_is_refused(cross, tmp_path):
    _, model, bars = cross
    artifact = load_artifact(model)
    assert artifact.lstm.n_features == len(default_spec().columns) + 1 + 2  # own, ETH's return, one-hot
    # A predictor whose caller does not say it writes the cross columns (set_cross) refuses: LSTMStrategy
    # says so only when its instances share a barrier (strategies.cross_barrier; tests/backtests/test_cross_asset_backtest).
    with pytest.raises(ArtifactError, match=r"uses cross-asset features \(\[data\] cross_asset\).*backtests.pooled.*"
                                            r"or retrain without cross_asset"):
        OnlinePredictor(artifact, BAR_TYPE)
    with pytest.raises(ValueError, match=r"cross-asset features of .* need the bars of \['ETHUSDT"):
        batch_predict(artifact, bars[BAR_TYPE], BAR_TYPE)
    # The paper and live nodes run one LSTMStrategy, without the other instrument's bars: refused before anything starts.
    with pytest.raises(ValueError, match=r"uses cross-asset features .*a paper or live node trades one instrument"):
        open_run(model, "BTC/USDT", "spot", None, tmp_path / "run", "paper", {})
    assert not (tmp_path / "run").exists()


def test_the_readmes_cross_asset_hourly_config_loads():
    config = load_config(PROJECT_ROOT / "models" / "btc_eth_1h_cross.toml")
    assert config.data.cross_asset and config.data.bar_types == load_config(PROJECT_ROOT / "models" / "btc_eth_1h.toml").data.bar_types
