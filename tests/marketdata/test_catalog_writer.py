"""Concurrent writers into one catalog: the lock, per-writer staging, and a stress run of imports and downloads."""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from marketdata.catalog import load_bars
from marketdata.catalog_writer import LOCK_FILE, STAGING, WriteOutcome, write_new_bars
from marketdata.instruments import BUILTIN_MARKETS, bar_type, instrument_from_market
from marketdata.klines import KLINE_COLUMNS, read_klines
from marketdata.timeframes import close_time_ns, parse_timeframe
from marketdata.validation import iso_minute
from tests.conftest import ETH_1M, FIXTURE_7D, PROJECT_ROOT
from tests.fakes.fake_binance import FakeBinance

M1 = parse_timeframe("1m")
BTC = instrument_from_market(BUILTIN_MARKETS[("BTC/USDT", "spot")], "spot")
BAR_TYPES = {"BTC/USDT": "BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL", "ETH/USDT": "ETHUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL"}
SERVER_NOW_MS = int(pd.Timestamp("2025-12-01", tz="UTC").timestamp() * 1000)  # after every bar served
OUTCOME = re.compile(r"([\d,]+) new bars written to (.+) as (\S+?)(?:; ([\d,]+) already there, skipped)?"
                     r"(?:; ([\d,]+) not written.*)?$", re.MULTILINE)
FETCHED = re.compile(r"^binance BTC/USDT: ([\d,]+) 1m bars", re.MULTILINE)

# One writer process: imports everything first, says "ready", waits for "go", then runs its rounds
# through the command line in-process, recording each one's exit code, stdout and log messages.
DRIVER = """
import contextlib, io, json, logging, sys, time
from scripts.cli import main

class Messages(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())

messages = Messages()
logging.getLogger().addHandler(messages)
logging.getLogger().setLevel(logging.INFO)
rounds = json.loads(open(sys.argv[1]).read())
print("ready", flush=True)
sys.stdin.readline()
results = []
for argv in rounds:
    messages.lines = []
    out = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    results.append({"code": code, "out": out.getvalue(), "log": messages.lines, "seconds": time.perf_counter() - started})
open(sys.argv[2], "w").write(json.dumps(results))
"""


@pytest.fixture(scope="module")
def week(shared_data) -> pd.DataFrame:
    return read_klines(shared_data / FIXTURE_7D)


@pytest.fixture(scope="module")
def eth(shared_data, week) -> pd.DataFrame:
    bars = read_klines(shared_data / ETH_1M).iloc[: len(week)].reset_index(drop=True)
    assert np.array_equal(bars["open_time"], week["open_time"])  # same minutes, row for row
    return bars


def write_csv(path: Path, bars: pd.DataFrame) -> Path:
    bars[KLINE_COLUMNS].to_csv(path, index=False)
    return path


def import_argv(path: Path, catalog: Path, symbol: str = "BTC/USDT") -> list[str]:
    return ["import-klines", str(path), "--symbol", symbol, "--timeframe", "1m", "--data-dir", str(catalog)]


def run_writers(plans: list[list[list[str]]], folder: Path, stagger_s: float = 0.0) -> tuple[list[list[dict]], float]:
    """One driver process per plan; once all have started, set them going ``stagger_s`` apart.
    Returns each one's round results and the seconds from the first "go" to the last exit."""
    processes = []
    for number, rounds in enumerate(plans):
        plan = folder / f"plan-{number}.json"
        plan.write_text(json.dumps(rounds))
        with (folder / f"stderr-{number}.txt").open("w") as stderr:
            processes.append(subprocess.Popen(
                [sys.executable, "-c", DRIVER, str(plan), str(folder / f"results-{number}.json")],
                cwd=PROJECT_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True,
            ))
    for process in processes:
        assert process.stdout.readline().strip() == "ready"
    started = time.perf_counter()
    for process in processes:
        process.stdin.write("go\n")
        process.stdin.flush()
        time.sleep(stagger_s)
    for number, process in enumerate(processes):
        assert process.wait(timeout=900) == 0, (folder / f"stderr-{number}.txt").read_text()
    seconds = time.perf_counter() - started
    return [json.loads((folder / f"results-{number}.json").read_text()) for number in range(len(plans))], seconds


def outcome_of(result: dict) -> tuple[str, WriteOutcome]:
    """The bar type and counts a successful round printed."""
    match = OUTCOME.search(result["out"])
    assert match, result
    counts = [int((text or "0").replace(",", "")) for text in match.group(1, 4, 5)]
    return match.group(3), WriteOutcome(*counts)


