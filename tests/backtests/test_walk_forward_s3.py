"""A walk-forward backtest whose Ray workers read the catalog from object storage (an s3:// URL, moto on
loopback): the same report as one by one from the local copy, and the credentials in no log or file."""

import logging
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from backtests.parallel import Workers, ray_session
from backtests.runner import BacktestSettings
from backtests.walk_forward import run_walk_forward
from marketdata.catalog import load_bars
from models.artifact import load_artifact
from scripts.cli import main
from tests.backtests.test_walk_forward_parallel import assert_same_report
from tests.fakes.s3_store import BUCKET, SECRET, s3_catalog_store
from tests.fakes.training import BAR_TYPE, train_walk_base

TRAIN_DAYS, TEST_DAYS, WINDOWS = 1, 0.5, 2


@pytest.fixture(scope="module")
def store(catalog):
    with pytest.MonkeyPatch.context() as monkeypatch, s3_catalog_store(catalog, monkeypatch) as store:
        yield store


@pytest.fixture(scope="module")
def local_walk(catalog, tmp_path_factory):
    # The one-by-one walk trains on one torch thread (tests/conftest.py), as each Ray worker does
    """The walk from the local catalog, one by one: its settings and report folder."""
    base = train_walk_base(catalog, tmp_path_factory.mktemp("base") / "model")
    end = load_bars(catalog, BAR_TYPE).index[0] + pd.Timedelta(days=TRAIN_DAYS + WINDOWS * TEST_DAYS, minutes=-1)
    settings = BacktestSettings(model_path=base, catalog=catalog, bar_type=BAR_TYPE, end=end, strategy={"entry_threshold": 1e-5})
    out = tmp_path_factory.mktemp("local-walk")
    run_walk_forward(settings, TRAIN_DAYS, TEST_DAYS, out)
    return settings, out


@pytest.mark.slow
def test_two_workers_reading_the_url_give_the_local_report(store, local_walk, tmp_path, caplog, capfd, monkeypatch):
    caplog.set_level(logging.DEBUG)
    ray_dir = Path(tempfile.mkdtemp(prefix="rays3-", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    monkeypatch.setenv("RAY_TMPDIR", str(ray_dir))  # this run's Ray logs, to search for the secret
    try:
        settings, local = local_walk
        run_walk_forward(replace(settings, catalog=store.url), TRAIN_DAYS, TEST_DAYS, tmp_path, Workers(count=2))
        assert_same_report(tmp_path, local, windows=WINDOWS)
        models = [load_artifact(path.parent) for path in (tmp_path / "windows").rglob("artifact.json")]
        assert len(models) == WINDOWS and {m.config.data.catalog for m in models} == {store.url}  # the URL read, not a local path
        printed = capfd.readouterr()
        assert SECRET not in caplog.text + printed.out + printed.err
        written = [p for folder in (tmp_path, ray_dir) for p in folder.rglob("*") if p.is_file()]
        assert any("worker" in p.name for p in written)  # Ray's worker logs are among the files searched
        assert not [p for p in written if SECRET.encode() in p.read_bytes()]
    finally:
        shutil.rmtree(ray_dir, ignore_errors=True)


def test_the_command_names_a_url_without_a_catalog(store, local_walk, tmp_path, caplog):
    settings, _ = local_walk
    url = f"s3://{BUCKET}/nowhere"
    assert main(["backtest", "--model", str(settings.model_path), "--catalog", url, "--walk-forward",
                 "--workers", "2", "--out", str(tmp_path)]) == 2
    assert f"no catalog at {url}" in caplog.text and SECRET not in caplog.text


def test_a_sweep_reads_its_range_from_the_url(store, catalog):
    """A sweep's [data] catalog may be the URL: the range it searches is read from there, the same as locally."""
    from sweeps.trial import sweep_range

    assert sweep_range(store.url, BAR_TYPE, "", "2025-05-23T00:00") == sweep_range(str(catalog), BAR_TYPE, "", "2025-05-23T00:00")


@pytest.mark.slow
def test_a_sweep_from_the_url_gives_the_local_sweep(store, catalog, tmp_path, caplog):
    """The whole sweep (its trial, the locked segment, the report) with [data] catalog the URL, in this
    process: the same trial, objective and locked result as from the local folder, and the secret nowhere
    (Ray workers reading the URL: the walk-forward test above)."""
    from sweeps.config import load_sweep_config
    from sweeps.driver import run_sweep
    from tests.fakes.sweep_runs import write_tiny_sweep

    caplog.set_level(logging.DEBUG)
    reports = {}
    with ray_session(Workers(count=1)):  # one Ray and one worker for both sweeps: each would start its own
        for name, location in (("local", catalog), ("url", store.url)):
            folder = tmp_path / name
            folder.mkdir()
            reports[name] = run_sweep(load_sweep_config(write_tiny_sweep(folder, location, trials=1)), folder, Workers(count=1))
    local, remote = reports["local"], reports["url"]
    assert [t["state"] for t in remote["trials"]] == ["complete"]
    assert [(t["params"], t["objective"]) for t in remote["trials"]] == [(t["params"], t["objective"]) for t in local["trials"]]
    assert remote["locked_segment"]["objective"] == local["locked_segment"]["objective"]
    models = [load_artifact(path.parent) for path in (tmp_path / "url").rglob("artifact.json")]
    assert models and {m.config.data.catalog for m in models} == {store.url}
    written = [p for p in (tmp_path / "url").rglob("*") if p.is_file()]
    assert SECRET not in caplog.text and not [p for p in written if SECRET.encode() in p.read_bytes()]
