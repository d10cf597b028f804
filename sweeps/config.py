"""The sweep config: a TOML file, one small frozen dataclass per section, unknown keys refused.

- ``[sweep]``: ``trials`` (finished trials wanted), ``objective`` (``sharpe``: the walk-forward
  backtest's Sharpe ratio net of costs, the default; ``ic``: Spearman rank correlation of the
  point forecast with the realized h-bar log return; ``qlike``: the volatility forecast's QLIKE,
  minimized), ``seed`` (TPE's), ``pruning`` (Optuna's median pruner on per-window values),
  ``storage`` (any SQLAlchemy URL; empty: ``sqlite:///<sweep folder>/study.db``), ``study`` (its name
  in the storage), ``heartbeat_s`` (how often a driver marks its running trials alive; a trial
  unmarked for three beats is taken as its stopped driver's orphan: sweeps.driver).
- ``[data]``: ``catalog`` (a folder, or an ``s3://bucket/prefix`` URL: marketdata.object_storage), ``bar_type`` (one instrument; ``[space] bar_type`` may choose it instead) or
  ``bar_types`` (several: pooled, as in a training config: each trial trains one model on every
  instrument per window and trades them all in one account, sweeps.trial), ``start``, ``end``.
- ``[walk_forward]``: ``train_days``, ``test_days``, ``locked_days``: the last ``locked_days`` of the
  range are the locked segment, never seen by a trial; the winner is trained on the ``train_days``
  before it and trades it once, at the end.
- ``[train]``: the base training config: ``config`` (a TOML file like models/default.toml; empty:
  that default), with ``[train.model]``, ``[train.training]`` and ``[train.features]`` overriding it.
- ``[strategy]``: LSTMStrategy settings, flat (strategies.config.strategy_settings), every trial's.
- ``[space]``: the search space, one key per parameter of ``PARAMETERS``: a list is a categorical
  choice (``"off"`` is None where the field takes None), a table ``{low, high, log, step}`` a range
  (integers when low and high are). ``features`` chooses among named ``[feature_sets.NAME]`` tables
  (models.features.FeatureSpec fields, the rest at their defaults; an empty table is the default set).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from models.config import (
    DEFAULT_CONFIG,
    TrainConfig,
    bar_type_shorthand,
    config_section,
    no_unknown,
    read_toml,
)
from models.features import FeatureSpec
from strategies.config import strategy_settings

OBJECTIVES = {"sharpe": "maximize", "ic": "maximize", "qlike": "minimize"}
OFF = "off"  # a categorical choice meaning None (TOML has no null)

# Each searchable parameter: (where it goes, its field there). "train.*" are TrainConfig sections.
PARAMETERS = {
    "architecture": ("train.model", "architecture"),
    "hidden_size": ("train.model", "hidden_size"),
    "num_layers": ("train.model", "num_layers"),
    "dropout": ("train.model", "dropout"),
    "return_target": ("train.model", "return_target"),
    "learning_rate": ("train.training", "learning_rate"),
    "sequence_length": ("train.training", "sequence_length"),
    "horizon": ("train.training", "horizon"),
    "features": ("train.features", None),
    "bar_type": ("data", "bar_type"),
    "entry_margin": ("strategy", "entry_margin"),
    "target_volatility": ("strategy", "target_volatility"),
    "volatility_gate": ("strategy", "volatility_gate"),
    "min_holding_bars": ("strategy", "min_holding_bars"),
}


@dataclass(frozen=True)
class SweepSection:
    trials: int = 20
    objective: str = "sharpe"
    seed: int = 0
    pruning: bool = True
    storage: str = ""
    study: str = "sweep"
    heartbeat_s: int = 10


@dataclass(frozen=True)
class DataSection:
    catalog: str = "data/catalog"
    bar_types: tuple[str, ...] = ("BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL",)
    start: str = ""
    end: str = ""


@dataclass(frozen=True)
class WalkForwardSection:
    train_days: float = 30.0
    test_days: float = 7.0
    locked_days: float = 14.0


@dataclass(frozen=True)
class SweepConfig:
    source: str
    sweep: SweepSection = field(default_factory=SweepSection)
    data: DataSection = field(default_factory=DataSection)
    walk_forward: WalkForwardSection = field(default_factory=WalkForwardSection)
    train: TrainConfig = field(default_factory=TrainConfig)
    strategy: dict = field(default_factory=dict)
    space: dict[str, BaseDistribution] = field(default_factory=dict)
    feature_sets: dict[str, dict] = field(default_factory=dict)

    @property
    def direction(self) -> str:
        return OBJECTIVES[self.sweep.objective]

    def storage_url(self, folder: Path) -> str:
        return self.sweep.storage or f"sqlite:///{Path(folder).resolve() / 'study.db'}"

    def trial_config(self, params: dict) -> tuple[TrainConfig, dict, tuple[str, ...]]:
        """The training config, the strategy settings and the bar types (one, or several pooled) of a
        trial's parameters."""
        sections: dict[str, dict] = {"train.model": {}, "train.training": {}, "data": {}, "strategy": dict(self.strategy)}
        features = self.train.features
        for name, value in params.items():
            where, key = PARAMETERS[name]
            if where == "train.features":
                features = self.feature_sets[value]
            else:
                sections[where][key] = None if value == OFF else value
        bar_types = (sections["data"]["bar_type"],) if "bar_type" in sections["data"] else self.data.bar_types
        train = dataclasses.replace(self.train, features=dict(features))
        train = train.override(model=sections["train.model"], training=sections["train.training"],
                               data={"catalog": self.data.catalog, "bar_types": bar_types})
        strategy = sections["strategy"]
        strategy_settings(strategy)  # an unknown name fails here, before any trial runs
        return train, strategy, bar_types


