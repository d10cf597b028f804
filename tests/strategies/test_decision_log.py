"""What the strategy decided: records, the CSV file as it goes, one line per decision."""

import gc
import math
import sys
import types

import numpy as np
import pandas as pd
import pytest

from strategies import decision_log
from strategies.config import parse_strategy_config
from strategies.decision import FLAT, LONG, SHORT, BarDecision, DecisionRule, reason_text
from strategies.decision_log import DecisionLog, prediction_columns, read_predictions
from strategies.kernel import DEFER, READ_ACCOUNT, ROWS
from strategies.safety import SafetyRails
from strategies.volatility import VolatilityGateConfig, VolatilityRisk

NOON = pd.Timestamp("2025-08-18 12:00", tz="UTC").value
MINUTE = 60 * 10**9


def test_records_file_and_frame_agree(tmp_path):
    path = tmp_path / "run" / "predictions.csv"
    log = DecisionLog(["q0.1", "q0.5", "q0.9"], point_index=1, path=str(path))
    log.record(NOON, 100_000.5, [-0.001, 0.002, 0.004], LONG, "forecast +0.002000 > 0.001000")
    log.record(NOON + 60 * 10**9, 100_100.0, [-0.003, -0.001, 0.001], FLAT, "inside")
    log.close()
    frame = log.frame()
    assert list(frame.columns) == prediction_columns(["q0.1", "q0.5", "q0.9"])[1:]
    assert frame.index[0] == pd.Timestamp("2025-08-18 12:00", tz="UTC") and frame["side"].tolist() == [LONG, FLAT]
    pd.testing.assert_frame_equal(read_predictions(path), frame, check_dtype=False)
    # A second run appends under the same header.
    again = DecisionLog(["q0.1", "q0.5", "q0.9"], point_index=1, path=str(path))
    again.record(NOON + 120 * 10**9, 1.0, [0.0, 0.0, 0.0], FLAT, "x")
    again.close()
    assert len(read_predictions(path)) == 3 and path.read_text().count("close_time") == 1


def test_one_line_per_decision():
    log = DecisionLog(["q0.1", "q0.5", "q0.9"], point_index=1, path=None)
    line = log.line(NOON, [-0.001, 0.002, 0.004], FLAT, LONG, "forecast +0.002000 > 0.001000")
    assert line == ("decision bar=2025-08-18T12:00:00+00:00 prediction=+0.002000 quantiles=[q0.1=-0.001000 q0.5=+0.002000 "
                    "q0.9=+0.004000] action=BUY FLAT->LONG reason=forecast +0.002000 > 0.001000")
    point = DecisionLog(["prediction"], point_index=0, path=None)
    assert point.line(NOON, [-0.5], SHORT, SHORT, "held").endswith("quantiles=[none] action=HOLD SHORT reason=held")


def test_a_line_names_the_other_outputs_beside_the_point_forecast():
    log = DecisionLog(["p_up", "prediction", "volatility"], point_index=1, path=None)
    line = log.line(NOON, [0.6, 0.0004, 0.0021], FLAT, FLAT, "inside")
    assert line.endswith("prediction=+0.000400 quantiles=[none] p_up=0.600000 volatility=0.002100 action=HOLD FLAT reason=inside")


def test_a_log_that_keeps_nothing_still_writes_its_file(tmp_path):
    path = tmp_path / "predictions.csv"
    log = DecisionLog(["prediction"], point_index=0, path=str(path), keep=False)
    log.record(NOON, 100_000.5, [0.002], LONG, "forecast +0.002000 > 0.001000")
    log.record(NOON + 60 * 10**9, 100_100.0, [-0.001], FLAT, "inside")
    log.close()
    assert read_predictions(path)["reason"].tolist() == ["forecast +0.002000 > 0.001000", "inside"]
    with pytest.raises(ValueError, match="not kept"):
        log.frame()


