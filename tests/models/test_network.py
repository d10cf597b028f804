"""models/network.py: streaming equals batch, determinism, losses, state round trip, training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from models.kernels.lstm import StreamingLSTM, tanh32
from models.network import LSTMConfig, LSTMForecaster
from tests.conftest import NETWORK_UNITS_TOLERANCE

N_FEATURES = 12
QUANTILES = (0.1, 0.5, 0.9)


def features(n_steps: int, seed: int = 0, n_features: int = N_FEATURES) -> np.ndarray:
    return (2.0 * np.random.default_rng(seed).standard_normal((n_steps, n_features))).astype(np.float32)


def batch_predict(model: LSTMForecaster, x: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """forward over one whole sequence from zero state: predictions (T, n_outputs) and (h, c)."""
    with torch.no_grad():
        y, (h, c) = model.eval()(torch.from_numpy(x)[None])
    return y[0].numpy(), (h[:, 0].numpy(), c[:, 0].numpy())


def stream_predict(stream: StreamingLSTM, x: np.ndarray) -> np.ndarray:
    return np.array([stream.step(row).copy() for row in x])


@pytest.mark.parametrize("quantiles", [(), QUANTILES], ids=["regression", "quantiles"])
@pytest.mark.parametrize(("num_layers", "hidden_size"), [(1, 64), (2, 64), (3, 24)])
def test_streaming_equals_batch(quantiles, num_layers, hidden_size):
    config = LSTMConfig(n_features=N_FEATURES, hidden_size=hidden_size, num_layers=num_layers, quantiles=quantiles, seed=3)
    model = LSTMForecaster(config)
    x = features(2_500)
    expected, (h, c) = batch_predict(model, x)
    stream = StreamingLSTM(model)

    got = stream_predict(stream, x)

    assert got.shape == expected.shape == (2_500, model.config.n_outputs)
    assert np.abs(got - expected).max() <= NETWORK_UNITS_TOLERANCE
    stream_h, stream_c = stream.state
    assert np.abs(stream_h - h).max() <= NETWORK_UNITS_TOLERANCE
    assert np.abs(stream_c - c).max() <= NETWORK_UNITS_TOLERANCE


def test_tanh_approximation_is_within_4e_7():
    # The kernel's float32 rational tanh, against the exact one: gates and cell outputs use it.
    x = np.concatenate([np.linspace(-12.0, 12.0, 48_001), np.geomspace(1e-30, 12.0, 2_000)]).astype(np.float32)
    got = np.array([tanh32(v) for v in x], dtype=np.float64)
    exact = np.tanh(x.astype(np.float64))
    assert np.abs(got - exact).max() <= 4e-7
    tiny = (x != 0) & (np.abs(x) < 1e-3)
    assert np.abs(got[tiny] / exact[tiny] - 1.0).max() <= 1e-6  # tiny inputs keep their relative precision
    np.testing.assert_array_equal(np.array([tanh32(-v) for v in x]), -got.astype(np.float32))  # odd
    assert tanh32(np.float32(20.0)) == 1.0 and tanh32(np.float32(-20.0)) == -1.0
    assert np.isnan(tanh32(np.float32(np.nan)))


def test_reset_restarts_from_zero_state():
    model = LSTMForecaster(LSTMConfig(n_features=N_FEATURES))
    stream = StreamingLSTM(model)
    x = features(100)
    first = stream_predict(stream, x)
    stream.reset()
    assert np.array_equal(stream_predict(stream, x), first)


def test_state_round_trip():
    model = LSTMForecaster(LSTMConfig(n_features=N_FEATURES, quantiles=QUANTILES))
    stream = StreamingLSTM(model)
    x = features(300)
    stream_predict(stream, x[:100])
    saved = stream.state
    after_save = stream_predict(stream, x[100:200])
    stream_predict(stream, x[200:])  # wander off
    stream.state = saved
    assert np.array_equal(stream_predict(stream, x[100:200]), after_save)


def test_state_rejects_wrong_shape():
    stream = StreamingLSTM(LSTMForecaster(LSTMConfig(n_features=N_FEATURES)))
    h, c = stream.state
    with pytest.raises(ValueError, match="shape"):
        stream.state = (h[None], c[None])
    with pytest.raises(ValueError, match="shape"):
        stream.step(np.zeros(N_FEATURES + 1))


def test_step_output_is_read_only():
    stream = StreamingLSTM(LSTMForecaster(LSTMConfig(n_features=N_FEATURES)))
    y = stream.step(np.zeros(N_FEATURES))
    with pytest.raises(ValueError):
        y[0] = 1.0


def test_same_seed_same_model_different_seed_different():
    config = LSTMConfig(n_features=N_FEATURES, quantiles=QUANTILES, seed=7)
    a, b = LSTMForecaster(config), LSTMForecaster(config)
    other = LSTMForecaster(LSTMConfig(n_features=N_FEATURES, quantiles=QUANTILES, seed=8))
    x = features(200)

    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert np.array_equal(batch_predict(a, x)[0], batch_predict(b, x)[0])
    assert not torch.equal(a.lstm.weight_ih_l0, other.lstm.weight_ih_l0)
    assert not np.allclose(batch_predict(a, x)[0], batch_predict(other, x)[0])


def test_building_a_model_leaves_the_global_rng_alone():
    before = torch.random.get_rng_state()
    LSTMForecaster(LSTMConfig(n_features=N_FEATURES))
    assert torch.equal(torch.random.get_rng_state(), before)


def test_config_round_trips_through_json():
    config = LSTMConfig(n_features=N_FEATURES, hidden_size=32, num_layers=3, quantiles=QUANTILES, burn_in=10, seed=5)
    assert LSTMConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


@pytest.mark.parametrize(
    "bad",
    [
        {"n_features": 0},
        {"dropout": 1.0},
        {"burn_in": -1},
        {"quantiles": (0.1, 0.9)},  # no median for the point forecast
        {"quantiles": (0.5, 0.1)},
        {"quantiles": (0.0, 0.5)},
    ],
)
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        LSTMConfig(**{"n_features": N_FEATURES, **bad})


def test_point_index_is_the_median_quantile():
    assert LSTMConfig(n_features=1).point_index == 0
    assert LSTMConfig(n_features=1, quantiles=(0.05, 0.25, 0.5, 0.75, 0.95)).point_index == 2


def test_quantiles_do_not_cross():
    model = LSTMForecaster(LSTMConfig(n_features=N_FEATURES, quantiles=(0.05, 0.25, 0.5, 0.75, 0.95)))
    # Make the raw gaps strongly negative and positive, where a plain linear head would cross.
    with torch.no_grad():
        model.head.weight.mul_(50.0)
    x = 5.0 * features(1_000)
    quantiles = slice(0, model.config.n_return_outputs)  # the volatility output follows them
    assert (np.diff(batch_predict(model, x)[0][:, quantiles], axis=-1) >= 0).all()
    assert (np.diff(stream_predict(StreamingLSTM(model), x)[:, quantiles], axis=-1) >= 0).all()


def test_pinball_loss_matches_hand_computation():
    model = LSTMForecaster(LSTMConfig(n_features=1, quantiles=QUANTILES, burn_in=0, volatility_head=False))
    pred = torch.tensor([[[0.0, 1.0, 3.0], [0.0, 0.5, 1.0]]])
    target = torch.tensor([[1.0, -1.0]])
    # Step 0, errors y - q = (1, 0, -2):      0.1*1 + 0 + 0.1*2        = 0.30
    # Step 1, errors y - q = (-1, -1.5, -2):  0.9*1 + 0.5*1.5 + 0.1*2  = 1.85
    # Mean over the three quantiles, then over the two steps.
    assert model.loss(pred, target).item() == pytest.approx((0.30 + 1.85) / 3 / 2)


def test_mse_loss_matches_hand_computation():
    model = LSTMForecaster(LSTMConfig(n_features=1, burn_in=0, volatility_head=False))
    pred = torch.tensor([[[1.0], [2.0], [0.0]]])
    target = torch.tensor([[0.0, 4.0, 0.5]])
    assert model.loss(pred, target).item() == pytest.approx((1.0 + 4.0 + 0.25) / 3)


def scored_loss_case(quantiles):
    """A model with burn_in 5, its predictions over 20 steps and random targets."""
    model = LSTMForecaster(LSTMConfig(n_features=N_FEATURES, quantiles=quantiles, burn_in=5, volatility_head=False))
    pred, _ = model(torch.from_numpy(features(20))[None])
    return model, pred, torch.randn(1, 20, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("quantiles", [(), QUANTILES], ids=["regression", "quantiles"])
def test_loss_ignores_burn_in_and_masked_steps(quantiles):
    model, pred, target = scored_loss_case(quantiles)
    mask = (torch.arange(20) >= 5).expand(1, 20).clone()
    mask[0, 10] = False
    changed = target.clone()
    changed[0, :5] = 100.0  # burn-in
    changed[0, 10] = 100.0  # masked out

    assert model.loss(pred, changed, mask).item() == model.loss(pred, target, mask).item()
    # Without a mask, the burn-in alone is left out.
    changed[0, 10] = target[0, 10]
    assert model.loss(pred, changed).item() == model.loss(pred, target).item()
    assert model.loss(pred, target).item() == model.loss(pred, target, torch.arange(20) >= 5).item()


@pytest.mark.parametrize("quantiles", [(), QUANTILES], ids=["regression", "quantiles"])
def test_loss_skips_nan_targets_without_poisoning_the_gradient(quantiles):
    model, pred, target = scored_loss_case(quantiles)
    target[0, -1] = float("nan")  # the last bar has no forward return yet

    loss = model.loss(pred, target)
    loss.backward()

    without_last = (torch.arange(20) >= 5) & (torch.arange(20) < 19)
    assert loss.item() == model.loss(pred, target.nan_to_num(0.0), without_last).item()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def toy_batch(generator: torch.Generator, batch: int = 16, steps: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """Random features; the target is a fixed function of the inputs 1 and 3 bars back."""
    x = torch.randn(batch, steps, 4, generator=generator)
    target = torch.full((batch, steps), float("nan"))
    target[:, 3:] = torch.tanh(x[:, 2:-1, 0] - 0.8 * x[:, :-3, 1])
    return x, target


@pytest.fixture(scope="module")
def trained() -> tuple[LSTMForecaster, float, float]:
    """A small model trained for 300 steps: (model, held-out loss before, held-out loss after)."""
    torch.manual_seed(0)
    model = LSTMForecaster(LSTMConfig(n_features=4, hidden_size=32, num_layers=2, burn_in=8, volatility_head=False, seed=1))
    held_out = toy_batch(torch.Generator().manual_seed(123))

    def held_out_loss() -> float:
        with torch.no_grad():
            return model.eval().loss(model(held_out[0])[0], held_out[1]).item()

    before = held_out_loss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(300):
        x, target = toy_batch(generator)
        loss = model.loss(model(x)[0], target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model, before, held_out_loss()


def test_training_learns_a_function_of_past_inputs(trained):
    _, before, after = trained
    assert after < 0.1 * before, (before, after)


def test_trained_model_streams_like_batch(trained):
    model = trained[0]
    x = features(2_000, n_features=4)
    expected, _ = batch_predict(model, x)
    assert np.abs(stream_predict(StreamingLSTM(model), x) - expected).max() <= NETWORK_UNITS_TOLERANCE
