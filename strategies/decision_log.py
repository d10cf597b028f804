"""What the strategy decided: one record per forecast bar, in memory (or spilled to a scratch file
as it goes), in a CSV file as it goes, and one log line per decision.

A record is the bar's close time, its close, the model's outputs (the point forecast, or each
quantile's), the side decided and why: :func:`prediction_columns` names them, for the strategy's
frame, its ``predictions_path`` file and the nodes' run folders alike.
"""

from __future__ import annotations

import csv
import math
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from models.jsonio import scratch_file
from strategies.decision import FLAT, LONG, SHORT, Reason, reason_text
from strategies.kernel import BAND, NOT_FINITE, ROWS, RULE_REASONS

SIDE_NAMES = {LONG: "LONG", FLAT: "FLAT", SHORT: "SHORT"}
# The frame's reasons are put into words this many at a time, each chunk one Arrow UTF-8 array: as
# Python strings they held 100 bytes a bar.
REASON_CHUNK = 4096
# A kept reason's kind: the number of its template or text (at most 255 of them), or OTHER: kept whole.
OTHER = 255
_NO_NUMBERS = (math.nan, math.nan)  # the two numbers of a reason that is not the rule's pair
# A spilling log's records held in memory at most: each time it holds this many, they go to its
# scratch file as one row group (about 3 ms each, the first 50 ms: 0.06 µs a record on average).
SPILL_ROWS = 4 * REASON_CHUNK
# Rows the strategy's compiled per-bar call (strategies.kernel.decide_bar) may write before the log takes them in.
STAGED_ROWS = REASON_CHUNK


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
    The strategy's compiled per-bar call writes the rule's records into ``staged`` (times, closes,
    outputs, sides, reason codes, numbers and the rows count: strategies.kernel.decide_bar), whose
    codes are the kinds of the rule's reasons; the log takes them in before anything else reads or
    adds a record. A log with a file stages nothing: each record goes to the file as it comes.
    ``keep`` False: none is kept (only the file gets them), for a run whose frame nobody reads.
    ``spill`` True: the kept records go to a scratch file ``SPILL_ROWS`` at a time, as they are (the
    reasons still a kind and two numbers), so that a backtest of years holds a flat amount of them;
    :meth:`chunks` puts them into words a row group at a time once the run is over.
    """

    def __init__(self, output_names: list[str], point_index: int, path: str | None, keep: bool = True,
                 spill: bool = False) -> None:
        self.output_names = output_names
        self.keep = keep
        self._texts: list[tuple[str, bool]] = []  # by kind: (template or text, whether a template)
        self._template_kinds: dict[str, int] = {}  # the rule's pairs' templates, by kind
        self._text_kinds: dict[str, int] = {}
        for code, text in enumerate(RULE_REASONS[:BAND]):  # kinds 0 to 4: the compiled rule's reason codes
            self._kind(text, code != NOT_FINITE, text)
        self._clear_held()
        self._spill_at = SPILL_ROWS if spill and keep else -1  # records held when they go to the scratch file
        self._scratch: Path | None = None  # made with the first spill
        self._scratch_writer: pq.ParquetWriter | None = None
        self._released = False
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
        staged = 0 if path else STAGED_ROWS
        self.staged = (np.zeros(staged, np.int64), np.zeros(staged), np.zeros((staged, len(output_names))), np.zeros(staged, np.int8),
                       np.zeros(staged, np.uint8), np.zeros((staged, 2)), np.array([0, staged, int(keep)], np.int64))

    def record(self, ts: int, close: float, outputs: list[float], side: int, reason: Reason) -> None:
        if self.keep:
            self._take_staged()
            if len(self._times) == self._spill_at:
                self._spill_held()
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

    def _take_staged(self) -> None:
        """The rows the compiled call staged, after those held (spilling at ``SPILL_ROWS`` as record does)."""
        times, closes, outputs, sides, codes, numbers, rows = self.staged
        count, start = int(rows[ROWS]), 0
        while start < count:
            if len(self._times) == self._spill_at:
                self._spill_held()
            end = count if self._spill_at < 0 else min(count, start + self._spill_at - len(self._times))
            for held, staged in ((self._times, times), (self._closes, closes), (self._outputs, outputs), (self._sides, sides),
                                 (self._kinds, codes), (self._numbers, numbers)):
                held.frombytes(staged[start:end].tobytes())
            start = end
        rows[ROWS] = 0

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

    def _clear_held(self) -> None:
        """Start holding records afresh (at the start, and once the held ones are spilled)."""
        self._times, self._closes, self._sides = array("q"), array("d"), array("b")
        self._outputs = array("d")  # each bar's outputs in turn: one extend a bar, not one append per output
        self._kinds, self._numbers = array("B"), array("d")  # each reason's kind, and two numbers (NaN: none)
        self._whole: dict[int, Reason] = {}  # the OTHER reasons, by row held

    def _spill_held(self) -> None:
        """The records held, as they are, as one row group of the scratch file; then none held."""
        count, width = len(self._times), len(self.output_names)
        outputs = np.frombuffer(self._outputs).reshape(count, width)
        whole = [None] * count  # the OTHER reasons in words: few, and their Reason objects stay behind
        for row, reason in self._whole.items():
            whole[row] = reason_text(reason)
        numbers = np.frombuffer(self._numbers).reshape(count, 2)
        columns = {"time": np.frombuffer(self._times, np.int64), "close": np.frombuffer(self._closes),
                   **{f"output{i}": outputs[:, i] for i in range(width)}, "side": np.frombuffer(self._sides, np.int8),
                   "kind": np.frombuffer(self._kinds, np.uint8), "a": numbers[:, 0], "b": numbers[:, 1],
                   "whole": pa.array(whole, pa.string())}
        table = pa.table(columns)
        if self._scratch_writer is None:
            self._scratch = scratch_file(self, "decisions")
            self._scratch_writer = pq.ParquetWriter(self._scratch, table.schema)
        self._scratch_writer.write_table(table)
        self._clear_held()

    def _words(self, kinds: list[int], numbers: list[list[float]], whole: dict[int, Reason], start: int) -> pa.Array:
        """Reasons in words, as one Arrow string array, from row ``start`` of ``whole``'s (the OTHER rows' reasons)."""
        words = []
        for row, kind, pair in zip(range(start, start + len(kinds)), kinds, numbers):
            if kind == OTHER:
                words.append(reason_text(whole[row]))
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
        chunks = list(self.chunks())
        return chunks[0] if len(chunks) == 1 else pd.concat(chunks)

    def chunks(self) -> Iterator[pd.DataFrame]:
        """:meth:`frame`'s rows in order, a frame of at most ``SPILL_ROWS`` at a time for a spilling log
        (one of every record held otherwise): the scratch file's row groups, then the records held; one
        empty frame if there are none. Records after it are held in memory, and come after the file's in the next."""
        if not self.keep:
            raise ValueError("this run's decisions were not kept (DecisionLog keep=False): there is no frame of them")
        if self._released:
            raise ValueError("this log's records were released (DecisionLog.release): the run's predictions file holds them")
        self._take_staged()
        if self._scratch_writer is not None:
            self._scratch_writer.close()  # the file complete, to be read; any later records are held in memory
            self._scratch_writer, self._spill_at = None, -1
        width, spilled = len(self.output_names), self._scratch is not None
        if spilled:
            stored = pq.ParquetFile(self._scratch)
            for group in range(stored.num_row_groups):
                table = stored.read_row_group(group)
                column = {name: table.column(name).to_numpy() for name in table.column_names if name != "whole"}
                numbers = np.column_stack([column["a"], column["b"]])
                outputs = np.column_stack([column[f"output{i}"] for i in range(width)])
                whole = {row: text for row, text in enumerate(table.column("whole").to_pylist()) if text is not None}
                yield self._chunk(column["time"], column["close"], outputs, column["side"], column["kind"], numbers, whole)
        count = len(self._times)
        if not count and not spilled:
            frame = pd.DataFrame([], columns=prediction_columns(self.output_names))
            frame["close_time"] = pd.to_datetime(frame["close_time"], utc=True)
            yield frame.set_index("close_time")
        elif count:
            yield self._chunk(np.frombuffer(self._times, np.int64), np.frombuffer(self._closes),
                              np.frombuffer(self._outputs).reshape(count, width), np.frombuffer(self._sides, np.int8),
                              np.frombuffer(self._kinds, np.uint8), np.frombuffer(self._numbers).reshape(count, 2), self._whole)

    def release(self) -> None:
        """Let the records go, the scratch file removed now (not only when the log is collected, which a
        worker process ended abruptly never does): for a runner once it has written them elsewhere."""
        if self._scratch_writer is not None:
            self._scratch_writer.close()
        if self._scratch is not None:
            self._scratch.unlink(missing_ok=True)
        self._scratch = self._scratch_writer = None
        self._released = True
        self.staged[-1][ROWS] = 0
        self._clear_held()

    def _chunk(self, times: np.ndarray, closes: np.ndarray, outputs: np.ndarray, sides: np.ndarray, kinds: np.ndarray,
               numbers: np.ndarray, whole: dict[int, Reason]) -> pd.DataFrame:
        """Records as the frame holds them; ``whole[row]`` is an OTHER row's reason (or its words)."""
        # The dtypes pandas gives the same records as tuples: int64 times and sides, float64 numbers.
        # The numbers go straight into the one float64 block pandas keeps them in, [close, outputs...],
        # copied once from the records' buffers.
        names = prediction_columns(self.output_names)
        count, width = len(times), len(self.output_names)
        block = np.empty((1 + width, count))
        block[0] = closes
        block[1:] = outputs.T
        index = pd.DatetimeIndex(times.view("datetime64[ns]"), tz="UTC", name="close_time")
        frame = pd.DataFrame(block.T, index=index, columns=names[1:-2], copy=False)
        frame["side"] = sides.astype(np.int64)
        words = [self._words(kinds[start:start + REASON_CHUNK].tolist(), numbers[start:start + REASON_CHUNK].tolist(),
                             whole, start) for start in range(0, count, REASON_CHUNK)]
        frame["reason"] = pd.arrays.ArrowStringArray(pa.chunked_array(words, pa.string()))
        return frame


def read_predictions_parquet(path: Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """A backtest's predictions.parquet (``backtests.report``), its reasons Arrow strings as
    :meth:`DecisionLog.frame` made them, not a Python string a bar. ``columns``: only those of them
    the file has (the index, close_time, always), the others not read at all."""
    if columns is not None:
        held = set(pq.read_schema(path).names)
        columns = [name for name in columns if name in held]
    with pd.option_context("mode.string_storage", "pyarrow"):
        return pd.read_parquet(path, columns=columns)


def read_predictions(path: Path) -> pd.DataFrame:
    """A predictions file written through ``predictions_path``, as :meth:`DecisionLog.frame`."""
    frame = pd.read_csv(path, dtype={"reason": pd.StringDtype("pyarrow")})
    frame["close_time"] = pd.to_datetime(frame["close_time"], utc=True)
    return frame.set_index("close_time")