def test_reasons_are_kept_without_their_objects_and_worded_a_chunk_at_a_time_when_the_frame_is_made(monkeypatch):
    # A backtest keeps every bar's record: the rule's reason tuples must not all stay alive to the end,
    # nor be put into words on the strategy's per-bar path.
    monkeypatch.setattr(decision_log, "REASON_CHUNK", 3)
    inside = [("forecast {:+.6f} inside ±{:.6f}", i / 1000, 0.01) for i in range(4)]
    reasons = [
        *inside[:2],
        "an order is still in flight: no new decision",
        ("{}; {}: no new exposure", ("forecast {:+.6f} > {:.6f}", 0.03, 0.01), "volatility 0.9 over 2 x its median"),
        ("quantile band [{:+.6f}, {:+.6f}] does not clear {:.6f}", -0.01, 0.02, 0.01),  # three numbers: kept whole
        *inside[2:],
    ]
    log = DecisionLog(["prediction"], point_index=0, path=None)
    for i, reason in enumerate(reasons):
        held = sys.getrefcount(reason)
        log.record(NOON + i * 60 * 10**9, 1.0, [0.0], FLAT, reason)
        # Kept: the text (once, as its kind), and whole the nested and the three-number reasons; not the rule's pairs.
        assert (sys.getrefcount(reason) > held) == (i in (2, 3, 4))
    frame = log.frame()
    assert frame["reason"].tolist() == [reason_text(reason) for reason in reasons]
    assert frame["reason"].dtype == pd.StringDtype("pyarrow")  # Arrow strings, no Python string a bar
    assert frame["reason"].array._pa_array.num_chunks == 3  # 7 reasons, 3 a chunk
    assert log.frame()["reason"].tolist() == frame["reason"].tolist()  # asked again, the same
    log.record(NOON + 7 * 60 * 10**9, 2.0, [0.5], LONG, "after a frame")  # a frame holds none of the log's buffers
    assert log.frame()["reason"].iloc[-1] == "after a frame" and len(frame) == 7


def test_reasons_past_the_255th_kind_are_kept_whole_and_worded_alike():
    log = DecisionLog(["prediction"], point_index=0, path=None)
    texts = [f"stop-loss: {-i / 100:+.4%} against the position" for i in range(300)]
    for i, text in enumerate(texts):
        log.record(NOON + i * 60 * 10**9, 1.0, [0.0], FLAT, text if i % 2 else ("forecast {:+.6f} > {:.6f} #" + str(i), 0.1, 0.0))
    expected = [text if i % 2 else f"forecast +0.100000 > 0.000000 #{i}" for i, text in enumerate(texts)]
    assert log.frame()["reason"].tolist() == expected


def test_a_spilling_log_holds_at_most_a_row_group_and_gives_the_frame_a_held_log_gives(monkeypatch):
    # A backtest's log spills its records to a scratch file as it goes: the frame (and the chunks a
    # report writes) must be the held log's, reasons of every kind included, across row groups.
    monkeypatch.setattr(decision_log, "SPILL_ROWS", 4)
    monkeypatch.setattr(decision_log, "REASON_CHUNK", 3)
    reasons = [("forecast {:+.6f} inside ±{:.6f}", i / 1000, 0.01) for i in range(7)]
    reasons[2] = "an order is still in flight: no new decision"
    reasons[5] = ("{}; held {} of {} minimum bars", ("forecast {:+.6f} > {:.6f}", 0.03, 0.01), 2, 15)  # kept whole
    held = DecisionLog(["q0.1", "prediction", "volatility"], point_index=1, path=None)
    spilled = DecisionLog(["q0.1", "prediction", "volatility"], point_index=1, path=None, spill=True)
    for i in range(11):
        for log in (held, spilled):
            log.record(NOON + i * 60 * 10**9, 100.0 + i, [-i / 10, i / 100, 0.002 * i], (LONG, FLAT, SHORT)[i % 3], reasons[i % 7])
        assert len(spilled._times) <= 4  # never more held than a row group
    scratch = spilled._scratch
    assert scratch.stat().st_size > 0
    chunks = list(spilled.chunks())
    assert [len(chunk) for chunk in chunks] == [4, 4, 3]
    pd.testing.assert_frame_equal(pd.concat(chunks), held.frame())
    pd.testing.assert_frame_equal(spilled.frame(), held.frame())  # asked again, the same
    for log in (held, spilled):  # a record after the chunks were asked is held, and comes last
        log.record(NOON + 11 * 60 * 10**9, 1.0, [0.0, 0.0, 0.0], FLAT, "after")
    pd.testing.assert_frame_equal(spilled.frame(), held.frame())
    spilled.release()  # as a runner does once it has written the records out: the file goes now
    assert not scratch.exists()
    with pytest.raises(ValueError, match="released"):
        spilled.frame()
    again = DecisionLog(["prediction"], point_index=0, path=None, spill=True)
    for i in range(5):
        again.record(NOON + i * 60 * 10**9, 1.0, [0.0], FLAT, "x")
    scratch = again._scratch
    del again, log
    gc.collect()
    assert not scratch.exists()  # or when its log is collected


