"""A small training config for tests: trains in seconds on the 7-day fixture."""

from __future__ import annotations

from models.config import TrainConfig

BAR_TYPE = "BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL"


def tiny_config(catalog, **training) -> TrainConfig:
    return TrainConfig.from_dict({
        "data": {"catalog": str(catalog), "bar_type": BAR_TYPE},
        "model": {"hidden_size": 16, "num_layers": 2, "dropout": 0.1, "burn_in": 32},
        "training": {"horizon": 5, "sequence_length": 256, "batch_size": 16, "max_epochs": 2, "patience": 5,
                     "device": "cpu", **training},
        "evaluation": {"folds": 2},
    })
