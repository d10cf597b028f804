"""A pooled sweep end to end on real bars of two instruments: each trial trains one model on both per
window and trades both in one account; every trial is accounted for and none sees the locked segment."""

import json

import pandas as pd
import pytest

from backtests.parallel import Workers
from models.artifact import load_artifact
from sweeps.config import load_sweep_config
from sweeps.driver import run_sweep
from tests.fakes.sweep_runs import assert_locked_segment_unseen, write_tiny_sweep
from tests.fakes.training import BAR_TYPE, ETH, pooled_catalog

pytestmark = pytest.mark.slow

BOTH = (BAR_TYPE, ETH)
HALF_DAY_OF_BOTH = 2 * 720  # a half-day test window of 1-minute bars, per instrument


@pytest.fixture(scope="module")
def pooled_sweep(tmp_path_factory, shared_data):
    folder = tmp_path_factory.mktemp("pooled-sweep")
    catalog = pooled_catalog(folder, shared_data)
    config = load_sweep_config(write_tiny_sweep(folder, catalog, trials=2, objective="sharpe", bar_types=BOTH))
    return run_sweep(config, folder / "out", Workers(count=2)), folder / "out"


def test_every_pooled_trial_is_accounted_for_and_trades_both_instruments(pooled_sweep):
    report, folder = pooled_sweep
    assert json.loads((folder / "sweep.json").read_text())["trials"] == json.loads(json.dumps(report["trials"]))
    assert [t["number"] for t in report["trials"]] == [0, 1]
    assert all(t["state"] in {"complete", "pruned", "failed"} for t in report["trials"])
    complete = [t for t in report["trials"] if t["state"] == "complete"]
    assert complete, [t.get("error") for t in report["trials"]]
    for trial in complete:
        assert [w["window"] for w in trial["windows"]] == [1, 2, 3]
        assert all(w["bars"] == HALF_DAY_OF_BOTH for w in trial["windows"])  # both instruments' bars, one account
        assert trial["stats"]["bars"] == 3 * 720  # the account's equity: one point per bar close
        assert trial["objective"] == trial["intermediate"]["2"]
        for window in (1, 2, 3):  # each window's model pooled over both, trained before its test window
            artifact = load_artifact(folder / "trials" / f"{trial['number']:04d}" / "windows" / f"{window:02d}" / "model")
            assert artifact.bar_types == list(BOTH)
            test_start = pd.Timestamp(trial["windows"][window - 1]["test_start"])
            assert all(pd.Timestamp(artifact.instrument(b).data["last_bar_close"]) < test_start for b in BOTH)
    assert report["locked_segment"]["in_sweep"]["objective"] == report["best"]["objective"]


def test_no_pooled_trial_sees_the_locked_segment(pooled_sweep):
    report, folder = pooled_sweep
    locked = assert_locked_segment_unseen(report)
    assert locked["bars"] == HALF_DAY_OF_BOTH
    artifact = load_artifact(folder / "locked" / "windows" / "01" / "model")
    assert artifact.bar_types == list(BOTH)
    locked_start = pd.Timestamp(locked["test_start"])
    assert all(pd.Timestamp(artifact.instrument(b).data["last_bar_close"]) < locked_start for b in BOTH)
