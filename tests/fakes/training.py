"""A small training config for tests: trains in seconds on the 7-day fixture."""

from __future__ import annotations

import gzip
from pathlib import Path

from marketdata.history import import_klines
from models.config import TrainConfig
from models.train import train_model

BAR_TYPE = "BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL"
ETH = "ETHUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL"


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


def pooled_catalog(root: Path, shared_data: Path, eth_days: int = 3) -> Path:
    """A catalog of the 7-day BTC fixture and the first ``eth_days`` days of ETH's 1m file (both spot)."""
    from tests.conftest import ETH_1M, FIXTURE_7D

    eth = root / "eth.csv.gz"
    with gzip.open(shared_data / ETH_1M, "rt") as src, gzip.open(eth, "wt") as dst:
        for number, line in enumerate(src):
            if number > eth_days * 1440:
                break
            dst.write(line)
    catalog = root / "catalog"
    import_klines(shared_data / FIXTURE_7D, exchange="binance", symbol="BTC/USDT", timeframe="1m", market="spot", catalog_path=catalog)
    import_klines(eth, exchange="binance", symbol="ETH/USDT", timeframe="1m", market="spot", catalog_path=catalog)
    return catalog
