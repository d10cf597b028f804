"""Benchmark: peak memory of one `nautilus-lstm backtest` command over a quarter, a half and all of a file.

Prints one JSON object. Each backtest runs as its own process (the command as a user runs it), and
its peak resident memory is the kernel's count for that process: ``peak_rss_mb`` as the command's
last step returns (its memory's high-water mark, ``VmHWM``), ``exit_peak_rss_mb`` the whole
process's (``wait4``'s ``ru_maxrss``), which adds what the interpreter's exit takes for an instant
whatever the range (PyTorch's teardown: about 100 MB; ``import torch`` alone peaks at 500 MB in the
process and 625 MB through its exit). Linux hands a process's ``ru_maxrss`` on to a child it
spawns, across the exec, so the exit figure is the backtest's only where it exceeds this script's
own peak at the spawn (importing a long file and training can go higher than a short backtest),
and null where it does not; ``VmHWM`` starts afresh with the exec:

    python scripts/bench_memory.py [--data ../shared/data/btcusdt_1m_2025-05-20_2025-08-18.csv.gz]
    python scripts/bench_memory.py --code ../main --code .     # an older checkout beside this one
    python scripts/bench_memory.py --code ../main --code . --repeat 3   # each figure the median of 3 runs
    python scripts/bench_memory.py --copies 4     # the file 4 times end to end: 3, 6 and 12 months of bars

The file is imported into a temp catalog and the default config trained on its first
``--train-days`` for one epoch (the network's size, not its training, sets the memory); the
backtests trade from the end of that training data to the bar closing at 25%, 50% and 100% of the
file. ``--code`` runs the command from each checkout given (their own code on ``PYTHONPATH``),
alternating per range; ``--repeat N`` runs each N times at each range, the checkouts' order
swapped every other time, and gives the median of each figure (``each_peak_rss_mb``: every run's
peak): two runs of the same code can differ by tens of MB. ``per_bar_kb`` is the growth from the quarter to the whole file per bar
traded (of ``peak_rss_mb``); ``half_to_all_per_bar_kb`` the same from the half: the process's heap
settles over the first tens of thousands of bars (the main run's first spill, Arrow's first write), so
this later slope is the nearer to what another year of bars would add. ``phase_peak_rss_mb`` is the
process's peak so far after each of the command's steps (the six runs, the report's files,
report.html, the verdict), ``phase_per_bar_kb`` and ``phase_half_to_all_per_bar_kb`` their growth: where
the peak is reached, and which step grows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from marketdata.catalog import load_bars
from marketdata.history import import_klines
from models.config import load_config
from models.train import train_model

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data" / "btcusdt_1m_2025-05-20_2025-08-18.csv.gz"
BAR_TYPE = "BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL"
FRACTIONS = (0.25, 0.5, 1.0)
# The command's steps, in order, by the name the JSON gives each: the six runs, the report's files, report.html,
# the verdict it prints (which scores the forecasts in predictions.parquet).
PHASES = {"runs": ("backtests.runner", "run_all"), "report_files": ("backtests.report", "write_report"),
          "report_html": ("reporting.html", "write_report_html"), "verdict": ("backtests.verdict", "verdict")}
# The process's own peak RSS in KB, an expression for the child: its memory's high-water mark, which
# (unlike ru_maxrss) does not start from the spawning process's.
OWN_PEAK_KB = "int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])"
# `nautilus-lstm ARGS`, printing the process's peak RSS after each step and as the command returns,
# before the interpreter exits. The command imports its steps when it runs, so it calls these wrappers.
CLI_WITH_PEAK = f"""
import importlib, sys
def peak_kb():
    return {OWN_PEAK_KB}
def printing_peak(module, name):
    step = getattr(module, name)
    def wrapped(*args, **kwargs):
        result = step(*args, **kwargs)
        print(f'phase {{name}} peak_rss_kb={{peak_kb()}}', file=sys.stderr)
        return result
    setattr(module, name, wrapped)
for module, name in {list(PHASES.values())!r}:
    printing_peak(importlib.import_module(module), name)
