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

from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


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


def file_frames(path: Path) -> Iterator[pd.DataFrame]:
    """The row groups of a parquet file :func:`write_frames` wrote, as frames, in order."""
    stored = pq.ParquetFile(path)
    for group in range(stored.num_row_groups):
        yield stored.read_row_group(group).to_pandas()
