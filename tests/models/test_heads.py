"""models/heads.py: the targets, their losses and decoding, on both paths, without look-ahead."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from marketdata.catalog import load_bars
from models.artifact import load_artifact
from models.dataset import build_dataset
from models.features import default_spec
from models.heads import (
    TargetScales,
    decode,
    kernel_heads,
    network_targets,
    output_names,
    trailing_sigma,
)
from models.kernels.predict import decode_bar
from models.network import LSTMConfig, LSTMForecaster
from models.predictor import OnlinePredictor, batch_predict
from models.train import train_model
from tests.conftest import (
    NETWORK_UNITS_TOLERANCE,
    assert_no_look_ahead,
    network_units_gap,
)
from tests.fakes.training import BAR_TYPE, tiny_config

HORIZON = 5
SCALES = TargetScales(return_scale=0.002, volatility_mean=-6.0, volatility_std=0.4)
HEADS = [("log_return", (), True), ("log_return", (0.1, 0.5, 0.9), False), ("vol_normalized", (0.1, 0.5, 0.9), True),
         ("vol_normalized", (), False), ("direction", (), True), ("direction", (), False), ("none", (), True)]


@pytest.fixture(scope="module")
def bars(catalog):
    return load_bars(catalog, BAR_TYPE)


@pytest.mark.parametrize(("return_target", "quantiles", "volatility_head"), HEADS)
def test_the_kernel_decodes_as_the_batch_path(return_target, quantiles, volatility_head, bars):
    config = LSTMConfig(n_features=20, quantiles=quantiles, return_target=return_target, volatility_head=volatility_head)
    data = build_dataset(bars.iloc[:3000], default_spec(), HORIZON)
    raw = np.random.default_rng(0).standard_normal((len(data), config.n_outputs)).astype(np.float32)
    expected = decode(config, SCALES, raw, trailing_sigma(config, data))
    heads = kernel_heads(config, SCALES, default_spec(), HORIZON)
    got = np.zeros_like(expected)
    for row in range(len(data)):
        decode_bar(raw[row], data.features[row], heads, got[row])
    assert expected.shape == (len(data), len(output_names(config)))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)


def test_direction_decodes_to_an_expected_return_signed_by_the_odds():
    config = LSTMConfig(n_features=1, return_target="direction")
    raw = np.array([[0.0, 0.0], [math.log(3.0), 0.0], [-math.log(3.0), 1.0]])  # p = 1/2, 3/4, 1/4
    out = decode(config, SCALES, raw, None)
    sigma = np.exp(SCALES.volatility_mean + raw[:, 1] * SCALES.volatility_std)
    np.testing.assert_allclose(out[:, 0], [0.5, 0.75, 0.25])
    np.testing.assert_allclose(out[:, 1], np.array([0.0, 0.5, -0.5]) * math.sqrt(2 / math.pi) * sigma)
    np.testing.assert_allclose(out[:, 2], sigma)
    assert output_names(config) == ["p_up", "prediction", "volatility"]


def test_targets_in_natural_and_network_units(bars):
    data = build_dataset(bars.iloc[:3000], default_spec(), HORIZON)
    normalized = LSTMConfig(n_features=20, return_target="vol_normalized")
    sigma = trailing_sigma(normalized, data)
    np.testing.assert_allclose(sigma, np.maximum(data.features[:, default_spec().columns.index("vol_60")], 1e-6) * math.sqrt(HORIZON))
    targets = network_targets(normalized, data, sigma, SCALES)
    np.testing.assert_allclose(targets[:, 0], data.target / sigma / SCALES.return_scale, rtol=1e-6)
    np.testing.assert_allclose(targets[:, 1], (data.volatility - SCALES.volatility_mean) / SCALES.volatility_std, rtol=1e-5)
    direction = network_targets(LSTMConfig(n_features=20, return_target="direction", volatility_head=False), data, None, SCALES)
    known = ~np.isnan(data.target)
    assert direction.shape == (len(data), 1) and np.isnan(direction[~known, 0]).all() and (~known).sum() == HORIZON
    np.testing.assert_array_equal(direction[known, 0], (data.target[known] > 0).astype(np.float32))


def test_the_joint_loss_is_the_sum_of_each_heads_loss_over_its_own_known_steps():
    model = LSTMForecaster(LSTMConfig(n_features=1, burn_in=0))
    pred = torch.tensor([[[1.0, 0.5], [2.0, -1.0], [0.0, 0.0]]])
    target = torch.tensor([[[0.0, 0.0], [4.0, float("nan")], [0.5, 1.0]]])
    returns = (1.0 + 4.0 + 0.25) / 3
    volatility = (0.25 + 1.0) / 2  # the step without a volatility target is left out of that mean only
    assert model.loss(pred, target).item() == pytest.approx(returns + volatility)


def test_the_direction_loss_is_binary_cross_entropy_on_the_logit():
    model = LSTMForecaster(LSTMConfig(n_features=1, burn_in=0, return_target="direction", volatility_head=False))
    pred = torch.tensor([[[0.0], [math.log(3.0)]]])
    target = torch.tensor([[1.0, 0.0]])
    assert model.loss(pred, target).item() == pytest.approx((math.log(2.0) + math.log(4.0)) / 2)


@pytest.mark.parametrize("bad", [{"return_target": "price"}, {"return_target": "direction", "quantiles": (0.1, 0.5, 0.9)},
                                 {"return_target": "none", "volatility_head": False}])
def test_config_refuses_heads_that_make_no_sense(bad):
    with pytest.raises(ValueError):
        LSTMConfig(n_features=3, **bad)


@pytest.fixture(scope="module", params=["vol_normalized", "direction", "none"])
def head_artifact(request, catalog, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"heads-{request.param}") / "model"
    train_model(tiny_config(catalog, max_epochs=1).override(model={"return_target": request.param}), out)
    return load_artifact(out)


def test_every_target_streams_like_the_batch_path(head_artifact, bars):
    batch = batch_predict(head_artifact, bars)
    online = OnlinePredictor(head_artifact)
    columns = [bars[c].tolist() for c in ("high", "low", "close", "volume")]
    rows = [online.update(t, *bar) for t, *bar in zip(bars.index.as_unit("ns").asi8.tolist(), *columns)]
    streamed = np.array([row for row in rows if row is not None])
    assert list(batch.columns) == output_names(head_artifact.lstm) and streamed.shape == batch.shape
    assert network_units_gap(streamed, batch, head_artifact) <= NETWORK_UNITS_TOLERANCE
    assert (batch["volatility"] > 0).all()
    if "p_up" in batch:
        assert batch["p_up"].between(0, 1).all() and (np.sign(batch["prediction"]) == np.sign(batch["p_up"] - 0.5)).all()


def test_no_target_sees_the_future(head_artifact, bars):
    assert_no_look_ahead(lambda frame: batch_predict(head_artifact, frame), bars, bars.index[5000])
