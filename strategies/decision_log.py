"""What the strategy decided: one record per forecast bar, in memory, in a CSV file as it goes,
and one log line per decision.

A record is the bar's close time, its close, the model's outputs (the point forecast, or each
quantile's), the side decided and why: :func:`prediction_columns` names them, for the strategy's
frame, its ``predictions_path`` file and the nodes' run folders alike.
"""

from __future__ import annotations

import csv
import math
from array import array
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from strategies.decision import FLAT, LONG, SHORT, Reason, reason_text

SIDE_NAMES = {LONG: "LONG", FLAT: "FLAT", SHORT: "SHORT"}
# The frame's reasons are put into words this many at a time, each chunk one Arrow UTF-8 array: as
# Python strings they held 100 bytes a bar.
REASON_CHUNK = 4096
# A kept reason's kind: the number of its template or text (at most 255 of them), or OTHER: kept whole.
OTHER = 255
_NO_NUMBERS = (math.nan, math.nan)  # the two numbers of a reason that is not the rule's pair


def prediction_columns(output_names: list[str]) -> list[str]:
    return ["close_time", "close", *output_names, "side", "reason"]


def iso_time(ns: int) -> str:
    return pd.Timestamp(ns, unit="ns", tz="UTC").isoformat()


class DecisionLog:
    """The records of one run of the strategy, and the file they are appended to (if any).

    Records are kept as typed columns (8 bytes a number, 1 a side), not as a tuple of Python objects
    per bar: a backtest of years of bars keeps them all. So are reasons (strategies.decision.Reason),
    which are put into words only when the frame is made: the rule's ``(template, float, float)``,
    nearly every bar's, as its template's number and the two floats (17 bytes); a text as its number;
    any other (the gate's and the minimum hold's, which hold a reason) as itself. Wording each as the
    run went cost 1.2 µs a bar, a seventh of the strategy's work; holding the tuples, 96 bytes.
    ``keep`` False: none is kept (only the file gets them), for a run whose frame nobody reads.
    """

    def __init__(self, output_names: list[str], point_index: int, path: str | None, keep: bool = True) -> None:
        self.output_names = output_names
        self.keep = keep
        self._times, self._closes, self._sides = array("q"), array("d"), array("b")
        self._outputs = array("d")  # each bar's outputs in turn: one extend a bar, not one append per output
        self._kinds, self._numbers = array("B"), array("d")  # each reason's kind, and two numbers (NaN: none)
        self._texts: list[tuple[str, bool]] = []  # by kind: (template or text, whether a template)
        self._template_kinds: dict[str, int] = {}  # the rule's pairs' templates, by kind
        self._text_kinds: dict[str, int] = {}
        self._whole: dict[int, Reason] = {}  # the OTHER reasons, by row
        self._point_index = point_index
        self._quantiles = [i for i, name in enumerate(output_names) if name.startswith("q")]
        # What else a model outputs beside its point forecast: p_up, volatility.
        self._others = [i for i, name in enumerate(output_names) if i != point_index and i not in self._quantiles]
        self._file = self._writer = None
        if path:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            new = not path.exists() or path.stat().st_size == 0
            self._file = path.open("a", newline="")
            self._writer = csv.writer(self._file)
            if new:
                self._writer.writerow(prediction_columns(output_names))

    def record(self, ts: int, close: float, outputs: list[float], side: int, reason: Reason) -> None:
        if self.keep:
            self._times.append(ts)
            self._closes.append(close)
            self._outputs.extend(outputs)
            self._sides.append(side)
            if type(reason) is tuple and len(reason) == 3 and type(reason[1]) is float and type(reason[2]) is float:
                kind = self._template_kinds.get(reason[0])
                self._kinds.append(self._kind(reason[0], True, reason) if kind is None else kind)
                self._numbers.append(reason[1])
                self._numbers.append(reason[2])
            else:
                self._kinds.append(self._text_or_whole(reason))
                self._numbers.extend(_NO_NUMBERS)
        if self._writer is not None:
            self._writer.writerow([iso_time(ts), repr(close), *map(repr, outputs), side, reason_text(reason)])
            self._file.flush()

    def line(self, ts: int, outputs: list[float], held: int, target: int, reason: Reason) -> str:
        """One line per decision: bar time, prediction, quantiles, other outputs, action and reason."""
        point = outputs[self._point_index]
        quantiles = " ".join(f"{self.output_names[i]}={outputs[i]:+.6f}" for i in self._quantiles) or "none"
        others = "".join(f" {self.output_names[i]}={outputs[i]:.6f}" for i in self._others)
        if target == held:
            action = f"HOLD {SIDE_NAMES[target]}"
        else:
            action = f"{'BUY' if target > held else 'SELL'} {SIDE_NAMES[held]}->{SIDE_NAMES[target]}"
        return f"decision bar={iso_time(ts)} prediction={point:+.6f} quantiles=[{quantiles}]{others} action={action} reason={reason_text(reason)}"

    def _kind(self, text: str, template: bool, reason: Reason) -> int:
        """The kind of a template or text not seen before; OTHER, ``reason`` kept whole, once there are 255."""
        if len(self._texts) == OTHER:
            return self._whole_at(reason)
        (self._template_kinds if template else self._text_kinds)[text] = len(self._texts)
        self._texts.append((text, template))
        return len(self._texts) - 1

    def _text_or_whole(self, reason: Reason) -> int:
        """The kind of a text reason; OTHER, kept whole, for any other that is not the rule's pair."""
        if type(reason) is not str:
            return self._whole_at(reason)
        kind = self._text_kinds.get(reason)
        return self._kind(reason, False, reason) if kind is None else kind

    def _whole_at(self, reason: Reason) -> int:
        """Keep ``reason`` whole for the row being recorded."""
        self._whole[len(self._kinds)] = reason
        return OTHER

    def _words(self, start: int, stop: int) -> pa.Array:
        """The reasons of rows [start, stop) in words, as one Arrow string array."""
        kinds = self._kinds[start:stop].tolist()
        numbers = np.frombuffer(self._numbers).reshape(-1, 2)[start:stop].tolist()
        words = []
        for row, kind, pair in zip(range(start, stop), kinds, numbers):
            if kind == OTHER:
                words.append(reason_text(self._whole[row]))
            else:
                text, template = self._texts[kind]
                words.append(text.format(*pair) if template else text)
        return pa.array(words, pa.string())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = self._writer = None

    def frame(self) -> pd.DataFrame:
        """Every forecast with its bar close time and close, the decided side and the reason."""
        if not self.keep:
            raise ValueError("this run's decisions were not kept (DecisionLog keep=False): there is no frame of them")
        names = prediction_columns(self.output_names)
        if not self._times:
            frame = pd.DataFrame([], columns=names)
            frame["close_time"] = pd.to_datetime(frame["close_time"], utc=True)
            return frame.set_index("close_time")
        # The dtypes pandas gives the same records as tuples: int64 times and sides, float64 numbers.
        # The numbers go straight into the one float64 block pandas keeps them in, [close, outputs...],
        # copied once from the log's buffers: making the frame is a backtest's high water of memory.
        count, width = len(self._times), len(self.output_names)
        numbers = np.empty((1 + width, count))
        numbers[0] = np.frombuffer(self._closes)
        numbers[1:] = np.frombuffer(self._outputs).reshape(count, width).T
        index = pd.DatetimeIndex(np.frombuffer(self._times, np.int64).view("datetime64[ns]"), tz="UTC", name="close_time")
        frame = pd.DataFrame(numbers.T, index=index, columns=names[1:-2], copy=False)
        frame["side"] = np.frombuffer(self._sides, np.int8).astype(np.int64)
        words = [self._words(start, min(start + REASON_CHUNK, count)) for start in range(0, count, REASON_CHUNK)]
        frame["reason"] = pd.arrays.ArrowStringArray(pa.chunked_array(words, pa.string()))
        return frame


def read_predictions_parquet(path: Path) -> pd.DataFrame:
    """A backtest's predictions.parquet (``backtests.report``), its reasons Arrow strings as
    :meth:`DecisionLog.frame` made them, not a Python string a bar."""
    with pd.option_context("mode.string_storage", "pyarrow"):
        return pd.read_parquet(path)


def read_predictions(path: Path) -> pd.DataFrame:
    """A predictions file written through ``predictions_path``, as :meth:`DecisionLog.frame`."""
    frame = pd.read_csv(path, dtype={"reason": pd.StringDtype("pyarrow")})
    frame["close_time"] = pd.to_datetime(frame["close_time"], utc=True)
    return frame.set_index("close_time")
