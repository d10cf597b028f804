"""scripts/bench_memory.py: each figure the median of its runs; a child's peak its own, not its parent's."""

import os
import resource
import subprocess
import sys

import numpy as np

from scripts.bench_memory import OWN_PEAK_KB, PHASES, kb_per_bar, median_run


def run(peak: float, seconds: float) -> dict:
    return {"bars": 100, "peak_rss_mb": peak, "exit_peak_rss_mb": peak + 90, "seconds": seconds,
            "phase_peak_rss_mb": {phase: peak - 10 * number for number, phase in enumerate(PHASES)}}


def test_repeated_runs_give_each_figures_median_and_every_peak():
    runs = [run(1_230.0, 20.0), run(1_190.0, 30.0), run(1_200.0, 25.0)]
    middle = median_run(runs)
    assert middle["peak_rss_mb"] == 1_200.0 and middle["exit_peak_rss_mb"] == 1_290.0 and middle["seconds"] == 25.0
    assert middle["phase_peak_rss_mb"] == {phase: 1_200.0 - 10 * number for number, phase in enumerate(PHASES)}
    assert middle["each_peak_rss_mb"] == [1_230.0, 1_190.0, 1_200.0] and middle["bars"] == 100
    assert median_run(runs[:1]) == runs[0]  # one run: its own figures


def test_an_unknown_exit_peak_stays_unknown():
    runs = [run(1_230.0, 20.0), {**run(1_190.0, 30.0), "exit_peak_rss_mb": None}]
    assert median_run(runs)["exit_peak_rss_mb"] is None
    def exit_peak(one: dict) -> float | None:
        return one["exit_peak_rss_mb"]

    assert kb_per_bar(runs[1], {**runs[0], "bars": 200}, exit_peak) is None
    assert kb_per_bar(runs[0], {**runs[0], "bars": 200, "exit_peak_rss_mb": 1_330.0}, exit_peak) == 102.4  # 10 MB, 100 bars


def test_a_childs_peak_is_its_own_though_its_ru_maxrss_starts_from_its_parents():
    held = np.ones(300 * 2**20 // 8)  # 300 MB resident in this process
    parent_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child = subprocess.Popen([sys.executable, "-c", f"print({OWN_PEAK_KB})"], stdout=subprocess.PIPE, text=True)
    own_kb = int(child.stdout.read())
    _, _, usage = os.wait4(child.pid, 0)
    assert usage.ru_maxrss >= parent_kb > 300 * 1024  # what wait4 reports: the parent's high water, handed on
    assert own_kb < 100 * 1024  # a bare interpreter's own
    del held
