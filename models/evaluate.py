"""Out-of-sample evaluation: the LSTM and every baseline on the same walk-forward folds, for both targets.

For each fold the LSTM is trained afresh (once per seed) on the fold's past, and every
baseline is fitted once on the same past (baselines are deterministic); all of them forecast
the same test rows. Two targets are scored: the h-bar log return (``models``) and, in
``volatility.models``, the h-bar log realized volatility (:func:`models.volatility.log_realized_vol`),
the network's only when it has a volatility head. Metrics are pooled over the test folds per
seed, then reported as mean ± std over seeds, with per-fold figures beside them.

A pooled artifact (several instruments) is evaluated the same way (models.evaluation_data): one
network per seed and fold fitted on every instrument's fold, each baseline on each instrument's
own past, and the metrics over all instruments' test rows together, each instrument's beside
them under ``instruments``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from marketdata.progress import progress
from models.artifact import load_artifact
from models.baselines import BASELINES, lagged_log_returns
from models.config import TrainConfig
from models.dataset import Dataset
from models.evaluation_data import EvaluationData
from models.evaluation_forecasts import write_forecasts
from models.jsonio import write_json
from models.metrics import (
    aggregate_over_seeds,
    cumulative_ic,
    diebold_mariano,
    forecast_metrics,
    scored_points,
)
from models.splits import Split
from models.train import fit
from models.volatility import (
    RETURN_FLOOR,
    VOLATILITY_BASELINES,
    bar_log_returns,
    dm_pvalue,
    volatility_metrics,
)

log = logging.getLogger(__name__)

REPORTED = ["mae", "rmse", "rmse_ratio_vs_zero", "directional_accuracy", "majority_rate", "ic", "rank_ic", "dm_pvalue_vs_zero"]
# Every volatility forecast is tested against these two (Diebold-Mariano on QLIKE).
VOLATILITY_REFERENCES = ("ewma", "har")
VOLATILITY_REPORTED = ["qlike", "rmse_log", "mz_r2", *(f"dm_pvalue_vs_{name}" for name in VOLATILITY_REFERENCES)]
# The baselines the network's volatility forecast must beat; "constant" is reported as a floor only.
VOLATILITY_RIVALS = ("ewma", "har", "garch")
VOLATILITY_TARGET = (
    "log realized volatility over (t, t+h]: 0.5 * log(sum of the squared 1-bar log returns r_{t+1}..r_{t+h}), "
    f"the sum floored at h * {RETURN_FLOOR**2:g}"
)


def evaluate(artifact_path: Path, start: str | None = None, end: str | None = None, seeds: int = 3, out: Path | None = None) -> dict:
    artifact = load_artifact(artifact_path)
    config = artifact.config.override(data={"start": start, "end": end})
    horizon = config.training.horizon
    evaluation = EvaluationData.load(config, artifact.feature_spec)
    bar_types, bars, datasets, splits = evaluation.bar_types, evaluation.bars, evaluation.datasets, evaluation.splits
    test_rows, target, vol_target = evaluation.test_rows, evaluation.series("target"), evaluation.series("volatility")
    seed_list = list(range(config.training.seed, config.training.seed + seeds))
    quantiles = list(config.model.quantiles)
    seconds: dict[str, float] = {}

    # Forecasts per model: one array per seed for the network, one for a (deterministic) baseline.
    clock = time.perf_counter()
    with progress(total=seeds * len(splits[0]), desc="evaluate lstm", unit="fit") as fits:
        network = [_network_run(config, datasets, splits, seed, fits) for seed in seed_list]
    seconds["lstm"] = time.perf_counter() - clock
    bands = [np.column_stack([run[f"q{q:g}"] for q in quantiles]) for run in network] if quantiles else []
    returns: dict[str, list[np.ndarray]] = {}
    point = "prediction" if not quantiles else "q0.5"  # the regression output, or the quantile outputs' median
    if all(point in run for run in network):  # else a volatility-only network: no return forecast to score
        returns["lstm"] = [run[point] for run in network]
    # Baselines see each instrument's own features and past only (no cross-asset columns), as train's ridge.
    own = [replace(data, features=data.features[:, : len(artifact.feature_spec.columns)]) for data in datasets]
    with progress(total=len(own) * len(splits[0]) * (len(BASELINES) + len(VOLATILITY_BASELINES)),
                  desc="evaluate baselines", unit="fit") as fits:
        returns |= {name: [forecast] for name, forecast in _per_instrument(_return_baselines, own, splits, horizon, seconds, fits).items()}
        volatility = {name: [forecast] for name, forecast in _per_instrument(_volatility_baselines, own, splits, horizon, seconds, fits).items()}
    if all("volatility" in run for run in network):
        volatility["lstm"] = [np.log(run["volatility"]) for run in network]
    log.info("evaluate seconds: %s", {name: round(value, 1) for name, value in seconds.items()})

    def score_returns(name: str, forecast: np.ndarray, rows: np.ndarray, seed_index: int) -> dict:
        with_bands = name == "lstm" and bool(quantiles)
        return forecast_metrics(
            target[rows], forecast[rows], quantile_preds=bands[seed_index][rows] if with_bands else None,
            quantiles=quantiles if with_bands else None, horizon=horizon,
        )

    def score_volatility(name: str, forecast: np.ndarray, rows: np.ndarray, seed_index: int) -> dict:
        metrics = volatility_metrics(vol_target[rows], forecast[rows])
        for reference in VOLATILITY_REFERENCES:
            # A forecast against itself is no test.
            metrics[f"dm_pvalue_vs_{reference}"] = math.nan if name == reference else dm_pvalue(
                vol_target[rows], forecast[rows], volatility[reference][0][rows], horizon
            )
        return metrics

    def score(rows: np.ndarray, folds: list[np.ndarray]) -> tuple[dict, dict]:
        """Every model's scores on ``rows`` and per fold: returns, then volatility."""
        return ({name: _scores(name, forecasts, score_returns, seeds, rows, folds) for name, forecasts in returns.items()},
                {name: _scores(name, forecasts, score_volatility, seeds, rows, folds) for name, forecasts in volatility.items()})

    def entries(return_scores: dict, volatility_scores: dict) -> tuple[dict, dict]:
        return ({name: _entry(scores, _reported) for name, scores in return_scores.items()},
                {name: _entry(scores, _volatility_reported) for name, scores in volatility_scores.items()})

    return_scores, volatility_scores = score(test_rows, evaluation.fold_rows)
    models, volatility_models = entries(return_scores, volatility_scores)
    instruments = [fit.data | {"evaluated_bars": len(own)} for fit, own in zip(artifact.instruments, bars)]
    report = {
        "horizon": horizon,
        "seeds": seed_list,
        "data": (instruments[0] if len(bar_types) == 1 else {"instruments": dict(zip(bar_types, instruments)),
                                                             "evaluated_bars": sum(map(len, bars))})
                | {"start": config.data.start, "end": config.data.end},
        "folds": evaluation.folds_report(),
        "models": models,
        "volatility": {"horizon": horizon, "target": VOLATILITY_TARGET, "models": volatility_models},
        "lstm_vs_best_baseline": {
            **({"returns": _against_best(
                returns, return_scores, [name for name in returns if name not in ("lstm", "zero")], "rmse",
                lambda a, b: _squared_error_dm_pvalue(target[test_rows], a[test_rows], b[test_rows], horizon),
            )} if "lstm" in returns else {}),
            **({"volatility": _against_best(
                volatility, volatility_scores, VOLATILITY_RIVALS, "qlike",
                lambda a, b: dm_pvalue(vol_target[test_rows], a[test_rows], b[test_rows], horizon),
            )} if "lstm" in volatility else {}),
        },
        "seconds": seconds,
    }
    if len(bar_types) > 1:  # each instrument's own figures beside the pooled ones
        report["instruments"] = {}
        for bar_type, folds in zip(bar_types, evaluation.own_rows):
            models, volatility_models = entries(*score(np.concatenate(folds), folds))
            report["instruments"][bar_type] = {"models": models, "volatility": {"models": volatility_models}}
    report["verdict"] = verdict(report)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "metrics.json", report)
        write_forecasts(out, evaluation, returns, volatility)
        predictions = {name: forecasts[0] for name, forecasts in returns.items()}
        plot_predicted_vs_realized(predictions, target, test_rows, out / "predicted_vs_realized.png")
        plot_cumulative_ic({name: scores["per_seed_folds"] for name, scores in return_scores.items()},
                           out / "cumulative_ic.png")
    return report


