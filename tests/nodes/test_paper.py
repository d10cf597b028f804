"""The paper trading node, end to end: the real TradingNode against a loopback fake Binance.

The fake serves real bars replayed as 1-second bars around the present (``tests/fakes/node_harness``
says how and why), in Binance's REST and stream formats; the model is a tiny one trained on the
same kind of bars.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from tests.fakes.fake_binance import SPOT, FakeBinance

from backtests.runner import BacktestSettings, load_inputs, lstm_strategy, run_strategy
from backtests.stats import STAT_KEYS
from models.artifact import load_artifact
from models.predictor import batch_predict
from tests.conftest import NETWORK_UNITS_TOLERANCE, network_units_gap
from tests.fakes.node_harness import (
    BAR_TYPE,
    HISTORY_BARS,
    REPLAY_FIRST_ROW,
    SECOND,
    close_times,
    decisions,
    restamp,
    start_node,
    stop_node,
    wait_for,
    write_catalog,
)

# What the paper node is told to change in the strategy (the test adds an entry threshold the
# tiny model's forecasts cross often): trade often, and wait only a few bars after a gap, so that
# a short run shows everything.
STRATEGY = {"gap_cooldown_bars": 5, "min_holding_bars": 1, "order_notional": 500.0}


def paper_command(model: Path, fake: FakeBinance, run_dir: Path, config: Path) -> list[str]:
    return [
        sys.executable, "-m", "scripts.cli", "paper", "--model", str(model), "--symbol", "BTC/USDT",
        "--market", "spot", "--balance", "10000USDT", "--config", str(config), "--run-dir", str(run_dir),
        "--api-url", fake.url, "--ws-url", fake.ws_url(SPOT),
    ]


def side_changes(decided: pd.DataFrame) -> pd.Series:
    """The decisions that changed the side held (from flat before the first): each one a fill."""
    sides = decided["side"] if len(decided) else pd.Series(dtype=int)
    return sides[sides.ne(sides.shift(fill_value=0))]


def backtest_predictions(model: Path, bars: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, folder: Path) -> pd.DataFrame:
    """The strategy's predictions in a BacktestEngine over the same bars."""
    catalog = write_catalog(bars, folder)
    settings = BacktestSettings(model_path=model, catalog=catalog, bar_type=BAR_TYPE, start=start, end=end, strategy=STRATEGY)
    instrument, nautilus_bars = load_inputs(settings)
    return run_strategy("lstm", lstm_strategy(settings), settings, instrument, nautilus_bars).predictions


