"""artifact.json checked field by field: every field of a real artifact, mutated every way, is
refused with one line naming the file and the field, or loads where the field allows the value."""

import hashlib
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import lightgbm
import numpy as np
import pytest
import torch

from models.artifact import MANIFEST, WEIGHTS, ArtifactError, load_artifact, save_artifact
from models.artifact_schema import INFORMATIONAL, LIGHTGBM_FILE
from models.config import TrainConfig
from models.features import default_spec
from models.train import train_model
from scripts.cli import main
from tests.fakes.training import BAR_TYPE, tiny_config

MISSING = object()  # the mutation that deletes a field

# The mutations that give a value the field allows by design: the artifact must still load.
# Every other mutation must be refused, except anywhere inside the INFORMATIONAL fields.
ALLOWED = {
    "instruments[].scaler.mean[]": {"zero", "negative"},  # a feature's mean may be any finite number
    "ridge.coef[]": {"zero", "negative"},  # so may the ridge's weights
    "ridge.intercept": {"zero", "negative"},
    "instruments[].target_scales.volatility_mean": {"zero", "negative"},  # a log volatility: any finite number
    "config.training.weight_decay": {"zero"},  # no weight decay
    **{name: {"missing"} for name in INFORMATIONAL},
}


@pytest.fixture(scope="module")
def artifact(catalog, tmp_path_factory) -> Path:
    """A tiny real artifact with quantiles and an explicit [features] section, so that every
    kind of field has a value to mutate."""
    raw = tiny_config(catalog, max_epochs=1).to_dict()
    raw["features"] = default_spec().to_dict()
    raw["model"]["quantiles"] = [0.1, 0.5, 0.9]
    out = tmp_path_factory.mktemp("schema") / "model"
    train_model(TrainConfig.from_dict(raw), out)
    return out


