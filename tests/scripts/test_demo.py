"""`make demo`: the Makefile's wiring, and the default demo run end to end, offline, on the shipped sample."""

from __future__ import annotations

import json
import shlex
import shutil
import socket
import subprocess

import pandas as pd
import pytest

from scripts.cli import main
from tests.conftest import PROJECT_ROOT

BIN = "/demo-bin"  # a stand-in for the venv's bin: `make -n` only prints the commands


def demo_commands(*variables: str) -> list[list[str]]:
    """The commands `make demo` runs with ``variables``, as argument lists (the install step left out)."""
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", "-o", "install", "-o", f"{BIN}/.installed", "demo", f"BIN={BIN}", *variables],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
    )
    return [shlex.split(line) for line in done.stdout.replace("\\\n", " ").splitlines() if line.strip()]


def subcommands(commands: list[list[str]]) -> list[str]:
    return [argv[1] if argv[0] == f"{BIN}/nautilus-lstm" else argv[0] for argv in commands]


def test_the_default_demo_imports_the_sample_then_trains_and_backtests_the_demo_model():
    commands = demo_commands()
    assert subcommands(commands) == ["import-klines", "import-klines", "rm", "train", "backtest"]
    assert [argv[2] for argv in commands[:2]] == ["marketdata/samples/btcusdt_1h_2024-01-01_2025-09-19.csv.gz",
                                                 "marketdata/samples/ethusdt_1h_2024-01-01_2025-09-19.csv.gz"]
    assert "models/demo.toml" in commands[3] and "--target-volatility" in commands[4]
    for path in (commands[0][2], commands[1][2], "models/demo.toml"):
        assert (PROJECT_ROOT / path).is_file()


def test_source_binance_downloads_both_pairs_and_history_keeps_the_one_file_path():
    binance = demo_commands("SOURCE=binance")
    assert subcommands(binance) == ["download", "download", "rm", "train", "backtest"]
    assert [argv[argv.index("--symbol") + 1] for argv in binance[:2]] == ["BTC/USDT", "ETH/USDT"]
    # The same model and backtest, on a catalog of its own.
    assert binance[3:] == [[arg.replace("data/sample", "data/binance") for arg in argv] for argv in demo_commands()[3:]]
    history = demo_commands("HISTORY=some.csv.gz")
    assert subcommands(history) == ["import-klines", "rm", "train", "backtest"]
    assert history[0][2] == "some.csv.gz" and "--config" not in history[2]


def test_an_unknown_source_is_refused_by_name():
    done = subprocess.run(["make", "-n", "-o", "install", "demo", f"BIN={BIN}", "SOURCE=kraken"],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "SOURCE=kraken: use SOURCE=sample" in done.stderr


@pytest.mark.slow
def test_the_demo_runs_offline_and_its_strategy_trades_the_unseen_months(tmp_path, monkeypatch, capsys):
    """Every command of the default `make demo`, run as the console command would (about a minute)."""
    def no_network(self, address):
        raise OSError(f"the offline demo tried to reach {address}")
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.chdir(PROJECT_ROOT)  # the Makefile's paths are the project's
    model, report = tmp_path / "model", tmp_path / "report"
    for argv in demo_commands(f"DATA_DIR={tmp_path / 'catalog'}", f"MODEL={model}", f"REPORT={report}"):
        if argv[0] == "rm":
            shutil.rmtree(argv[-1], ignore_errors=True)
        else:
            assert main(argv[1:]) == 0, argv
    out = capsys.readouterr().out

    stats = json.loads((report / "stats.json").read_text())
    assert not stats["in_sample"]
    for model_range in stats["training"]:  # the backtest's bars all come after the model's
        assert pd.Timestamp(model_range["traded"]["first_bar_close"]) > pd.Timestamp(model_range["trained"]["last_bar_close"])
    assert stats["trades"] > 0, "the demo's strategy placed no trade on the unseen months"
    assert {"buy_and_hold", "vol_target_buy_and_hold", "ridge"} <= set(stats["benchmarks"])
    verdict = out[out.index("Backtest "):].splitlines()
    assert 3 <= len(verdict) <= 5
    assert f"completed round trips: lstm {stats['trades']}," in verdict[0] and "bars the model never saw" in verdict[0]
    assert verdict[-1].startswith(f"Report: {report / 'report.html'} ") and (report / "report.html").is_file()