from scripts.cli import main
status = main(sys.argv[1:])
print(f'peak_rss_kb={{peak_kb()}}', file=sys.stderr)
sys.exit(status)
"""


def peak_backtest(code: Path, model: Path, catalog: Path, end: pd.Timestamp, out: Path) -> dict:
    """Run the backtest command from checkout ``code``: its peak RSS (MB) as it returns and through its
    exit, wall seconds and bars traded."""
    command = [sys.executable, "-c", CLI_WITH_PEAK, "backtest", "--model", str(model), "--catalog", str(catalog),
               "--end", end.isoformat(), "--out", str(out)]
    out.mkdir(parents=True, exist_ok=True)
    log = out / "bench-stderr.log"  # a file, not a pipe: a full pipe would stall the command
    inherited_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # what the child's ru_maxrss starts from
    started = time.perf_counter()
    with log.open("w") as errors:
        process = subprocess.Popen(command, cwd=code, env={**os.environ, "PYTHONPATH": str(code)},
                                   stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    text = log.read_text()
    if status:
        raise RuntimeError(f"the backtest from {code} failed (status {status}):\n{text[-3000:]}")
    peak_kb = int(text.rsplit("peak_rss_kb=", 1)[1].split()[0])
    phases = {phase: round(int(text.rsplit(f"phase {name} peak_rss_kb=", 1)[1].split()[0]) / 1024, 1)
              for phase, (_, name) in PHASES.items()}
    bars = json.loads((out / "stats.json").read_text())["bars"]
    exit_mb = round(usage.ru_maxrss / 1024, 1) if usage.ru_maxrss > inherited_kb else None
    return {"bars": bars, "peak_rss_mb": round(peak_kb / 1024, 1), "exit_peak_rss_mb": exit_mb,
            "phase_peak_rss_mb": phases, "seconds": round(seconds, 1)}


def end_to_end(data: Path, copies: int, out: Path) -> Path:
    """A kline file of ``data``'s bars ``copies`` times end to end: each copy's times shifted by the
    file's span, its prices scaled to open where the copy before closed (rounded to the file's cents).
    Every bar-to-bar move is a real one; the range is longer than any real 1m file here."""
    bars = pd.read_csv(data)
    span = int(bars["open_time"].iloc[-1] - bars["open_time"].iloc[0]) + 60_000
    growth = bars["close"].iloc[-1] / bars["open"].iloc[0]
    prices = ["open", "high", "low", "close"]
    parts = [bars.assign(open_time=bars["open_time"] + k * span, **{c: (bars[c] * growth**k).round(2) for c in prices})
             for k in range(copies)]
    pd.concat(parts).to_csv(out, index=False)
    return out


def kb_per_bar(first: dict, last: dict, megabytes) -> float:
    """The growth of ``megabytes(run)`` from the run ``first`` to the run ``last``, in KB per bar traded (None if either is unknown)."""
    if megabytes(first) is None or megabytes(last) is None:
        return None
    return round((megabytes(last) - megabytes(first)) * 1024 / (last["bars"] - first["bars"]), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a Binance 1m kline file of BTC/USDT")
    parser.add_argument("--work", type=Path, help="folder for the catalog, model and reports (default: a temp folder)")
    parser.add_argument("--code", type=Path, action="append",
                        help="a checkout to run the command from; repeat it to compare (default: this one)")
    parser.add_argument("--train-days", type=float, default=7.0, help="days at the file's start to train on (default: 7)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of each checkout at each range (default: 1); the figures are then their medians")
    parser.add_argument("--copies", type=int, default=1,
                        help="trade the file's bars this many times end to end (default: 1), for a longer range: see end_to_end")
    args = parser.parse_args()
    if args.repeat < 1 or args.copies < 1:
        parser.error(f"--repeat and --copies must be at least 1, not {args.repeat} and {args.copies}")
    work = args.work or Path(tempfile.mkdtemp(prefix="nautilus-lstm-bench-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    catalog, model = work / "catalog", work / "model"
    data = end_to_end(args.data, args.copies, work / "klines.csv.gz") if args.copies > 1 else args.data
    import_klines(data, exchange="binance", symbol="BTC/USDT", timeframe="1m", market="spot", catalog_path=catalog)
    closes = load_bars(catalog, BAR_TYPE).index
    train_end = closes[0] + pd.Timedelta(days=args.train_days)
    config = load_config().override(data={"catalog": str(catalog), "bar_type": BAR_TYPE, "end": train_end.isoformat()},
                                    training={"max_epochs": 1})
    train_model(config, model)

    codes = [code.resolve() for code in args.code or [PROJECT_ROOT]]
    results = {str(code): [] for code in codes}
    for fraction in FRACTIONS:
        end = closes[round(fraction * len(closes)) - 1]
        repeats = {str(code): [] for code in codes}
        for repeat in range(args.repeat):
            order = list(enumerate(codes))
            for number, code in order if repeat % 2 == 0 else order[::-1]:
                repeats[str(code)].append(peak_backtest(code, model, catalog, end, work / f"out-{fraction}-{number}-{repeat}"))
        for code, runs in repeats.items():
            results[code].append({"fraction": fraction, "end": end.isoformat(), **median_run(runs)})
    summary = {}
    for code, runs in results.items():
        quarter, half, whole = runs
        peak, at_exit = (lambda run: run["peak_rss_mb"]), (lambda run: run["exit_peak_rss_mb"])
        summary[code] = {
            "runs": runs, "per_bar_kb": kb_per_bar(quarter, whole, peak), "half_to_all_per_bar_kb": kb_per_bar(half, whole, peak),
            "exit_per_bar_kb": kb_per_bar(quarter, whole, at_exit),
            "phase_per_bar_kb": {phase: kb_per_bar(quarter, whole, lambda run: run["phase_peak_rss_mb"][phase]) for phase in PHASES},
            "phase_half_to_all_per_bar_kb": {phase: kb_per_bar(half, whole, lambda run: run["phase_peak_rss_mb"][phase])
                                             for phase in PHASES},
        }
    print(json.dumps({"file_bars": len(closes), "trained_until": train_end.isoformat(), "checkouts": summary}, indent=2))


def median_run(runs: list[dict]) -> dict:
    """One range's figures of a checkout: its run's, or the median of each figure over its runs, with every run's peak."""
    if len(runs) == 1:
        return runs[0]

    def middle(values) -> float | None:
        return None if None in values else round(statistics.median(values), 1)

    return {"bars": runs[0]["bars"], "peak_rss_mb": middle([run["peak_rss_mb"] for run in runs]),
            "exit_peak_rss_mb": middle([run["exit_peak_rss_mb"] for run in runs]),
            "phase_peak_rss_mb": {phase: middle([run["phase_peak_rss_mb"][phase] for run in runs]) for phase in PHASES},
            "seconds": middle([run["seconds"] for run in runs]), "each_peak_rss_mb": [run["peak_rss_mb"] for run in runs]}


if __name__ == "__main__":
    main()
