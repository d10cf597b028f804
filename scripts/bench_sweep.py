"""Benchmark: one fixed small sweep with 1 worker and with 2 workers, in one run; prints JSON.

    python scripts/bench_sweep.py [--data ../shared/data/fixture_btcusdt_1m_2025-05-20_7d.csv.gz] [--trials 40]

The sweep (fixed; only ``--trials`` changes it): ``--trials`` trials of one-layer models (hidden 32
or 64, learning rate drawn, twenty epochs), each a walk-forward of four half-day windows, each
window's model trained on the two days before it, on the file's first 4.5 days (the last half-day
the locked segment), objective Sharpe, no pruning (so both runs do the same work: TPE's first
trials are seeded random draws, the same parameters in both). A trial is about 3 s of one core's
work on an idle 2-core AMD EPYC; a fresh Ray worker costs about 7.5 s to start (importing torch and
Nautilus) and 2.5 s more on its first trial (torch's first optimizer imports torch._dynamo), paid
once per worker.

Why 40 trials by default (it was 10): what does not split over workers is about 22 s of each run on
the 2-core machine (Ray's start and stop, 7 s; a worker's start; the locked segment and the
report), so 10 trials (about 32 s of trial work) cap the ratio at about (22 + 32) / (22 + 16) =
1.4× however well the trials spread. The ratio measures the sweep's parallelism only once the
trial work outweighs the fixed part (README, sweep: Speed-up, has the figures of both).

Before either run, one trial runs here, untimed (``warmup_seconds``): it fills numba's on-disk
cache of the per-bar kernels, so that neither timed run compiles them (after a sweep's first run on
a machine none does). Each run is then the whole command's work in a fresh folder: embedded Ray
started with that many CPUs, the trials, the locked segment, the report. Printed: each run's
seconds and its trials' alone (``trials_seconds``: asking, running and telling, without Ray's
start or the locked run), ``speedup`` and ``trials_speedup`` (1 worker / 2 workers), and the
machine's load average before and after (other work on the cores makes the speed-up smaller).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from backtests.parallel import Workers
from marketdata.history import import_klines
from sweeps import driver
from sweeps.config import sweep_config_from_dict
from sweeps.driver import Planner, run_trials
from sweeps.trial import run_trial

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fixture_btcusdt_1m_2025-05-20_7d.csv.gz"
BAR_TYPE = "BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL"


def bench_config(catalog: Path, trials: int):
    return sweep_config_from_dict({
        "sweep": {"trials": trials, "objective": "sharpe", "seed": 0, "pruning": False},
        "data": {"catalog": str(catalog), "bar_type": BAR_TYPE, "end": "2025-05-24T12:00"},
        "walk_forward": {"train_days": 2.0, "test_days": 0.5, "locked_days": 0.5},
        "train": {"model": {"hidden_size": 8, "num_layers": 1, "dropout": 0.0, "burn_in": 16},
                  "training": {"horizon": 5, "sequence_length": 128, "max_epochs": 20, "patience": 20, "device": "cpu"}},
        "space": {"hidden_size": [32, 64], "learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}},
    }, "bench_sweep")


def warm_kernel_cache(config, folder: Path) -> float:
    """One trial of ``config`` in this process (its first choices of the space); returns its seconds."""
    started = time.perf_counter()
    run_trial(Planner(config).plan({"hidden_size": 32, "learning_rate": 1e-3}, folder))
    return round(time.perf_counter() - started, 1)


def timed_sweep(config, folder: Path, workers: int) -> dict:
    """The whole sweep's seconds, and those of its trials alone (driver.run_trials: no Ray start, no locked run)."""
    phase = {}

    def timed_trials(*args):
        started = time.perf_counter()
        run_trials(*args)
        phase["trials_seconds"] = round(time.perf_counter() - started, 1)

    driver.run_trials = timed_trials  # run_sweep looks it up in its module when it runs
    started = time.perf_counter()
    try:
        report = driver.run_sweep(config, folder, Workers(count=workers))
    finally:
        driver.run_trials = run_trials
    seconds = time.perf_counter() - started
    states = [t["state"] for t in report["trials"]]
    return {"seconds": round(seconds, 1), **phase, "trials": len(states), "complete": states.count("complete")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a Binance 1m kline file (default: the 7-day fixture)")
    parser.add_argument("--trials", type=int, default=40, help="trials per run (default: 40)")
    parser.add_argument("--work", type=Path, help="folder for the catalog and the sweeps (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        catalog = work / "catalog"
        import_klines(args.data, exchange="binance", symbol="BTC/USDT", timeframe="1m", market="spot", catalog_path=catalog)
        config = bench_config(catalog, args.trials)
        warmup_seconds = warm_kernel_cache(config, work / "warm-up")
        load_before = os.getloadavg()
        one = timed_sweep(config, work / "one-worker", 1)
        two = timed_sweep(config, work / "two-workers", 2)
        load_after = os.getloadavg()
    print(json.dumps({
        "warmup_seconds": warmup_seconds, "one_worker": one, "two_workers": two, "speedup": round(one["seconds"] / two["seconds"], 2),
        "trials_speedup": round(one["trials_seconds"] / two["trials_seconds"], 2),
        "cores": os.process_cpu_count(), "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
    }, indent=1))


if __name__ == "__main__":
    main()
