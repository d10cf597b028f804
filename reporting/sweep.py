"""The sweep report, from ``sweep.json`` (``sweeps``): the verdict, the leaderboard, how the search
went, the parameters' importances, the deflated Sharpe ratio, the probability of backtest
overfitting (PBO) and the locked segment the winner was judged on.

What sweep.json holds beyond ``trials`` is optional here: a section is drawn for each of
``best``, ``importances``, ``deflated_sharpe``, ``pbo``, ``locked_segment`` and ``verdict``
present, and skipped for one absent.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import plotly.graph_objects as go

from reporting.page import Section, figure, paragraph, table

LEADERBOARD_ROWS = 25


def sweep_page(folder: Path) -> tuple[str, list[str], list[Section]]:
    sweep = json.loads((folder / "sweep.json").read_text())
    trials = sweep.get("trials", [])
    objective = sweep.get("objective", "objective") if isinstance(sweep.get("objective"), str) else "objective"
    states: dict[str, int] = {}
    for trial in trials:
        states[str(trial.get("state", "?"))] = states.get(str(trial.get("state", "?")), 0) + 1
    title = f"Sweep: {len(trials)} trials, objective {objective}"
    summary = [paragraph(", ".join(f"{count} {state}" for state, count in states.items()) or "no trials")]
    verdict = sweep.get("verdict")
    if verdict:
        text = verdict if isinstance(verdict, str) else " ".join(map(str, verdict)) if isinstance(verdict, list) else json.dumps(verdict)
        summary.append(f"<p><b>Verdict.</b> {html.escape(text)}</p>")
    sections = [Section("Leaderboard", f"The complete trials (at most {LEADERBOARD_ROWS}) with the best {objective}, best first.",
                        [_leaderboard(trials), _history(trials, objective)])]
    if sweep.get("best"):
        sections.insert(0, Section("Best trial", "", [table({"best": flat(sweep["best"])})]))
    if sweep.get("importances"):
        sections.append(Section("Parameter importances", "How much of the objective's variation over the trials each "
                                "parameter explains (Optuna's importance evaluator).", [_importances(sweep["importances"])]))
    if sweep.get("deflated_sharpe"):
        sections.append(_deflated(sweep["deflated_sharpe"]))
    if sweep.get("pbo"):
        sections.append(_pbo(sweep["pbo"]))
    if sweep.get("locked_segment"):
        sections.append(Section("Locked segment", "The winner retrained and traded on the last days, which no trial saw.",
                                [table({"locked segment": flat(sweep["locked_segment"])})]))
    return title, summary, sections


def flat(value: dict, prefix: str = "") -> dict:
    """Nested dicts as one level of dotted keys; a list shown as its length unless short and of numbers."""
    out = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict):
            out |= flat(item, f"{name}.")
        elif isinstance(item, list):
            short = len(item) <= 8 and all(isinstance(x, (int, float)) for x in item)
            out[name] = ", ".join(f"{x:.4g}" for x in item) if short else f"{len(item)} values"
        else:
            out[name] = item
    return out


def _complete(trials: list[dict]) -> list[dict]:
    return [t for t in trials if t.get("state") == "complete" and _finite(t.get("objective"))]


def _leaderboard(trials: list[dict]) -> str:
    best = sorted(_complete(trials), key=lambda t: t["objective"], reverse=True)[:LEADERBOARD_ROWS]
    rows = {f"#{t.get('number', '?')}": {"objective": t["objective"], **flat(t.get("params", {}))} for t in best}
    return table(rows, first="trial") if rows else paragraph("No trial completed.")


def _history(trials: list[dict], objective: str) -> go.Figure:
    fig = figure("Objective per trial", "trial", objective)
    done = sorted(_complete(trials), key=lambda t: t.get("number", 0))
    fig.add_trace(go.Scatter(x=[t.get("number") for t in done], y=[t["objective"] for t in done], mode="markers",
                             name="complete", text=[json.dumps(t.get("params", {})) for t in done]))
    best, running = [], -math.inf
    for t in done:
        running = max(running, t["objective"])
        best.append(running)
    fig.add_trace(go.Scatter(x=[t.get("number") for t in done], y=best, mode="lines", name="best so far", line={"shape": "hv"}))
    return fig


def _importances(importances: dict) -> go.Figure:
    ordered = sorted(((k, v) for k, v in importances.items() if _finite(v)), key=lambda kv: kv[1])
    fig = figure("Parameter importances", "importance", "", height=max(250, 80 + 30 * len(ordered)))
    fig.add_trace(go.Bar(x=[v for _, v in ordered], y=[k for k, _ in ordered], orientation="h", name="importance"))
    return fig


def _deflated(deflated: dict) -> Section:
    fig = figure("The best Sharpe ratio against the best expected from luck alone", "", "Sharpe ratio (per period)", height=340)
    bars = {"best trial": deflated.get("sharpe"), "expected max of the trials under no skill": deflated.get("expected_max_sharpe")}
    shown = {k: v for k, v in bars.items() if _finite(v)}
    fig.add_trace(go.Bar(x=list(shown), y=list(shown.values()), name="Sharpe"))
    survives = deflated.get("survives")
    note = ("The deflated Sharpe ratio is the probability that the best trial's Sharpe ratio beats the best that "
            f"{deflated.get('trials', 'the')} trials would reach by luck, given their variance, skew and kurtosis"
            + ("" if survives is None else f"; the winner {'survives' if survives else 'does NOT survive'} it") + ".")
    return Section("Deflated Sharpe ratio", note, [table({"deflated Sharpe": flat(deflated)}), fig])


def _pbo(pbo: dict) -> Section:
    parts = [table({"PBO": flat(pbo)})]
    logits = [x for x in pbo.get("logits", []) if _finite(x)]
    if logits:
        fig = figure("Out-of-sample rank logit of the in-sample best, per split", "logit (≤ 0: at or below the median)", "splits")
        fig.add_trace(go.Histogram(x=logits, nbinsx=40, name="logits"))
        fig.add_vline(x=0, line={"color": "firebrick", "dash": "dash"})
        parts.append(fig)
    value = pbo.get("pbo")
    return Section("Probability of backtest overfitting", "Combinatorially symmetric cross-validation: the share of "
                   "in-sample/out-of-sample splits in which the in-sample best trial ranks at or below the out-of-sample "
                   f"median{'' if not _finite(value) else f' (here {value:.1%})'}.", parts)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
