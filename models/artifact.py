"""A trained model on disk: everything needed to predict exactly as in training.

An artifact is a directory:

- ``weights.pt``: the network's state dict, loaded with ``torch.load(weights_only=True)`` so a
  tampered file cannot run code; its tensors must be exactly those of the manifest's ``lstm``
  config, and finite;
- ``artifact.json``: format version, the full training config, the LSTM config, the feature spec
  and its fingerprint, per instrument (one, or several pooled: models.pooling) its data
  fingerprint and its fitted scaler and target scales, metrics, the ridge baseline fitted on the
  same rows (a benchmark for backtests), the LightGBM benchmark's file hash and shape, and the
  library versions. Its schema, checked field by field on every load, is :mod:`models.artifact_schema`;
- ``lightgbm.txt``: the LightGBM benchmark fitted on the same rows, as LightGBM's text model
  (never a pickle), checked against the manifest on load (:mod:`models.boosted`).

Paths: ``config.data.catalog`` is stored absolute (a relative one is resolved against the
directory ``train`` ran in), so ``evaluate`` and ``backtest`` find the training data from any
working directory. Artifacts written before this rule may hold a relative path, still read
relative to the working directory, as then.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import lightgbm
import msgspec
import numpy as np
import pandas as pd
import torch

from models.artifact_schema import FORMAT_VERSION, ArtifactError, read_manifest
from models.boosted import read_booster, write_booster
from models.config import TrainConfig
from models.dataset import Scaler
from models.features import FeatureSpec
from models.heads import TargetScales
from models.jsonio import dumps
from models.network import LSTMConfig, LSTMForecaster
from models.pooling import Scaling, one_hot

WEIGHTS = "weights.pt"
MANIFEST = "artifact.json"


@dataclass
class InstrumentFit:
    """One instrument of an artifact: what it was trained on, and its own scaling (models.pooling)."""

    data: dict  # data_fingerprint and the rows training used: fit_rows, val_rows, first_row_close
    scaler: Scaler
    scales: TargetScales  # the targets' scales on its fitting rows (models.heads)

    @property
    def bar_type(self) -> str:
        return self.data["bar_type"]


@dataclass
class Artifact:
    config: TrainConfig
    lstm: LSTMConfig
    feature_spec: FeatureSpec
    instruments: list[InstrumentFit]  # one, or several pooled, in config.data.bar_types order
    metrics: dict
    model: LSTMForecaster
    ridge: dict  # the ridge baseline fitted on the same rows and features: coef, intercept, alpha
    lightgbm: lightgbm.Booster  # the LightGBM baseline fitted on the same rows and features

    @property
    def bar_types(self) -> list[str]:
        return [instrument.bar_type for instrument in self.instruments]

    def instrument(self, bar_type: str | None = None) -> InstrumentFit:
        """The instrument of ``bar_type`` (None: the only one); an error naming the artifact's bar types if not one of them."""
        if bar_type is None and len(self.instruments) == 1:
            return self.instruments[0]
        if str(bar_type) not in self.bar_types:
            which = "say which bar type" if bar_type is None else f"not {bar_type}"
            raise ArtifactError(f"the model was trained on {', '.join(self.bar_types)} bars: {which}")
        return self.instruments[self.bar_types.index(str(bar_type))]

    def scaling(self, bar_type: str | None = None) -> Scaling:
        """The scaler, target scales and instrument one-hot that the instrument of ``bar_type`` is fed with."""
        instrument = self.instrument(bar_type)
        return Scaling(instrument.scaler, instrument.scales, one_hot(self.instruments.index(instrument), len(self.instruments)))

    # The only instrument's, for what handles one instrument (an error for a pooled artifact).
    @property
    def bar_type(self) -> str:
        return self.instrument().bar_type

    @property
    def data(self) -> dict:
        return self.instrument().data

    @property
    def scaler(self) -> Scaler:
        return self.instrument().scaler

    @property
    def scales(self) -> TargetScales:
        return self.instrument().scales


def data_fingerprint(bars: pd.DataFrame, instrument_id: str, bar_type: str) -> dict:
    """What the model was trained on: instrument, bar type, first and last bar, content hash."""
    values = np.ascontiguousarray(bars[["open", "high", "low", "close", "volume"]].to_numpy(dtype=np.float64))
    digest = hashlib.sha256(bars.index.asi8.tobytes() + values.tobytes()).hexdigest()
    return {
        "instrument_id": instrument_id,
        "bar_type": bar_type,
        "bars": len(bars),
        "first_bar_close": bars.index[0].isoformat(),
        "last_bar_close": bars.index[-1].isoformat(),
        "sha256": digest,
    }