def load_sweep_config(path: Path) -> SweepConfig:
    """Read and check a sweep TOML file; errors name the file, the section and the key."""
    path = Path(path)
    return sweep_config_from_dict(read_toml(path, "sweep config"), str(path), base_dir=path.parent)


def sweep_config_from_dict(raw: dict, source: str, base_dir: Path = Path(".")) -> SweepConfig:
    known = {"sweep", "data", "walk_forward", "train", "strategy", "space", "feature_sets"}
    no_unknown(raw, known, source, "sections")
    data = bar_type_shorthand(raw.get("data", {}), f"{source} [data]")
    sweep = config_section(SweepSection, raw.get("sweep", {}), f"{source} [sweep]")
    data = config_section(DataSection, data, f"{source} [data]")
    walk = config_section(WalkForwardSection, raw.get("walk_forward", {}), f"{source} [walk_forward]")
    train = _train_config(dict(raw.get("train", {})), data, f"{source} [train]", base_dir)
    feature_sets = {name: _feature_set(table, f"{source} [feature_sets.{name}]")
                    for name, table in raw.get("feature_sets", {}).items()}
    strategy = dict(raw.get("strategy", {}))
    try:
        strategy_settings(strategy)
    except ValueError as exc:
        raise ValueError(f"{source} [strategy]: {exc}") from None
    checks = [
        (sweep.trials >= 1, "[sweep] trials must be >= 1"),
        (sweep.objective in OBJECTIVES, f"[sweep] objective must be one of {sorted(OBJECTIVES)}, not {sweep.objective!r}"),
        (bool(sweep.study), "[sweep] study must name the study"),
        (sweep.heartbeat_s >= 1, "[sweep] heartbeat_s must be >= 1 (seconds)"),  # an int: config_section checks
        (len(data.bar_types) >= 1, "[data] bar_types must name a bar type"),
        (len(data.bar_types) == 1 or "bar_type" not in raw.get("space", {}),
         "[space] bar_type chooses one instrument, but [data] bar_types pools several: set one or the other"),
        (walk.train_days > 0 and walk.test_days > 0, "[walk_forward] train_days and test_days must be > 0"),
        (walk.locked_days > 0, "[walk_forward] locked_days must be > 0: the winner is judged on a segment no trial saw"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(f"{source}: {message}")
    space = {name: _distribution(name, value, feature_sets, f"{source} [space] {name}")
             for name, value in raw.get("space", {}).items()}
    config = SweepConfig(source, sweep, data, walk, train, strategy, space, feature_sets)
    _check_every_choice(config, source)
    return config


def _train_config(raw: dict, data: DataSection, where: str, base_dir: Path) -> TrainConfig:
    """The base training config: its file (or the shipped default) with the [train.*] tables over it."""
    file = raw.pop("config", "")
    base = read_toml((base_dir / file) if file else DEFAULT_CONFIG, f"{where} config: training config")
    no_unknown(raw, {"model", "training", "features"}, where, "tables")
    for name, table in raw.items():
        base[name] = table if name == "features" else {**base.get(name, {}), **table}
    base["data"] = {"catalog": data.catalog, "bar_types": list(data.bar_types)}
    return TrainConfig.from_dict(base, source=where)


def _feature_set(table: dict, where: str) -> dict:
    """A [feature_sets.NAME] table as the training config's [features] holds it: every field, with the
    version (models.features.FeatureSpec.to_dict); an empty table stays empty (the default set)."""
    if not table:
        return {}
    try:
        return FeatureSpec(**table).to_dict()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None


def _distribution(name: str, value, feature_sets: dict, where: str) -> BaseDistribution:
    if name not in PARAMETERS:
        raise ValueError(f"{where}: not a searchable parameter; known: {sorted(PARAMETERS)}")
    if isinstance(value, list):
        if not value:
            raise ValueError(f"{where}: an empty list of choices")
        if name == "features" and not set(value) <= set(feature_sets):
            raise ValueError(f"{where}: no [feature_sets.{min(set(value) - set(feature_sets))}] table")
        return CategoricalDistribution(value)
    if not isinstance(value, dict):
        # A ValueError, as all bad input: the CLI reports it without a traceback.
        raise ValueError(f"{where}: a list of choices or a table {{low, high, log, step}}, not {value!r}")  # noqa: TRY004
    no_unknown(value, {"low", "high", "log", "step"}, where, "key(s)")
    if "low" not in value or "high" not in value:
        raise ValueError(f"{where}: a range needs low and high")
    low, high, log, step = value["low"], value["high"], bool(value.get("log", False)), value.get("step")
    if not low < high:
        raise ValueError(f"{where}: low must be below high, not {low} and {high}")
    try:
        if isinstance(low, int) and isinstance(high, int):
            return IntDistribution(low, high, log=log, step=step or 1)
        return FloatDistribution(float(low), float(high), log=log, step=step)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _check_every_choice(config: SweepConfig, source: str) -> None:
    """Each categorical choice, and each range's ends, with the other parameters at their first
    choice, must make a valid trial config: a bad value fails now, not in trial 37."""
    first = {name: _ends(dist)[0] for name, dist in config.space.items()}
    for name, dist in config.space.items():
        for value in _ends(dist):
            try:
                config.trial_config({**first, name: value})
            except ValueError as exc:
                raise ValueError(f"{source} [space] {name} = {value!r}: {exc}") from None


def _ends(dist: BaseDistribution) -> list:
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    return [dist.low, dist.high]


def sampler(config: SweepConfig) -> optuna.samplers.BaseSampler:
    """TPE, seeded; constant_liar so trials in flight at once do not all sample the same point."""
    return optuna.samplers.TPESampler(seed=config.sweep.seed, constant_liar=True)


def pruner(config: SweepConfig) -> optuna.pruners.BasePruner:
    """The median pruner on per-window values (after 3 complete trials, from the 2nd window), or none."""
    if not config.sweep.pruning:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