def _network_run(config: TrainConfig, datasets: list[Dataset], splits: list[list[Split]], seed: int, fits) -> dict[str, np.ndarray]:
    """One seed: the network trained once per fold on every instrument's fold (pooled), each
    instrument's test rows forecast by that fold's fit (NaN elsewhere); by output column name,
    the instruments' rows end to end.

    Each fold after the first continues from the previous fold's network (same seed), whose
    training rows all precede this fold's test rows, and trains on with this fold's own scaling
    and early stopping: the work of the shared past is done once, not once per fold.
    """
    outputs: list[dict[str, np.ndarray]] = [{} for _ in datasets]
    previous = None
    for fold_splits in zip(*splits):
        fold = fold_splits[0].fold
        result = fit(config, datasets, list(fold_splits), seed=seed, desc=f"seed {seed} fold {fold + 1}/{len(splits[0])}",
                     warm_start=previous)
        previous = result.model
        fits.set_postfix(seed=seed, fold=fold + 1)
        fits.update(1)
        for number, (data, split) in enumerate(zip(datasets, fold_splits)):
            test = slice(split.test.start, split.test.stop)
            # From a zero state a strategy's warm-up before the test block, as the strategy would trade it.
            start = max(0, split.test.start - config.model.state_warmup)
            for column, values in result.forecast(data, split.test.stop, instrument=number, start=start).items():
                outputs[number].setdefault(column, np.full(len(data), np.nan))[test] = values[test]
    return {column: np.concatenate([own[column] for own in outputs]) for column in outputs[0]}


