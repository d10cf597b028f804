"""Bars in and out of a Nautilus ``ParquetDataCatalog``: the layout, what a catalog covers, and reading.

Writing lives in :mod:`marketdata.catalog_writer` (one lock per catalog, staging, atomic moves).
Readers take no lock: every file appears whole, by ``os.replace``, so a reader sees the catalog
as it was before or after each file a writer moves in, never a half-written file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
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
from marketdata.klines import to_bars_frame
from marketdata.timeframes import Timeframe

log = logging.getLogger(__name__)

DEFAULT_CATALOG = Path("data/catalog")


class CatalogError(ValueError):
    """A catalog that lacks what was asked of it."""


def to_nautilus_bars(bars: pd.DataFrame, bar_type: BarType, instrument: Instrument, timeframe: Timeframe) -> list[Bar]:
    """Validated klines (open times in ms; prices on the instrument's tick, as
    :func:`marketdata.validation.check_instrument_prices` ensures) → Nautilus bars stamped at their CLOSE."""
    size_decimals = max_decimals(bars["volume"].to_numpy())
    if size_decimals > instrument.size_precision:
        log.warning(
            "volumes have %d decimals; rounded to %s's size precision of %d",
            size_decimals, instrument.id, instrument.size_precision,
        )
    frame = to_bars_frame(bars, timeframe).rename_axis("timestamp")
    return BarDataWrangler(bar_type, instrument).process(frame)


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
        raise no_bars_error(catalog_path, bar_type, start, end)
    return bars


def no_bars_error(catalog_path: Path, bar_type: BarType | str, start: pd.Timestamp | None, end: pd.Timestamp | None) -> CatalogError:
    """The error for a range without bars: it names the range and the bar types the catalog holds."""
    held = ", ".join(sorted(_bar_types(open_catalog(catalog_path)))) or "none"
    return CatalogError(
        f"{catalog_path} holds no {bar_type} bars between {start or 'the first'} and {end or 'the last'} "
        f"(bar types held: {held})"
    )


def bar_chunks(catalog_path: Path, bar_types: Sequence[str], start_ns: int, end_ns: int, span_ns: int,
               first_end_ns: int = 0) -> Iterator[list[Bar]]:
    """The bars of ``bar_types`` closing in [start_ns, end_ns], read a time slice of ``span_ns`` at a
    time (the first slice reaching at least to ``first_end_ns``), one list per slice that holds any.

    Each list is merged by close time, ties in ``bar_types`` order, so the slices joined are the
    range's bars merged the same way. Only the slice being read is in memory: a reader that lets each
    list go holds a flat amount however long the range.
    """
    catalog = open_catalog(catalog_path)
    lower = start_ns
    while lower <= end_ns:
        upper = min(max(lower + span_ns - 1, first_end_ns if lower == start_ns else 0), end_ns)
        first, last = pd.Timestamp(lower, tz="UTC"), pd.Timestamp(upper, tz="UTC")
        chunk = [bar for bar_type in bar_types for bar in catalog.bars(bar_types=[str(bar_type)], start=first, end=last)]
        if len(bar_types) > 1:
            chunk.sort(key=lambda bar: bar.ts_event)
        if chunk:
            yield chunk
        lower = upper + 1


def load_bars(
    catalog_path: Path, bar_type: BarType | str, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None
) -> pd.DataFrame:
    """Bars of ``bar_type`` as a DataFrame indexed by CLOSE time (UTC), float64 OHLCV columns.

    ``start``/``end`` bound the close time, inclusive.
    """
    return bars_frame(query_bars(catalog_path, bar_type, start, end))


def bars_frame(bars: list[Bar]) -> pd.DataFrame:
    """Nautilus bars as :func:`load_bars` returns them (an empty frame for no bars)."""
    # Nautilus holds fixed-point values; as_double() can miss the decimal by an ulp, so round
    # back to the bars' own precision to get exactly the prices the exchange sent.
    price_digits, size_digits = (bars[0].close.precision, bars[0].volume.precision) if bars else (0, 0)
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
