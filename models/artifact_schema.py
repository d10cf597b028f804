"""The schema of ``artifact.json``, checked field by field whenever an artifact loads.

Every field is typed and required (msgspec Structs, as Nautilus uses them): a wrong type, a value
out of range, a missing or an unknown field is an error. No checked number may be NaN or
infinite (strict JSON cannot hold them, and the writer never writes them). Then the checks that
span fields: one scaler mean, scaler std and ridge coefficient per feature column, and as many
LightGBM inputs (the booster file itself is checked against ``lightgbm`` by models.boosted), ``lstm`` the
network of ``config.model`` with one input per column and, pooled, per instrument (the one-hot of
models.pooling), the feature spec its fingerprint, ``instruments`` those of ``config.data.bar_types``
(distinct, one timeframe), each instrument's row ranges in order, bar types and times parseable.

Every error is an :class:`ArtifactError` (a ValueError: the command line exits 2 with one line)
naming the file and the field as a JSON path, e.g. ``scaler.std[3]`` or ``lstm.hidden_size``.

Informational fields, recorded for people and read by no code: ``metrics`` and ``versions``.
Their content is not checked, and an artifact without them loads.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import msgspec
import pandas as pd
from msgspec import Meta
from nautilus_trader.model.data import BarType

from models.config import TrainConfig
from models.features import FEATURES_VERSION, FeatureSpec
from models.network import ARCHITECTURES, RETURN_TARGETS, LSTMConfig
from models.pooling import check_bar_types, input_width

# Bump when old artifacts can no longer be read; they are then refused with "retrain it".
# 2: the volatility head and return targets; 3: instruments (pooled models, models.pooling);
# 4: the hybrids (lstm.architecture, attention_window, conv_kernel, conv_channels);
# 5: the LightGBM benchmark (lightgbm, its text model file: models.boosted).
FORMAT_VERSION = 5
INFORMATIONAL = ("metrics", "versions")
LIGHTGBM_FILE = "lightgbm.txt"  # the LightGBM benchmark's text model, beside the manifest (models.boosted)
S = TypeVar("S", bound=msgspec.Struct)


class ArtifactError(ValueError):
    """An artifact that is missing, malformed, or does not fit what it is used for."""


PositiveInt = Annotated[int, Meta(ge=1)]
NonNegativeInt = Annotated[int, Meta(ge=0)]
PositiveFloat = Annotated[float, Meta(gt=0)]
NonNegativeFloat = Annotated[float, Meta(ge=0)]
OpenUnitInterval = Annotated[float, Meta(gt=0, lt=1)]
Window = Annotated[int, Meta(ge=2)]  # a standard deviation needs two values
RowRange = Annotated[list[NonNegativeInt], Meta(min_length=2, max_length=2)]  # [start, stop)


class Section(msgspec.Struct, forbid_unknown_fields=True):
    """Every field required and none unknown: a dropped key or a typo is an error, not a default."""


class DataSection(Section):  # config.data: models.config.DataConfig
    catalog: str  # absolute when written by this code (see models.artifact)
    bar_types: Annotated[list[str], Meta(min_length=1)]  # one, or several pooled
    start: str  # "" or a date/time, UTC
    end: str
    holdout_days: NonNegativeFloat
    cross_asset: bool


class ModelSection(Section):  # config.model: models.network.LSTMConfig without what training sets
    hidden_size: PositiveInt
    num_layers: PositiveInt
    dropout: Annotated[float, Meta(ge=0, lt=1)]
    quantiles: list[OpenUnitInterval]
    burn_in: NonNegativeInt
    return_target: Literal[RETURN_TARGETS]
    volatility_head: bool
    architecture: Literal[ARCHITECTURES]
    attention_window: PositiveInt
    conv_kernel: PositiveInt
    conv_channels: PositiveInt


class TrainingSection(Section):  # config.training: models.config.TrainingConfig
    horizon: PositiveInt
    sequence_length: PositiveInt
    batch_size: PositiveInt
    learning_rate: PositiveFloat
    weight_decay: NonNegativeFloat
    max_epochs: PositiveInt
    patience: PositiveInt
    val_fraction: OpenUnitInterval
    seed: int
    device: Literal["auto", "cpu", "cuda"]
    search_trials: NonNegativeInt


class EvaluationSection(Section):  # config.evaluation: models.config.EvaluationConfig
    folds: PositiveInt
    first_test_fraction: OpenUnitInterval


class ConfigSection(Section):  # config: models.config.TrainConfig
    data: DataSection
    features: dict[str, Any]  # {} (the default spec) or a feature spec, which must be feature_spec
    model: ModelSection
    training: TrainingSection
    evaluation: EvaluationSection


class LSTMSection(ModelSection):  # lstm: the network's whole config, config.model + what training set
    n_features: PositiveInt
    seed: int


class FeatureSpecSection(Section):  # feature_spec: models.features.FeatureSpec.to_dict()
    version: int
    return_lags: list[PositiveInt]
    volatility_windows: list[Window]
    sma_periods: list[PositiveInt]
    ema_periods: list[PositiveInt]
    rsi_periods: list[PositiveInt]
    macd: list[PositiveInt]
    volume_z_windows: list[Window]
    high_low_range: bool
    time_of_day: bool
    day_of_week: bool
    seed_weight: OpenUnitInterval


class ScalerSection(Section):  # scaler: models.dataset.Scaler
    mean: list[float]
    std: list[PositiveFloat]


class DataFingerprint(Section):  # instruments[].data: models.artifact.data_fingerprint and the rows training used
    instrument_id: str
    bar_type: str
    bars: PositiveInt
    first_bar_close: str  # ISO date/time with its UTC offset
    last_bar_close: str
    sha256: Annotated[str, Meta(pattern="^[0-9a-f]{64}$")]
    fit_rows: RowRange
    val_rows: RowRange
    first_row_close: str


class TargetScalesSection(Section):  # target_scales: models.heads.TargetScales
    return_scale: PositiveFloat  # the return target's std on the fitting rows
    volatility_mean: float  # the log volatility target's mean and std there
    volatility_std: PositiveFloat


class InstrumentSection(Section):  # instruments[]: models.artifact.InstrumentFit
    data: DataFingerprint
    scaler: ScalerSection
    target_scales: TargetScalesSection


class RidgeSection(Section):  # ridge: models.baselines.RidgeForecast fitted on the same rows
    coef: list[float]
    intercept: float
    alpha: PositiveFloat


class LightGBMSection(Section):  # lightgbm: models.baselines.LightGBMForecast fitted on the same rows (models.boosted)
    model_file: Literal[LIGHTGBM_FILE]
    sha256: Annotated[str, Meta(pattern="^[0-9a-f]{64}$")]  # of that file
    num_feature: PositiveInt  # the booster's inputs: one per feature column, as the ridge's
    objective: Literal["regression"]
    num_trees: PositiveInt


class Manifest(Section):
    format_version: int
    config: ConfigSection
    lstm: LSTMSection
    feature_spec: FeatureSpecSection
    feature_fingerprint: Annotated[str, Meta(pattern="^[0-9a-f]{16}$")]
    instruments: Annotated[list[InstrumentSection], Meta(min_length=1)]  # in config.data.bar_types order
    ridge: RidgeSection
    lightgbm: LightGBMSection
    metrics: dict[str, Any] = {}  # informational
    versions: dict[str, Any] = {}  # informational

    def to_train_config(self) -> TrainConfig:
        return TrainConfig.from_dict(msgspec.to_builtins(self.config))

    def to_lstm_config(self) -> LSTMConfig:
        return LSTMConfig.from_dict(msgspec.to_builtins(self.lstm))

    def to_feature_spec(self) -> FeatureSpec:
        return FeatureSpec.from_dict(msgspec.to_builtins(self.feature_spec))


def read_manifest(path: Path) -> Manifest:
    """The manifest at ``path``, checked against the schema; an ArtifactError naming the field if not."""
    try:
        # Python's reader, not msgspec's: it reads a bare NaN, so the error can name its field.
        raw = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ArtifactError(f"{path}: not a JSON object")
    found = raw.get("format_version", FORMAT_VERSION)
    if type(found) is not int or found != FORMAT_VERSION:
        raise ArtifactError(f"{path}: format_version is {found!r}, this code reads version {FORMAT_VERSION}; retrain it")
    try:
        _reject_non_finite({k: v for k, v in raw.items() if k not in INFORMATIONAL})
        manifest = _convert(raw, Manifest)
        _check_data(manifest)  # first: the instruments decide how many inputs the network has
        _check_features(manifest)
        _check_network(manifest)
    except ValueError as exc:
        raise ArtifactError(f"{path}: {exc}") from None
    return manifest


def _reject_non_finite(value: Any, where: str = "") -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: {value} is not a finite number")
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        _reject_non_finite(item, f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key}".lstrip("."))


_AT = re.compile(r"(?P<reason>.*) - at `\$(?P<path>[^`]*)`")
_FIELD = re.compile(r"Object (?P<what>missing required|contains unknown) field `(?P<name>[^`]*)`")


def _convert(raw: Any, schema: type[S], within: str = "") -> S:
    """``raw`` as ``schema``; a mismatch is a ValueError naming the field (``within`` is where ``raw``
    sits), e.g. msgspec's "Expected `int` >= 1 - at `$.lstm.hidden_size`" as
    "lstm.hidden_size: expected `int` >= 1, got 0"."""
    try:
        return msgspec.convert(raw, schema)
    except msgspec.ValidationError as exc:
        at = _AT.fullmatch(str(exc))
        reason, where = (at["reason"], at["path"]) if at else (str(exc), "")
        field = _FIELD.fullmatch(reason)
        if field:
            where += f".{field['name']}"
            reason = "missing" if field["what"] == "missing required" else "not a field of an artifact"
        elif ", got " not in reason:  # a range or a length: say what was there
            reason += f", got {_value_at(raw, where)!r}"
        raise ValueError(f"{(within + where).lstrip('.')}: {reason[:1].lower()}{reason[1:]}") from None


def _value_at(raw: Any, where: str) -> Any:
    for name, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", where):
        raw = raw[int(index)] if index else raw[name]
    return raw


# What the types alone cannot say; each raises a ValueError naming the field(s).


def _check_features(manifest: Manifest) -> None:
    """The feature spec is this code's, its fingerprint and config.features agree with it, and every
    per-feature list has one entry per column."""
    spec = _feature_spec(manifest.feature_spec, "feature_spec")
    if spec.fingerprint() != manifest.feature_fingerprint:
        raise ValueError(
            f"feature_spec hashes to {spec.fingerprint()}, not to feature_fingerprint {manifest.feature_fingerprint}: "
            "one was edited, or another feature definition computed them; retrain it"
        )
    if manifest.config.features:  # {} is the default spec of the day; anything else must be feature_spec
        configured = _feature_spec(_convert(manifest.config.features, FeatureSpecSection, "config.features"), "config.features")
        _built("config.features (vs feature_spec)", lambda: configured.check_same(spec))
    count = len(manifest.instruments)
    cross = count - 1 if manifest.config.data.cross_asset else 0
    columns = len(spec.columns) + cross
    if manifest.lstm.n_features != input_width(columns, count):
        raise ValueError(f"lstm.n_features: {manifest.lstm.n_features} inputs, but feature_spec computes {len(spec.columns)} columns"
                         + (f", config.data.cross_asset adds {cross}" if cross else "")
                         + (f" and {count} instruments add a one-hot of {count}" if count > 1 else ""))
    # The benchmarks see each instrument's own features only.
    lengths = [("ridge.coef", len(manifest.ridge.coef), len(spec.columns)), ("lightgbm.num_feature", manifest.lightgbm.num_feature, len(spec.columns))]
    for number, instrument in enumerate(manifest.instruments):
        lengths += [(f"instruments[{number}].scaler.{name}", len(getattr(instrument.scaler, name)), columns) for name in ("mean", "std")]
    for where, length, expected in lengths:
        if length != expected:
            raise ValueError(f"{where}: {length} features, but feature_spec computes {len(spec.columns)} columns"
                             + (f" and config.data.cross_asset adds {cross}" if cross and expected == columns else ""))


def _check_network(manifest: Manifest) -> None:
    """lstm is the network config.model describes, with the seed of config.training; the config is whole."""
    model, lstm = manifest.config.model, manifest.lstm
    expected = {**msgspec.to_builtins(model), "seed": manifest.config.training.seed}
    for name, value in expected.items():
        if getattr(lstm, name) != value:
            source = "config.training.seed" if name == "seed" else f"config.model.{name}"
            raise ValueError(f"lstm.{name} is {getattr(lstm, name)!r}, but {source} is {value!r}")
    _built("lstm", manifest.to_lstm_config)
    if manifest.config.training.sequence_length <= model.burn_in:
        raise ValueError(
            f"config.training.sequence_length ({manifest.config.training.sequence_length}) must exceed "
            f"config.model.burn_in ({model.burn_in})"
        )
    manifest.to_train_config()  # its own checks; its errors name the section


def _check_data(manifest: Manifest) -> None:
    """Bar types and times parse and agree, and each instrument's fitting rows precede its validation rows."""
    configured = manifest.config.data.bar_types
    trained = [instrument.data.bar_type for instrument in manifest.instruments]
    check_bar_types(configured, "config.data.bar_types")
    if configured != trained:
        raise ValueError(f"config.data.bar_types is {configured!r}, but instruments[].data.bar_type are {trained!r}")
    for name in ("start", "end"):
        if getattr(manifest.config.data, name):
            _time(f"config.data.{name}", getattr(manifest.config.data, name), aware=False)
    for number, instrument in enumerate(manifest.instruments):
        data, where = instrument.data, f"instruments[{number}].data"
        bar_type = BarType.from_str(data.bar_type)
        if str(bar_type.instrument_id) != data.instrument_id:
            raise ValueError(f"{where}.instrument_id is {data.instrument_id!r}, but {where}.bar_type's instrument is {bar_type.instrument_id}")
        for name in ("first_bar_close", "last_bar_close", "first_row_close"):
            _time(f"{where}.{name}", getattr(data, name), aware=True)
        (fit_start, fit_stop), (val_start, val_stop) = data.fit_rows, data.val_rows
        if not fit_start < fit_stop <= val_start < val_stop <= data.bars:
            raise ValueError(
                f"{where}.fit_rows {data.fit_rows} and {where}.val_rows {data.val_rows} must be non-empty, in that order, "
                f"within {where}.bars ({data.bars})"
            )


def _feature_spec(section: FeatureSpecSection, where: str) -> FeatureSpec:
    if section.version != FEATURES_VERSION:
        raise ValueError(f"{where}.version is {section.version}: this code computes features of version {FEATURES_VERSION}; retrain it")
    return _built(where, lambda: FeatureSpec.from_dict(msgspec.to_builtins(section)))


def _built(where: str, build):
    """``build()``, its ValueError prefixed with the field it is about."""
    try:
        return build()
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _time(where: str, text: str, aware: bool) -> None:
    """A date/time the code will parse: with its UTC offset (``aware``), or read as UTC (config dates)."""
    try:
        parsed = pd.Timestamp(text) if aware else pd.Timestamp(text, tz="UTC")
    except ValueError:
        parsed = None
    if parsed is None or pd.isna(parsed) or (aware and parsed.tz is None):
        raise ValueError(f"{where}: {text!r} is not an ISO date/time{' with its UTC offset' if aware else ''}")
