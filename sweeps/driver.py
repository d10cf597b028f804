"""The sweep's driver: Optuna asks, Ray runs trials, Optuna is told; a stopped sweep resumes.

Searching. One Optuna study in RDB storage (``SweepConfig.storage_url``: a SQLite file in the sweep
folder by default, or any SQLAlchemy URL, e.g. PostgreSQL for workers on several machines). TPE,
seeded, samples every parameter at ``study.ask``; up to ``workers`` trials are in flight at once
(ask/tell), and the sampler's ``constant_liar`` keeps them apart.

Running. Each trial is one Ray task (backtests.parallel: one CPU, one torch thread, retried if its
worker process dies) running :func:`sweeps.trial.run_trial`. The task reports each window's
intermediate value itself, through the shared storage (``optuna.load_study`` and the trial's id):
that needs no channel back to the driver, and works from any worker process or machine that can
reach the storage (SQLite: a filesystem all of them see; a timeout of 60 s rides out the locks of
concurrent writers). When the median pruner says so the task stops and the driver marks the trial
PRUNED. The driver alone tells Optuna a trial's end, and stores its result (windows, daily returns,
statistics; a pruned trial's over the windows it ran) as the trial's user attribute ``result``, so
the report is rebuilt from storage alone.

Accounting. A trial ends COMPLETE, PRUNED, or FAIL (its error in user attribute ``error``: an
exception in the trial, a worker that died more often than Ray retries, or an undefined objective).
A worker process killed mid-trial costs that trial a retry (the task runs again; windows already
trained are reused), nothing else.

Resuming. Run the same command again. Finished trials stay as they are and are not redone. A
trial whose driver stopped is orphaned: marked FAIL with user attribute ``orphaned`` and its
parameters enqueued as a new trial (user attribute ``retry_of``; not for a trial stopped as it was
asked for, before it had parameters), so none is silently lost. A driver stopped by Ctrl-C or an
error orphans its own trials as it stops; one killed (``kill -9``, a lost machine) cannot, so every
driver marks its running trials alive in the storage (Optuna's heartbeats, every ``[sweep]
heartbeat_s``) and any driver orphans a trial left unmarked for ``HEARTBEAT_GRACE`` beats
(:class:`SweepStorage`). So several drivers may share one study (each its own command, e.g. on
machines sharing a PostgreSQL storage): each asks for trials while the study's finished and running
ones fall short of ``trials``, and waits for the others' running trials before its locked run and
report, so that every driver's report has every trial. ``trials`` counts the finished trials,
orphans left out.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import time
import warnings
from pathlib import Path

import optuna
import pandas as pd
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages._rdb import models as rdb_models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import TrialState

from backtests.parallel import Workers, ray_session, remote_task
from marketdata.progress import progress
from sweeps.config import SweepConfig, pruner, sampler
from sweeps.report import STATES, build_report
from sweeps.trial import (
    TrialPlan,
    locked_window,
    plan_trial_windows,
    run_trial,
    sweep_range,
)

log = logging.getLogger(__name__)

SQLITE_TIMEOUT_S = 60
HEARTBEAT_GRACE = 3  # heartbeats a running trial may miss before it is taken as orphaned


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage at ``url``; SQLite waits out other writers' locks instead of failing."""
    return optuna.storages.RDBStorage(url, engine_kwargs=_engine_options(url))


def _engine_options(url: str) -> dict:
    return {"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if url.startswith("sqlite") else {}


class SweepStorage(optuna.storages.RDBStorage):
    """The driver's storage: Optuna's RDB storage with heartbeats every ``heartbeat_s`` seconds.

    Optuna takes a running trial as stale once its heartbeat is ``HEARTBEAT_GRACE`` beats old, but
    never one that has no heartbeat at all; this storage also takes such a trial once it started
    that long ago: its driver stopped between asking for it and its first heartbeat, or the study
    was run before drivers had heartbeats. Otherwise the study would wait on it for ever.
    """

    def __init__(self, url: str, heartbeat_s: int):
        with warnings.catch_warnings():  # Optuna's heartbeats are marked experimental
            warnings.simplefilter("ignore", ExperimentalWarning)
            super().__init__(url, engine_kwargs=_engine_options(url), heartbeat_interval=heartbeat_s,
                             grace_period=HEARTBEAT_GRACE * heartbeat_s)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        stale = super()._get_stale_trial_ids(study_id)
        since = datetime.datetime.now() - datetime.timedelta(seconds=self.grace_period)  # Optuna's local, naive times
        with _create_scoped_session(self.scoped_session) as session:
            beating = {trial_id for (trial_id,) in session.query(rdb_models.TrialHeartbeatModel.trial_id)}
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            if trial._trial_id not in beating and trial.datetime_start is not None and trial.datetime_start < since:
                stale.append(trial._trial_id)
        return stale


def orphan_stale(study: optuna.Study) -> None:
    """Orphan the trials of drivers that stopped without a word (their heartbeats are stale).

    ``optuna.storages.fail_stale_trials``' work, but the mark goes on before FAIL (a finished
    trial's attributes cannot change)."""
    for trial_id in study._storage._get_stale_trial_ids(study._study_id):
        orphan(study, trial_id)


def orphan(study: optuna.Study, trial_id: int) -> None:
    """Mark a running trial FAIL and ``orphaned`` (its driver stopped) and enqueue its parameters
    as a new trial; nothing if it finished meanwhile (or another driver orphaned it first)."""
    storage = study._storage
    try:
        storage.set_trial_user_attr(trial_id, "orphaned", "its driver stopped before it finished")
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
    except UpdateFinishedTrialError:
        return
    trial = storage.get_trial(trial_id)
    if trial.params:  # none yet: the driver stopped as it asked for the trial, before it ran anything
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)
    log.warning("trial %d was left unfinished by a stopped driver: marked failed and queued again", trial.number)