def library_versions() -> dict:
    names = ["nautilus_trader", "torch", "numpy", "pandas", "ccxt", "lightgbm"]
    return {"python": platform.python_version(), **{name: version(name) for name in names}}


def save_artifact(path: Path, artifact: Artifact) -> None:
    """Write to a sibling temp directory, then rename: a crash never leaves half an artifact."""
    path = Path(path)
    staging = path.with_name(f".{path.name}.partial")
    staging.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in artifact.model.state_dict().items()}, staging / WEIGHTS)
    manifest = {
        "format_version": FORMAT_VERSION,
        "config": artifact.config.with_absolute_paths().to_dict(),
        "lstm": artifact.lstm.to_dict(),
        "feature_spec": artifact.feature_spec.to_dict(),
        "feature_fingerprint": artifact.feature_spec.fingerprint(),
        "instruments": [
            {"data": i.data, "scaler": i.scaler.to_dict(), "target_scales": i.scales.to_dict()} for i in artifact.instruments
        ],
        "metrics": artifact.metrics,
        "ridge": artifact.ridge,
        "lightgbm": write_booster(artifact.lightgbm, staging),
        "versions": library_versions(),
    }
    (staging / MANIFEST).write_text(dumps(manifest))
    if path.exists():
        old = path.with_name(f".{path.name}.old")
        os.replace(path, old)
        os.replace(staging, path)
        shutil.rmtree(old)
    else:
        os.replace(staging, path)


def load_artifact(
    path: Path, bar_type: str | None = None, feature_spec: FeatureSpec | None = None, device: str = "cpu"
) -> Artifact:
    """Load and check an artifact; a mismatch with what the caller expects is an error, not a warning."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file() or not (path / WEIGHTS).is_file():
        raise ArtifactError(f"{path} is not a model artifact (no {MANIFEST} and {WEIGHTS}); train one with `nautilus-lstm train`")
    manifest = read_manifest(manifest_path)
    spec = manifest.to_feature_spec()
    if feature_spec is not None and feature_spec.fingerprint() != spec.fingerprint():
        raise ArtifactError(f"{path}: trained on feature spec {spec.to_dict()}, not {feature_spec.to_dict()}")
    instruments = [
        InstrumentFit(msgspec.to_builtins(i.data), Scaler.from_dict(msgspec.to_builtins(i.scaler)),
                      TargetScales.from_dict(msgspec.to_builtins(i.target_scales)))
        for i in manifest.instruments
    ]
    trained = [i.bar_type for i in instruments]
    if bar_type is not None and str(bar_type) not in trained:
        raise ArtifactError(f"{path}: trained on {', '.join(trained)} bars, not {bar_type}")
    lstm = manifest.to_lstm_config()
    return Artifact(
        config=manifest.to_train_config(),
        lstm=lstm,
        feature_spec=spec,
        instruments=instruments,
        metrics=manifest.metrics,
        model=_load_weights(path / WEIGHTS, lstm, device),
        ridge=msgspec.to_builtins(manifest.ridge),
        lightgbm=read_booster(path, manifest.lightgbm),
    )


def _load_weights(path: Path, lstm: LSTMConfig, device: str = "cpu") -> LSTMForecaster:
    """The network ``lstm`` describes, with the weights at ``path``: exactly its tensors, all finite."""
    try:
        weights = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # weights_only refuses anything but tensors and plain containers
        raise ArtifactError(f"{path}: not loadable as plain weights ({type(exc).__name__}); refusing it") from None
    if not isinstance(weights, dict) or not all(isinstance(t, torch.Tensor) for t in weights.values()):
        raise ArtifactError(f"{path}: not a state dict of tensors")
    with torch.device("meta"):  # the shapes the config needs, without allocating them: it may say anything
        needed = {name: tuple(t.shape) for name, t in LSTMForecaster(lstm).state_dict().items()}
    for name in [*needed, *sorted(weights.keys() - needed.keys())]:
        found = tuple(weights[name].shape) if name in weights else None
        if found != needed.get(name):
            raise ArtifactError(
                f"{path}: tensor {name} has shape {found}, but the lstm config of {MANIFEST} needs {needed.get(name)}; "
                "these weights belong to another model"
            )
    for name, tensor in weights.items():
        if not torch.isfinite(tensor).all():
            raise ArtifactError(f"{path}: tensor {name} holds NaN or infinity")
    model = LSTMForecaster(lstm)
    model.load_state_dict(weights)
    model.eval()
    return model


def artifact_digest(path: Path) -> str:
    """SHA-256 of the artifact's manifest and weights: which model exactly (for saved strategy state;
    the manifest pins the LightGBM file by its hash)."""
    digest = hashlib.sha256()
    for name in (MANIFEST, WEIGHTS):
        digest.update((Path(path) / name).read_bytes())
    return digest.hexdigest()

