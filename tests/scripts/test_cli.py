"""The console command as a user runs it."""

import subprocess
import sys

import numpy as np
import pytest
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from marketdata.klines import read_klines
from scripts.cli import build_parser, main
from tests.conftest import FIXTURE_7D

BAR_TYPE = "BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL"


def test_every_subcommand_has_help_with_an_example(capsys):
    subcommands = build_parser()._subparsers._group_actions[0].choices
    assert {"download", "import-klines"} <= set(subcommands)
    for name, parser in subcommands.items():
        text = parser.format_help()
        assert parser.description and "example:" in text, name


def test_installed_console_command_runs():
    done = subprocess.run([sys.executable, "-m", "scripts.cli", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "import-klines" in done.stdout


def test_import_klines_into_catalog(tmp_path, shared_data, capsys):
    catalog = tmp_path / "catalog"
    args = ["import-klines", str(shared_data / FIXTURE_7D), "--symbol", "BTC/USDT", "--timeframe", "1m",
            "--data-dir", str(catalog)]
    assert main(args) == 0
    assert f"10,080 new bars written to {catalog} as {BAR_TYPE}" in capsys.readouterr().out
    bars = ParquetDataCatalog(str(catalog)).bars(bar_types=[BAR_TYPE])
    source = read_klines(shared_data / FIXTURE_7D)
    assert len(bars) == 10_080
    assert np.allclose([b.close.as_double() for b in bars], source["close"], rtol=0, atol=1e-9)
    # Running it again writes nothing twice.
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "0 new bars" in out and "10,080 already there, skipped" in out
    assert len(ParquetDataCatalog(str(catalog)).bars(bar_types=[BAR_TYPE])) == 10_080


def test_bad_file_fails_cleanly_and_writes_nothing(tmp_path, caplog):
    bad = tmp_path / "bad.csv"
    bad.write_text("1747699200000,100,101,99,100,1\n1747699260000,100,99,101,100,1\n")
    catalog = tmp_path / "catalog"
    assert main(["import-klines", str(bad), "--symbol", "BTC/USDT", "--timeframe", "1m", "--data-dir", str(catalog)]) == 2
    assert f"{bad}, line 2: OHLC violates" in caplog.text
    assert not catalog.exists()


@pytest.mark.parametrize("argv, message", [
    (["--timeframe", "1x"], "bad timeframe '1x'"),
    (["--symbol", "BTCUSDT"], "bad symbol 'BTCUSDT'"),
])
def test_bad_arguments_are_named(tmp_path, shared_data, caplog, argv, message):
    args = ["import-klines", str(shared_data / FIXTURE_7D), "--symbol", "BTC/USDT", "--timeframe", "1m",
            "--data-dir", str(tmp_path)]
    for flag, value in zip(argv[::2], argv[1::2]):
        args[args.index(flag) + 1] = value
    assert main(args) == 2
    assert message in caplog.text
