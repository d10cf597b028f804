"""Running this project's nodes end to end in tests: real bars replayed around the present, a tiny
model of 1-second bars, and the node itself as a subprocess of the real command.

The replay: real BTC/USDT 1-minute klines from the shared data, re-stamped as 1-second bars
around the present (history before now, then one bar a second on the fake's WebSocket stream):
real bars replayed 60 times faster than they happened. One-second bars in real time, rather than
minute bars stamped into the future and sent fast, keep every clock honest: Nautilus refuses
history requests that end after its (real) clock and its Binance adapter drops bars that close
after it from REST answers, so future-stamped bars could never be back-filled, and the stale-bar
and stale-feed checks would be untestable.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd

from marketdata.history import import_klines
from strategies.decision_log import read_predictions
from tests.conftest import PROJECT_ROOT

BAR_TYPE = "BTCUSDT.BINANCE-1-SECOND-LAST-EXTERNAL"
SECOND = pd.Timedelta(seconds=1)
HISTORY_BARS = 700  # before the start: more than the strategy's warm-up (415 + 4 x 32)
TRAIN_ROWS = slice(0, 4000)  # fixture rows for the model; replays use later ones
REPLAY_FIRST_ROW = 5000
KEY_VARIABLES = ("BINANCE_API_KEY", "BINANCE_API_SECRET", "BINANCE_TESTNET_API_KEY", "BINANCE_TESTNET_API_SECRET",
                 "BINANCE_FUTURES_TESTNET_API_KEY", "BINANCE_FUTURES_TESTNET_API_SECRET")


def restamp(klines: pd.DataFrame, first_open_ms: int, interval_ms: int = 1000) -> pd.DataFrame:
    """The same bars, ``interval_ms`` apart from ``first_open_ms``."""
    out = klines[["open_time", "open", "high", "low", "close", "volume"]].reset_index(drop=True)
    out["open_time"] = first_open_ms + np.arange(len(out), dtype=np.int64) * interval_ms
    return out


def write_catalog(klines: pd.DataFrame, folder: Path, timeframe: str = "1s", market: str = "spot") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    klines.to_csv(folder / "klines.csv", index=False)
    import_klines(folder / "klines.csv", exchange="binance", symbol="BTC/USDT", timeframe=timeframe, market=market,
                  catalog_path=folder / "catalog")
    return folder / "catalog"


def close_times(klines: pd.DataFrame, interval_ms: int = 1000) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(klines["open_time"].to_numpy() + interval_ms, unit="ms", utc=True))


def train_tiny_model(root: Path, bars: pd.DataFrame, bar_type: str, timeframe: str, market: str) -> Path:
    """A tiny quantile model of ``bars``, without the time-of-day and day-of-week features (its
    training bars span far less clock time than real ones: every other hour would be off the
    scale it learned)."""
    from models.features import FeatureSpec
    from models.train import train_model
    from tests.fakes.training import tiny_config

    catalog = write_catalog(bars, root, timeframe, market)
    config = tiny_config(catalog, max_epochs=1).override(data={"bar_type": bar_type}, model={"quantiles": [0.1, 0.5, 0.9]})
    config = dataclasses.replace(config, features=FeatureSpec(time_of_day=False, day_of_week=False).to_dict())
    train_model(config, root / "model")
    return root / "model"


def start_node(command: list[str], log_path: Path, environment: dict[str, str] | None = None) -> subprocess.Popen:
    """The node's command as a subprocess, its output in ``log_path``; the Binance keys it sees
    are those in ``environment`` only."""
    env = {name: value for name, value in os.environ.items() if name not in KEY_VARIABLES}
    env.update(environment or {}, PYTHONUNBUFFERED="1")
    log = log_path.open("w")
    return subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def decisions(run_dir: Path) -> pd.DataFrame:
    path = run_dir / "predictions.csv"
    return read_predictions(path) if path.exists() and path.stat().st_size else pd.DataFrame()


def wait_for(condition, timeout_s: float, what: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the node exited ({process.returncode}) waiting for {what}:\n{log_path.read_text()[-5000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{log_path.read_text()[-5000:]}")
        time.sleep(0.1)


def wait_for_exit(process: subprocess.Popen, log_path: Path, what: str, timeout_s: float = 30) -> None:
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(f"the node did not stop on {what}:\n{log_path.read_text()[-5000:]}") from None
    assert process.returncode == 0, log_path.read_text()[-5000:]


def stop_node(process: subprocess.Popen, sig: int, log_path: Path) -> None:
    process.send_signal(sig)
    wait_for_exit(process, log_path, signal.Signals(sig).name)