@pytest.mark.slow
def test_paper_node_end_to_end(second_bars_model, real_bars, tmp_path):
    model = second_bars_model
    # The replay: real bars a second apart, the present after HISTORY_BARS of them. Two of them go
    # missing from the exchange altogether once the stream's faults are over (an outage: neither
    # streamed nor served by REST): when that is depends on how fast the node started.
    now_ms = (time.time_ns() // 1_000_000 // 1000 + 1) * 1000
    replay = restamp(real_bars.iloc[REPLAY_FIRST_ROW:REPLAY_FIRST_ROW + HISTORY_BARS + 400], now_ms - HISTORY_BARS * 1000)
    # A threshold the tiny model's forecasts cross often, so that it trades.
    forecasts = batch_predict(load_artifact(model), replay.set_index(close_times(replay)).drop(columns="open_time"))
    strategy = {**STRATEGY, "entry_threshold": float(forecasts["q0.5"].median())}
    config = tmp_path / "node.toml"
    # [node]: after a stop the node waits out the whole timeout_post_stop (2 s for paper) for late events;
    # the sandbox fills the flattening order within milliseconds.
    config.write_text("[strategy]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in strategy.items())
                      + "[node]\ntimeout_post_stop = 1.0\n")
    run_dir = tmp_path / "run"

    # Every history answer comes a second late, the warm-up's four: live bars beat it. The stream starts
    # two seconds after the node subscribes, so it misses bars that closed after the warm-up request
    # went out: the strategy asks for those next, and they are no gap.
    fake = FakeBinance(delay_s=1.0, first_delay_s=4.0, subscribe_lag_s=2.0)
    fake.add_klines(replay, interval="1s")
    with fake:
        # Session 1: warm up, trade, survive a dropped stream, a silent one and an outage; SIGINT.
        out1 = tmp_path / "session1.out"
        node = start_node(paper_command(model, fake, run_dir, config), out1)
        try:
            # Trades first: when the node starts, and so which bars it trades on, depends on the machine's load.
            wait_for(lambda: len(decided := decisions(run_dir)) >= 10 and len(side_changes(decided)) >= 3, 90,
                     "10 decisions and 3 changes of side", node, out1)
            before_drop = fake.klines_requests()
            fake.drop_streams(refuse_s=3.0)
            dropped = len(decisions(run_dir))
            wait_for(lambda: len(decisions(run_dir)) >= dropped + 12, 30, "bars after the drop", node, out1)
            fake.silence_streams(5.0)
            spoken = pd.Timestamp.now(tz="UTC") + 5 * SECOND  # the silence's end
            wait_for(lambda: decisions(run_dir).index[-1] > spoken + 2 * SECOND, 30, "bars after the silence", node, out1)
            # The outage: the two bars opening two seconds from now (after the silence's back-fill).
            lost = replay.index[replay["open_time"] >= (time.time_ns() // 1_000_000 // 1000 + 2) * 1000][:2]
            fake.lose_klines(list(replay.loc[lost, "open_time"]), interval="1s")
            outage_times = close_times(replay.loc[lost])
            wait_for(lambda: decisions(run_dir).index[-1] > outage_times[-1] + 10 * SECOND, 30, "bars after the outage", node, out1)
        finally:
            stop_node(node, signal.SIGINT, out1)
        first = decisions(run_dir)
        stats_text = (run_dir / "stats.json").read_text()
        assert "NaN" not in stats_text  # strict JSON, as the backtest report's
        stats1 = json.loads(stats_text)
        fills1 = pd.read_csv(run_dir / "fills.csv")
        positions1 = pd.read_csv(run_dir / "positions.csv")
        requests1 = len(fake.requests)

        # Session 2, same run folder: resumes from the saved state instead of warming up; SIGTERM.
        out2 = tmp_path / "session2.out"
        node = start_node(paper_command(model, fake, run_dir, config), out2)
        try:
            wait_for(lambda: len(decisions(run_dir)) >= len(first) + 8, 60, "8 decisions after the restart", node, out2)
        finally:
            stop_node(node, signal.SIGTERM, out2)
        both = decisions(run_dir)
        requests = list(fake.requests)

    served = replay.drop(index=lost).reset_index(drop=True)  # what the exchange had
    closes = pd.Series(served["close"].to_numpy(), index=close_times(served))
    log1, log2 = out1.read_text(), out2.read_text()
    run = json.loads((run_dir / "run.json").read_text())

    # Warm-up: history arrived after live bars (the race); neither lost nor double-counted, and
    # the first bar after the start was already forecast by the warm model.
    warmed = re.search(r"warm-up done: (\d+) bars from the venue, (\d+) live bars held meanwhile; new bars fed: \S+ to (\S+);", log1)
    assert warmed and int(warmed.group(1)) >= 543 and int(warmed.group(2)) >= 1, log1[-3000:]
    assert run["sessions"][0]["ready"] and run["sessions"][1]["ready"]
    assert both.index.is_unique
    started = pd.Timestamp(run["sessions"][0]["started"])
    assert started <= first.index[0] < started + 10 * SECOND
    # The bars the slow stream missed came from the venue right after the warm-up: no gap there.
    backfill = [r for r in before_drop if int(r.params["startTime"]) == pd.Timestamp(warmed.group(3)).value // 1_000_000]
    assert backfill and backfill[0].body, [r.params for r in before_drop]
    gaps = [line for line in log1.splitlines() if "gap of" in line or "missing before" in line or "done:" in line]
    assert log1.count("gap of") == 1, gaps  # the outage's, and no other: not between warm-up and live bars
    # No lost bar: session 1 decided on every bar the exchange has from its first decision to its last.
    expected = closes.loc[first.index[0]:first.index[-1]].index
    assert first.index.equals(expected)
    # The drop and the silence cost the stream bars; every one of them came through REST instead.
    streamed = {pd.Timestamp(e.detail + 1000, unit="ms", tz="UTC") for e in fake.events("kline")}
    missed = [t for t in expected if t not in streamed]
    assert len(missed) >= 6 and set(missed) <= set(first.index)
    assert len(fake.events("drop")) == 1 and len(fake.events("connect")) >= 3  # session 1, its reconnection, session 2
    assert "back-filling them from the venue" in log1 and "back-fill done" in log1
    # A stale feed warned and paused; the outage was a gap no one could fill: trading paused after it.
    assert "stale feed: no bar for" in log1 and "feed resumed" in log1
    assert "gap of 2 bars the venue could not fill" in log1
    after_outage = first.loc[outage_times[-1]:].iloc[:5]["reason"]  # (the first may be stale as well)
    assert after_outage.str.endswith("no trade").all() and after_outage.str.contains("bars since a gap").sum() >= 4

    # Each decision is one log line: bar time, prediction, quantiles, volatility, action and reason.
    line = re.search(r"decision bar=(\S+) prediction=([-+]\d\.\d{6}) quantiles=\[q0\.1=\S+ q0\.5=\S+ q0\.9=\S+\] "
                     r"volatility=\d\.\d{6} action=(HOLD|BUY|SELL) \S+ reason=.+", log1)
    assert line, log1[-2000:]

    # The predictions equal a backtest's over the same bars (both sessions: the restart resumed exactly).
    warmup_first = pd.Timestamp(run["sessions"][0]["warmup"][0])
    same_bars = served[close_times(served) >= warmup_first]
    same_bars = same_bars[close_times(same_bars) <= both.index[-1]]
    backtest = backtest_predictions(model, same_bars, first.index[0], both.index[-1], tmp_path / "backtest")
    assert both.index.isin(backtest.index).all()
    columns = ["q0.1", "q0.5", "q0.9"]
    assert network_units_gap(backtest.loc[both.index, columns], both[columns], load_artifact(model)) <= NETWORK_UNITS_TOLERANCE

    # Sandbox fills happened where the decisions said: one per change of side, at the latest close
    # (the sandbox's price), and the position was flattened on SIGINT.
    sides = first["side"]
    changes = side_changes(first)
    assert len(changes) >= 3
    fill_times = pd.to_datetime(fills1["ts_event"], utc=True)
    assert list(fills1["order_side"]) == ["BUY" if side == 1 else "SELL" for side in changes] + (["SELL"] if sides.iloc[-1] else [])
    for decided, filled in zip(changes.index, fill_times):
        assert decided <= filled < decided + 3 * SECOND
    for filled, price in zip(fill_times, fills1["last_px"]):
        assert price == pytest.approx(closes.loc[:filled].iloc[-1], abs=1e-8)
    # A buy is sized at its decision bar's close (the fill may come a bar later, at another price):
    # the notional there, rounded down to the size step (0.00001).
    buys = fills1[fills1["order_side"] == "BUY"]
    decided_at = closes.loc[changes.index[changes == 1]].to_numpy()
    bought = decided_at * buys["last_qty"].to_numpy()
    assert (bought <= strategy["order_notional"]).all() and (bought > strategy["order_notional"] - decided_at * 1e-5).all()
    assert len(positions1) and (positions1["side"] == "FLAT").all()

    # SIGINT left a complete run folder.
    for name in ("run.json", "node.log", "predictions.csv", "predictions.parquet", "fills.csv", "positions.csv",
                 "stats.json", "state.json"):
        assert (run_dir / name).stat().st_size > 0, name
    assert set(STAT_KEYS) <= set(stats1) and stats1["benchmarks"] == {} and stats1["bars"] == len(first)
    assert stats1["trades"] == len(changes[changes == 1])
    assert "Received SIGINT" in log1 and "Received SIGTERM" in log2
    assert [s["decisions"] for s in run["sessions"]] == [len(first), len(both) - len(first)]
    node_log = (run_dir / "node.log").read_text()
    assert "Received SIGTERM" in node_log and node_log.rstrip().endswith("DISPOSED")

    # The restart resumed from the saved state: it asked only for the bars since its last one.
    resumed = re.search(r"resuming from saved state at (\S+): fetching the (\d+) bars since", log2)
    assert resumed and pd.Timestamp(resumed.group(1)) == first.index[-1], log2[-3000:]
    klines2 = [r for r in requests[requests1:] if r.endpoint == "klines"]
    assert int(klines2[0].params["startTime"]) == first.index[-1].value // 1_000_000
    assert "warm-up done" not in log2 and "resume done" in log2
    assert "saved state held" not in log2  # flattened on stop, saved flat, the fresh sandbox flat too
    # Public market data only: no signed call, no key needed.
    assert {r.endpoint for r in requests} == {"exchangeInfo", "klines"}
    assert not any("signature" in r.params or "timestamp" in r.params for r in requests)
