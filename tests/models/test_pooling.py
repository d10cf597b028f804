"""Pooled multi-asset training: per-instrument scaling, the instrument one-hot, one artifact
driving several instruments, streaming equal to batch per instrument."""

import json

import numpy as np
import pandas as pd
import pytest

from marketdata.catalog import load_bars
from models.artifact import MANIFEST, ArtifactError, load_artifact
from models.baselines import LightGBMForecast, RidgeForecast
from models.config import TrainConfig
from models.dataset import Scaler, build_dataset
from models.pooling import benchmark_rows
from models.predictor import OnlineLightGBM, OnlinePredictor, batch_predict
from models.splits import min_gap, train_val_split
from models.train import load_datasets, train_model
from scripts.cli import main
from tests.conftest import NETWORK_UNITS_TOLERANCE
from tests.fakes.training import BAR_TYPE, ETH, pooled_catalog, tiny_config

ETH_DAYS = 3
TRAIN_END = "2025-05-21 11:00"  # the pooled backtest trades the day after it, out of sample


@pytest.fixture(scope="module")
def pooled(tmp_path_factory, shared_data):
    """A catalog of the 7-day BTC fixture and the first days of ETH's 1m file (both spot), and a
    tiny model pooled over the two."""
    root = tmp_path_factory.mktemp("pooled")
    catalog = pooled_catalog(root, shared_data, ETH_DAYS)
    # A return head alone: one epoch of it gives forecasts of both signs, which the pooled backtest needs to trade.
    config = tiny_config(catalog, max_epochs=1).override(data={"bar_types": [BAR_TYPE, ETH], "end": TRAIN_END}, model={"volatility_head": False})
    train_model(config, root / "model")
    return catalog, root / "model", config


def test_the_bar_type_shorthand_and_its_errors(catalog):
    one = tiny_config(catalog)
    assert one.data.bar_types == (BAR_TYPE,) and one.data.bar_type == BAR_TYPE
    assert TrainConfig.from_dict(one.to_dict()).data.bar_types == (BAR_TYPE,)  # the artifact's form reads back
    raw = one.to_dict()
    raw["data"]["bar_type"] = BAR_TYPE
    with pytest.raises(ValueError, match=r"\[data\]: set bar_type \(one instrument\) or bar_types \(a list\), not both"):
        TrainConfig.from_dict(raw)
    raw["data"].pop("bar_types")
    raw["data"]["bar_type"] = [BAR_TYPE, ETH]
    with pytest.raises(ValueError, match="bar_type must be str.*bar_types = "):
        TrainConfig.from_dict(raw)
    with pytest.raises(ValueError, match="must not repeat"):
        one.override(data={"bar_types": [BAR_TYPE, BAR_TYPE]})
    with pytest.raises(ValueError, match=r"this takes one instrument, not 2"):
        _ = one.override(data={"bar_types": [BAR_TYPE, ETH]}).data.bar_type


def test_a_pooled_artifact_holds_each_instruments_own_scaling(pooled):
    catalog, model, config = pooled
    artifact = load_artifact(model)
    assert artifact.bar_types == [BAR_TYPE, ETH]
    columns = len(artifact.feature_spec.columns)
    assert artifact.lstm.n_features == columns + 2  # the features and a one-hot of two instruments
    gap = min_gap(config.training.horizon, config.model.burn_in)
    for number, bar_type in enumerate([BAR_TYPE, ETH]):
        trained = load_bars(catalog, bar_type, end=pd.Timestamp(TRAIN_END, tz="UTC"))
        data = build_dataset(trained, artifact.feature_spec, config.training.horizon)
        split = train_val_split(len(data), config.training.val_fraction, gap)
        instrument = artifact.instrument(bar_type)
        assert instrument.data["fit_rows"] == [split.fit.start, split.fit.stop]
        assert instrument.data["bars"] == len(trained)
        own = Scaler.fit(data.features[split.fit.start : split.fit.stop])  # its own fitting rows only
        np.testing.assert_allclose(instrument.scaler.mean, own.mean)
        np.testing.assert_allclose(instrument.scaler.std, own.std)
        assert artifact.scaling(bar_type).one_hot.tolist() == [1.0 * (k == number) for k in range(2)]
    btc, eth = artifact.instruments
    assert abs(np.log(btc.scales.return_scale / eth.scales.return_scale)) > 0.05  # two markets, two scales
    assert set(artifact.metrics["validation"]) == {BAR_TYPE, ETH}
    with pytest.raises(ArtifactError, match="trained on .*-1-MINUTE-LAST-EXTERNAL, ETHUSDT.*bars: say which bar type"):
        _ = artifact.scaler
    load_artifact(model, bar_type=ETH)
    with pytest.raises(ArtifactError, match="not SOLUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL"):
        load_artifact(model, bar_type="SOLUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL")