def ask(study: optuna.Study, space: dict) -> optuna.Trial:
    """A new trial (a queued one first), with its first heartbeat."""
    with warnings.catch_warnings():  # heartbeats without Study.optimize are what this driver means
        warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used with Study.optimize")
        trial = study.ask(space)
    study._storage.record_heartbeat(trial._trial_id)
    return trial


def open_study(config: SweepConfig, folder: Path) -> optuna.Study:
    """The sweep's study, created or loaded; a study made from another config is refused."""
    study = optuna.create_study(
        study_name=config.sweep.study, storage=SweepStorage(config.storage_url(folder), config.sweep.heartbeat_s),
        sampler=sampler(config), pruner=pruner(config), direction=config.direction, load_if_exists=True,
    )
    fingerprint = {"objective": config.sweep.objective, "space": sorted(config.space)}
    stored = study.user_attrs.get("config")
    if stored is None:
        study.set_user_attr("config", fingerprint)
    elif stored != fingerprint:
        raise ValueError(f"{config.source}: study {config.sweep.study!r} in {config.storage_url(folder)} was made by "
                         f"another config ({stored}, not {fingerprint}): use another folder or [sweep] study")
    return study


def counts(study: optuna.Study) -> dict[str, int]:
    """The study's trials by state, every driver's: the finished ones, orphans left out (their
    parameters run again as new trials), and the running ones."""
    counted = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)
    tally = {STATES[state]: 0 for state in counted}
    for trial in study.get_trials(deepcopy=False, states=counted):
        if trial.state != TrialState.FAIL or "orphaned" not in trial.user_attrs:  # a late finish counts
            tally[STATES[trial.state]] += 1
    return tally


class Planner:
    """Turns a trial's parameters into its TrialPlan: the sweep's range and locked segment fixed once."""

    def __init__(self, config: SweepConfig):
        self.config = config
        bar_types = set(config.data.bar_types) | set(getattr(config.space.get("bar_type"), "choices", ()))
        ranges = [sweep_range(config.data.catalog, b, config.data.start, config.data.end) for b in sorted(bar_types)]
        self.first = max(first for first, _ in ranges)  # the range every bar type covers
        self.end = min(end for _, end in ranges)
        self.locked_start = self.end - pd.Timedelta(days=config.walk_forward.locked_days)

    def plan(self, params: dict, out: Path) -> TrialPlan:
        train, strategy, bar_types = self.config.trial_config(params)
        walk = self.config.walk_forward
        windows = plan_trial_windows(train, bar_types[0], self.first, self.locked_start, walk.train_days, walk.test_days)
        return TrialPlan(train, strategy, bar_types, windows, self.config.sweep.objective, out)


def trial_task(plan: TrialPlan, config: SweepConfig, storage_url: str, trial_id: int) -> dict:
    """Run one trial in a Ray worker, reporting per-window values to the study (which may prune it)."""
    study = optuna.load_study(study_name=config.sweep.study, storage=open_storage(storage_url), pruner=pruner(config))
    trial = optuna.Trial(study, trial_id)
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")

    def report(value: float, step: int) -> bool:
        trial.report(value, step)
        return trial.should_prune()

    result = run_trial(plan, report)
    # A pruned trial keeps what its windows earned (sweep.json shows it), not an objective.
    return {"state": "pruned" if result.pop("stopped") else "complete", **result}


