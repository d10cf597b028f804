"""Embedded sweeps end to end on real bars: sweep.json accounts for every trial, trials never see the
locked segment, and a sweep stopped (trials=k, or its driver killed) resumes without redoing a trial."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from backtests.parallel import Workers
from sweeps.config import load_sweep_config
from sweeps.driver import run_sweep
from tests.conftest import PROJECT_ROOT
from tests.fakes.sweep_runs import (
    assert_locked_segment_unseen,
    stored_trials,
    write_tiny_sweep,
)

pytestmark = pytest.mark.slow

REPORT_KEYS = {"best", "trials", "deflated_sharpe", "pbo", "locked_segment", "importances", "verdict"}
FINISHED = {"COMPLETE", "PRUNED", "FAIL"}  # as Optuna stores them
REPORTED = {"complete", "pruned", "failed"}  # as sweep.json names them


def sweep_command(config, folder, *args, env=None):
    """`nautilus-lstm sweep` in a subprocess of its own session (so a test can signal it and what it started)."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "scripts.cli", "sweep", str(config), "--out", str(folder), *args],
                            cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, text=True)


def wait_for(condition, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise TimeoutError(f"{what} did not happen within {timeout_s} s")


def finished_numbers(folder):
    """The finished trials' numbers while a driver runs: none until it has made the study's file and tables."""
    db = folder / "study.db"
    try:
        return {n for n, (state, _) in stored_trials(db).items() if state in FINISHED} if db.exists() else set()
    except sqlite3.OperationalError:  # the file made, its tables not yet ("no such table"), or locked
        return set()


@pytest.fixture(scope="module")
def resumed(catalog, tmp_path_factory):
    """A sweep run with trials=2, then the same command with trials=3; (first report, stored times, second report)."""
    folder = tmp_path_factory.mktemp("sweep")
    config = load_sweep_config(write_tiny_sweep(folder, catalog, trials=2))
    first = run_sweep(config, folder, Workers(count=2))
    times = stored_trials(folder / "study.db")
    config = load_sweep_config(write_tiny_sweep(folder, catalog, trials=3))
    second = run_sweep(config, folder, Workers(count=2))
    return first, times, second, folder


def test_the_report_has_its_keys_and_every_trial(resumed):
    _, _, second, folder = resumed
    assert REPORT_KEYS <= set(second)
    assert json.loads((folder / "sweep.json").read_text())["trials"] == json.loads(json.dumps(second["trials"]))
    assert [t["number"] for t in second["trials"]] == [0, 1, 2]
    assert all(t["state"] in REPORTED for t in second["trials"])
    complete = [t for t in second["trials"] if t["state"] == "complete"]
    assert complete, [t.get("error") for t in second["trials"]]
    for trial in complete:
        assert [w["window"] for w in trial["windows"]] == [1, 2, 3]
        assert trial["daily_returns"] and trial["objective"] == trial["intermediate"]["2"]
    best = max(complete, key=lambda t: t["objective"])
    assert second["best"]["number"] == best["number"]
    assert second["locked_segment"]["in_sweep"]["objective"] == best["objective"]
    assert "deflation" in second["verdict"] or "deflated Sharpe not computed" in second["verdict"]
    assert (folder / "leaderboard.png").stat().st_size > 0 and (folder / "window_returns.png").stat().st_size > 0


def test_a_resumed_sweep_keeps_finished_trials_and_runs_only_the_rest(resumed):
    first, times, _, folder = resumed
    assert len(first["trials"]) == 2 and set(times) == {0, 1}
    after = stored_trials(folder / "study.db")
    assert {n: after[n] for n in times} == times  # same states, same completion times: not redone
    assert set(after) == {0, 1, 2}


def test_no_trial_sees_the_locked_segment(resumed):
    _, _, report, _ = resumed
    assert_locked_segment_unseen(report)


def test_a_killed_driver_resumes_with_nothing_lost_or_redone(catalog, tmp_path):
    config = write_tiny_sweep(tmp_path, catalog, trials=3)
    folder = tmp_path / "out"
    driver = sweep_command(config, folder, "--workers", "2")
    try:
        wait_for(lambda: finished_numbers(folder), 240, "a first finished trial")
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and whatever it started in its session
        driver.wait()
    before = stored_trials(folder / "study.db")
    done_before = {n: v for n, v in before.items() if v[0] in FINISHED}
    unfinished = {n for n, (state, _) in before.items() if state == "RUNNING"}

    rerun = sweep_command(config, folder, "--workers", "2")
    output, _ = rerun.communicate(timeout=400)
    assert rerun.returncode == 0, output[-3000:]
    report = json.loads((folder / "sweep.json").read_text())
    assert (folder / "report.html").stat().st_size > 1_000_000  # the command writes it, plotly.js inside
    after = stored_trials(folder / "study.db")
    assert {n: after[n] for n in done_before} == done_before
    trials = {t["number"]: t for t in report["trials"]}
    assert all(t["state"] in REPORTED for t in trials.values())
    for number in unfinished:  # orphaned: failed, and their parameters run again as a new trial
        assert trials[number]["state"] == "failed" and "orphaned" in trials[number]
        retries = [t["params"] for t in trials.values() if t.get("retry_of") == number]
        # A trial stopped as it was asked for has no parameters yet: nothing to run again.
        assert retries == ([trials[number]["params"]] if trials[number]["params"] else [])
    assert sum(1 for t in trials.values() if "orphaned" not in t) == 3


def test_two_drivers_share_one_study_without_orphaning_or_overshooting(catalog, tmp_path):
    """Two sweep commands at once on one storage (as on two machines sharing a database): neither takes
    the other's running trials as orphans (the driver before heartbeats did, as it started), together
    they run the trials asked for, and each waits for the other's before its report, so both reports
    have every trial. (Which driver runs which trial is up to their timing.)"""
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    config = write_tiny_sweep(tmp_path, catalog, trials=3, storage=storage)
    first_out, second_out = tmp_path / "first", tmp_path / "second"
    first = sweep_command(config, first_out, "--workers", "1")
    try:
        # The second starts once the first has a trial running, which the old driver would have orphaned.
        wait_for(lambda: (first_out / "trials").exists() and any((first_out / "trials").iterdir()), 240,
                 "the first driver's first trial")
        second = sweep_command(config, second_out, "--workers", "1")
        outputs = [driver.communicate(timeout=500)[0] for driver in (first, second)]
    finally:
        for driver in (first, second):
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
    assert [first.returncode, second.returncode] == [0, 0], [output[-3000:] for output in outputs]
    stored = stored_trials(tmp_path / "shared.db")
    assert sorted(stored) == [0, 1, 2] and {state for state, _ in stored.values()} == {"COMPLETE"}
    for out in (first_out, second_out):
        report = json.loads((out / "sweep.json").read_text())
        assert [(t["number"], t["state"], "orphaned" in t) for t in report["trials"]] == [
            (n, "complete", False) for n in range(3)]
