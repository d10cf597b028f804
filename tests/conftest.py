"""Shared test fixtures.

Real market data comes from one setting: ``NAUTILUS_LSTM_DATA`` (default ``../shared/data``
beside the project root). Without it the tests that need it are skipped with a reason naming
the setting; under CI (``CI=true``) its absence is a failure, never a skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtests.parallel import THREAD_ENV, limit_threads
from marketdata.history import import_klines

# The suite runs in two processes on the CI machine's two cores (Makefile: TEST_WORKERS): each on
# one thread, and so are the nodes, CLIs and Ray workers the tests start (they inherit THREAD_ENV).
# On two threads, torch's wait at every op's barrier for a core the other process holds: the
# 4-second training of test_network's `trained` took 365 s in CI, and the paper node fell behind
# its bars.
os.environ.update(THREAD_ENV)
limit_threads()

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_SETTING = "NAUTILUS_LSTM_DATA"

FIXTURE_7D = "fixture_btcusdt_1m_2025-05-20_7d.csv.gz"
BTC_1M = "btcusdt_1m_2025-05-20_2025-08-18.csv.gz"
ETH_1M = "ethusdt_1m_2025-05-20_2025-08-18.csv.gz"
BTC_1H = "btcusdt_1h_2017-08-17_2025-12-31.csv.gz"


# The documented guarantee (models/predictor.py): streaming forecasts equal batch ones to this in
# the network's own units, where outputs are of order 1. Forecasts as log returns are that times
# the artifact's target scale (about 1e-3 on 1-minute bars): an absolute 1e-5 on them would let
# through errors as large as the forecasts themselves.
NETWORK_UNITS_TOLERANCE = 1e-5


def network_units_gap(got, expected, artifact) -> float:
    """The largest difference between two sets of forecasts (log returns) of ``artifact``, in the
    network's own units: divided by its target scale."""
    return float(np.max(np.abs(np.asarray(got, dtype=np.float64) - np.asarray(expected, dtype=np.float64)))) / artifact.scales.return_scale


def shared_data_dir() -> Path:
    return Path(os.environ.get(DATA_SETTING, PROJECT_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real Binance kline files."""
    folder = shared_data_dir()
    if not (folder / FIXTURE_7D).is_file():
        reason = f"real market data not found at {folder}: set {DATA_SETTING} to the shared/data folder"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return folder


@pytest.fixture(scope="session")
def catalog(tmp_path_factory, shared_data) -> Path:
    """A catalog of the 7-day BTC/USDT 1m fixture, shared by the tests that only read it."""
    path = tmp_path_factory.mktemp("catalog")
    import_klines(shared_data / FIXTURE_7D, exchange="binance", symbol="BTC/USDT", timeframe="1m",
                  market="spot", catalog_path=path)
    return path


@pytest.fixture(scope="session")
def real_bars(shared_data):
    """The 7-day BTC/USDT 1-minute fixture, as read_klines reads it."""
    from marketdata.klines import read_klines

    return read_klines(shared_data / FIXTURE_7D)


@pytest.fixture(scope="session")
def second_bars_model(tmp_path_factory, real_bars) -> Path:
    """A tiny quantile model of 1-second BTCUSDT spot bars (real minute bars re-stamped a second
    apart; ``tests/fakes/node_harness``), shared by the paper and live nodes' end-to-end tests."""
    from tests.fakes.node_harness import BAR_TYPE, TRAIN_ROWS, restamp, train_tiny_model

    return train_tiny_model(tmp_path_factory.mktemp("second-bars-model"), restamp(real_bars.iloc[TRAIN_ROWS], 1_700_000_000_000),
                            BAR_TYPE, "1s", "spot")


def changed_after(bars, t, seed: int = 0):
    """``bars`` with every bar closing after ``t`` changed: prices scaled by 0.8-1.2 per bar (high
    and low kept the bar's extremes), volumes by 0.1-10."""
    rng = np.random.default_rng(seed)
    changed = bars.copy()
    later = changed.index > t
    prices = ["open", "high", "low", "close"]
    changed.loc[later, prices] *= rng.uniform(0.8, 1.2, size=(later.sum(), 1))
    changed.loc[later, "high"] = changed.loc[later, prices].max(axis=1)
    changed.loc[later, "low"] = changed.loc[later, prices].min(axis=1)
    changed.loc[later, "volume"] *= rng.uniform(0.1, 10, size=later.sum())
    return changed


def assert_no_look_ahead(predict, bars, t) -> None:
    """``predict(bars)`` (a frame indexed by close time) gives the same rows at or before ``t``
    when every later bar changes, and other rows after it."""
    base, other = predict(bars), predict(changed_after(bars, t))
    known = base.index <= t
    pd.testing.assert_frame_equal(base[known], other[known])
    assert not np.allclose(base[~known].to_numpy(), other[~known].to_numpy())


@pytest.fixture(scope="session")
def backtest_folder(tmp_path_factory, shared_data) -> Path:
    """A small real backtest folder (tests/fakes/report_runs.tiny_backtest), shared by the report tests."""
    from tests.fakes.report_runs import tiny_backtest

    return tiny_backtest(tmp_path_factory.mktemp("report-backtest"), shared_data / FIXTURE_7D)
