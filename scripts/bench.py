"""Benchmark: per-bar latency inside the strategy, backtest throughput, batch prediction, training.

Prints one JSON object. Everything is measured in this one process on real bars, so the ratios
compare like with like on a noisy machine:

    python scripts/bench.py [--data ../shared/data/btcusdt_1m_2025-05-20_2025-08-18.csv.gz]

- per_bar_latency_us: wall time of LSTMStrategy's work per live bar (online features, one
  LSTM step, decision), measured inside the strategy over every backtest bar (median over runs
  of each run's median and p99);
- backtest_bars_per_s: the LSTM strategy and a no-op strategy (subscribes, does nothing) over
  the same bars, engine and venue, taking turns (with forecast_only) ``--runs`` times; ratio = lstm / noop, the
  median of the per-run ratios (the LSTM's time includes its start: loading the model and the
  warm-up). A first round of the three runs before those is not in the figures: in a fresh checkout
  its LSTM run compiles the per-bar kernels, which numba then caches on disk (about 5 s on the 2-core
  machine, as long as its bars take); its ratio is ``cold_ratio``, what a first backtest after install sees;
- forecast_only: a strategy that only runs the forecast on each bar (``OnlinePredictor.forecast``,
  the compiled kernel the LSTM strategy calls) and decides nothing: its bars/s and ratio to the
  no-op's, the ratio the LSTM strategy would reach if everything it does besides forecasting cost
  nothing (median of the per-run ratios);
- engine_us_between_bars: the engine's own time per bar, from one ``on_bar``'s return to the next
  call (median), in one more run of the no-op, forecast-only and LSTM strategies each (timing
  on_bar from outside costs about a microsecond a bar, so these runs are not in the figures
  above): how much slower the engine itself goes when a strategy's per-bar work (the network's
  weights, 216 KB for the default) takes the cache the engine would otherwise keep;
- batch_windows_per_s: offline predictions per second (one stateful pass over the series);
- train_seconds: training the shipped default config on the file;
- hybrids: the same per-bar latency for each hybrid architecture (models.network), trained from
  the default config with that architecture for at most ``--hybrid-epochs`` epochs (default 2:
  the latency depends on the network's shape, not its training; the JSON says how many ran),
  ``--runs`` backtests each after its kernels are compiled (medians, and each run's median), with its bars/s.
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
from marketdata.timeframes import bar_close_ns
from backtests.runner import BacktestSettings, load_inputs, lstm_strategy, run_strategy
from models.config import load_config
from models.dataset import build_dataset
from models.network import ARCHITECTURES, predict_series
from models.predictor import OnlinePredictor, online_forecaster
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


class ForecastOnly(Noop):
    """Runs the LSTM strategy's forecast on every bar and decides nothing: the kernel's own cost."""

    def __init__(self, config: NoopConfig, predictor: OnlinePredictor) -> None:
        super().__init__(config)
        self.predictor = predictor

    def on_bar(self, bar: Bar) -> None:
        self.predictor.forecast(bar_close_ns(bar.ts_event), bar.high.as_double(), bar.low.as_double(),
                                bar.close.as_double(), bar.volume.as_double())


class BetweenBars:
    """The engine's time between a strategy's bars: from leaving one ``on_bar`` to entering the next."""

    def __init__(self, strategy: Strategy) -> None:
        self.entered, self.left = [], []
        on_bar = strategy.on_bar

        def timed(bar: Bar) -> None:
            self.entered.append(time.perf_counter_ns())
            on_bar(bar)
            self.left.append(time.perf_counter_ns())

        strategy.on_bar = timed  # the engine calls the instance's on_bar

    def median_us(self) -> float:
        return float(np.median(np.subtract(self.entered[1:], self.left[:-1]))) / 1_000


def latency_us(strategy: Strategy) -> tuple[float, float]:
    """The median and p99 of a run's per-bar latency inside the LSTM strategy, in µs."""
    latencies = np.array(strategy.latencies_ns) / 1_000
    return float(np.median(latencies)), float(np.percentile(latencies, 99))


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

    # Every bar of the file: throughput, not returns, is measured here. The LSTM, no-op and
    # forecast-only strategies take turns, RUNS times each, and the medians are reported: the machine is noisy.
    settings = BacktestSettings(model_path=model, catalog=catalog, bar_type=BAR_TYPE, strategy={"measure_latency": True})
    instrument, bars = load_inputs(settings)
    bar_type = BarType.from_str(BAR_TYPE)
    made = {"lstm": lambda: lstm_strategy(settings), "noop": lambda: Noop(NoopConfig(bar_type=bar_type)),
            "forecast_only": lambda: ForecastOnly(NoopConfig(bar_type=bar_type), online_forecaster(artifact))}
    # Round 0 is kept out of the figures: in a fresh checkout its LSTM run compiles the per-bar
    # kernels (numba caches them on disk for every later process: about 5 s here, as long as the
    # run's bars take), so its ratio measures the compiler, not the strategy. It is reported as cold_ratio.
    seconds = {name: [] for name in made}
    latency_medians, latency_p99s = [], []
    for round_ in range(args.runs + 1):
        for name, make in made.items():
            strategy = make()
            seconds[name].append(run_strategy(name, strategy, settings, instrument, bars).seconds)
            if name == "lstm" and round_:
                median, p99 = latency_us(strategy)
                latency_medians.append(median)
                latency_p99s.append(p99)
                bars_measured = len(strategy.latencies_ns)
                inference_threads = strategy.config.inference_threads
    # One more run of each with its on_bar timed from outside: the timing costs about a
    # microsecond a bar, so these runs are kept out of the throughput figures.
    between = {}
    for name, make in made.items():
        strategy = make()
        gaps = BetweenBars(strategy)
        run_strategy(name, strategy, settings, instrument, bars)
        between[name] = gaps.median_us()

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
        online_forecaster(hybrid)  # compiles its kernels (or loads them from numba's cache) before the timed runs
        hybrid_seconds, hybrid_medians, hybrid_p99s = [], [], []
        for _ in range(args.runs):
            hybrid_strategy = lstm_strategy(hybrid_settings)
            hybrid_seconds.append(run_strategy(architecture, hybrid_strategy, hybrid_settings, instrument, bars).seconds)
            median, p99 = latency_us(hybrid_strategy)
            hybrid_medians.append(median)
            hybrid_p99s.append(p99)
        hybrids[architecture] = {
            "per_bar_latency_us": {"median": float(np.median(hybrid_medians)), "p99": float(np.median(hybrid_p99s)),
                                   "median_per_run": hybrid_medians},
            "backtest_bars_per_s": len(bars) / float(np.median(hybrid_seconds)),
            "epochs_trained": hybrid.metrics["epochs_run"], "train_seconds": hybrid_train_seconds,
        }

    cold_ratio = seconds["noop"][0] / seconds["lstm"][0]
    seconds = {name: runs[1:] for name, runs in seconds.items()}
    ratios = [noop / lstm for lstm, noop in zip(seconds["lstm"], seconds["noop"])]
    forecast_ratios = [noop / forecast for forecast, noop in zip(seconds["forecast_only"], seconds["noop"])]
    print(json.dumps({
        "bars": len(bars),
        "runs": args.runs,
        "per_bar_latency_us": {"median": float(np.median(latency_medians)), "p99": float(np.median(latency_p99s)),
                               "median_per_run": latency_medians, "bars_measured_per_run": bars_measured},
        "backtest_bars_per_s": {"lstm": len(bars) / float(np.median(seconds["lstm"])),
                                "noop": len(bars) / float(np.median(seconds["noop"])),
                                "ratio": float(np.median(ratios)), "ratio_per_run": ratios, "cold_ratio": cold_ratio},
        "forecast_only": {"bars_per_s": len(bars) / float(np.median(seconds["forecast_only"])),
                          "ratio_to_noop": float(np.median(forecast_ratios)), "ratio_per_run": forecast_ratios},
        "engine_us_between_bars": between,
        "batch_windows_per_s": len(scaled) / batch_seconds,
        "train_seconds": train_seconds,
        "torch_threads": {"inference": inference_threads, "training": train_threads},
        "hybrids": hybrids,
    }, indent=2))


if __name__ == "__main__":
    main()
