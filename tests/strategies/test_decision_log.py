"""What the strategy decided: records, the CSV file as it goes, one line per decision."""

import gc
import weakref

import pandas as pd
import pytest

from strategies import decision_log
from strategies.decision import FLAT, LONG, SHORT
from strategies.decision_log import DecisionLog, prediction_columns, read_predictions

NOON = pd.Timestamp("2025-08-18 12:00", tz="UTC").value


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


def test_reasons_are_put_into_words_a_chunk_at_a_time_and_their_objects_let_go(monkeypatch):
    # A backtest keeps every bar's record: the rule's reason objects must not all stay alive to the end.
    monkeypatch.setattr(decision_log, "REASON_CHUNK", 3)

    class Forecast:
        def __init__(self, value):
            self.value = value

        def __format__(self, spec):
            return format(self.value, spec)

    forecasts = [Forecast(i / 1000) for i in range(7)]
    alive = [weakref.ref(forecast) for forecast in forecasts]
    log = DecisionLog(["prediction"], point_index=0, path=None)
    for i, forecast in enumerate(forecasts):
        log.record(NOON + i * 60 * 10**9, 1.0, [forecast.value], FLAT, ("forecast {:+.6f} inside ±{:.6f}", forecast, 0.01))
    del forecast, forecasts
    gc.collect()
    assert [ref() is None for ref in alive] == [True] * 6 + [False]  # two chunks worded, the seventh pending
    frame = log.frame()
    assert frame["reason"].tolist() == [f"forecast {i / 1000:+.6f} inside ±0.010000" for i in range(7)]
    assert frame["reason"].dtype == pd.StringDtype("pyarrow")  # one Arrow array, no Python string a bar
    assert log.frame()["reason"].tolist() == frame["reason"].tolist()  # asked again, the same
    log.record(NOON + 7 * 60 * 10**9, 2.0, [0.5], LONG, "after a frame")  # a frame holds none of the log's buffers
    assert log.frame()["reason"].iloc[-1] == "after a frame" and len(frame) == 7