def fields(value, path=()):
    """(path, value) of every object member and list element, depth first; a path is a tuple of keys and indices."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        yield (*path, key), item
        yield from fields(item, (*path, key))


def json_path(path) -> str:
    return "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in path).lstrip(".")


def mutations(path, value):
    """(name, mutated value) of the field at ``path``; MISSING deletes it."""
    yield "wrong type", 7 if isinstance(value, str) else "yes" if isinstance(value, bool) else "abc"
    if not isinstance(path[-1], int):  # a list element is never missing, its list has the wrong length
        yield "missing", MISSING
    yield "nan", math.nan
    yield "zero", 0
    yield "negative", -abs(value) if type(value) in (int, float) and value else -1
    if isinstance(value, list):
        yield "longer", [*value, value[-1] if value else 0.5]
        if value:
            yield "shorter", value[:-1]


def mutated(manifest: dict, path, new) -> dict:
    copy = json.loads(json.dumps(manifest))
    parent = copy
    for key in path[:-1]:
        parent = parent[key]
    if new is MISSING:
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return copy


def allowed(path, name: str) -> bool:
    if path[0] in INFORMATIONAL and len(path) > 1:
        return True
    return name in ALLOWED.get(re.sub(r"\[\d+\]", "[]", json_path(path)), set())


def named(message: str, path) -> bool:
    """The message names the field: its JSON path, or (a check on a whole list or object, such
    as the feature spec's fingerprint) the list or object holding it."""
    holder = list(path[:-1])
    while holder and isinstance(holder[-1], int):
        holder.pop()
    return json_path(path) in message or bool(holder) and json_path(holder) in message


def test_every_field_mutated_every_way_is_refused_naming_it(artifact, catalog, tmp_path, caplog):
    manifest = json.loads((artifact / MANIFEST).read_text())
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in (WEIGHTS, LIGHTGBM_FILE):
        (copy / name).write_bytes((artifact / name).read_bytes())
    refused, loaded, wrong = 0, 0, []
    for path, value in fields(manifest):
        for name, new in mutations(path, value):
            if new is not MISSING and new == value and isinstance(new, bool) == isinstance(value, bool):
                continue  # no change (a zero that is zero already)
            # Written as any tool might write it: a NaN as the bare NaN strict JSON lacks.
            (copy / MANIFEST).write_text(json.dumps(mutated(manifest, path, new)))
            case = f"{json_path(path)} {name}"
            if allowed(path, name):
                load_artifact(copy)
                loaded += 1
                continue
            caplog.clear()
            code = main(["backtest", "--model", str(copy), "--catalog", str(catalog), "--out", str(tmp_path / "report")])
            message = "\n".join(r.getMessage() for r in caplog.records if r.levelname == "ERROR")
            if code != 2 or not message.startswith(f"{copy / MANIFEST}: ") or "\n" in message or not named(message, path):
                wrong.append(f"{case}: exit {code}, {message}")
            refused += 1
    assert not wrong, "\n".join(wrong)
    assert refused > 700 and loaded > 100  # a real walk, not an empty one
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize("change, message", [
    (lambda m: m["lstm"].update(hidden_size="abc"), "lstm.hidden_size: expected `int`, got `str`"),
    (lambda m: m["instruments"][0]["target_scales"].update(return_scale="NaN"),
     "instruments[0].target_scales.return_scale: expected `float`, got `str`"),
    (lambda m: m["instruments"][0]["target_scales"].update(volatility_std=0),
     "instruments[0].target_scales.volatility_std: expected `float` > 0.0, got 0"),
    (lambda m: m["lstm"].update(return_target="price") or m["config"]["model"].update(return_target="price"),
     "config.model.return_target: invalid enum value 'price'"),
    (lambda m: m["instruments"][0]["scaler"]["std"].__setitem__(3, -1.0), "instruments[0].scaler.std[3]: expected `float` > 0.0"),
    (lambda m: m["instruments"][0]["scaler"]["mean"].__setitem__(3, math.inf), "instruments[0].scaler.mean[3]: inf is not a finite number"),
    (lambda m: m.pop("ridge"), "ridge: missing"),
    (lambda m: m["lstm"].update(hidden_size=32), "lstm.hidden_size is 32, but config.model.hidden_size is 16"),
    (lambda m: m["lstm"].update(typo=1), "lstm.typo: not a field of an artifact"),
    (lambda m: m["instruments"][0]["data"].update(last_bar_close="yesterday"),
     "instruments[0].data.last_bar_close: 'yesterday' is not an ISO date/time"),
    (lambda m: m["instruments"][0]["data"].update(instrument_id="ETHUSDT.BINANCE"), "instruments[0].data.instrument_id is 'ETHUSDT.BINANCE', but"),
    (lambda m: m["instruments"].append(m["instruments"][0]) or m["config"]["data"]["bar_types"].append(m["config"]["data"]["bar_types"][0]),
     f"config.data.bar_types: {[BAR_TYPE, BAR_TYPE]} name an instrument twice"),
    (lambda m: m["lstm"].update(quantiles=[0.1, 0.9]) or m["config"]["model"].update(quantiles=[0.1, 0.9]),
     "lstm: quantiles must include 0.5"),
    (lambda m: m.update(format_version=4), "format_version is 4, this code reads version 5; retrain it"),
    (lambda m: m.pop("lightgbm"), "lightgbm: missing"),
    (lambda m: m["lightgbm"].update(num_feature=7), "lightgbm.num_feature: 7 features, but feature_spec computes"),
    (lambda m: m["lightgbm"].update(objective="huber"), "lightgbm.objective: invalid enum value 'huber'"),
    (lambda m: m["lightgbm"].update(model_file="model.pkl"), "lightgbm.model_file: invalid enum value 'model.pkl'"),
])
def test_the_reported_cases_say_what_and_where(artifact, tmp_path, change, message):
    copy = tmp_path / "copy"
    save_artifact(copy, load_artifact(artifact))
    manifest = json.loads((copy / MANIFEST).read_text())
    change(manifest)
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError) as error:
        load_artifact(copy)
    assert str(error.value).startswith(f"{copy / MANIFEST}: ") and message in str(error.value)


def test_an_artifact_from_before_absolute_catalogs_still_loads(artifact, tmp_path):
    copy = tmp_path / "copy"
    save_artifact(copy, load_artifact(artifact))
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["config"]["data"]["catalog"] = "data/catalog"  # as train wrote it then: relative to where it ran
    (copy / MANIFEST).write_text(json.dumps(manifest))
    assert load_artifact(copy).config.data.catalog == "data/catalog"


def test_weights_that_do_not_fit_the_config_are_named(artifact, tmp_path):
    copy = tmp_path / "copy"
    save_artifact(copy, load_artifact(artifact))
    manifest = json.loads((copy / MANIFEST).read_text())
    for section in (manifest["lstm"], manifest["config"]["model"]):
        section["hidden_size"] = 32  # consistent, so only the weights can tell
    (copy / MANIFEST).write_text(json.dumps(manifest))
    columns = len(default_spec().columns)
    with pytest.raises(ArtifactError, match=rf"weights.pt: tensor lstm.weight_ih_l0 has shape \(64, {columns}\), but the "
                                            rf"lstm config of artifact.json needs \(128, {columns}\)"):
        load_artifact(copy)

    save_artifact(copy, load_artifact(artifact))
    weights = torch.load(copy / WEIGHTS, weights_only=True)
    weights["head.bias"][0] = math.nan
    torch.save(weights, copy / WEIGHTS)
    with pytest.raises(ArtifactError, match=re.escape(f"{copy / WEIGHTS}: tensor head.bias holds NaN or infinity")):
        load_artifact(copy)
    torch.save({**weights, "extra": torch.zeros(1)}, copy / WEIGHTS)
    with pytest.raises(ArtifactError, match="tensor extra has shape"):
        load_artifact(copy)


