"""The hybrids (models.network ``architecture``; models.kernels.hybrids): alstm and cnn_lstm stream
bar by bar exactly as the batch pass, across its chunks, restart from saved state, see no future."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from marketdata.catalog import load_bars
from models import network
from models.artifact import load_artifact, save_artifact
from models.config import TrainConfig
from models.evaluate import evaluate
from models.kernels.hybrids import StreamingALSTM, StreamingCNNLSTM, streaming_network
from models.network import LSTMConfig, LSTMForecaster, predict_series
from models.predictor import OnlinePredictor, batch_predict
from models.train import train_model
from tests.conftest import (
    NETWORK_UNITS_TOLERANCE,
    assert_no_look_ahead,
    network_units_gap,
)
from tests.fakes.training import BAR_TYPE, tiny_config

N_FEATURES = 12
HYBRIDS = ("alstm", "cnn_lstm")


def features(n_steps: int, seed: int = 0) -> np.ndarray:
    return (2.0 * np.random.default_rng(seed).standard_normal((n_steps, N_FEATURES))).astype(np.float32)


def hybrid(architecture: str, **fields) -> LSTMForecaster:
    return LSTMForecaster(LSTMConfig(n_features=N_FEATURES, architecture=architecture, seed=3, **fields)).eval()


def stream(net, x: np.ndarray) -> np.ndarray:
    return np.array([net.step(row).copy() for row in x])


def forward_state(model: LSTMForecaster, x: np.ndarray) -> tuple[np.ndarray, ...]:
    """forward's state after ``x`` from zero state, for one sequence, shaped as the streaming one's."""
    with torch.no_grad():
        _, (h, c, past) = model(torch.from_numpy(x)[None])
    return h[:, 0].numpy(), c[:, 0].numpy(), past[0].numpy()


@pytest.mark.parametrize(("architecture", "fields"), [
    ("alstm", {}),
    ("alstm", {"attention_window": 1, "num_layers": 1, "quantiles": (0.1, 0.5, 0.9)}),
    ("alstm", {"attention_window": 40, "hidden_size": 24, "num_layers": 3}),
    ("cnn_lstm", {}),
    ("cnn_lstm", {"conv_kernel": 1, "conv_channels": 8, "quantiles": (0.1, 0.5, 0.9)}),
    ("cnn_lstm", {"conv_kernel": 7, "conv_channels": 48, "num_layers": 1, "return_target": "direction"}),
])
def test_streaming_equals_batch(architecture, fields):
    model = hybrid(architecture, **fields)
    x = features(3_000)
    net = streaming_network(model)

    got = stream(net, x)

    expected = predict_series(model, x)
    assert got.shape == expected.shape == (3_000, model.config.n_outputs)
    assert np.abs(got - expected).max() <= NETWORK_UNITS_TOLERANCE
    for streamed, batch in zip(net.state, forward_state(model, x), strict=True):
        assert streamed.shape == batch.shape
        assert np.abs(streamed - batch).max(initial=0.0) <= NETWORK_UNITS_TOLERANCE


@pytest.mark.parametrize("architecture", HYBRIDS)
@pytest.mark.parametrize("chunk", [5, 97, None], ids=["chunk-5", "chunk-97", "chunk-8192"])
def test_the_batch_pass_carries_state_across_its_chunks(architecture, chunk, monkeypatch):
    # Chunks shorter than the window (5 < 16 - 1 outputs, < 7 - 1 rows) and longer; None: the
    # real chunk on a series longer than it.
    model = hybrid(architecture, attention_window=16, conv_kernel=7)
    x = features(9_000 if chunk is None else 600, seed=1)
    if chunk is not None:
        monkeypatch.setattr(network, "PREDICT_CHUNK", chunk)
    assert len(x) > network.PREDICT_CHUNK
    assert np.abs(predict_series(model, x) - stream(streaming_network(model), x)).max() <= NETWORK_UNITS_TOLERANCE


@pytest.mark.parametrize("architecture", HYBRIDS)
def test_state_round_trip_and_reset(architecture):
    model = hybrid(architecture, quantiles=(0.1, 0.5, 0.9))
    net = streaming_network(model)
    x = features(300)
    empty = net.state  # at the start: no outputs yet, zero rows
    first = stream(net, x)
    net.reset()
    np.testing.assert_array_equal(stream(net, x), first)  # reset: as new, bit for bit

    net.reset()
    stream(net, x[:100])
    saved = net.state
    after_save = stream(net, x[100:200])
    stream(net, x[200:])  # wander off
    net.state = saved
    np.testing.assert_array_equal(stream(net, x[100:200]), after_save)
    # Through JSON, as a strategy saves it, and from the very start.
    other = streaming_network(model)
    other.state = tuple(np.asarray(json.loads(json.dumps(a.tolist()))) for a in empty)
    np.testing.assert_array_equal(stream(other, x), first)


def test_the_attention_window_holds_the_last_outputs():
    model = hybrid("alstm", attention_window=6)
    net = streaming_network(model)
    assert isinstance(net, StreamingALSTM) and net.state_names == ("h", "c", "window")
    x = features(9)
    assert net.state[2].shape == (0, 64)
    stream(net, x[:3])
    assert net.state[2].shape == (3, 64)  # fewer than k - 1 near the start
    stream(net, x[3:])
    np.testing.assert_allclose(net.state[2], forward_state(model, x)[2], atol=NETWORK_UNITS_TOLERANCE)
    assert net.state[2].shape == (5, 64)


@pytest.mark.parametrize(("architecture", "bad", "message"), [
    ("alstm", np.zeros((16, 64)), "at most 15 outputs"),
    ("alstm", np.zeros((3, 63)), "at most 15 outputs"),
    ("cnn_lstm", np.zeros((3, N_FEATURES)), r"rows of shape \(2, 12\)"),
])
def test_state_rejects_wrong_shapes(architecture, bad, message):
    net = streaming_network(hybrid(architecture))
    h, c, _ = net.state
    with pytest.raises(ValueError, match=message):
        net.state = (h, c, bad)
    with pytest.raises(ValueError, match="expected the state"):
        net.state = (h, c)
    assert isinstance(net, StreamingALSTM if architecture == "alstm" else StreamingCNNLSTM)


@pytest.mark.parametrize("bad", [{"architecture": "transformer"}, {"attention_window": 0}, {"conv_kernel": 0},
                                 {"conv_channels": 0}])
def test_config_refuses_bad_hybrid_fields(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        LSTMConfig(n_features=N_FEATURES, **bad)


def test_the_toml_model_section_selects_the_hybrid(catalog):
    raw = tiny_config(catalog).to_dict()
    raw["model"] |= {"architecture": "cnn_lstm", "conv_kernel": 5, "conv_channels": 8}
    config = TrainConfig.from_dict(raw)
    assert (config.model.architecture, config.model.conv_kernel, config.model.conv_channels) == ("cnn_lstm", 5, 8)
    with pytest.raises(ValueError, match="attention_window must be int"):
        TrainConfig.from_dict({**raw, "model": {**raw["model"], "attention_window": 2.5}})


@pytest.fixture(scope="module")
def bars(catalog):
    return load_bars(catalog, BAR_TYPE)


@pytest.fixture(scope="module", params=HYBRIDS)
def hybrid_artifact(request, catalog, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"hybrid-{request.param}") / "model"
    train_model(tiny_config(catalog, max_epochs=1).override(model={"architecture": request.param}), out)
    return load_artifact(out)


def stream_bars(online, bars: pd.DataFrame) -> list:
    columns = [bars[c].tolist() for c in ("high", "low", "close", "volume")]
    return [online.update(t, *bar) for t, *bar in zip(bars.index.as_unit("ns").asi8.tolist(), *columns)]


def test_trained_hybrid_streams_like_the_batch_path_and_resumes(hybrid_artifact, bars):
    assert hybrid_artifact.model.config.architecture in HYBRIDS
    online = OnlinePredictor(hybrid_artifact)
    rows = stream_bars(online, bars)
    warmup = hybrid_artifact.feature_spec.warmup_bars
    streamed = np.array(rows[warmup:])
    batch = batch_predict(hybrid_artifact, bars)
    assert streamed.shape == batch.shape
    assert network_units_gap(streamed, batch, hybrid_artifact) <= NETWORK_UNITS_TOLERANCE

    # A strategy restart: the state through JSON, then the rest of the bars, bit for bit.
    first, resumed = OnlinePredictor(hybrid_artifact), OnlinePredictor(hybrid_artifact)
    stream_bars(first, bars.iloc[:6000])
    saved = json.loads(json.dumps(first.get_state()))
    assert set(saved) == {"features", *first.network.state_names}
    resumed.set_state(saved)
    stream_bars(first, bars.iloc[6000:6500])  # the saved state shares no arrays with it
    np.testing.assert_array_equal(np.array(stream_bars(resumed, bars.iloc[6000:])), streamed[6000 - warmup :])


def test_every_array_the_predictor_passes_its_kernel_starts_on_a_cache_line(hybrid_artifact):
    arrays = [a for a in OnlinePredictor(hybrid_artifact)._arrays if isinstance(a, np.ndarray)]
    assert all(array.ctypes.data % 64 == 0 for array in arrays), [array.ctypes.data % 64 for array in arrays]


def test_trained_hybrid_never_sees_the_future(hybrid_artifact, bars):
    assert_no_look_ahead(lambda frame: batch_predict(hybrid_artifact, frame), bars, bars.index[5000])


def test_a_trained_hybrid_evaluates(hybrid_artifact, tmp_path):
    # evaluate retrains the artifact's config (its architecture) fold by fold: nothing special.
    save_artifact(tmp_path / "model", hybrid_artifact)
    report = evaluate(tmp_path / "model", seeds=1)
    assert np.isfinite(report["models"]["lstm"]["ic"]["mean"]) and np.isfinite(report["models"]["lstm"]["rmse"]["mean"])
