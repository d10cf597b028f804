"""The artifact's LightGBM benchmark on disk: LightGBM's own text model, pinned by the manifest.

The booster (models.baselines.LightGBMForecast, fitted by ``train`` on the rows and features the
ridge benchmark gets) is written as LightGBM's text model file ``lightgbm.txt``, never a pickle:
loading it parses numbers and trees, nothing that can run code. The manifest's ``lightgbm``
section (models.artifact_schema.LightGBMSection) records the file's SHA-256 and what the booster
must be; on load the file must hash to it, parse, and be that booster: ``num_feature`` inputs
(one per feature column, checked against the feature spec by the schema), ``objective`` and
``num_trees``. Any mismatch is an ArtifactError naming the file and the field.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import lightgbm

from models.artifact_schema import LIGHTGBM_FILE, ArtifactError, LightGBMSection


def write_booster(booster: lightgbm.Booster, directory: Path) -> dict:
    """Write ``booster`` as ``directory/lightgbm.txt``; its manifest section."""
    text = booster.model_to_string().encode()
    (Path(directory) / LIGHTGBM_FILE).write_bytes(text)
    return {
        "model_file": LIGHTGBM_FILE,
        "sha256": hashlib.sha256(text).hexdigest(),
        "num_feature": booster.num_feature(),
        "objective": booster.params["objective"],
        "num_trees": booster.num_trees(),
    }


def read_booster(directory: Path, section: LightGBMSection) -> lightgbm.Booster:
    """The booster of ``directory``'s text model file, checked against the manifest's ``section``."""
    path = Path(directory) / section.model_file
    if not path.is_file():
        raise ArtifactError(f"{path}: missing; the manifest's lightgbm section names it (retrain the model)")
    text = path.read_bytes()
    digest = hashlib.sha256(text).hexdigest()
    if digest != section.sha256:
        raise ArtifactError(f"{path}: hashes to {digest}, not to lightgbm.sha256 {section.sha256}: it was changed or replaced")
    try:
        booster = lightgbm.Booster(model_str=text.decode())
    except (lightgbm.basic.LightGBMError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: not a LightGBM text model ({exc})") from None
    found = {"num_feature": booster.num_feature(), "objective": booster.params.get("objective"), "num_trees": booster.num_trees()}
    for name, value in found.items():
        if value != getattr(section, name):
            raise ArtifactError(f"{path}: the booster's {name} is {value!r}, but lightgbm.{name} is {getattr(section, name)!r}")
    return booster