def test_the_lightgbm_file_must_be_the_booster_the_manifest_pins(artifact, tmp_path):
    """lightgbm.txt must exist, hash to lightgbm.sha256, parse as a LightGBM text model, and be
    the booster the manifest describes; each error names the file and the field."""
    copy = tmp_path / "copy"
    save_artifact(copy, load_artifact(artifact))
    booster_file, manifest = copy / LIGHTGBM_FILE, json.loads((copy / MANIFEST).read_text())
    text = booster_file.read_text()

    def refused(content: str | None, message: str, **fields) -> None:
        if content is None:
            booster_file.unlink()
        else:
            booster_file.write_text(content)
            fields.setdefault("sha256", hashlib.sha256(content.encode()).hexdigest())
        (copy / MANIFEST).write_text(json.dumps({**manifest, "lightgbm": {**manifest["lightgbm"], **fields}}))
        with pytest.raises(ArtifactError) as error:
            load_artifact(copy)
        assert str(error.value).startswith(f"{booster_file}: ") and message in str(error.value), str(error.value)

    refused(text.replace("learning_rate: 0.05", "learning_rate: 0.5"), "not to lightgbm.sha256",
            sha256=manifest["lightgbm"]["sha256"])  # edited after training: the hash tells
    refused("not a model", "not a LightGBM text model")
    columns = manifest["lightgbm"]["num_feature"]
    rng = np.random.default_rng(0)
    for params, message in [
        ({"objective": "regression"}, f"the booster's num_feature is 3, but lightgbm.num_feature is {columns}"),
        ({"objective": "huber"}, "the booster's objective is 'huber', but lightgbm.objective is 'regression'"),
    ]:
        width = 3 if "num_feature" in message else columns
        other = lightgbm.train({**params, "verbosity": -1}, lightgbm.Dataset(rng.normal(size=(500, width)), rng.normal(size=500)), 2)
        refused(other.model_to_string(), message, num_trees=2)
    refused(text, f"the booster's num_trees is {manifest['lightgbm']['num_trees']}, but lightgbm.num_trees is 999", num_trees=999)
    refused(None, "missing")


def test_the_console_command_prints_one_line_and_no_traceback(artifact, tmp_path):
    copy = tmp_path / "copy"
    save_artifact(copy, load_artifact(artifact))
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["lstm"]["hidden_size"] = "abc"
    (copy / MANIFEST).write_text(json.dumps(manifest))
    done = subprocess.run([sys.executable, "-m", "scripts.cli", "evaluate", str(copy)], capture_output=True, text=True)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert f"{copy / MANIFEST}: lstm.hidden_size: expected `int`, got `str`" in done.stderr


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", b"PK\x03\x04 not a zip either"])
def test_a_damaged_checkpoint_is_named(catalog, tmp_path, caplog, content):
    out = tmp_path / "model"
    (out / "checkpoint").mkdir(parents=True)
    (out / "checkpoint" / "last.pt").write_bytes(content)
    args = ["train", "--catalog", str(catalog), "--bar-type", "BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL", "--out", str(out)]
    assert main(args) == 2
    assert f"{out / 'checkpoint' / 'last.pt'}: not a checkpoint this code can read" in caplog.text


def test_the_schema_mirrors_the_config_classes_field_for_field():
    """The schema re-declares the config's sections with their ranges: any field added to or
    dropped from a config class without the schema following fails here."""
    import dataclasses

    import msgspec

    from models import artifact_schema as schema
    from models.config import DataConfig, EvaluationConfig, TrainingConfig
    from models.dataset import Scaler
    from models.features import FeatureSpec
    from models.heads import TargetScales
    from models.network import LSTMConfig

    def names(cls) -> set[str]:
        return {f.name for f in (msgspec.structs.fields(cls) if issubclass(cls, msgspec.Struct) else dataclasses.fields(cls))}

    assert names(schema.DataSection) == names(DataConfig)
    assert names(schema.TrainingSection) == names(TrainingConfig)
    assert names(schema.EvaluationSection) == names(EvaluationConfig)
    assert names(schema.LSTMSection) == names(LSTMConfig)
    assert names(schema.ModelSection) == names(LSTMConfig) - {"n_features", "seed"}
    assert names(schema.ConfigSection) == names(TrainConfig)
    assert names(schema.FeatureSpecSection) == set(FeatureSpec().to_dict())
    assert names(schema.ScalerSection) == set(Scaler.from_dict({"mean": [0.0], "std": [1.0]}).to_dict())
    assert names(schema.TargetScalesSection) == names(TargetScales)
    from models.artifact import InstrumentFit
    assert names(schema.InstrumentSection) == {"data", "scaler", "target_scales"}
    assert names(InstrumentFit) == {"data", "scaler", "scales"}
