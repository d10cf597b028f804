"""Out-of-sample evaluation: the LSTM and every baseline on the same walk-forward folds.

For each fold the LSTM is trained afresh (once per seed) on the fold's past, and every
baseline is fitted on the same past; all of them forecast the same test rows from the same
features. Metrics are pooled over the test folds per seed, then reported as mean ± std over
seeds, with per-fold figures beside them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from models.artifact import load_artifact
from models.baselines import BASELINES, lagged_log_returns
from models.dataset import build_dataset
from models.jsonio import write_json
from models.metrics import aggregate_over_seeds, cumulative_ic, forecast_metrics
from models.splits import min_gap, walk_forward
from models.train import fit, load_training_bars

log = logging.getLogger(__name__)

REPORTED = ["mae", "rmse", "rmse_ratio_vs_zero", "directional_accuracy", "majority_rate", "ic", "rank_ic", "dm_pvalue_vs_zero"]


def evaluate(artifact_path: Path, start: str | None = None, end: str | None = None, seeds: int = 3, out: Path | None = None) -> dict:
    artifact = load_artifact(artifact_path)
    config = artifact.config.override(data={"start": start, "end": end})
    horizon = config.training.horizon
    bars = load_training_bars(config)
    data = build_dataset(bars, artifact.feature_spec, horizon)
    gap = min_gap(horizon, config.model.burn_in)
    splits = walk_forward(
        len(data), config.evaluation.folds, config.evaluation.first_test_fraction, config.training.val_fraction, gap
    )
    past_returns = lagged_log_returns(data.close, max(BASELINES[name](horizon).n_lags for name in BASELINES))
    test_rows = np.concatenate([np.arange(s.test.start, s.test.stop) for s in splits])
    predictions: dict[str, np.ndarray] = {}
    runs: dict[str, list[dict]] = {}
    folds: dict[str, list[list[dict]]] = {}

    quantiles = list(config.model.quantiles)
    columns = [f"q{q:g}" for q in quantiles] or ["prediction"]  # the return forecasts (models.heads.output_names)
    for seed in range(config.training.seed, config.training.seed + seeds):
        outputs = np.full((len(data), len(columns)), np.nan)
        for split in splits:
            result = fit(config, data, split, seed=seed, desc=f"seed {seed} fold {split.fold + 1}/{len(splits)}")
            if artifact.lstm.return_target == "none":
                break  # a volatility-only model: no return forecast to score
            forecast = result.forecast(data, split.test.stop)
            test = slice(split.test.start, split.test.stop)
            outputs[test] = np.stack([forecast[name][test] for name in columns], axis=1)
        else:
            point = outputs[:, artifact.lstm.point_index]
            _record("lstm", point, data.target, splits, test_rows, horizon, runs, folds, outputs if quantiles else None, quantiles)
            predictions.setdefault("lstm", point)

    for name, make in BASELINES.items():
        forecast = np.full(len(data), np.nan)
        for split in splits:
            past = slice(0, split.val.stop)  # everything the LSTM saw, fitting and early stopping
            model = make(horizon).fit(data.features[past], past_returns[past], data.target[past])
            test = slice(split.test.start, split.test.stop)
            forecast[test] = model.predict(data.features[test], past_returns[test])
        # Baselines are deterministic: every seed gives the same numbers (std 0).
        for _ in range(seeds):
            _record(name, forecast, data.target, splits, test_rows, horizon, runs, folds)
        predictions[name] = forecast

    report = {
        "horizon": horizon,
        "seeds": list(range(config.training.seed, config.training.seed + seeds)),
        "data": artifact.data | {"evaluated_bars": len(bars), "start": config.data.start, "end": config.data.end},
        "folds": [
            {"fold": s.fold, "fit": [s.fit.start, s.fit.stop], "val": [s.val.start, s.val.stop],
             "test": [s.test.start, s.test.stop], "test_first_close": data.index[s.test.start].isoformat(),
             "test_last_close": data.index[s.test.stop - 1].isoformat()}
            for s in splits
        ],
        "models": {
            name: {
                **{key: value for key, value in aggregate_over_seeds(runs[name]).items() if _reported(key)},
                "folds": [aggregate_over_seeds([seed_folds[k] for seed_folds in folds[name]]) for k in range(len(splits))],
            }
            for name in runs
        },
    }
    report["verdict"] = verdict(report)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "metrics.json", report)
        plot_predicted_vs_realized(predictions, data.target, test_rows, out / "predicted_vs_realized.png")
        plot_cumulative_ic(folds, out / "cumulative_ic.png")
    return report


def _reported(key: str) -> bool:
    return key in REPORTED or key == "n" or key.startswith(("coverage_", "pinball"))


def _record(name, forecast, target, splits, test_rows, horizon, runs, folds, quantile_preds=None, quantiles=None) -> None:
    def score(rows):
        bands = quantile_preds[rows] if quantile_preds is not None else None
        return forecast_metrics(target[rows], forecast[rows], quantile_preds=bands, quantiles=quantiles if bands is not None else None, horizon=horizon)

    runs.setdefault(name, []).append(score(test_rows))
    folds.setdefault(name, []).append([score(np.arange(s.test.start, s.test.stop)) for s in splits])


def summary_table(report: dict) -> str:
    """A Markdown table of the pooled out-of-sample metrics, mean ± std over seeds."""
    header = "| model | " + " | ".join(REPORTED) + " |"
    lines = [header, "|" + "---|" * (len(REPORTED) + 1)]
    for name, entry in report["models"].items():
        cells = []
        for key in REPORTED:
            mean, std = (np.nan if v is None else v for v in (entry[key]["mean"], entry[key]["std"]))
            # Deterministic baselines repeat per seed: a std at rounding level is no spread.
            spread = not np.isnan(std) and std > 1e-9 * max(1.0, abs(mean))
            cells.append("n/a" if np.isnan(mean) else f"{mean:.4g} ± {std:.2g}" if spread else f"{mean:.4g}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict(report: dict, level: float = 0.05) -> str:
    """One honest sentence: does the LSTM beat the random walk out of sample?"""
    lstm = report["models"]["lstm"]
    ratio, pvalue = lstm["rmse_ratio_vs_zero"]["mean"], lstm["dm_pvalue_vs_zero"]["mean"]
    if ratio < 1 and pvalue < level:
        return (f"The LSTM beats the zero-return (random walk) forecast out of sample: RMSE ratio {ratio:.4f}, "
                f"Diebold-Mariano p = {pvalue:.3g} (mean over seeds).")
    worse = "worse than" if ratio > 1 else "no better than"
    return (f"The LSTM does NOT beat the zero-return (random walk) forecast out of sample: RMSE ratio {ratio:.4f} "
            f"({worse} the random walk), Diebold-Mariano p = {pvalue:.3g} (mean over seeds).")


def plot_predicted_vs_realized(predictions: dict, target: np.ndarray, rows: np.ndarray, path: Path) -> None:
    shown = [name for name in ("lstm", "ridge", "momentum") if name in predictions]
    figure = _figure(5 * len(shown), 4.5)
    axes = figure.subplots(1, len(shown), squeeze=False)
    realized = target[rows]
    known = ~np.isnan(realized)
    for axis, name in zip(axes[0], shown):
        predicted = predictions[name][rows]
        axis.scatter(predicted[known], realized[known], s=2, alpha=0.2)
        axis.axhline(0, color="grey", lw=0.5)
        axis.axvline(0, color="grey", lw=0.5)
        axis.set_title(f"{name}: out-of-sample")
        axis.xaxis.set_major_locator(MaxNLocator(5))
        axis.ticklabel_format(axis="x", style="sci", scilimits=(-2, 2))
        axis.set_xlabel("predicted log return")
        axis.set_ylabel("realized log return")
    figure.savefig(path)


def plot_cumulative_ic(folds: dict, path: Path) -> None:
    figure = _figure(7, 4.5)
    axis = figure.subplots()
    for name, seed_folds in folds.items():
        table = cumulative_ic(seed_folds[0])
        if table["ic"].notna().any():  # a constant forecast has no IC: leave it out, not as zeros
            axis.plot(table["fold"] + 1, table["cumulative_ic"], marker="o", label=name)
    axis.axhline(0, color="grey", lw=0.5)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel("test fold")
    axis.set_ylabel("cumulative IC (first seed)")
    axis.set_title("Information coefficient accumulated over walk-forward folds")
    axis.legend()
    figure.savefig(path)


def _figure(width: float, height: float) -> Figure:
    """A figure on the Agg canvas, through matplotlib's object API (no pyplot state, nothing shown)."""
    figure = Figure(figsize=(width, height), dpi=110, layout="tight")
    FigureCanvasAgg(figure)
    return figure
