"""The benchmark script runs and prints the documented JSON (a smoke test: nothing is timed)."""

import json
import subprocess
import sys

import pytest

from tests.conftest import FIXTURE_7D, PROJECT_ROOT

KEYS = {
    "per_bar_latency_us": {"median", "p99", "median_per_run", "bars_measured_per_run"},
    "backtest_bars_per_s": {"lstm", "noop", "ratio", "ratio_per_run", "cold_ratio"},
    "forecast_only": {"bars_per_s", "ratio_to_noop", "ratio_per_run"},
    "engine_us_between_bars": {"noop", "forecast_only", "lstm"},
}


@pytest.mark.slow
def test_bench_prints_every_figure(shared_data, tmp_path):
    done = subprocess.run(
        [sys.executable, "scripts/bench.py", "--data", str(shared_data / FIXTURE_7D), "--work", str(tmp_path), "--runs", "1"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # Nautilus's own warnings also go to stdout; the figures are the JSON object printed last.
    figures = json.loads(done.stdout[done.stdout.rindex("\n{") + 1:] if not done.stdout.startswith("{") else done.stdout)
    for key, inner in KEYS.items():
        assert inner <= set(figures[key]), key
    assert figures["per_bar_latency_us"]["bars_measured_per_run"] > 5_000
    assert figures["batch_windows_per_s"] > 0 and figures["train_seconds"] > 0
    assert figures["torch_threads"]["inference"] == 1
    # --runs 1: one timed run of each (the first round, which may compile the kernels, is apart).
    assert len(figures["backtest_bars_per_s"]["ratio_per_run"]) == 1 and figures["backtest_bars_per_s"]["cold_ratio"] > 0
    assert all(len(hybrid["per_bar_latency_us"]["median_per_run"]) == 1 for hybrid in figures["hybrids"].values())
    # The timed runs measured gaps: had the wrapper never run, the median of no gaps is NaN, which fails here.
    assert all(us > 0 for us in figures["engine_us_between_bars"].values())