def assert_catalog_holds(catalog: Path, symbol: str, source: pd.DataFrame) -> None:
    held = load_bars(catalog, BAR_TYPES[symbol])
    assert held.index.is_unique and held.index.is_monotonic_increasing
    np.testing.assert_array_equal(held.index.asi8, close_time_ns(source["open_time"].to_numpy(dtype=np.int64), M1))
    for column in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(held[column].to_numpy(), source[column].to_numpy())
    np.testing.assert_allclose(held["volume"].to_numpy(), source["volume"].to_numpy(), rtol=0, atol=0.5e-4)


LOCK_HOLDER = """
import sys, time
from pathlib import Path
from filelock import FileLock
lock, staging = sys.argv[1], Path(sys.argv[2])
with FileLock(lock):
    staging.mkdir(parents=True)
    (staging / "half-written.parquet").write_bytes(b"PAR1")
    print("holding", flush=True)
    time.sleep(1.5)
    print("intact" if (staging / "half-written.parquet").exists() else "deleted", flush=True)
    # It ends holding the lock with its staging left behind, as a writer killed then would.
"""


def test_a_live_writers_staging_is_left_alone_and_a_dead_ones_cleared(tmp_path, week):
    catalog = tmp_path / "catalog"
    btc_1m = bar_type(BTC.id, M1)
    write_new_bars(catalog, BTC, btc_1m, week.iloc[:10], M1)
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(catalog / LOCK_FILE), str(catalog / STAGING / "live-writer")],
        stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout.readline().strip() == "holding"
    started = time.perf_counter()
    outcome = write_new_bars(catalog, BTC, btc_1m, week.iloc[:20], M1)  # waits for the holder's lock
    waited = time.perf_counter() - started
    assert holder.stdout.readline().strip() == "intact" and holder.wait() == 0
    assert waited > 0.5
    assert outcome == WriteOutcome(written=10, already_held=10)
    assert not any((catalog / STAGING).iterdir())  # found after its writer ended: abandoned, cleared
    assert len(load_bars(catalog, btc_1m)) == 20


@pytest.mark.slow  # three processes that each load torch and Nautilus: tens of seconds on 2 cores
def test_imports_at_once_lose_and_duplicate_nothing(tmp_path, week, eth):
    """The QA cases: two imports of overlapping halves of one symbol 0.05 s apart, and, at the same
    time, one of another symbol."""
    catalog = tmp_path / "catalog"
    files = [write_csv(tmp_path / "btc-a.csv", week.iloc[:4000]), write_csv(tmp_path / "btc-b.csv", week.iloc[2000:6000])]
    plans = [[import_argv(path, catalog)] for path in files]
    plans.append([import_argv(write_csv(tmp_path / "eth.csv", eth.iloc[:3000]), catalog, "ETH/USDT")])
    results, _ = run_writers(plans, tmp_path, stagger_s=0.05)

    assert [rounds[0]["code"] for rounds in results] == [0, 0, 0], results
    (_, first), (_, second), (eth_type, eth_outcome) = (outcome_of(rounds[0]) for rounds in results)
    assert sorted([first, second], key=lambda o: o.written) == [WriteOutcome(2000, 2000), WriteOutcome(4000, 0)]
    assert eth_type == BAR_TYPES["ETH/USDT"] and eth_outcome == WriteOutcome(written=3000)
    assert_catalog_holds(catalog, "BTC/USDT", week.iloc[:6000])
    assert_catalog_holds(catalog, "ETH/USDT", eth.iloc[:3000])


# The stress run: WRITERS processes x ROUNDS rounds. In round r, writer p does kind (p + r) % 4, so
# every round has all four at once: two imports of BTC windows overlapping by half, an ETH import
# and a BTC download overlapping both. Two rounds in ten per writer are meant to be refused: a
# copy of its previous window with one close changed, and ETH prices at BTC times, named BTC/USDT.
WRITERS, ROUNDS, STEP, WIDTH = 4, 50, 150, 300


@dataclass
class Round:
    kind: str  # "import", "download", "tampered" or "implausible"
    symbol: str
    rows: range  # rows of the source frames (BTC and ETH share their minutes)
    argv: list[str]
    expected_message: tuple[str, ...] = ()


