"""A small training config for tests: trains in seconds on the 7-day fixture."""

from __future__ import annotations

from pathlib import Path

from models.config import TrainConfig
from models.train import train_model

BAR_TYPE = "BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL"


def tiny_config(catalog, **training) -> TrainConfig:
    return TrainConfig.from_dict({
        "data": {"catalog": str(catalog), "bar_type": BAR_TYPE},
        "model": {"hidden_size": 16, "num_layers": 2, "dropout": 0.1, "burn_in": 32},
        "training": {"horizon": 5, "sequence_length": 256, "batch_size": 16, "max_epochs": 2, "patience": 5,
                     "device": "cpu", **training},
        "evaluation": {"folds": 2},
    })


def train_walk_base(catalog, path: Path) -> Path:
    """The base model of the walk-forward tests, retrained per window: one epoch of a 1-layer, 8-unit LSTM."""
    train_model(TrainConfig.from_dict({
        "data": {"catalog": str(catalog), "bar_type": BAR_TYPE},
        "model": {"hidden_size": 8, "num_layers": 1, "dropout": 0.0, "burn_in": 16},
        "training": {"horizon": 5, "sequence_length": 128, "max_epochs": 1, "device": "cpu"},
    }), path)
    return path
