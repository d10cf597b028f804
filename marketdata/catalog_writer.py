"""Bars into the catalog, safe for any number of concurrent writers (processes or threads).

Every write of bars (``import-klines``, ``download``, any other process) goes through
:func:`write_new_bars`, which:

1. checks the bars against the instrument before it touches the catalog (prices on its tick;
   for imports, within :data:`~marketdata.validation.PLAUSIBLE_FACTOR` of its price filters), so
   a refused write leaves no trace, not even a new catalog folder;
2. takes the catalog's inter-process lock, ``<catalog>/.lock`` (a ``filelock.FileLock``), and
   holds it from reading what the catalog holds to the last file moved in: two writers never
   both find the same bars missing;
3. compares the bars with those the catalog holds at the same times. Any difference refuses
   the whole write, naming the first differing bar (time, field, both values); identical bars
   are skipped. For imports, prices must also be within the plausible factor of the held bar
   nearest to them (the seam), where one lies within :data:`SEAM_WINDOW_NS`;
4. has Nautilus write the instrument and the new bars into a staging catalog of its own,
   ``<catalog>/.staging/<pid>-<random>``, and moves every file in with ``os.replace``,
   instrument first. Readers take no lock: they see each file whole or not at all, and a crash,
   even ``kill -9``, leaves whole files only.

A staging folder exists only while its writer holds the lock, so one found by a writer holding
the lock was left by a writer that died, and is removed; no writer removes a live one's.

Bar files stay disjoint: new bars closing inside a held file's range at times that file has no
bar (a gap in it, a dropped placeholder) cannot be written without overlapping it. They are
counted and reported as such, never as "already there".
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from filelock import FileLock, Timeout
from nautilus_trader.model.data import BarType
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from marketdata.catalog import CatalogError, Coverage, bars_frame, coverage, to_nautilus_bars
from marketdata.timeframes import Timeframe, close_time_ns, open_time_ms
from marketdata.validation import check_instrument_prices, check_seam, iso_minute, row_location

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"
STAGING = ".staging"
LOCK_TIMEOUT_S = 600.0
# The seam check looks at held bars at most this far from the new ones (or SEAM_BARS bars, if
# longer): a price can move 3x in months, not in a week.
SEAM_WINDOW_NS = 7 * 24 * 3600 * 10**9
SEAM_BARS = 30
_FIELDS = ["open", "high", "low", "close", "volume"]
# Threads of one process would share its flock; they queue here instead.
_THREADS = threading.RLock()


@dataclass(frozen=True)
class WriteOutcome:
    """What a write did with each bar it was given."""

    written: int = 0
    already_held: int = 0  # identical to bars the catalog holds: skipped
    in_held_gaps: int = 0  # inside a held file's range, where it has no bar: not written

    def __add__(self, other: WriteOutcome) -> WriteOutcome:
        return WriteOutcome(self.written + other.written, self.already_held + other.already_held,
                            self.in_held_gaps + other.in_held_gaps)


@contextmanager
def catalog_lock(catalog_path: Path) -> Iterator[None]:
    """Hold the catalog's writer lock: other processes and threads wait; re-entrant in a thread."""
    catalog_path = Path(catalog_path)
    catalog_path.mkdir(parents=True, exist_ok=True)
    # One lock object per file, so that a nested acquisition counts up instead of deadlocking.
    lock = FileLock((catalog_path / LOCK_FILE).resolve(), is_singleton=True)
    with _THREADS:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            log.info("waiting for another writer of %s to finish", catalog_path)
            try:
                lock.acquire(timeout=LOCK_TIMEOUT_S)
            except Timeout:
                raise CatalogError(
                    f"another writer has held {lock.lock_file} for over {LOCK_TIMEOUT_S:g}s: is one stuck?"
                ) from None
        try:
            yield
        finally:
            lock.release()


def write_new_bars(
    catalog_path: Path,
    instrument: Instrument,
    bar_type: BarType,
    bars: pd.DataFrame,
    timeframe: Timeframe,
    *,
    source: str = "bars",
    plausible: bool = False,
) -> WriteOutcome:
    """Write the instrument and those of ``bars`` (validated klines) the catalog lacks; nothing unless every check passes.

    ``source`` names the bars in errors (a file, a download page). ``plausible`` also refuses
    prices too far from the instrument's price filters and from held bars at the seam (imports;
    ``--force`` turns it off). Raises :class:`~marketdata.validation.BarValidationError` or
    :class:`CatalogError` with nothing written.
    """
    catalog_path = Path(catalog_path)
    check_instrument_prices(bars, instrument, source, plausible=plausible)
    if bars.empty:
        return WriteOutcome()
    close_ns = close_time_ns(bars["open_time"].to_numpy(dtype=np.int64), timeframe)
    held_where = f"{catalog_path} ({bar_type})"
    with catalog_lock(catalog_path):
        _clear_abandoned_staging(catalog_path)
        held = coverage(catalog_path, bar_type)
        inside = held.covers(close_ns)
        held_bars = _held_bars(catalog_path, bar_type, close_ns[inside])
        if plausible:
            seam = _seam_bar(catalog_path, bar_type, held, held_bars, close_ns, timeframe)
            if seam is not None:
                check_seam(bars, source, open_time_ms(seam[0], timeframe), seam[1], held_where)
        same_time = np.isin(close_ns, held_bars.index.asi8)
        _refuse_disagreement(bars, close_ns, same_time, held_bars, instrument, source, held_where, timeframe)

        # New bars between the same two held files form one new file, so files stay disjoint.
        fresh = bars.loc[~inside]
        slot = np.searchsorted([first for first, _ in held.intervals], close_ns[~inside])
        runs = [to_nautilus_bars(fresh.loc[slot == value], bar_type, instrument, timeframe) for value in np.unique(slot)]
        _stage_and_move(catalog_path, [[instrument], *runs])
    return WriteOutcome(len(fresh), int(same_time.sum()), int((inside & ~same_time).sum()))


