"""Benchmark: per-bar latency inside the strategy, backtest throughput, batch prediction, training.

Prints one JSON object. Everything is measured in this one process on real bars, so the ratios
compare like with like on a noisy machine:

    python scripts/bench.py [--data ../shared/data/btcusdt_1m_2025-05-20_2025-08-18.csv.gz]

- per_bar_latency_us: wall time of LSTMStrategy's work per live bar (online features, one
  LSTM step, decision), measured inside the strategy over every backtest bar (median over runs
  of each run's median and p99);
- backtest_bars_per_s: the LSTM strategy and a no-op strategy (subscribes, does nothing) over
  the same bars, engine and venue, alternating ``--runs`` times; ratio = lstm / noop, the
  median of the per-run ratios (the LSTM's time includes its start: loading the model and the
  warm-up);
- batch_windows_per_s: offline predictions per second (one stateful pass over the series);
- train_seconds: training the shipped default config on the file;
- hybrids: the same per-bar latency for each hybrid architecture (models.network), trained from
  the default config with that architecture for at most ``--hybrid-epochs`` epochs (default 2:
  the latency depends on the network's shape, not its training; the JSON says how many ran), one
  backtest each (``--runs`` does not apply), with its bars/s.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.trading.strategy import Strategy

from marketdata.catalog import load_bars
from marketdata.history import import_klines
from backtests.runner import BacktestSettings, load_inputs, lstm_strategy, run_strategy
from models.config import load_config
from models.dataset import build_dataset
from models.network import ARCHITECTURES, predict_series
from models.train import train_model

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "btcusdt_1m_2025-05-20_2025-08-18.csv.gz"
BAR_TYPE = "BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL"


class NoopConfig(StrategyConfig, frozen=True):
    bar_type: BarType


class Noop(Strategy):
    """Receives every bar and does nothing: the engine's own cost."""

    def on_start(self) -> None:
        self.subscribe_bars(self.config.bar_type)

    def on_bar(self, bar: Bar) -> None:
        pass

    def on_stop(self) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a Binance 1m kline file of BTC/USDT")
    parser.add_argument("--work", type=Path, help="folder for the catalog and model (default: a temp folder)")
    parser.add_argument("--runs", type=int, default=3, help="backtests of each strategy; medians are reported (default: 3)")
    parser.add_argument("--hybrid-epochs", type=int, default=2, help="training epochs at most for each hybrid (default: 2)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="nautilus-lstm-bench-"))
    catalog, model = work / "catalog", work / "model"
    import_klines(args.data, exchange="binance", symbol="BTC/USDT", timeframe="1m", market="spot", catalog_path=catalog)

    config = load_config().override(data={"catalog": str(catalog), "bar_type": BAR_TYPE})
    train_threads = torch.get_num_threads()
    started = time.perf_counter()
    artifact = train_model(config, model)
    train_seconds = time.perf_counter() - started

    # Every bar of the file: throughput, not returns, is measured here. The LSTM and the no-op
    # strategy alternate, RUNS times each, and the medians are reported: the machine is noisy.
    settings = BacktestSettings(model_path=model, catalog=catalog, bar_type=BAR_TYPE, strategy={"measure_latency": True})
    instrument, bars = load_inputs(settings)
    lstm_seconds, noop_seconds, latency_medians, latency_p99s = [], [], [], []
    for _ in range(args.runs):
        strategy = lstm_strategy(settings)
        lstm_seconds.append(run_strategy("lstm", strategy, settings, instrument, bars).seconds)
        noop = Noop(NoopConfig(bar_type=BarType.from_str(BAR_TYPE)))
        noop_seconds.append(run_strategy("noop", noop, settings, instrument, bars).seconds)
        latencies_us = np.array(strategy.latencies_ns) / 1_000
        latency_medians.append(float(np.median(latencies_us)))
        latency_p99s.append(float(np.percentile(latencies_us, 99)))

    data = build_dataset(load_bars(catalog, BAR_TYPE), artifact.feature_spec, config.training.horizon)
    scaled = artifact.scaler.transform(data.features)
    started = time.perf_counter()
    predict_series(artifact.model, scaled)
    batch_seconds = time.perf_counter() - started

    hybrids = {}
    for architecture in ARCHITECTURES[1:]:
        hybrid_model = work / architecture
        started = time.perf_counter()
        hybrid = train_model(config.override(model={"architecture": architecture}, training={"max_epochs": args.hybrid_epochs}),
                             hybrid_model)
        hybrid_train_seconds = time.perf_counter() - started
        hybrid_settings = dataclasses.replace(settings, model_path=hybrid_model)
        hybrid_strategy = lstm_strategy(hybrid_settings)
        seconds = run_strategy(architecture, hybrid_strategy, hybrid_settings, instrument, bars).seconds
        hybrid_us = np.array(hybrid_strategy.latencies_ns) / 1_000
        hybrids[architecture] = {
            "per_bar_latency_us": {"median": float(np.median(hybrid_us)), "p99": float(np.percentile(hybrid_us, 99))},
            "backtest_bars_per_s": len(bars) / seconds,
            "epochs_trained": hybrid.metrics["epochs_run"], "train_seconds": hybrid_train_seconds,
        }

    ratios = [noop / lstm for lstm, noop in zip(lstm_seconds, noop_seconds)]
    print(json.dumps({
        "bars": len(bars),
        "runs": args.runs,
        "per_bar_latency_us": {"median": float(np.median(latency_medians)), "p99": float(np.median(latency_p99s)),
                               "bars_measured_per_run": int(latencies_us.size)},
        "backtest_bars_per_s": {"lstm": len(bars) / float(np.median(lstm_seconds)),
                                "noop": len(bars) / float(np.median(noop_seconds)),
                                "ratio": float(np.median(ratios)), "ratio_per_run": ratios},
        "batch_windows_per_s": len(scaled) / batch_seconds,
        "train_seconds": train_seconds,
        "torch_threads": {"inference": strategy.config.inference_threads, "training": train_threads},
        "hybrids": hybrids,
    }, indent=2))


if __name__ == "__main__":
    main()