def _per_instrument(baselines: Callable, datasets: list[Dataset], splits: list[list[Split]], horizon: int,
                    seconds: dict, fits) -> dict[str, np.ndarray]:
    """Baselines fitted on each instrument's own past, fold by fold (each fit advancing ``fits``); their forecasts end to end."""
    runs = [baselines(data, instrument_splits, horizon, seconds, fits) for data, instrument_splits in zip(datasets, splits)]
    return {name: np.concatenate([run[name] for run in runs]) for name in runs[0]}


def _return_baselines(data: Dataset, splits: list[Split], horizon: int, seconds: dict, fits) -> dict[str, np.ndarray]:
    """Every return baseline fitted once per fold on everything the network saw there (fitting and
    early stopping), forecasting the fold's test rows; each one's seconds added to ``seconds``."""
    past_returns = lagged_log_returns(data.close, max(BASELINES[name](horizon).n_lags for name in BASELINES))
    forecasts = {}
    for name, make in BASELINES.items():
        clock = time.perf_counter()
        forecast = np.full(len(data), np.nan)
        for split in splits:
            past, test = slice(0, split.val.stop), slice(split.test.start, split.test.stop)
            model = make(horizon)
            fit_path = {"times": data.index[past], "log_close": np.log(data.close[past])} if model.reads_path else {}
            model.fit(data.features[past], past_returns[past], data.target[past], **fit_path)
            predict_path = {"times": data.index[test]} if model.reads_path else {}
            forecast[test] = model.predict(data.features[test], past_returns[test], **predict_path)
            fits.update(1)
        forecasts[name] = forecast
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - clock
    return forecasts