def run_sweep(config: SweepConfig, folder: Path, workers: Workers) -> dict:
    """Run trials until ``config.sweep.trials`` have finished, the winner on the locked segment, and
    write the report (sweeps.report); return it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    study = open_study(config, folder)
    planner = Planner(config)
    with ray_session(workers):
        run_trials(study, config, planner, folder, workers)
        locked = None
        if counts(study)["complete"]:
            locked = run_locked(planner, study.best_trial.params, folder)
    return build_report(study, config, planner, folder, locked, config.storage_url(folder))


def run_locked(planner: Planner, params: dict, folder: Path) -> dict:
    """The winner trained on the train_days before the locked segment and traded on it, once."""
    import ray

    train, strategy, bar_types = planner.config.trial_config(params)
    window = locked_window(train, bar_types[0], planner.locked_start, planner.end, planner.config.walk_forward.train_days)
    plan = TrialPlan(train, strategy, bar_types, (window,), planner.config.sweep.objective, folder / "locked")
    log.info("the winner on the locked segment, %s to %s", window.test_start, window.test_end)
    result = ray.get(remote_task(run_trial).remote(plan))
    return {"window": result["windows"][0], "objective": result["objective"], "stats": result["stats"],
            "daily_returns": result["daily_returns"]}


def run_trials(study: optuna.Study, config: SweepConfig, planner: Planner, folder: Path, workers: Workers) -> None:
    """Ask, run on Ray and tell until ``config.sweep.trials`` trials have finished, this driver's
    and any other's; mark this driver's running trials alive every ``heartbeat_s`` and orphan those
    of stopped drivers (module docstring: Resuming)."""
    import ray

    url, target, beat = config.storage_url(folder), config.sweep.trials, config.sweep.heartbeat_s
    in_flight: dict = {}
    with progress(total=target, desc="sweep", unit="trial") as bar:
        task = remote_task(trial_task)
        try:
            while True:
                for trial in in_flight.values():
                    study._storage.record_heartbeat(trial._trial_id)
                orphan_stale(study)  # stopped drivers' trials, queued again
                while len(in_flight) < slots(workers) and sum(counts(study).values()) < target:  # finished + running
                    trial = ask(study, config.space)
                    try:
                        plan = planner.plan(trial.params, folder / "trials" / f"{trial.number:04d}")
                    except ValueError as exc:
                        finish(study, trial, {"state": "failed", "error": str(exc)})
                        continue
                    in_flight[task.remote(plan, config, url, trial._trial_id)] = trial
                tally = counts(study)
                show_progress(bar, study, tally, in_flight)
                if not in_flight:
                    if not tally["running"]:
                        break
                    time.sleep(beat)  # other drivers' trials: the report waits for them
                    continue
                done, _ = ray.wait(list(in_flight), num_returns=1, timeout=beat)
                for ref in done:
                    trial = in_flight.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as exc:  # the trial raised, or its worker died past the retries
                        result = {"state": "failed", "error": f"{type(exc).__name__}: {exc}"[:2000]}
                    finish(study, trial, result)
        except BaseException:  # Ctrl-C or an error: this driver's trials will not finish
            try:
                for trial in in_flight.values():
                    orphan(study, trial._trial_id)
            except Exception:  # the storage too: any driver orphans them once their heartbeats are stale
                log.exception("could not mark this driver's running trials orphaned")
            raise


def finish(study: optuna.Study, trial: optuna.Trial, result: dict) -> None:
    """Store a trial's result and tell Optuna how it ended; nothing if another driver took it as
    orphaned meanwhile (this driver stalled past its heartbeats' grace): its retry runs it again."""
    try:
        _store_result(study, trial, result)
    except UpdateFinishedTrialError:
        log.warning("trial %d was taken as orphaned while it ran (this driver's heartbeats were late): its result "
                    "is dropped, and it runs again as a new trial", trial.number)


def _store_result(study: optuna.Study, trial: optuna.Trial, result: dict) -> None:
    state = result.pop("state")
    if state == "complete" and result["objective"] is None:
        state, result["error"] = "failed", "the objective is undefined (NaN) for this trial"
    if "error" in result:
        trial.set_user_attr("error", result.pop("error"))
        log.warning("trial %d failed: %s", trial.number, trial.user_attrs["error"])
    if result:
        trial.set_user_attr("result", result)
    if study._storage.get_trial(trial._trial_id).state.is_finished():  # tell would raise a ValueError
        raise UpdateFinishedTrialError(f"trial {trial.number} has finished")
    if state == "complete":
        study.tell(trial, result["objective"])
    else:
        study.tell(trial, state=TrialState.PRUNED if state == "pruned" else TrialState.FAIL)


def slots(workers: Workers) -> int:
    """Trials in flight at once: the embedded Ray's CPUs, or the cluster's."""
    if workers.cpus is not None:
        return workers.cpus
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def show_progress(bar, study: optuna.Study, tally: dict[str, int], in_flight: dict) -> None:
    """The bar at the trials finished (``tally``: counts), with done (complete) / running (this
    driver's) / pruned / failed and the best so far."""
    best = f"{study.best_value:.4g} (#{study.best_trial.number})" if tally["complete"] else "-"
    bar.set_postfix(done=tally["complete"], running=len(in_flight), pruned=tally["pruned"], failed=tally["failed"],
                    best=best)
    bar.update(min(tally["complete"] + tally["pruned"] + tally["failed"], bar.total) - bar.n)
