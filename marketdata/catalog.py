"""Bars in and out of a Nautilus ``ParquetDataCatalog``.

Writes are atomic: each batch is written by Nautilus into a staging catalog beside the real
one, then every file is moved in with ``os.replace``. A crash (``kill -9``) leaves the
catalog as it was before or after the batch, never half-written.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.persistence.catalog import ParquetDataCatalog
from nautilus_trader.persistence.wranglers import BarDataWrangler

from marketdata.instruments import max_decimals
from marketdata.klines import PRICE_COLUMNS, to_bars_frame
from marketdata.timeframes import Timeframe, close_time_ns

log = logging.getLogger(__name__)

DEFAULT_CATALOG = Path("data/catalog")
_STAGING = ".staging"


class CatalogError(ValueError):
    """A catalog that lacks what was asked of it."""


def to_nautilus_bars(bars: pd.DataFrame, bar_type: BarType, instrument: Instrument, timeframe: Timeframe) -> list[Bar]:
    """Validated klines (open times in ms) → Nautilus bars stamped at their CLOSE."""
    price_decimals = max_decimals(bars[PRICE_COLUMNS].to_numpy())
    if price_decimals > instrument.price_precision:
        raise CatalogError(
            f"prices have {price_decimals} decimals but {instrument.id} ticks in {instrument.price_increment}: "
            "this is not that instrument's data"
        )
    size_decimals = max_decimals(bars["volume"].to_numpy())
    if size_decimals > instrument.size_precision:
        log.warning(
            "volumes have %d decimals; rounded to %s's size precision of %d",
            size_decimals, instrument.id, instrument.size_precision,
        )
    frame = to_bars_frame(bars, timeframe).rename_axis("timestamp")
    return BarDataWrangler(bar_type, instrument).process(frame)


def write_atomically(catalog_path: Path, data: list) -> None:
    """Write Nautilus objects (instruments, bars) so the catalog never holds a partial file."""
    catalog_path = Path(catalog_path)
    staging = catalog_path / _STAGING / uuid.uuid4().hex
    try:
        ParquetDataCatalog(str(staging)).write_data(data)
        for source in sorted(p for p in staging.rglob("*") if p.is_file()):
            target = catalog_path / source.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def clear_stale_staging(catalog_path: Path) -> None:
    """Remove what a killed writer left in the staging area (never part of the catalog)."""
    shutil.rmtree(Path(catalog_path) / _STAGING, ignore_errors=True)


@dataclass(frozen=True)
class Coverage:
    """Close-time ranges (ns, inclusive) of the bar files a catalog holds for one bar type."""

    intervals: list[tuple[int, int]]

    @property
    def first_close_ns(self) -> int | None:
        return self.intervals[0][0] if self.intervals else None

    @property
    def last_close_ns(self) -> int | None:
        return self.intervals[-1][1] if self.intervals else None

    def covers(self, close_ns: np.ndarray) -> np.ndarray:
        mask = np.zeros(len(close_ns), dtype=bool)
        for start, end in self.intervals:
            mask |= (close_ns >= start) & (close_ns <= end)
        return mask

    def missing(self, start_ns: int, end_ns: int) -> list[tuple[int, int]]:
        """Close-time ranges within [start_ns, end_ns] that no file covers."""
        ranges, cursor = [], start_ns
        for first, last in self.intervals:
            if first > cursor:
                ranges.append((cursor, min(first - 1, end_ns)))
            cursor = max(cursor, last + 1)
            if cursor > end_ns:
                break
        if cursor <= end_ns:
            ranges.append((cursor, end_ns))
        return [(a, b) for a, b in ranges if a <= b]


def coverage(catalog_path: Path, bar_type: BarType) -> Coverage:
    if not Path(catalog_path).exists():
        return Coverage([])
    return Coverage(ParquetDataCatalog(str(catalog_path)).get_intervals(Bar, str(bar_type)))


def write_new_bars(
    catalog_path: Path, instrument: Instrument, bar_type: BarType, bars: pd.DataFrame, timeframe: Timeframe
) -> tuple[int, int]:
    """Write the instrument and those of ``bars`` the catalog does not cover yet.

    Bars inside an existing file's range are skipped (the catalog's files must stay
    disjoint); each contiguous run of new bars becomes one file. Returns (written, skipped).
    """
    close_ns = close_time_ns(bars["open_time"].to_numpy(dtype=np.int64), timeframe)
    held = coverage(catalog_path, bar_type)
    known = held.covers(close_ns)
    write_atomically(catalog_path, [instrument])
    # New bars between the same two existing files form one new file, so files stay disjoint.
    slot = np.searchsorted([first for first, _ in held.intervals], close_ns[~known])
    fresh = bars.loc[~known]
    for value in np.unique(slot):
        run = fresh.loc[slot == value]
        write_atomically(catalog_path, to_nautilus_bars(run, bar_type, instrument, timeframe))
    return len(fresh), int(known.sum())


def open_catalog(catalog_path: Path) -> ParquetDataCatalog:
    catalog_path = Path(catalog_path)
    if not catalog_path.exists():
        raise CatalogError(f"no catalog at {catalog_path}: run `nautilus-lstm download` or `import-klines` first")
    return ParquetDataCatalog(str(catalog_path))


def catalog_instrument(catalog_path: Path, instrument_id: InstrumentId | str) -> Instrument:
    """The instrument the catalog stores as ``instrument_id`` (``download`` and ``import-klines``
    write it beside the bars), or an error naming those it holds."""
    catalog = open_catalog(catalog_path)
    instruments = catalog.instruments(instrument_ids=[str(instrument_id)])
    if not instruments:
        held = ", ".join(str(i.id) for i in catalog.instruments()) or "none"
        raise CatalogError(f"{catalog_path} has no instrument {instrument_id} (instruments held: {held})")
    return instruments[0]


def query_bars(
    catalog_path: Path, bar_type: BarType | str, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None
) -> list[Bar]:
    """Nautilus bars of ``bar_type`` closing in [start, end], or an error that says what is held."""
    if start is not None and end is not None and start >= end:
        raise ValueError(f"empty date range: start {start} is not before end {end}")
    catalog = open_catalog(catalog_path)
    bars = catalog.bars(bar_types=[str(bar_type)], start=start, end=end)
    if not bars:
        held = ", ".join(sorted(_bar_types(catalog))) or "none"
        raise CatalogError(
            f"{catalog_path} holds no {bar_type} bars between {start or 'the first'} and {end or 'the last'} "
            f"(bar types held: {held})"
        )
    return bars


def load_bars(
    catalog_path: Path, bar_type: BarType | str, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None
) -> pd.DataFrame:
    """Bars of ``bar_type`` as a DataFrame indexed by CLOSE time (UTC), float64 OHLCV columns.

    ``start``/``end`` bound the close time, inclusive.
    """
    bars = query_bars(catalog_path, bar_type, start, end)
    # Nautilus holds fixed-point values; as_double() can miss the decimal by an ulp, so round
    # back to the bars' own precision to get exactly the prices the exchange sent.
    price_digits, size_digits = bars[0].close.precision, bars[0].volume.precision
    columns = {
        name: np.round([getattr(b, name).as_double() for b in bars], price_digits)
        for name in ("open", "high", "low", "close")
    }
    columns["volume"] = np.round([b.volume.as_double() for b in bars], size_digits)
    index = pd.DatetimeIndex([b.ts_event for b in bars], tz="UTC", name="close_time")
    return pd.DataFrame(columns, index=index)


def _bar_types(catalog: ParquetDataCatalog) -> list[str]:
    directory = Path(catalog.path) / "data" / "bar"
    return [p.name for p in directory.iterdir()] if directory.exists() else []