def _volatility_baselines(data: Dataset, splits: list[Split], horizon: int, seconds: dict, fits) -> dict[str, np.ndarray]:
    """Every volatility baseline on the same folds and past; they filter the 1-bar returns from the
    series' start up to each test row."""
    bar_returns = bar_log_returns(data.close)
    forecasts = {}
    for name, make in VOLATILITY_BASELINES.items():
        clock = time.perf_counter()
        forecast = np.full(len(data), np.nan)
        for split in splits:
            past, test = slice(0, split.val.stop), slice(split.test.start, split.test.stop)
            model = make(horizon).fit(bar_returns[past], data.volatility[past])
            forecast[test] = model.predict(bar_returns[: split.test.stop])[test]
            fits.update(1)
        forecasts[name] = forecast
        seconds[f"volatility_{name}"] = seconds.get(f"volatility_{name}", 0.0) + time.perf_counter() - clock
    return forecasts


def _scores(name: str, forecasts: list[np.ndarray], score: Callable, seeds: int, test_rows: np.ndarray,
            fold_rows: list[np.ndarray]) -> dict:
    """Each seed's forecast scored on the pooled test rows and on each fold. A deterministic baseline
    has one forecast, scored once and repeated for every seed (so its std over seeds is 0)."""
    pooled = [score(name, forecast, test_rows, index) for index, forecast in enumerate(forecasts)]
    per_fold = [[score(name, forecast, rows, index) for rows in fold_rows] for index, forecast in enumerate(forecasts)]
    repeat = seeds if len(forecasts) == 1 else 1
    return {"per_seed": pooled * repeat, "per_seed_folds": per_fold * repeat}


def _entry(scores: dict, reported: Callable[[str], bool]) -> dict:
    """A model's report entry: the reported metrics as mean and std over seeds, and every metric per fold."""
    folds = scores["per_seed_folds"]
    return {
        **{key: value for key, value in aggregate_over_seeds(scores["per_seed"]).items() if reported(key)},
        "folds": [aggregate_over_seeds([seed_folds[k] for seed_folds in folds]) for k in range(len(folds[0]))],
    }


def _against_best(forecasts: dict, scores: dict, rivals, loss: str, dm_pvalue_of: Callable) -> dict:
    """The LSTM against the rival with the lowest pooled ``loss``: the loss ratio and the
    Diebold-Mariano p-value of equal loss, per seed, as mean and std."""
    rival = min(rivals, key=lambda name: scores[name]["per_seed"][0][loss])
    runs = [
        {f"{loss}_ratio": run[loss] / rival_run[loss], "dm_pvalue": dm_pvalue_of(forecast, forecasts[rival][0])}
        for forecast, run, rival_run in zip(forecasts["lstm"], scores["lstm"]["per_seed"], scores[rival]["per_seed"])
    ]
    return {"baseline": rival, **aggregate_over_seeds(runs)}


def _squared_error_dm_pvalue(target: np.ndarray, forecast_a: np.ndarray, forecast_b: np.ndarray, horizon: int) -> float:
    """Two-sided Diebold-Mariano p-value of equal squared error; NaN targets dropped."""
    y, a = scored_points(target, forecast_a)
    _, b = scored_points(target, forecast_b)
    return diebold_mariano(y, a, b, horizon)[1]


def _volatility_reported(key: str) -> bool:
    return key in VOLATILITY_REPORTED or key in ("n", "mz_intercept", "mz_slope")


def _reported(key: str) -> bool:
    return key in REPORTED or key == "n" or key.startswith(("coverage_", "pinball"))


def summary_table(report: dict) -> str:
    """Markdown tables of the pooled out-of-sample metrics, mean ± std over seeds: returns, then volatility."""
    volatility = report["volatility"]
    return "\n\n".join([
        _table(report["models"], REPORTED, f"Returns: {report['horizon']}-bar log return"),
        _table(volatility["models"], VOLATILITY_REPORTED, f"Volatility: {volatility['target']} (h = {volatility['horizon']})"),
    ])


