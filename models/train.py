"""Fitting the LSTM, top to bottom.

1. Standardize features with statistics of the fitting rows only; scale the target by its
   fitting-row standard deviation, so the loss is O(1) whatever the asset's volatility. Several
   instruments pool into one model, each scaled on its own fitting rows (models.pooling).
2. Cut the fitting rows into overlapping sequences with a burn-in (see models.dataset).
3. AdamW over shuffled sequences; after each epoch, predict the whole series in one stateful
   pass (exactly what the strategy does bar by bar) and score the validation rows.
4. Keep the best epoch; stop after ``patience`` epochs without improvement.
5. A checkpoint after every epoch makes the run resumable.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from nautilus_trader.model.data import BarType

from marketdata.catalog import load_bars
from marketdata.progress import progress
from models.artifact import Artifact, InstrumentFit, data_fingerprint, save_artifact
from models.baselines import LightGBMForecast, RidgeForecast
from models.config import TrainConfig
from models.dataset import Dataset, Scaler, build_dataset, sequences
from models.features import FeatureSpec, default_spec
from models.heads import (
    TargetScales,
    decoded_point_index,
    forecast_rows,
    network_targets,
    output_names,
    trailing_sigma,
)
from models.jsonio import replacing
from models.metrics import forecast_metrics
from models.network import LSTMConfig, LSTMForecaster, pick_device, predict_series
from models.pooling import Scaling, benchmark_rows, check_bar_types, input_width, one_hot, with_cross_returns
from models.splits import Split, min_gap, train_val_split
from models.volatility import volatility_metrics

log = logging.getLogger(__name__)



@dataclass
class FitResult:
    model: LSTMForecaster
    scalings: list[Scaling]  # per instrument, in the order of the datasets fitted (models.pooling)
    best_epoch: int
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def forecast(self, data: Dataset, stop: int | None = None, instrument: int = 0, start: int = 0) -> dict[str, np.ndarray]:
        """Decoded forecasts of rows [0, stop) of ``instrument``'s ``data`` (``models.heads.output_names``),
        from one stateful pass that starts at row ``start`` (NaN before it): what a strategy started
        there would have said bar by bar."""
        scaling = self.scalings[instrument]
        decoded = forecast_rows(self.model, scaling.scaler, scaling.scales, data, stop, scaling.one_hot, start)
        return dict(zip(output_names(self.model.config), decoded.T))


def resolve_device(name: str) -> torch.device:
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for, but torch sees no CUDA device")
    return torch.device("cuda") if name == "cuda" else pick_device()


def lstm_config(config: TrainConfig, n_features: int, seed: int) -> LSTMConfig:
    return dataclasses.replace(config.model, n_features=n_features, seed=seed)


def fit(
    config: TrainConfig,
    data: Dataset | list[Dataset],
    split: Split | list[Split],
    seed: int | None = None,
    checkpoint: Path | None = None,
    desc: str = "train",
    warm_start: LSTMForecaster | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
) -> FitResult:
    """Fit on one instrument's rows, or pool several (lists of datasets and their splits, models.pooling).

    ``warm_start``: a network of the same config (e.g. the previous walk-forward fold's, trained on
    a past this fit's rows include) to continue from instead of fresh weights.
    ``on_epoch(epoch, val_loss)``: called after every epoch (those a resumed run replays from its
    checkpoint too, so it sees the same sequence either way), once the checkpoint is saved; it may
    raise to stop the fit, as the search's pruning does.
    """
    datasets, splits = (data, split) if isinstance(data, list) else ([data], [split])
    seed = config.training.seed if seed is None else seed
    training = config.training
    device = resolve_device(training.device)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    started = time.perf_counter()

    network = lstm_config(config, input_width(datasets[0].features.shape[1], len(datasets)), seed)
    scalings, inputs, targets, pieces = [], [], [], []
    for number, (rows, rows_split) in enumerate(zip(datasets, splits)):
        fit_rows = slice(rows_split.fit.start, rows_split.fit.stop)
        sigma = trailing_sigma(network, rows)
        scaling = Scaling(Scaler.fit(rows.features[fit_rows]), TargetScales.fit(network, rows, sigma, fit_rows),
                          one_hot(number, len(datasets)))
        scalings.append(scaling)
        inputs.append(scaling.inputs(rows.features))
        targets.append(network_targets(network, rows, sigma, scaling.scales))
        pieces.append(sequences(inputs[-1], targets[-1], rows_split.fit, training.sequence_length, config.model.burn_in))
    x, y, mask = (torch.from_numpy(np.concatenate(part)).to(device) for part in zip(*pieces))
    model = LSTMForecaster(network).to(device)
    if warm_start is not None:
        model.load_state_dict(warm_start.state_dict())
    optimizer = torch.optim.AdamW(model.parameters(), lr=training.learning_rate, weight_decay=training.weight_decay)

    first_epoch, best_loss, best_epoch, best_state, history = 0, float("inf"), -1, None, []
    # What must match for a checkpoint to be resumed: the config (bar the stopping rule and the
    # device), the seed and the rows. A resumed run then continues exactly where it stopped.
    settings = config.override(training={"max_epochs": 1, "patience": 1, "device": "auto"}).to_dict()
    run_key = json.dumps({
        "config": settings, "seed": seed, "fit": [[s.fit.start, s.fit.stop] for s in splits], "rows": [len(d) for d in datasets],
    }, sort_keys=True)
    if checkpoint is not None and checkpoint.is_file():
        saved = _load_checkpoint(checkpoint, device)
        if saved.get("run") != run_key:
            raise ValueError(
                f"{checkpoint} belongs to a run with another config, seed or data; "
                "delete it or train into another --out"
            )
        try:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            generator.set_state(saved["generator"])
            torch.set_rng_state(saved["torch_rng"])  # dropout draws from the global generator
            first_epoch, best_loss, best_epoch = saved["epoch"] + 1, saved["best_loss"], saved["best_epoch"]
            best_state, history = saved["best_model"], _history_from(saved)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"{checkpoint}: a damaged checkpoint ({type(exc).__name__}); delete it to start over") from None
        log.info("%s: resumed from %s after epoch %d", desc, checkpoint, saved["epoch"] + 1)

    for past in history if on_epoch is not None else ():
        on_epoch(past["epoch"], past["val_loss"])
    bad_epochs = sum(1 for h in history if h["epoch"] > best_epoch)
    for epoch in range(first_epoch, training.max_epochs):
        if bad_epochs >= training.patience:
            break
        model.train()
        order = torch.randperm(len(x), generator=generator).to(device)
        losses = []
        batches = range(0, len(order), training.batch_size)
        for start in progress(batches, desc=f"{desc} epoch {epoch + 1}/{training.max_epochs}", unit="batch", leave=False):
            batch = order[start : start + training.batch_size]
            prediction, _ = model(x[batch])
            loss = model.loss(prediction, y[batch], mask[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            losses.append(loss.item())

        val_loss = validation_loss(model, inputs, targets, splits)
        improved = val_loss < best_loss
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val_loss": val_loss})
        if improved:
            best_loss, best_epoch, best_state = val_loss, epoch, copy.deepcopy(model.state_dict())
        bad_epochs = 0 if improved else bad_epochs + 1
        log.info(
            "%s epoch %d/%d: train loss %.4f, val loss %.4f%s",
            desc, epoch + 1, training.max_epochs, history[-1]["train_loss"], val_loss, " (best)" if improved else "",
        )
        if checkpoint is not None:
            _save_checkpoint(checkpoint, run_key, model, optimizer, generator, epoch, best_loss, best_epoch, best_state, history)
        if on_epoch is not None:
            on_epoch(epoch, val_loss)

    model.load_state_dict(best_state)
    model.eval()
    return FitResult(model, scalings, best_epoch, history, time.perf_counter() - started)


@torch.no_grad()
def validation_loss(model: LSTMForecaster, inputs: list[np.ndarray], targets: list[np.ndarray], splits: list[Split]) -> float:
    """The loss over every instrument's validation rows together (each row counts once).

    Each instrument's validation rows are predicted from a zero state ``state_warmup`` rows before
    them: the context a strategy warms its network on (strategies.catchup.default_warmup_bars),
    which training's burn-in makes enough, at a fraction of the cost of a pass from row 0.
    """
    context = model.config.state_warmup
    predictions = [predict_series(model, x[max(0, s.val.start - context) : s.val.stop])[-len(s.val):] for x, s in zip(inputs, splits)]
    rows = np.concatenate([t[s.val.start : s.val.stop] for t, s in zip(targets, splits)])
    every_row = torch.ones(1, len(rows), dtype=torch.bool)
    prediction = np.concatenate(predictions)
    return float(model.loss(torch.as_tensor(prediction[None], dtype=torch.float32), torch.as_tensor(rows[None]), every_row))


def _save_checkpoint(path, run_key, model, optimizer, generator, epoch, best_loss, best_epoch, best_state, history) -> None:
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "run": run_key,
        "epoch": epoch,
        "best_loss": best_loss,
        "best_epoch": best_epoch,
        "best_model": best_state,
        "history": torch.tensor([[h["epoch"], h["train_loss"], h["val_loss"]] for h in history], dtype=torch.float64),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as staging:  # a kill mid-save keeps the previous checkpoint
        torch.save(state, staging)


def _load_checkpoint(path: Path, device: torch.device) -> dict:
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch says what broke (a bad zip, an unpickling error, an OSError) but not where
        raise ValueError(f"{path}: not a checkpoint this code can read ({type(exc).__name__}); delete it to start over") from None
    if not isinstance(saved, dict):
        raise ValueError(f"{path}: not a checkpoint this code can read (a {type(saved).__name__}); delete it to start over")
    return saved


def _history_from(saved: dict) -> list[dict]:
    return [
        {"epoch": int(row[0]), "train_loss": float(row[1]), "val_loss": float(row[2])}
        for row in saved["history"].tolist()
    ]


def load_training_bars(config: TrainConfig, bar_type: str | None = None) -> pd.DataFrame:
    """The bars of ``bar_type`` (None: the config's one bar type) in the config's range, less the holdout."""
    bar_type = config.data.bar_type if bar_type is None else bar_type
    start = pd.Timestamp(config.data.start, tz="UTC") if config.data.start else None
    end = pd.Timestamp(config.data.end, tz="UTC") if config.data.end else None
    bars = load_bars(config.data.catalog, bar_type, start=start, end=end)
    if config.data.holdout_days:
        bars = bars.loc[: bars.index[-1] - pd.Timedelta(days=config.data.holdout_days)]
        if bars.empty:
            raise ValueError(f"holding out {config.data.holdout_days} days leaves no {bar_type} bars to train on")
    return bars


def load_datasets(config: TrainConfig, spec: FeatureSpec) -> tuple[list[pd.DataFrame], list[Dataset]]:
    """Each of the config's instruments' training bars and dataset, in ``[data] bar_types`` order,
    with the cross-asset columns when [data] cross_asset."""
    bar_types = config.data.bar_types
    bars = [load_training_bars(config, bar_type) for bar_type in bar_types]
    datasets = [build_dataset(rows, spec, config.training.horizon) for rows in bars]
    if config.data.cross_asset:
        by_type = dict(zip(bar_types, bars))
        datasets = [with_cross_returns(data, bar_types, bar_type, by_type) for data, bar_type in zip(datasets, bar_types)]
    return bars, datasets


def train_model(config: TrainConfig, out: Path) -> Artifact:
    """The `train` job: bars → dataset → fit on the past, early-stop on the recent → artifact.

    Several bar types pool their instruments into one model (models.pooling): each instrument's
    rows are split by time on their own, with the cross-asset columns when [data] cross_asset,
    and the ridge and LightGBM benchmarks fit all fitting rows (of their own features) together."""
    config = config.with_absolute_paths()  # as the artifact stores it, and the checkpoints' run key
    bar_types = config.data.bar_types
    check_bar_types(bar_types)
    spec = FeatureSpec.from_dict(config.features) if config.features else default_spec()
    gap = min_gap(config.training.horizon, config.model.burn_in)
    bars, datasets = load_datasets(config, spec)
    splits = [train_val_split(len(data), config.training.val_fraction, gap) for data in datasets]
    for bar_type, rows, split in zip(bar_types, bars, splits):
        log.info(
            "%d bars of %s: fitting on %d, validating on the last %d after a %d-bar gap",
            len(rows), bar_type, len(split.fit), len(split.val), gap,
        )
    checkpoints = Path(out) / "checkpoint"
    search = None
    if config.training.search_trials:
        # here, not at the top: models.search fits through this module, and imports optuna (0.25 s)
        from models.search import search_hyperparameters

        config, result, search = search_hyperparameters(config, datasets, splits, checkpoints)
    else:
        result = fit(config, datasets, splits, checkpoint=checkpoints / "last.pt")

    by_instrument = {}
    for number, (bar_type, data, split) in enumerate(zip(bar_types, datasets, splits)):
        forecast = result.forecast(data, instrument=number)
        by_instrument[bar_type] = validation_metrics(result.model.config, forecast, data, slice(split.val.start, split.val.stop))
    metrics = {
        "validation": by_instrument[bar_types[0]] if len(bar_types) == 1 else by_instrument,
        "best_epoch": result.best_epoch + 1,
        "epochs_run": len(result.history),
        "history": result.history,
        "train_seconds": result.seconds,
        "device": str(next(result.model.parameters()).device),
        "search": search,
    }
    x, y = benchmark_rows(datasets, [slice(split.fit.start, split.fit.stop) for split in splits], len(spec.columns))
    ridge = RidgeForecast(config.training.horizon).fit(x, None, y)
    boosted = LightGBMForecast(config.training.horizon, seed=config.training.seed).fit(x, None, y)
    instruments = [
        InstrumentFit(
            data=data_fingerprint(rows, str(BarType.from_str(bar_type).instrument_id), bar_type) | {
                "fit_rows": [split.fit.start, split.fit.stop],
                "val_rows": [split.val.start, split.val.stop],
                "first_row_close": data.index[0].isoformat(),
            },
            scaler=scaling.scaler,
            scales=scaling.scales,
        )
        for bar_type, rows, data, split, scaling in zip(bar_types, bars, datasets, splits, result.scalings)
    ]
    artifact = Artifact(
        config=config,
        lstm=result.model.config,
        feature_spec=spec,
        instruments=instruments,
        metrics=metrics,
        model=result.model.cpu(),
        ridge={"coef": ridge.coef_.tolist(), "intercept": float(ridge.intercept_), "alpha": float(ridge.alpha_)},
        lightgbm=boosted.booster_,
    )
    save_artifact(Path(out), artifact)
    return artifact


def validation_metrics(config: LSTMConfig, forecast: dict[str, np.ndarray], data: Dataset, rows: slice) -> dict:
    """The point return forecast's metrics (as evaluate reports them), and the volatility
    forecast's under ``volatility`` when the model has one."""
    metrics = {}
    point = decoded_point_index(config)
    if point is not None:
        name = output_names(config)[point]
        metrics = forecast_metrics(data.target[rows], forecast[name][rows], horizon=data.horizon)
    if "volatility" in forecast:
        metrics["volatility"] = volatility_metrics(data.volatility[rows], np.log(forecast["volatility"][rows]))
    return metrics
