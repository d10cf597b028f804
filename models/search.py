"""``train --search-trials``: Optuna's search over a small hyperparameter space, judged on the
validation rows only, with unpromising trials pruned epoch by epoch."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import optuna
from optuna.distributions import distribution_to_json
from optuna.trial import TrialState

from marketdata.progress import progress
from models.config import TrainConfig
from models.dataset import Dataset
from models.splits import Split
from models.train import fit

log = logging.getLogger(__name__)


def suggest_hyperparameters(trial: optuna.Trial) -> dict:
    """The search space, drawn through an Optuna trial: small on purpose, since there is little
    signal to tune for. Keys are ``section.field`` of the config."""
    return {
        "model.hidden_size": trial.suggest_categorical("model.hidden_size", [32, 64]),
        "model.num_layers": trial.suggest_int("model.num_layers", 1, 2),
        "model.dropout": trial.suggest_float("model.dropout", 0.0, 0.3),
        "training.learning_rate": trial.suggest_float("training.learning_rate", 3e-4, 3e-3, log=True),
    }


def search_hyperparameters(config: TrainConfig, data: list[Dataset], split: list[Split], checkpoints: Path,
                           pruner: optuna.pruners.BasePruner | None = None):
    """Optuna's TPE sampler (seeded with ``[training] seed``) over :func:`suggest_hyperparameters`,
    each trial judged on its best validation loss, the validation rows only. A trial whose
    validation loss after an epoch is worse than the median of earlier trials' at that epoch is
    pruned (``pruner``, default Optuna's ``MedianPruner`` after 2 complete trials and from the
    second epoch on). The study lives in memory: each trial's fit checkpoints by trial number, so
    a re-run with the same config draws the same trials and resumes them.

    The test folds of `evaluate` never take part: the winner's config goes into the artifact,
    and `evaluate` retrains that config fold by fold. Returns (best config, its fit, the record).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # through our logging, warnings only
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    trials = config.training.search_trials
    sampler = optuna.samplers.TPESampler(seed=config.training.seed)
    pruner = pruner or optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    study = optuna.create_study(direction="minimize", sampler=sampler, pruner=pruner)
    best: dict = {}

    def objective(trial: optuna.Trial) -> float:
        params = suggest_hyperparameters(trial)
        candidate = config.override(**_sections(params))
        desc = f"trial {trial.number + 1}/{trials}"

        def report(epoch: int, val_loss: float) -> None:
            trial.report(val_loss, epoch)
            if trial.should_prune():
                log.info("%s %s: pruned after epoch %d (validation loss %.5f)", desc, params, epoch + 1, val_loss)
                raise optuna.TrialPruned()

        result = fit(candidate, data, split, checkpoint=checkpoints / f"trial-{trial.number}.pt", desc=desc, on_epoch=report)
        val_loss = min(h["val_loss"] for h in result.history)
        log.info("%s %s: best validation loss %.5f", desc, params, val_loss)
        if not best or val_loss < best["val_loss"]:
            best.update(val_loss=val_loss, config=candidate, result=result)  # keep only the leader's network
        return val_loss

    with progress(total=trials, desc="search", unit="trial") as bar:
        def advance(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            pruned = sum(each.state == TrialState.PRUNED for each in study.trials)
            bar.set_postfix(pruned=pruned, best_val_loss=round(best["val_loss"], 5) if best else None)
            bar.update(1)

        study.optimize(objective, n_trials=trials, callbacks=[advance])
    if not best:
        raise ValueError(f"all {trials} search trials were pruned; nothing to keep")
    return best["config"], best["result"], _search_record(study, config.training.seed, pruner)


def _sections(params: dict) -> dict[str, dict]:
    """``{"model.dropout": 0.1}`` -> ``{"model": {"dropout": 0.1}}``, for ``TrainConfig.override``."""
    sections: dict[str, dict] = {}
    for key, value in params.items():
        section, name = key.split(".")
        sections.setdefault(section, {})[name] = value
    return sections


def _search_record(study: optuna.Study, seed: int, pruner: optuna.pruners.BasePruner) -> dict:
    """What the artifact keeps of a search: every trial (its state, params, best validation loss,
    per-epoch validation losses) and the best one."""
    results = [{
        "number": trial.number, "state": trial.state.name, "params": trial.params,
        "val_loss": min(trial.intermediate_values.values(), default=trial.value),
        "val_losses": [trial.intermediate_values[epoch] for epoch in sorted(trial.intermediate_values)],
    } for trial in study.trials]
    best = study.best_trial
    return {
        "sampler": f"TPESampler(seed={seed})",
        "pruner": type(pruner).__name__,
        "space": {name: json.loads(distribution_to_json(dist)) for name, dist in best.distributions.items()},
        "trials": len(study.trials),
        "complete": sum(trial.state == TrialState.COMPLETE for trial in study.trials),
        "pruned": sum(trial.state == TrialState.PRUNED for trial in study.trials),
        "results": results,
        "best": {"number": best.number, "params": best.params, "val_loss": best.value},
    }