def _table(models: dict, keys: list[str], title: str) -> str:
    lines = [title, "", "| model | " + " | ".join(keys) + " |", "|" + "---|" * (len(keys) + 1)]
    for name, entry in models.items():
        cells = []
        for key in keys:
            mean, std = (np.nan if v is None else v for v in (entry[key]["mean"], entry[key]["std"]))
            # Deterministic baselines repeat per seed: a std at rounding level is no spread.
            spread = not np.isnan(std) and std > 1e-9 * max(1.0, abs(mean))
            cells.append("n/a" if np.isnan(mean) else f"{mean:.4g} ± {std:.2g}" if spread else f"{mean:.4g}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict(report: dict, level: float = 0.05) -> str:
    """Honest sentences, one per target: does the network beat its best baseline out of sample?

    Returns: it must beat both the random walk and the best other baseline by RMSE, each with a
    Diebold-Mariano p-value below ``level``. Volatility: it must beat the best of EWMA, HAR and
    GARCH by QLIKE with p below ``level``; its p-values against EWMA and HAR are quoted too.
    Figures are means over seeds.
    """
    if "returns" not in report["lstm_vs_best_baseline"]:
        sentences = ["Returns: this model has no return head."]
    else:
        lstm = report["models"]["lstm"]
        ratio, pvalue = lstm["rmse_ratio_vs_zero"]["mean"], lstm["dm_pvalue_vs_zero"]["mean"]
        rival = report["lstm_vs_best_baseline"]["returns"]
        rival_ratio, rival_pvalue = rival["rmse_ratio"]["mean"], rival["dm_pvalue"]["mean"]
        beats = ratio < 1 and pvalue < level and rival_ratio < 1 and rival_pvalue < level
        sentences = [(
            f"Returns: the LSTM {'beats' if beats else 'does NOT beat'} its best baselines out of sample: "
            f"RMSE ratio {ratio:.4f} vs the random walk (Diebold-Mariano p = {pvalue:.3g}, {_reading(ratio, pvalue, level)}) "
            f"and {rival_ratio:.4f} vs the best other baseline by RMSE, {rival['baseline']} "
            f"(p = {rival_pvalue:.3g}, {_reading(rival_ratio, rival_pvalue, level)})."
        )]
    volatility = report["volatility"]["models"]
    if "volatility" not in report["lstm_vs_best_baseline"]:
        best = min(VOLATILITY_RIVALS, key=lambda name: volatility[name]["qlike"]["mean"])
        sentences.append(f"Volatility: this model has no volatility head; the best baseline is {best} "
                         f"(QLIKE {volatility[best]['qlike']['mean']:.4g}).")
    else:
        rival = report["lstm_vs_best_baseline"]["volatility"]
        network = volatility["lstm"]
        ratio, pvalue = rival["qlike_ratio"]["mean"], rival["dm_pvalue"]["mean"]
        beats = ratio < 1 and pvalue < level
        references = ", ".join(
            f"{name.upper()} p = {network[f'dm_pvalue_vs_{name}']['mean']:.3g} "
            f"({_reading(network['qlike']['mean'] / volatility[name]['qlike']['mean'], network[f'dm_pvalue_vs_{name}']['mean'], level)})"
            for name in VOLATILITY_REFERENCES
        )
        sentences.append(
            f"Volatility: the network {'beats' if beats else 'does NOT beat'} the best of EWMA/HAR/GARCH, "
            f"{rival['baseline']}, by QLIKE: {network['qlike']['mean']:.4g} vs "
            f"{volatility[rival['baseline']]['qlike']['mean']:.4g} (ratio {ratio:.4f}, Diebold-Mariano p = {pvalue:.3g}, "
            f"{_reading(ratio, pvalue, level)}; vs {references})."
        )
    return " ".join(sentences) + " (Means over seeds.)"


def _reading(loss_ratio: float, pvalue: float, level: float) -> str:
    """What a loss ratio and its Diebold-Mariano p-value say, in words."""
    if not pvalue < level:
        return "no significant difference"
    return "significantly better" if loss_ratio < 1 else "significantly worse"


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
