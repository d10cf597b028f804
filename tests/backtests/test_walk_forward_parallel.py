"""Walk-forward windows trained as Ray tasks: the same report as one by one, on a local Ray or a real
cluster by address, and a worker killed mid-window costs that window a retry, nothing else."""

import json
import threading
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from backtests import parallel
from backtests.parallel import Workers, map_ordered, project_packages, ray_session
from backtests.runner import BacktestSettings
from backtests.walk_forward import Window, run_walk_forward, train_window
from backtests.walk_forward_pooled import run_pooled_walk_forward
from marketdata.catalog import load_bars
from scripts.cli import main
from tests.fakes.ray_cluster import ray_cluster
from tests.fakes.training import BAR_TYPE, train_walk_base
from tests.models.test_pooling import ETH, pooled  # noqa: F401  (the module fixture: a catalog and a pooled model)

TRAIN_DAYS, TEST_DAYS, WINDOWS = 2, 1, 2
COMPARED_FILES = ["fills.csv", "positions.csv"]
TWO_WORKERS = Workers(count=2)
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@pytest.fixture(scope="module")
def setup(catalog, tmp_path_factory):
    # One-by-one runs train on one torch thread (tests/conftest.py), as each Ray worker does (backtests.walk_forward: Parallel)
    """A tiny base model and the settings of a walk of WINDOWS windows."""
    base = tmp_path_factory.mktemp("base") / "model"
    train_walk_base(catalog, base)
    end = load_bars(catalog, BAR_TYPE).index[0] + pd.Timedelta(days=TRAIN_DAYS + WINDOWS * TEST_DAYS, minutes=-1)
    # A threshold this low makes the strategy trade, so the fills compared are not empty.
    return BacktestSettings(model_path=base, catalog=catalog, bar_type=BAR_TYPE, end=end, strategy={"entry_threshold": 1e-5})