def _clear_abandoned_staging(catalog_path: Path) -> None:
    """Remove what writers that died left in staging. Call with the lock held: a live writer's
    staging exists only while it holds the lock, so every folder found then is abandoned."""
    staging = catalog_path / STAGING
    for folder in staging.iterdir() if staging.is_dir() else []:
        log.info("removing %s, left by a writer that died", folder)
        shutil.rmtree(folder, ignore_errors=True)


def _stage_and_move(catalog_path: Path, batches: list[list]) -> None:
    """Have Nautilus write ``batches`` into this writer's own staging catalog, then move every
    file into the catalog, instrument first, each whole (``os.replace``)."""
    staging = catalog_path / STAGING / f"{os.getpid()}-{uuid.uuid4().hex}"
    try:
        staged = ParquetDataCatalog(str(staging))
        for batch in batches:
            staged.write_data(batch)
        files = [path for path in staging.rglob("*") if path.is_file()]
        # data/bar/<bar type>/<file> last: a reader that finds bars finds their instrument.
        for path in sorted(files, key=lambda path: (path.parent.parent.name == "bar", str(path))):
            target = catalog_path / path.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _held_bars(catalog_path: Path, bar_type: BarType, close_ns: np.ndarray) -> pd.DataFrame:
    """The held bars closing from the first to the last of ``close_ns`` (as :func:`load_bars` frames them)."""
    if not close_ns.size:
        return bars_frame([])
    catalog = ParquetDataCatalog(str(catalog_path))
    start, end = (pd.Timestamp(int(t), tz="UTC") for t in (close_ns.min(), close_ns.max()))
    held = bars_frame(catalog.bars(bar_types=[str(bar_type)], start=start, end=end))
    if not held.index.is_unique:
        twice = held.index[held.index.duplicated()][0]
        raise CatalogError(
            f"{catalog_path} holds {bar_type} bars twice (the first closing at {twice}): overlapping files, "
            "as unlocked concurrent writes used to leave; import into a fresh catalog"
        )
    return held


def _seam_bar(
    catalog_path: Path, bar_type: BarType, held: Coverage, held_bars: pd.DataFrame, close_ns: np.ndarray,
    timeframe: Timeframe,
) -> tuple[int, float] | None:
    """(close time ns, close) of the held bar nearest in time to the new bars, if one is near enough."""
    if not held_bars.empty:
        return int(held_bars.index.asi8[0]), float(held_bars["close"].iat[0])
    ends = np.asarray(held.intervals, dtype=np.int64).ravel()  # held files' first and last bars
    if not ends.size:
        return None
    distance = np.maximum(close_ns[0] - ends, ends - close_ns[-1]).clip(min=0)
    if distance.min() > max(SEAM_WINDOW_NS, SEAM_BARS * timeframe.ns):
        return None
    nearest = pd.Timestamp(int(ends[np.argmin(distance)]), tz="UTC")
    bar = bars_frame(ParquetDataCatalog(str(catalog_path)).bars(bar_types=[str(bar_type)], start=nearest, end=nearest))
    return (int(bar.index.asi8[0]), float(bar["close"].iat[0])) if not bar.empty else None


def _refuse_disagreement(
    bars: pd.DataFrame, close_ns: np.ndarray, same_time: np.ndarray, held_bars: pd.DataFrame,
    instrument: Instrument, source: str, held_where: str, timeframe: Timeframe,
) -> None:
    """Raise if any bar differs from the held bar at its time by more than rounding to the
    instrument's tick and lot step; name the first such bar, its field and both values."""
    rows = np.flatnonzero(same_time)
    if not rows.size:
        return
    new = bars[_FIELDS].to_numpy(dtype=np.float64)[rows]
    held = held_bars.loc[pd.DatetimeIndex(close_ns[rows], tz="UTC"), _FIELDS].to_numpy()
    steps = np.array([10.0**-instrument.price_precision] * 4 + [10.0**-instrument.size_precision])
    # Half a step (and float noise): values that round to the same tick or lot are the same.
    differs = np.abs(new - held) > 0.51 * steps
    if not differs.any():
        return
    first = int(np.argmax(differs.any(axis=1)))
    column = int(np.argmax(differs[first]))
    row = int(rows[first])
    opened = iso_minute(open_time_ms(int(close_ns[row]), timeframe))
    raise CatalogError(
        f"{source}, {row_location(bars, row)}: the bar opened {opened} differs from the one {held_where} holds: "
        f"{_FIELDS[column]} {new[first, column]} here, {held[first, column]} held "
        f"({int(differs.any(axis=1).sum())} of {rows.size} bars at times both have differ); nothing written"
    )
