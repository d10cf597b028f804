"""Training, artifacts and predictions: determinism, resume, no leakage, train/serve parity."""

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import torch

from marketdata.catalog import load_bars
from models.artifact import ArtifactError, load_artifact, save_artifact
from models.baselines import RidgeForecast
from models.dataset import build_dataset, sequences
from models.features import default_spec
from models.kernels.predict import predict_bar
from models.predictor import OnlineLightGBM, OnlinePredictor, OnlineRidge, batch_predict
from models.splits import min_gap, train_val_split
from models.train import fit, train_model
from tests.conftest import (
    NETWORK_UNITS_TOLERANCE,
    assert_no_look_ahead,
    network_units_gap,
)
from tests.fakes.training import BAR_TYPE, tiny_config


@pytest.fixture(scope="module")
def artifact(catalog, tmp_path_factory):
    out = tmp_path_factory.mktemp("artifact") / "model"
    train_model(tiny_config(catalog), out)
    return out


@pytest.fixture(scope="module")
def bars(catalog):
    return load_bars(catalog, BAR_TYPE)


def split_for(config, data):
    return train_val_split(len(data), config.training.val_fraction, min_gap(config.training.horizon, config.model.burn_in))


def test_sequences_score_every_row_once():
    features = np.arange(100, dtype=np.float64)[:, None]
    target = np.arange(100, dtype=np.float64)
    x, y, mask = sequences(features, target, range(0, 100), length=30, burn_in=10)
    scored = np.concatenate([y[i][mask[i]] for i in range(len(y))])
    assert sorted(scored.tolist()) == list(range(10, 100))  # all but the first burn-in, once each
    assert (x[:, :, 0] == y).all()


def test_same_seed_same_model_other_seed_other_model(catalog, bars):
    config = tiny_config(catalog, max_epochs=1)
    data = build_dataset(bars, default_spec(), config.training.horizon)
    split = split_for(config, data)
    first, again, other = (fit(config, data, split, seed=s).model.state_dict() for s in (0, 0, 1))
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_resume_continues_exactly(catalog, bars, tmp_path):
    config = tiny_config(catalog, max_epochs=2)
    data = build_dataset(bars, default_spec(), config.training.horizon)
    split = split_for(config, data)
    straight = fit(config, data, split)
    checkpoint = tmp_path / "last.pt"
    fit(config.override(training={"max_epochs": 1}), data, split, checkpoint=checkpoint)  # then "killed"
    seen = []  # a resumed run replays its checkpointed epochs to on_epoch: a pruner sees the same sequence
    resumed = fit(config, data, split, checkpoint=checkpoint, on_epoch=lambda epoch, loss: seen.append((epoch, loss)))
    assert seen == [(h["epoch"], h["val_loss"]) for h in straight.history]
    assert [h["epoch"] for h in resumed.history] == [0, 1]
    assert [h["val_loss"] for h in resumed.history] == [h["val_loss"] for h in straight.history]
    state, expected = resumed.model.state_dict(), straight.model.state_dict()
    assert all(torch.equal(state[k], expected[k]) for k in state)
    with pytest.raises(ValueError, match="another config, seed or data"):
        fit(config, data, split, seed=5, checkpoint=checkpoint)


def test_scaler_and_target_scale_see_training_rows_only(catalog, bars):
    config = tiny_config(catalog, max_epochs=1)
    data = build_dataset(bars, default_spec(), config.training.horizon)
    split = split_for(config, data)
    changed = bars.copy()
    # Change every bar after the last fitting row's target horizon: validation and beyond.
    after = data.index[split.fit.stop - 1 + config.training.horizon]
    changed.loc[changed.index > after, ["open", "high", "low", "close"]] *= 1.5
    changed.loc[changed.index > after, "volume"] *= 3
    base = fit(config, data, split)
    other = fit(config, build_dataset(changed, default_spec(), config.training.horizon), split)
    np.testing.assert_array_equal(base.scalings[0].scaler.mean, other.scalings[0].scaler.mean)
    np.testing.assert_array_equal(base.scalings[0].scaler.std, other.scalings[0].scaler.std)
    assert base.scalings[0].scales == other.scalings[0].scales


def test_predictions_at_t_ignore_every_later_bar(artifact, bars):
    model = load_artifact(artifact)
    assert_no_look_ahead(lambda frame: batch_predict(model, frame), bars, bars.index[6000])


