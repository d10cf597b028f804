"""A run's predictions as a parquet file, written a row group at a time, so that what a backtest holds
of them at once is one row group, however long its range.

The main strategy's decision log spills its records to a scratch file as the run goes
(``strategies.decision_log.DecisionLog``, ``spill``); after the run :func:`write_frames` puts them
into words, one row group at a time, in the run's predictions file (``StrategyRun.predictions_file``),
which the report copies (``backtests.report``) and a walk-forward joins window by window
(``backtests.walk_forward.stitch``, through :func:`file_frames`). Held whole instead, the frame and
the records it was made of were the largest thing a backtest's runs left in memory (README,
*Memory of a backtest*). ``equity.parquet`` is written a row group at a time by :func:`write_frames` too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

_ARROW_STRINGS = {pa.string(): pd.StringDtype("pyarrow"), pa.large_string(): pd.StringDtype("pyarrow")}


def write_frames(path: Path, frames: Iterable[pd.DataFrame]) -> None:
    """``frames`` (of one schema) as the row groups of one parquet file, the rows ``pd.concat(frames)``
    would hold: empty ones are skipped, unless none has rows (then the first is written, for its columns)."""
    writer, first = None, None
    try:
        for frame in frames:
            first = frame if first is None else first
            if not len(frame):
                continue
            table = pa.Table.from_pandas(frame, schema=writer.schema if writer else None, preserve_index=True)
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        if first is None:
            raise ValueError(f"no frames to write to {path}")
        first.to_parquet(path)


def file_frames(path: Path, columns: Sequence[str] | None = None) -> Iterator[pd.DataFrame]:
    """The row groups of a parquet file :func:`write_frames` wrote, as frames, in order, text as Arrow
    strings. ``columns``: only those of them the file has (and its index), the others not read."""
    stored = pq.ParquetFile(path)
    if columns is not None:
        held = set(stored.schema_arrow.names)
        columns = [name for name in columns if name in held]
    for group in range(stored.num_row_groups):
        table = stored.read_row_group(group, columns=columns, use_pandas_metadata=True)
        yield table.to_pandas(types_mapper=_ARROW_STRINGS.get)


def with_context(frames: Iterable[pd.DataFrame], before: int = 0, after: int = 0) -> Iterator[tuple[pd.DataFrame, slice]]:
    """Every row of ``frames`` once, in order, as ``(frame, rows)``: ``frame.iloc[rows]`` are rows not
    given before, and ``frame`` holds up to ``before`` rows before them and ``after`` rows after them
    too (fewer only at the ends). For what a row's value needs of its neighbours, a chunk at a time: a
    trailing window, the close h bars later."""
    held, given = None, 0  # rows not given yet, after `given` rows kept as context
    for frame in frames:
        if not len(frame):
            continue
        held = frame if held is None else pd.concat([held, frame])
        ready = len(held) - after
        if ready > given:
            yield held, slice(given, ready)
            start = max(0, ready - before)
            held, given = held.iloc[start:], ready - start
    if held is not None and len(held) > given:
        yield held, slice(given, len(held))


def bar_type_groups(frame: pd.DataFrame, default: str | None = None) -> Iterable[tuple[str | None, pd.DataFrame]]:
    """A frame's rows by its ``bar_type`` column, in order of first appearance; all of them under
    ``default`` where it has none (a run of one bar type)."""
    return frame.groupby("bar_type", sort=False) if "bar_type" in frame else [(default, frame)]


def rows_of_bar_type(frame: pd.DataFrame, bar_type: str | None) -> pd.DataFrame:
    """``frame``'s rows of ``bar_type``; all of them where it names none."""
    if "bar_type" not in frame:
        return frame
    return frame[(frame["bar_type"] == bar_type).to_numpy(dtype=bool, na_value=False)]


class TimeOrder:
    """That each bar type's rows come in time order, chunk after chunk of a file (``what`` names it
    in the error): what reading a chunk at a time relies on, where a whole frame could be sorted."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._last: dict = {}  # each bar type's last close time so far

    def check(self, bar_type: str | None, times: pd.DatetimeIndex) -> None:
        last = self._last.get(bar_type)
        if not times.is_monotonic_increasing or (last is not None and len(times) and times[0] < last):
            raise ValueError(f"{self.what}: the rows of {bar_type or 'its bar type'} are not in time order")
        if len(times):
            self._last[bar_type] = times[-1]