def stress_rounds(writer: int, folder: Path, catalog: Path, week, eth, api_url: str) -> list[Round]:
    rounds: list[Round] = []
    for r in range(ROUNDS):
        path = folder / f"w{writer}-r{r}.csv"
        if (writer + r) % 10 == 9:
            previous = rounds[-1]
            source = (eth if previous.symbol == "ETH/USDT" else week).iloc[list(previous.rows)].copy()
            row = previous.rows.start + 37
            changed = source.loc[row, "low"] if source.loc[row, "low"] != source.loc[row, "close"] else source.loc[row, "high"]
            expected = (f"{path}, line 39: the bar opened {iso_minute(source.loc[row, 'open_time'])} differs",
                        f"close {changed} here, {source.loc[row, 'close']} held")
            source.loc[row, "close"] = changed
            write_csv(path, source)
            rounds.append(Round("tampered", previous.symbol, previous.rows, import_argv(path, catalog, previous.symbol), expected))
            continue
        if (writer + r) % 10 == 4:
            held = next(done for done in reversed(rounds) if done.symbol == "BTC/USDT" and done.kind in ("import", "download"))
            source = eth.iloc[list(held.rows)]
            write_csv(path, source)
            expected = (f"{path}, line 2: close {source['close'].iloc[0]}", "off the close", "--force")
            rounds.append(Round("implausible", "BTC/USDT", held.rows, import_argv(path, catalog), expected))
            continue
        kind = (writer + r) % 4
        start = STEP * r + (0, STEP, 0, 100)[kind]
        rows = range(start, start + WIDTH)
        if kind == 3:
            since, until = (pd.Timestamp(int(week["open_time"].iloc[i]), unit="ms").isoformat() for i in (rows.start, rows.stop))
            argv = ["download", "--symbol", "BTC/USDT", "--timeframe", "1m", "--since", since, "--until", until,
                    "--api-url", api_url, "--data-dir", str(catalog), "--backoff", "0.01"]
            rounds.append(Round("download", "BTC/USDT", rows, argv))
            continue
        symbol = "ETH/USDT" if kind == 2 else "BTC/USDT"
        write_csv(path, (eth if kind == 2 else week).iloc[list(rows)])
        rounds.append(Round("import", symbol, rows, import_argv(path, catalog, symbol)))
    return rounds


@pytest.mark.slow
def test_stress_concurrent_imports_and_downloads(tmp_path, week, eth):
    catalog = tmp_path / "catalog"
    fake = FakeBinance(now_ms=SERVER_NOW_MS)
    fake.add_klines(week)
    with fake:
        plans = [stress_rounds(writer, tmp_path, catalog, week, eth, fake.url) for writer in range(WRITERS)]
        results, seconds = run_writers([[done.argv for done in rounds] for rounds in plans], tmp_path)

    written = {"BTC/USDT": 0, "ETH/USDT": 0}
    stored = {"BTC/USDT": set(), "ETH/USDT": set()}
    for writer, (rounds, outcomes) in enumerate(zip(plans, results)):
        for number, (planned, result) in enumerate(zip(rounds, outcomes)):
            where = f"writer {writer}, round {number} ({planned.kind} {planned.symbol}): {result}"
            if planned.expected_message:
                assert result["code"] == 2, where
                assert all(part in result["log"][-1] for part in planned.expected_message), where
                continue
            assert result["code"] == 0, where
            printed_type, outcome = outcome_of(result)
            assert printed_type == BAR_TYPES[planned.symbol] and outcome.in_held_gaps == 0, where
            if planned.kind == "import":
                assert outcome.written + outcome.already_held == WIDTH, where
            else:  # a download says how many bars it fetched: every one was written or found held
                fetched = FETCHED.search(result["out"])
                assert outcome.written + outcome.already_held == (int(fetched[1].replace(",", "")) if fetched else 0), where
            written[planned.symbol] += outcome.written
            stored[planned.symbol].update(planned.rows)

    for symbol, source in (("BTC/USDT", week), ("ETH/USDT", eth)):
        rows = sorted(stored[symbol])
        assert_catalog_holds(catalog, symbol, source.iloc[rows])  # no bar lost, none duplicated, none changed
        assert written[symbol] == len(rows)  # each bar written once, by exactly one writer
    assert not any((catalog / STAGING).iterdir())

    flat = [result for outcomes in results for result in outcomes]
    waits = sum("waiting for another writer" in line for result in flat for line in result["log"])
    refused = sum(result["code"] == 2 for result in flat)
    round_seconds = [result["seconds"] for result in flat]
    print(f"\nstress: {WRITERS} writers x {ROUNDS} rounds in {seconds:.1f}s; {len(flat) - refused} rounds stored, "
          f"{refused} refused as planned; bars written BTC {written['BTC/USDT']:,}, ETH {written['ETH/USDT']:,}; "
          f"{waits} waits for the lock; round median {statistics.median(round_seconds):.2f}s, max {max(round_seconds):.2f}s")