def test_streaming_predictions_equal_batch_on_real_bars(artifact, bars):
    model = load_artifact(artifact)
    batch = batch_predict(model, bars)
    online = OnlinePredictor(model)
    streamed, times = [], []
    for row in bars.itertuples():
        out = online.update(row.Index.value, row.high, row.low, row.close, row.volume)
        if out is not None:
            streamed.append(out.copy())
            times.append(row.Index)
    assert pd.DatetimeIndex(times).equals(batch.index)
    assert network_units_gap(streamed, batch, model) <= NETWORK_UNITS_TOLERANCE


@pytest.mark.parametrize("forecaster, online", [("ridge", OnlineRidge), ("lightgbm", OnlineLightGBM)])
def test_online_benchmarks_equal_their_offline_forecasts_to_float64_rounding(artifact, bars, forecaster, online):
    """The benchmarks are float64 on both paths (LightGBM: Booster.predict offline, its C fast
    single-row path online): they agree to rounding, relative to the forecasts' size."""
    model = load_artifact(artifact)
    offline = batch_predict(model, bars, forecaster=forecaster)
    rows = stream_bars(online(model), bars)
    warmup = model.feature_spec.warmup_bars
    assert all(row is None for row in rows[:warmup]) and all(row is not None for row in rows[warmup:])
    assert len(rows) - warmup == len(offline)
    assert np.unique(offline["prediction"]).size > 100  # a forecast that moves, not a constant
    gap = np.max(np.abs(np.concatenate(rows[warmup:]) - offline["prediction"].to_numpy()))
    assert gap <= 1e-12 * np.max(np.abs(offline["prediction"]))


def test_the_ridge_forecasts_are_ridge_forecast_predict(artifact, bars):
    model = load_artifact(artifact)
    data = build_dataset(bars, model.feature_spec, model.config.training.horizon)
    ridge = RidgeForecast(model.config.training.horizon, alpha=model.ridge["alpha"])
    ridge.coef_, ridge.intercept_ = np.asarray(model.ridge["coef"]), model.ridge["intercept"]
    np.testing.assert_array_equal(batch_predict(model, bars, forecaster="ridge")["prediction"], ridge.predict(data.features, None))


@pytest.mark.parametrize("forecaster", ["ridge", "lightgbm"])
def test_benchmark_forecasts_at_t_ignore_every_later_bar(artifact, bars, forecaster):
    model = load_artifact(artifact)
    assert_no_look_ahead(lambda frame: batch_predict(model, frame, forecaster=forecaster), bars, bars.index[6000])


def test_online_lightgbm_reset_and_restored_state_continue_exactly(artifact, bars):
    model = load_artifact(artifact)
    straight = OnlineLightGBM(model)
    expected = stream_bars(straight, bars)
    straight.reset()
    np.testing.assert_array_equal(np.array(stream_bars(straight, bars)[-3000:]), np.array(expected[-3000:]))
    first, second = OnlineLightGBM(model), OnlineLightGBM(model)
    stream_bars(first, bars.iloc[:6000])
    second.set_state(json.loads(json.dumps(first.get_state())))
    np.testing.assert_array_equal(np.array(stream_bars(second, bars.iloc[6000:])), np.array(expected[6000:]))


@pytest.fixture(scope="module")
def quantile_artifact(catalog, tmp_path_factory):
    out = tmp_path_factory.mktemp("quantile-artifact") / "model"
    train_model(tiny_config(catalog, max_epochs=1).override(model={"quantiles": (0.1, 0.5, 0.9)}), out)
    return out


def stream_bars(online, bars: pd.DataFrame) -> list:
    """Every bar through ``online.update`` (Python ints and floats, as the strategy passes them)."""
    columns = [bars[c].tolist() for c in ("high", "low", "close", "volume")]
    return [online.update(t, *bar) for t, *bar in zip(bars.index.as_unit("ns").asi8.tolist(), *columns)]


