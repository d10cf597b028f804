"""The sweep's report: the winner on the locked segment, sweep.json and its plots.

sweep.json, top-level keys:

- ``objective``, ``direction``, ``storage``, ``range``: ``{first_bar_close, locked_start, end}``;
- ``best``: the winning trial (the best complete objective): ``number``, ``params``, ``objective``;
- ``trials``: every trial in the study, by number: ``number``, ``state`` (complete, pruned, failed,
  running, waiting), ``params``, ``objective`` (null unless complete), ``intermediate`` (the
  per-window values reported, ``{window index: value}``), ``windows`` (per window: ranges, bars, net
  ``return``), ``daily_returns`` (``{UTC date: return}``), ``stats`` (backtests.stats of the stitched
  walk-forward), ``error``, ``orphaned`` and ``retry_of`` where set (sweeps.driver), ``worker``. A
  pruned trial's ``windows``, ``daily_returns`` and ``stats`` cover the windows it ran before it was
  pruned;
- ``deflated_sharpe``: sweeps.statistics.deflated_sharpe_ratio of the winner's daily returns against
  the per-period (daily, not annualized) Sharpe ratios of every complete trial; or ``{"error": ...}``;
- ``pbo``: sweeps.statistics.probability_of_backtest_overfitting of the days x complete trials
  matrix of daily returns (the days every such trial traded), with ``splits`` the largest even
  number <= min(16, days // 2), so each half holds at least two days per group; or ``{"error": ...}``.
  Complete trials only: CSCV splits the whole days x trials matrix into in- and out-of-sample
  halves, so every trial needs a return on every day; a pruned trial has none after the window it
  was stopped at, and keeping it would cut the matrix to the first windows' days (and the trials
  pruned are those that did badly early, a selection of their own);
- ``locked_segment``: the winner retrained on the ``train_days`` before the locked segment and
  traded on it once: ``window``, ``objective``, ``stats``, ``daily_returns``, beside ``in_sweep``
  (the winner's walk-forward objective and stats);
- ``importances``: optuna.importance.get_param_importances (with >= 2 complete trials; else an error);
- ``verdict``: one line: whether the winner survives deflation, and the locked result beside it.

Plots: ``leaderboard.png`` (complete trials' objectives, best first) and ``window_returns.png``
(each complete trial's net return per window).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from models.jsonio import write_json
from sweeps.statistics import (
    deflated_sharpe_ratio,
    probability_of_backtest_overfitting,
    sharpe_ratios,
)

log = logging.getLogger(__name__)

MAX_SPLITS = 16
STATES = {optuna.trial.TrialState.COMPLETE: "complete", optuna.trial.TrialState.PRUNED: "pruned",
          optuna.trial.TrialState.FAIL: "failed", optuna.trial.TrialState.RUNNING: "running",
          optuna.trial.TrialState.WAITING: "waiting"}


def trial_record(trial: optuna.trial.FrozenTrial) -> dict:
    result = trial.user_attrs.get("result", {})
    return {
        "number": trial.number,
        "state": STATES[trial.state],
        "params": trial.params,
        "objective": trial.value if trial.state == optuna.trial.TrialState.COMPLETE else None,
        "intermediate": {str(step): value for step, value in sorted(trial.intermediate_values.items())},
        "windows": result.get("windows", []),
        "daily_returns": result.get("daily_returns", {}),
        "stats": result.get("stats"),
        **{key: trial.user_attrs[key] for key in ("error", "orphaned", "retry_of", "worker") if key in trial.user_attrs},
        "started": trial.datetime_start.isoformat() if trial.datetime_start else None,
        "finished": trial.datetime_complete.isoformat() if trial.datetime_complete else None,
    }


def daily_matrix(trials: list[dict]) -> pd.DataFrame:
    """Days x trials of daily returns, the days every trial has."""
    frame = pd.DataFrame({t["number"]: pd.Series(t["daily_returns"], dtype=float) for t in trials})
    return frame.dropna().sort_index()


def deflation(best: dict, complete: list[dict]) -> dict:
    try:
        sharpes = [float(sharpe_ratios(np.array(list(t["daily_returns"].values())))) for t in complete]
        return deflated_sharpe_ratio(np.array(list(best["daily_returns"].values())), np.array(sharpes))
    except ValueError as exc:
        return {"error": str(exc)}


def overfitting(complete: list[dict]) -> dict:
    matrix = daily_matrix(complete)
    splits = min(MAX_SPLITS, len(matrix) // 2) // 2 * 2
    if splits < 2:
        return {"error": f"{len(matrix)} days of returns: PBO needs at least 4 (two groups of two days)"}
    try:
        return {**probability_of_backtest_overfitting(matrix.to_numpy(), splits=splits),
                "days": len(matrix), "trials": list(matrix.columns)}
    except ValueError as exc:
        return {"error": str(exc)}


def importances(study: optuna.Study, complete: int) -> dict:
    if complete < 2:
        return {"error": f"{complete} complete trial(s): importances need at least 2"}
    try:
        return optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError) as exc:
        return {"error": str(exc)}


def verdict(objective: str, best: dict | None, deflated: dict, locked: dict | None) -> str:
    if best is None:
        return "no trial completed: no winner to judge"
    head = f"winner trial {best['number']} ({objective} {best['objective']:.4g} in the sweep)"
    if "error" in deflated:
        judged = f"deflated Sharpe not computed: {deflated['error']}"
    else:
        judged = (f"{'SURVIVES' if deflated['survives'] else 'does NOT survive'} deflation over {deflated['trials']} "
                  f"trials (deflated Sharpe {deflated['deflated_sharpe']:.3f})")
    tail = ""
    if locked is not None:
        value = locked["objective"]
        tail = f"; locked segment {objective} {'undefined' if value is None else format(value, '.4g')}"
    return f"{head} {judged}{tail}"


def build_report(study: optuna.Study, config, planner, folder: Path, locked: dict | None, url: str) -> dict:
    """sweep.json's content; ``locked``: the winner's locked-segment run (None without a winner)."""
    trials = [trial_record(t) for t in study.get_trials(deepcopy=False)]
    complete = [t for t in trials if t["state"] == "complete"]
    best = None
    if complete:
        winner = study.best_trial
        best = next(t for t in trials if t["number"] == winner.number)
    deflated = deflation(best, complete) if best else {"error": "no complete trial"}
    report = {
        "objective": config.sweep.objective,
        "direction": config.direction,
        "storage": url,
        "range": {"first_bar_close": planner.first.isoformat(), "locked_start": planner.locked_start.isoformat(),
                  "end": planner.end.isoformat()},
        "best": None if best is None else {k: best[k] for k in ("number", "params", "objective")},
        "trials": trials,
        "deflated_sharpe": deflated,
        "pbo": overfitting(complete) if complete else {"error": "no complete trial"},
        "locked_segment": None if locked is None else {
            **locked, "in_sweep": {"objective": best["objective"], "stats": best["stats"]}},
        "importances": importances(study, len(complete)),
    }
    report["verdict"] = verdict(config.sweep.objective, best, deflated, locked)
    write_json(Path(folder) / "sweep.json", report)
    plot_report(complete, config.sweep.objective, config.direction == "maximize", Path(folder))
    return report


def plot_report(complete: list[dict], objective: str, larger_is_better: bool, folder: Path) -> None:
    """leaderboard.png and window_returns.png of the complete trials."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not complete:
        return
    ranked = sorted(complete, key=lambda t: t["objective"], reverse=larger_is_better)
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(ranked) + 1.5))
    ax.barh([f"#{t['number']}" for t in ranked][::-1], [t["objective"] for t in ranked][::-1])
    ax.set_xlabel(objective)
    ax.set_title("Sweep leaderboard (walk-forward, before the locked segment)")
    fig.tight_layout()
    fig.savefig(folder / "leaderboard.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4))
    for t in complete:
        ax.plot([w["window"] for w in t["windows"]], [w["return"] for w in t["windows"]], marker="o", alpha=0.6,
                label=f"#{t['number']}")
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_xlabel("window")
    ax.set_ylabel("net return")
    ax.set_title("Each complete trial's net return per walk-forward window")
    if len(complete) <= 12:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "window_returns.png", dpi=100)
    plt.close(fig)