def test_a_spilling_log_makes_no_file_until_it_spills_and_with_no_records_gives_the_empty_frame():
    spilled = DecisionLog(["prediction"], point_index=0, path=None, spill=True)
    spilled.record(NOON, 1.0, [0.0], FLAT, "x")
    assert spilled._scratch is None  # fewer records than a row group: all held, no file
    empty = DecisionLog(["prediction"], point_index=0, path=None, spill=True)
    pd.testing.assert_frame_equal(empty.frame(), DecisionLog(["prediction"], point_index=0, path=None).frame())


def test_rows_the_compiled_call_staged_come_in_order_before_a_record_and_only_if_kept():
    class Forecaster:
        point_index, out = 0, np.array([0.0])

    def decider(log):
        risk = VolatilityRisk(VolatilityGateConfig(volatility_gate=None), None, 60 * 10**9, 15)
        config = parse_strategy_config({"instrument_id": "BTCUSDT.BINANCE", "bar_type": "BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL",
                                        "model_path": "m", "feed": {"gap_cooldown_bars": 0}, "rule": {"stop_loss": 0.02}})
        account = types.SimpleNamespace(parts=np.array([1000.0, 0.0, 0.0]))  # the kill switch's equity: 1,000 in cash
        rails = SafetyRails(config.limits)
        return BarDecision(Forecaster, None, DecisionRule(0.0025, allow_short=False, min_holding_bars=0), risk, log.staged, config,
                           account, rails)

    log = DecisionLog(["prediction"], point_index=0, path=None)
    compiled = decider(log)
    for i, point in enumerate([0.003, -0.003, 0.0]):
        Forecaster.out[0] = point
        ts = NOON + i * MINUTE
        assert compiled.call(ts, 100.0 + i, Forecaster.out, True, FLAT, 0, 0.0, ts, 1, False, *compiled.arrays) == [LONG, FLAT, FLAT][i]
    # A check before the rule fires, or one only Python makes may: the strategy's Python decides.
    assert compiled.call(NOON, 1.0, Forecaster.out, True, FLAT, 0, 0.0, NOON + 3 * MINUTE, 1, False, *compiled.arrays) == DEFER  # stale
    assert compiled.call(NOON, 1.0, Forecaster.out, True, FLAT, 0, 0.0, NOON, 1, True, *compiled.arrays) == DEFER
    assert compiled.call(NOON, 97.0, Forecaster.out, True, LONG, 9, 100.0, NOON, 1, False, *compiled.arrays) == DEFER  # stop-loss
    parts = compiled.arrays[2]
    parts[0] = 700.0  # 30% below the peak of 1,000: the kill switch's
    assert compiled.call(NOON, 1.0, Forecaster.out, True, FLAT, 0, 0.0, NOON, 1, False, *compiled.arrays) == DEFER
    parts[0], parts[2] = 1000.0, 60.0  # the parts are due to be read again: asked for first, with nothing done
    assert compiled.call(NOON, 1.0, Forecaster.out, True, FLAT, 0, 0.0, NOON, 1, False, *compiled.arrays) == READ_ACCOUNT
    assert log.staged[-1][ROWS] == 3 and parts[2] == 60.0
    assert compiled.call(NOON, 1.0, Forecaster.out, False, FLAT, 0, 0.0, NOON, 1, False, *compiled.arrays) == FLAT  # not traded: no read
    parts[2] = 0.0
    log.record(NOON + 3 * 60 * 10**9, 103.0, [math.nan], FLAT, "forecast is not finite: no trade")
    log.staged[-1][ROWS] = log.staged[-1][1]  # full: the strategy's Python decides and records
    assert compiled.call(NOON, 1.0, Forecaster.out, True, FLAT, 0, 0.0, NOON, 1, False, *compiled.arrays) == DEFER
    log.staged[-1][ROWS] = 0
    frame = log.frame()
    assert frame["close"].tolist() == [100.0, 101.0, 102.0, 103.0] and frame["side"].tolist() == [LONG, FLAT, FLAT, FLAT]
    assert frame["reason"].tolist() == ["forecast +0.003000 > 0.002500", "forecast -0.003000 < -0.002500 but this venue cannot short",
                                        "forecast +0.000000 inside ±0.002500", "forecast is not finite: no trade"]
    kept_none = DecisionLog(["prediction"], point_index=0, path=None, keep=False)
    unkept = decider(kept_none)
    assert unkept.call(NOON, 1.0, Forecaster.out, True, FLAT, 0, 0.0, NOON, 1, False, *unkept.arrays) == FLAT
    assert kept_none.staged[-1][ROWS] == 0