def test_compiled_predictor_with_quantiles_reset_and_restored_state(quantile_artifact, bars):
    model = load_artifact(quantile_artifact)
    assert model.lstm.n_outputs == 4  # three quantiles and the volatility
    online = OnlinePredictor(model)
    compiled = list(predict_bar.signatures)
    rows = stream_bars(online, bars)
    assert list(predict_bar.signatures) == compiled  # construction compiled it: nothing on a bar
    warmup = model.feature_spec.warmup_bars
    assert all(row is None for row in rows[:warmup]) and all(row is not None for row in rows[warmup:])
    streamed = np.array(rows[warmup:])
    assert streamed.dtype == np.float64
    assert network_units_gap(streamed, batch_predict(model, bars), model) <= NETWORK_UNITS_TOLERANCE
    assert (np.diff(streamed[:, :3], axis=1) >= 0).all()  # the quantiles never cross (the volatility follows)

    online.reset()  # as new: the same outputs, bit for bit
    np.testing.assert_array_equal(np.array(stream_bars(online, bars)[warmup:]), streamed)

    first, second = OnlinePredictor(model), OnlinePredictor(model)
    stream_bars(first, bars.iloc[:6000])
    second.features.set_state(json.loads(json.dumps(first.features.get_state())))
    second.network.state = first.network.state
    stream_bars(first, bars.iloc[6000:7000])  # the saved state must not share arrays with it
    np.testing.assert_array_equal(np.array(stream_bars(second, bars.iloc[6000:])), streamed[6000 - warmup :])


def test_artifact_contents(artifact):
    manifest = json.loads((artifact / "artifact.json").read_text())
    assert manifest["format_version"] == 5
    [instrument] = manifest["instruments"]
    assert instrument["data"]["bar_type"] == BAR_TYPE and instrument["data"]["instrument_id"] == "BTCUSDT.BINANCE"
    assert instrument["data"]["first_bar_close"] == "2025-05-20T00:01:00+00:00" and len(instrument["data"]["sha256"]) == 64
    assert manifest["config"]["training"]["horizon"] == 5 and manifest["config"]["data"]["bar_types"] == [BAR_TYPE]
    assert len(instrument["scaler"]["mean"]) == len(default_spec().columns) == manifest["lstm"]["n_features"]
    assert {"torch", "nautilus_trader", "numpy"} <= set(manifest["versions"])
    assert set(manifest["metrics"]["validation"]) >= {"mae", "rmse", "rmse_ratio_vs_zero", "directional_accuracy"}
    assert not (artifact / "checkpoint").exists()  # a finished run leaves no checkpoint behind
    # The LightGBM benchmark: LightGBM's text model, pinned by its hash, one input per feature column.
    text = (artifact / "lightgbm.txt").read_bytes()
    assert text.startswith(b"tree\n") and manifest["lightgbm"]["sha256"] == hashlib.sha256(text).hexdigest()
    assert manifest["lightgbm"]["num_feature"] == len(default_spec().columns) and manifest["lightgbm"]["objective"] == "regression"


def test_artifact_mismatches_are_refused(artifact, tmp_path):
    with pytest.raises(ArtifactError, match="trained on BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL bars, not ETHUSDT"):
        load_artifact(artifact, bar_type="ETHUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL")
    other_spec = default_spec().__class__(**{**default_spec().__dict__, "return_lags": (1, 2)})
    with pytest.raises(ArtifactError, match="trained on feature spec"):
        load_artifact(artifact, feature_spec=other_spec)
    with pytest.raises(ArtifactError, match="not a model artifact"):
        load_artifact(tmp_path)
    copy = tmp_path / "old"
    save_artifact(copy, load_artifact(artifact))
    manifest = json.loads((copy / "artifact.json").read_text())
    manifest["format_version"] = 0
    (copy / "artifact.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="format_version is 0"):
        load_artifact(copy)


class Exploit:
    def __reduce__(self):
        return (exec, ("open('PWNED', 'w').write('x')",))


def test_weights_never_unpickle_code(artifact, tmp_path, monkeypatch):
    evil = tmp_path / "evil"
    save_artifact(evil, load_artifact(artifact))
    torch.save({"x": Exploit()}, evil / "weights.pt")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ArtifactError, match="not loadable as plain weights"):
        load_artifact(evil)
    assert not (tmp_path / "PWNED").exists()
    # The control: an unsafe load of the same file does run the payload.
    torch.load(evil / "weights.pt", weights_only=False)
    assert (tmp_path / "PWNED").exists()


SEARCH_END = "2025-05-23"  # the fixture's first 3 days: searches train several networks


