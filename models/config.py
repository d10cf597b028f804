"""The training config: a small typed TOML file with five sections.

``[data]`` says which bars, ``[features]`` which features (see :mod:`models.features`),
``[model]`` the network's shape (``models.network.LSTMConfig``, the one model config),
``[training]`` how to fit it and ``[evaluation]`` the walk-forward folds. Unknown keys are errors,
so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from marketdata.catalog import absolute_location
from models.network import LSTMConfig

DEFAULT_CONFIG = Path(__file__).with_name("default.toml")


@dataclass(frozen=True)
class DataConfig:
    """Which bars. ``bar_types``: one bar type, or several of one timeframe pooled into one model
    (models.pooling). A file may write ``bar_type = "X"`` for ``bar_types = ["X"]``, not both."""

    catalog: str = "data/catalog"
    bar_types: tuple[str, ...] = ("BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL",)
    start: str = ""
    end: str = ""
    holdout_days: float = 0.0
    cross_asset: bool = False  # pooled: each row also holds the other instruments' 1-bar returns (models.pooling)

    @property
    def bar_type(self) -> str:
        """The one bar type, for what handles one instrument; an error naming the rest for a pooled config."""
        if len(self.bar_types) != 1:
            raise ValueError(f"[data] bar_types {list(self.bar_types)}: this takes one instrument, not {len(self.bar_types)}")
        return self.bar_types[0]


@dataclass(frozen=True)
class TrainingConfig:
    horizon: int = 15
    sequence_length: int = 256
    batch_size: int = 16
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    max_epochs: int = 30
    patience: int = 5
    val_fraction: float = 0.15
    seed: int = 0
    device: str = "auto"
    search_trials: int = 0


@dataclass(frozen=True)
class EvaluationConfig:
    folds: int = 4
    first_test_fraction: float = 0.5


@dataclass(frozen=True)
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    features: dict = field(default_factory=dict)
    model: LSTMConfig = field(default_factory=LSTMConfig)  # n_features and seed are set at training
    training: TrainingConfig = field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)

    def to_dict(self) -> dict:
        """The config as its file would have it (what training fills in is left out)."""
        raw = dataclasses.asdict(self)
        for name in _NOT_IN_FILE[LSTMConfig]:
            del raw["model"][name]
        return raw

    @classmethod
    def from_dict(cls, raw: dict, source: str = "config") -> TrainConfig:
        sections = {f.name: f for f in dataclasses.fields(cls)}
        no_unknown(raw, set(sections), source, "section(s)")
        values = {}
        for name, section in raw.items():
            if name == "features":
                values[name] = dict(section)
                continue
            section_cls = sections[name].default_factory
            if name == "data":
                section = bar_type_shorthand(section, f"{source} [data]")
            values[name] = config_section(section_cls, section, f"{source} [{name}]")
        config = cls(**values)
        config.validate(source)
        return config

    def validate(self, source: str = "config") -> None:
        checks = [  # [model]'s own checks ran when LSTMConfig was made
            (self.data.holdout_days >= 0, "[data] holdout_days must be >= 0"),
            (len(self.data.bar_types) >= 1, "[data] bar_types must name at least one bar type"),
            (len(set(self.data.bar_types)) == len(self.data.bar_types), "[data] bar_types must not repeat a bar type"),
            (all(isinstance(b, str) and b for b in self.data.bar_types), "[data] bar_types must be non-empty strings"),
            (not self.data.cross_asset or len(self.data.bar_types) > 1, "[data] cross_asset needs several bar_types"),
            (self.training.horizon >= 1, "[training] horizon must be >= 1"),
            (self.training.sequence_length > self.model.burn_in, "[training] sequence_length must exceed [model] burn_in"),
            (self.training.batch_size >= 1 and self.training.max_epochs >= 1, "[training] batch_size and max_epochs must be >= 1"),
            (0 < self.training.val_fraction < 1, "[training] val_fraction must be in (0, 1)"),
            (self.training.device in ("auto", "cpu", "cuda"), "[training] device must be auto, cpu or cuda"),
            (self.training.search_trials >= 0, "[training] search_trials must be >= 0"),
            (self.evaluation.folds >= 1, "[evaluation] folds must be >= 1"),
            (0 < self.evaluation.first_test_fraction < 1, "[evaluation] first_test_fraction must be in (0, 1)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"{source}: {message}")

    def with_absolute_paths(self) -> TrainConfig:
        """A copy whose [data] catalog is absolute (a relative one read against the working
        directory now; an s3:// URL as it is), so it names the same data from any directory: what an
        artifact stores."""
        catalog = str(absolute_location(self.data.catalog))
        return dataclasses.replace(self, data=dataclasses.replace(self.data, catalog=catalog))

    def override(self, **sections: dict) -> TrainConfig:
        """A copy with some fields replaced, e.g. ``override(training={"seed": 3})``; None values are ignored."""
        changed = {}
        for name, fields in sections.items():
            fields = {k: v for k, v in fields.items() if v is not None and v != ()}
            if name == "data":
                fields = bar_type_shorthand(fields, "overrides [data]")
                if "bar_types" in fields:
                    fields["bar_types"] = tuple(fields["bar_types"])
            if fields:
                changed[name] = dataclasses.replace(getattr(self, name), **fields)
        config = dataclasses.replace(self, **changed)
        config.validate("overrides")
        return config


def load_config(path: Path | None = None) -> TrainConfig:
    """Read a TOML config (the shipped default when ``path`` is None)."""
    path = Path(path) if path else DEFAULT_CONFIG
    return TrainConfig.from_dict(read_toml(path), source=str(path))


def read_toml(path: Path, what: str = "config") -> dict:
    """A TOML file's tables, or a ValueError naming the file: missing, or not valid TOML."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no {what} file at {path}")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None


# Fields a section's dataclass has that the file does not set (training fills them in).
_NOT_IN_FILE = {LSTMConfig: {"n_features", "seed"}}


def bar_type_shorthand(raw: dict, where: str) -> dict:
    """``bar_type = "X"`` as ``bar_types = ["X"]`` (a one-instrument config reads as before)."""
    if "bar_type" not in raw:
        return raw
    if "bar_types" in raw:
        raise ValueError(f"{where}: set bar_type (one instrument) or bar_types (a list), not both")
    bar_type = raw["bar_type"]
    if not isinstance(bar_type, str):
        raise ValueError(f"{where}: bar_type must be str, not {bar_type!r} (several instruments: bar_types = [...])")
    return {**{k: v for k, v in raw.items() if k != "bar_type"}, "bar_types": (bar_type,)}


def config_section(section_cls, raw: dict, where: str):
    """A TOML table as the dataclass ``section_cls`` (training's and a sweep's sections): every key
    known, each value of its default's type (a list where a tuple is, an int where a float is; never
    a bool for a number), or a ValueError naming ``where`` and the key."""
    known = {f.name: f for f in dataclasses.fields(section_cls) if f.name not in _NOT_IN_FILE.get(section_cls, ())}
    no_unknown(raw, set(known), where, "key(s)")
    values = {}
    for key, value in raw.items():
        default = known[key].default
        if isinstance(default, tuple):
            value = tuple(value) if isinstance(value, list) else value
        elif isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not type(default):
            raise ValueError(f"{where}: {key} must be {type(default).__name__}, not {value!r}")
        values[key] = value
    try:
        return section_cls(**values)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def no_unknown(raw: dict, known: set, where: str, what: str) -> None:
    """A ValueError naming ``where`` and the keys of ``raw`` not in ``known`` (``what`` they are: "key(s)")."""
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"{where}: unknown {what} {sorted(unknown)}; expected {sorted(known)}")
