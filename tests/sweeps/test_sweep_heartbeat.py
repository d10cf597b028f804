"""Several drivers on one study: a trial is orphaned only once its driver's heartbeats stop, never
while a live driver beats for it; a trial that never had a heartbeat is orphaned once it is that old."""

import threading
import time

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from sweeps.config import sweep_config_from_dict
from sweeps.driver import HEARTBEAT_GRACE, SweepStorage, ask, finish, orphan, orphan_stale

SPACE = {"learning_rate": FloatDistribution(1e-4, 1e-2, log=True)}


@pytest.fixture
def study(tmp_path):  # a driver's view of the study: heartbeats every second
    storage = SweepStorage(f"sqlite:///{tmp_path / 'study.db'}", heartbeat_s=1)
    return optuna.create_study(study_name="s", storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))


def states(study):
    return {t.number: (t.state, "orphaned" in t.user_attrs, t.user_attrs.get("retry_of")) for t in study.get_trials()}


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_only_trials_whose_heartbeats_stopped_are_orphaned_and_queued_again(study):
    live, killed = ask(study, SPACE), ask(study, SPACE)  # ask beats once: the killed driver's last
    unbeaten = study.ask(SPACE)  # a trial of a driver stopped before its first beat
    stop = threading.Event()

    def other_driver():  # alive: beats for its trial every half beat
        while not stop.is_set():
            study._storage.record_heartbeat(live._trial_id)
            stop.wait(0.5)

    beating = threading.Thread(target=other_driver)
    beating.start()
    try:
        orphan_stale(study)
        assert {n: s for n, (s, _, _) in states(study).items()} == {0: TrialState.RUNNING, 1: TrialState.RUNNING,
                                                                    2: TrialState.RUNNING}
        time.sleep(HEARTBEAT_GRACE + 1.5)
        orphan_stale(study)
        after = states(study)
    finally:
        stop.set()
        beating.join()
    assert after[live.number] == (TrialState.RUNNING, False, None)  # a live driver's trial is left alone
    for trial in (killed, unbeaten):
        assert after[trial.number] == (TrialState.FAIL, True, None)
    # Each orphan's parameters wait as a new trial, asked for by whichever driver has room first.
    retries = [t for t in study.get_trials() if t.state == TrialState.WAITING]
    assert sorted(t.user_attrs["retry_of"] for t in retries) == [killed.number, unbeaten.number]
    assert sorted(t.system_attrs["fixed_params"]["learning_rate"] for t in retries) == sorted(
        t.params["learning_rate"] for t in (killed, unbeaten))


def test_a_stopping_driver_orphans_its_own_trials_at_once(study):
    mine, other = ask(study, SPACE), ask(study, SPACE)
    orphan(study, mine._trial_id)
    after = states(study)
    assert after[mine.number] == (TrialState.FAIL, True, None)
    assert after[other.number] == (TrialState.RUNNING, False, None)
    assert [t.user_attrs["retry_of"] for t in study.get_trials() if t.state == TrialState.WAITING] == [mine.number]


@pytest.mark.parametrize("value", [0, 1.5, "10"])
def test_heartbeat_s_must_be_a_whole_number_of_seconds(value):
    with pytest.raises(ValueError, match="heartbeat_s"):
        sweep_config_from_dict({"sweep": {"heartbeat_s": value}}, "bad.toml")


def test_a_result_that_comes_after_its_trial_was_orphaned_is_dropped_not_raised(study):
    """A driver that stalled past its heartbeats' grace finds its trial orphaned by another: it drops
    the result (the retry runs the parameters again) instead of failing the sweep."""
    late = ask(study, SPACE)
    orphan(study, late._trial_id)  # another driver's doing
    finish(study, late, {"state": "complete", "objective": 1.0, "windows": []})
    stored = study._storage.get_trial(late._trial_id)
    assert stored.state == TrialState.FAIL and "orphaned" in stored.user_attrs and "result" not in stored.user_attrs
    for error in ({"state": "failed", "error": "boom"}, {"state": "pruned", "windows": []}):
        finish(study, late, dict(error))
    assert study._storage.get_trial(late._trial_id).state == TrialState.FAIL
