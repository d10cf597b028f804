"""scripts/bench_memory.py's repeated runs: each figure the median of its runs."""

from scripts.bench_memory import PHASES, median_run


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
