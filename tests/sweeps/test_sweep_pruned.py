"""A pruned trial keeps the net returns of the windows it ran (sweep.json shows them), while PBO and
deflation stay over the complete trials only (CSCV needs every trial's return on every day)."""

import json
import math

import numpy as np
import optuna
import pandas as pd
import pytest

import sweeps.driver
from sweeps.config import load_sweep_config
from sweeps.driver import Planner, ask, finish, open_study, trial_task
from sweeps.report import build_report
from tests.fakes.sweep_runs import write_tiny_sweep

pytestmark = pytest.mark.slow


def complete_trial(days: int, seed: int, params: dict, distributions: dict) -> optuna.trial.FrozenTrial:
    """A complete trial made by hand: an objective and ``days`` daily returns."""
    returns = np.random.default_rng(seed).normal(0.001, 0.01, days)
    dates = [d.date().isoformat() for d in pd.date_range("2025-05-21", periods=days)]
    result = {"windows": [], "daily_returns": dict(zip(dates, returns.tolist())), "stats": {}}
    return optuna.trial.create_trial(params=params, distributions=distributions, value=float(seed),
                                     user_attrs={"result": result})


def test_a_pruned_trial_keeps_the_returns_of_the_windows_it_ran(catalog, tmp_path, monkeypatch):
    # A pruner that stops every trial at its first report: the trial runs window 1 only.
    monkeypatch.setattr(sweeps.driver, "pruner", lambda config: optuna.pruners.ThresholdPruner(lower=math.inf))
    config = load_sweep_config(write_tiny_sweep(tmp_path, catalog, trials=1))
    folder = tmp_path / "out"
    folder.mkdir()
    study = open_study(config, folder)
    planner = Planner(config)
    trial = ask(study, config.space)  # as the driver asks
    plan = planner.plan(trial.params, folder / "trials" / "0000")
    assert len(plan.windows) == 3

    result = trial_task(plan, config, config.storage_url(folder), trial._trial_id)
    assert result["state"] == "pruned"
    assert [w["window"] for w in result["windows"]] == [1]
    assert math.isfinite(result["windows"][0]["return"]) and result["daily_returns"]
    assert all(pd.Timestamp(day, tz="UTC") < pd.Timestamp(plan.windows[0].test_end) for day in result["daily_returns"])
    finish(study, trial, dict(result))
    for seed in (1, 2):
        study.add_trial(complete_trial(10, seed, trial.params, trial.distributions))

    report = build_report(study, config, planner, folder, None, config.storage_url(folder))
    stored = json.loads((folder / "sweep.json").read_text())["trials"]
    pruned = next(t for t in stored if t["number"] == trial.number)
    assert pruned["state"] == "pruned" and pruned["objective"] is None
    assert pruned["windows"] == json.loads(json.dumps(result["windows"]))
    assert pruned["daily_returns"] == pytest.approx(result["daily_returns"])
    assert pruned["intermediate"] == {"0": pytest.approx(result["intermediate"][0])}
    complete = [t["number"] for t in stored if t["state"] == "complete"]
    assert len(complete) == 2 and trial.number not in complete
    assert report["pbo"]["trials"] == complete  # PBO over the complete trials only
    assert report["deflated_sharpe"]["trials"] == 2