def test_hyperparameter_search_keeps_the_best_trial(catalog, tmp_path):
    config = tiny_config(catalog, max_epochs=2, search_trials=3).override(data={"end": SEARCH_END})
    artifact = train_model(config, tmp_path / "searched")
    search = artifact.metrics["search"]
    assert search["trials"] == 3 and len(search["results"]) == 3
    assert search["complete"] + search["pruned"] == 3 and search["sampler"] == "TPESampler(seed=0)"
    complete = [r for r in search["results"] if r["state"] == "COMPLETE"]
    best = min(complete, key=lambda r: r["val_loss"])
    assert search["best"] == {"number": best["number"], "params": best["params"], "val_loss": best["val_loss"]}
    assert len({json.dumps(r["params"], sort_keys=True) for r in search["results"]}) == 3  # TPE drew 3 configs
    params = best["params"]
    assert artifact.config.model.hidden_size == params["model.hidden_size"] == artifact.lstm.hidden_size
    assert artifact.lstm.num_layers == params["model.num_layers"]
    assert artifact.config.model.dropout == params["model.dropout"]
    assert artifact.config.training.learning_rate == params["training.learning_rate"]
    # The network kept is the winner's own fit: its epochs are the winner's reported losses.
    assert [h["val_loss"] for h in artifact.metrics["history"]] == best["val_losses"]
    saved = json.loads((tmp_path / "searched" / "artifact.json").read_text())
    assert saved["metrics"]["search"]["best"]["number"] == best["number"]


def test_search_records_pruned_trials_never_keeps_one_and_resumes(catalog, bars, tmp_path):
    import optuna

    from models.search import search_hyperparameters

    class PruneOddTrials(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return trial.number % 2 == 1

    config = tiny_config(catalog, max_epochs=2, search_trials=2)
    data = build_dataset(bars.loc[:SEARCH_END], default_spec(), config.training.horizon)
    chosen, result, search = search_hyperparameters(config, [data], [split_for(config, data)], tmp_path, PruneOddTrials())
    assert [r["state"] for r in search["results"]] == ["COMPLETE", "PRUNED"]
    assert (search["complete"], search["pruned"]) == (1, 1)
    assert [len(r["val_losses"]) for r in search["results"]] == [2, 1]  # pruned after its first epoch
    assert search["best"]["number"] == 0  # the pruned trial is never the winner, whatever its loss
    assert [h["val_loss"] for h in result.history] == search["results"][0]["val_losses"]
    assert chosen.training.learning_rate == search["best"]["params"]["training.learning_rate"]
    # Re-run into the same checkpoints (a killed search, started again): the same trials, resumed
    # from their checkpoints, the pruned one pruned again at the same epoch.
    _, again, resumed = search_hyperparameters(config, [data], [split_for(config, data)], tmp_path, PruneOddTrials())
    assert resumed["results"] == search["results"]
    assert again.history == result.history


def test_online_state_saved_and_restored_continues_exactly(artifact, bars):
    model = load_artifact(artifact)
    rows = list(bars.iloc[:1500].itertuples())
    straight, first = OnlinePredictor(model), OnlinePredictor(model)
    for row in rows[:1000]:
        straight.update(row.Index.value, row.high, row.low, row.close, row.volume)
        first.update(row.Index.value, row.high, row.low, row.close, row.volume)
    resumed = OnlinePredictor(model)
    resumed.set_state(json.loads(json.dumps(first.get_state())))  # as a strategy's on_save/on_load carry it
    for row in rows[1000:]:
        expected = straight.update(row.Index.value, row.high, row.low, row.close, row.volume).copy()
        np.testing.assert_array_equal(resumed.update(row.Index.value, row.high, row.low, row.close, row.volume), expected)


def test_a_warm_start_continues_from_the_given_network(catalog, bars):
    """evaluate's later folds continue from the fold before: fit must start from those weights."""
    config = tiny_config(catalog, max_epochs=1, learning_rate=1e-12)
    data = build_dataset(bars, default_spec(), config.training.horizon)
    split = split_for(config, data)
    earlier = fit(config, data, split, seed=1).model
    fresh, continued = fit(config, data, split), fit(config, data, split, warm_start=earlier)
    for name, weights in continued.model.state_dict().items():
        torch.testing.assert_close(weights, earlier.state_dict()[name], rtol=0, atol=1e-6)
        assert not torch.allclose(weights, fresh.model.state_dict()[name], atol=1e-3), name