def test_streaming_equals_batch_per_instrument(pooled):
    catalog, model, _ = pooled
    artifact = load_artifact(model)
    outputs = {}
    for bar_type in (BAR_TYPE, ETH):
        bars = load_bars(catalog, bar_type).iloc[:1500]
        batch = batch_predict(artifact, bars, bar_type)
        predictor = OnlinePredictor(artifact, bar_type)
        streamed = [predictor.update(ts.value, *row) for ts, row in zip(bars.index, bars[["high", "low", "close", "volume"]].to_numpy())]
        streamed = np.array([row for row in streamed if row is not None])
        assert streamed.shape == batch.shape
        scale = artifact.instrument(bar_type).scales.return_scale
        assert np.max(np.abs(streamed[:, 0] - batch.iloc[:, 0].to_numpy())) / scale <= NETWORK_UNITS_TOLERANCE
        outputs[bar_type] = batch
    # The same bars fed as the other instrument give other forecasts: the scaling and one-hot count.
    bars = load_bars(catalog, ETH).iloc[:1500]
    assert np.max(np.abs(batch_predict(artifact, bars, BAR_TYPE).iloc[:, 0] - outputs[ETH].iloc[:, 0])) > 1e-6


def test_the_lightgbm_benchmark_streams_its_batch_forecasts_per_instrument(pooled):
    catalog, model, _ = pooled
    artifact = load_artifact(model)
    for bar_type in (BAR_TYPE, ETH):
        bars = load_bars(catalog, bar_type).iloc[:3000]
        batch = batch_predict(artifact, bars, bar_type, forecaster="lightgbm")["prediction"].to_numpy()
        online = OnlineLightGBM(artifact)
        streamed = [online.update(ts.value, *row) for ts, row in zip(bars.index, bars[["high", "low", "close", "volume"]].to_numpy())]
        streamed = np.concatenate([row for row in streamed if row is not None])
        assert streamed.shape == batch.shape and np.unique(batch).size > 100
        assert np.max(np.abs(streamed - batch)) <= 1e-12 * np.max(np.abs(batch))


def test_train_takes_repeated_bar_types_and_the_schema_checks_the_instruments(pooled, tmp_path):
    catalog, model, _ = pooled
    out = tmp_path / "cli"
    code = main(["train", "--catalog", str(catalog), "--bar-type", BAR_TYPE, "--bar-type", ETH, "--max-epochs", "1",
                 "--config", str(_tiny_toml(tmp_path, catalog)), "--out", str(out)])
    assert code == 0 and load_artifact(out).bar_types == [BAR_TYPE, ETH]

    manifest = json.loads((model / MANIFEST).read_text())
    manifest["instruments"].reverse()  # the scalings no longer in config.data.bar_types order
    (out / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=r"config.data.bar_types is \[.*\], but instruments\[\].data.bar_type are"):
        load_artifact(out)
    manifest["instruments"].reverse()
    manifest["lstm"]["n_features"] -= 2
    (out / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="lstm.n_features: .* and 2 instruments add a one-hot of 2"):
        load_artifact(out)


def _tiny_toml(tmp_path, catalog):
    raw = tiny_config(catalog).to_dict()
    lines = []
    for section, values in raw.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(list(v) if isinstance(v, tuple) else v)}" for key, v in values.items()]
    path = tmp_path / "tiny.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("architecture", ["alstm", "cnn_lstm"])
def test_a_pooled_hybrid_streams_like_batch_per_instrument_and_after_a_reset(pooled, tmp_path, architecture):
    """The one-hot sits in the network's input: a cnn_lstm's input rows are state, which a reset zeroes."""
    catalog, _, config = pooled
    train_model(config.override(model={"architecture": architecture}), tmp_path / "model")
    artifact = load_artifact(tmp_path / "model")
    for bar_type in (BAR_TYPE, ETH):
        bars = load_bars(catalog, bar_type).iloc[:1200]
        batch = batch_predict(artifact, bars, bar_type).iloc[:, 0].to_numpy()
        predictor = OnlinePredictor(artifact, bar_type)
        inputs = list(zip(bars.index.as_unit("ns").asi8.tolist(), *(bars[c].tolist() for c in ("high", "low", "close", "volume"))))
        for _ in range(2):  # as new, then after a reset
            predictor.reset()
            streamed = np.array([row[0] for row in (predictor.update(*bar) for bar in inputs) if row is not None])
            scale = artifact.instrument(bar_type).scales.return_scale
            assert np.max(np.abs(streamed - batch)) / scale <= NETWORK_UNITS_TOLERANCE


def test_the_benchmarks_fit_every_instruments_fitting_rows_of_their_own_features(pooled):
    """train's ridge and LightGBM benchmarks: each instrument's fitting rows, own feature columns
    only (no scaling, no one-hot), stacked; LightGBM with LightGBMForecast's own parameters."""
    _, model, config = pooled
    artifact = load_artifact(model)
    _, datasets = load_datasets(artifact.config, artifact.feature_spec)
    gap = min_gap(config.training.horizon, config.model.burn_in)
    splits = [train_val_split(len(data), config.training.val_fraction, gap) for data in datasets]
    x, y = benchmark_rows(datasets, [slice(s.fit.start, s.fit.stop) for s in splits], len(artifact.feature_spec.columns))
    assert x.shape == (sum(len(s.fit) for s in splits), artifact.lightgbm.num_feature())
    np.testing.assert_allclose(artifact.ridge["coef"], RidgeForecast(config.training.horizon).fit(x, None, y).coef_, rtol=1e-9)
    boosted = LightGBMForecast(config.training.horizon, seed=config.training.seed).fit(x, None, y)
    assert boosted.booster_.num_trees() == artifact.lightgbm.num_trees()
    np.testing.assert_array_equal(artifact.lightgbm.predict(x), boosted.booster_.predict(x))