@pytest.fixture(scope="module")
def serial(setup, tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    run_walk_forward(setup, TRAIN_DAYS, TEST_DAYS, out)
    return out


def without_timings(value, out: Path):
    """A report's JSON with run times dropped and its own folder's name made neutral: what must repeat exactly."""
    if isinstance(value, dict):
        return {key: without_timings(item, out) for key, item in value.items() if key != "run_seconds"}
    if isinstance(value, list):
        return [without_timings(item, out) for item in value]
    return value.replace(str(out.resolve()), "OUT").replace(str(out), "OUT") if isinstance(value, str) else value


def assert_same_report(got: Path, expected: Path, windows: int = WINDOWS):
    for name in ("stats.json", "windows.json"):
        assert without_timings(json.loads((got / name).read_text()), got) == without_timings(
            json.loads((expected / name).read_text()), expected), name
    for name in COMPARED_FILES:  # the UUIDs in Nautilus's event and position ids differ in any two runs
        pd.testing.assert_frame_equal(*(pd.read_csv(folder / name).replace(UUID, "UUID", regex=True)
                                        for folder in (got, expected)), obj=name)
    pd.testing.assert_frame_equal(pd.read_parquet(got / "predictions.parquet"), pd.read_parquet(expected / "predictions.parquet"))
    assert len(json.loads((got / "windows.json").read_text())) == windows
    assert len(pd.read_csv(got / "fills.csv")) > 0


@pytest.fixture(scope="class")
def two_local_workers():
    """One embedded Ray of two workers for the class's tests: they run in it as in a caller's own session
    (backtests.parallel.ray_session), so its start (7-15 s on a loaded 2-core machine) and its workers' imports are paid once.
    Starting one is tested where the command starts it itself (test_local_workers_import_this_checkout...).
    Class-scoped, so it is shut down before the cluster test, whose session must be the cluster's."""
    with ray_session(TWO_WORKERS):
        yield TWO_WORKERS


class TestTwoLocalWorkers:
    def test_two_local_workers_give_the_report_of_one(self, setup, serial, two_local_workers, tmp_path):
        run_walk_forward(setup, TRAIN_DAYS, TEST_DAYS, tmp_path, two_local_workers)
        assert_same_report(tmp_path, serial)

    def test_a_pooled_walk_on_two_local_workers_gives_the_report_of_one(self, pooled, two_local_workers, tmp_path):  # noqa: F811
        catalog, model, _ = pooled
        settings = BacktestSettings(model_path=model, catalog=catalog, bar_types=(BAR_TYPE, ETH),
                                    end=pd.Timestamp("2025-05-21 12:00", tz="UTC"), strategy={"entry_threshold": 1e-5})
        run_pooled_walk_forward(settings, 1.0, 0.25, tmp_path / "serial")
        run_pooled_walk_forward(settings, 1.0, 0.25, tmp_path / "ray", two_local_workers)
        assert_same_report(tmp_path / "ray", tmp_path / "serial", windows=2)


def test_a_worker_without_the_catalog_says_it_needs_a_shared_path(setup, tmp_path):
    missing = replace(setup, catalog=tmp_path / "elsewhere" / "catalog")
    window = Window(1, *pd.to_datetime(["2025-05-20", "2025-05-22", "2025-05-22", "2025-05-23"], utc=True))
    with pytest.raises(FileNotFoundError, match=r"catalog .*elsewhere/catalog not found on .*filesystem all the cluster's nodes see"):
        train_window(None, missing, window, tmp_path / "windows" / "01" / "model")


def test_workers_name_either_a_count_or_a_cluster():
    assert Workers(count=1).in_process and not Workers(count=2).in_process
    assert not Workers(address="auto").in_process and Workers(address="auto").cpus is None
    with pytest.raises(ValueError, match="not both"):
        Workers(count=2, address="127.0.0.1:6379")
    with pytest.raises(ValueError, match="at least 1"):
        Workers(count=0)


@pytest.mark.parametrize("flags, message", [
    (["--workers", "2"], "spread the windows of --walk-forward"),
    (["--walk-forward", "--workers", "2", "--ray-address", "127.0.0.1:6379"], "not both"),
    (["--walk-forward", "--workers", "0"], "at least 1"),
])
def test_the_command_refuses_workers_it_cannot_use(setup, tmp_path, caplog, flags, message):
    assert main(["backtest", "--model", str(setup.model_path), "--out", str(tmp_path), *flags]) == 2
    assert message in caplog.text


def test_one_worker_runs_each_call_here_when_its_result_is_taken():
    calls = []
    results = map_ordered(lambda x: calls.append(x) or x * 2, [(1,), (2,)], Workers(count=1))
    assert next(results) == 2 and calls == [1]  # the second not run before the first is used
    assert list(results) == [4] and calls == [1, 2]


def test_the_project_packages_ship_but_not_the_tests():
    names = {Path(path).name for path in project_packages()}
    assert {"marketdata", "models", "strategies", "backtests"} <= names and "tests" not in names


def test_local_workers_import_this_checkout_wherever_the_command_runs(tmp_path, monkeypatch):
    """Not a py_modules copy of it: numba's on-disk cache beside these sources then serves every worker and run."""
    monkeypatch.chdir(tmp_path)  # Ray puts the driver's folder on its workers' path; here it is not the checkout
    files = map_ordered(lambda: __import__("backtests.parallel", fromlist=["parallel"]).__file__, [()], Workers(count=2))
    assert list(files) == [parallel.__file__]


@pytest.mark.slow
def test_a_cluster_by_address_survives_a_worker_killed_mid_window(setup, serial, tmp_path):
    """A head and a worker node started with `ray start` on loopback, with no PYTHONPATH (the code ships with
    the job); one window's worker is killed while it trains: the window is retried and the report is whole."""
    with ray_cluster(worker_nodes=1) as cluster:
        killed = {}

        def kill():
            try:
                killed["pid"] = cluster.kill_task_worker("train_window")
            except TimeoutError as exc:  # reported by the assertion below
                killed["error"] = exc

        killer = threading.Thread(target=kill)
        killer.start()
        run_walk_forward(setup, TRAIN_DAYS, TEST_DAYS, tmp_path, Workers(address=cluster.address))
        killer.join()
    assert "pid" in killed, killed.get("error")
    assert_same_report(tmp_path, serial)
