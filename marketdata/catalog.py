"""Bars in and out of a Nautilus ``ParquetDataCatalog``: the layout, what a catalog covers, and reading.

Writing lives in :mod:`marketdata.catalog_writer` (one lock per catalog, staging, atomic moves).
Readers take no lock: every file appears whole, by ``os.replace``, so a reader sees the catalog
as it was before or after each file a writer moves in, never a half-written file.

A catalog is read from a local folder or from object storage, an ``s3://bucket/prefix`` URL
(:mod:`marketdata.object_storage`): every reader here takes either (a ``CatalogLocation``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.persistence.catalog import ParquetDataCatalog
from nautilus_trader.persistence.wranglers import BarDataWrangler

from marketdata.instruments import max_decimals
from marketdata.klines import to_bars_frame
from marketdata.object_storage import is_url, s3_catalog
from marketdata.timeframes import Timeframe

log = logging.getLogger(__name__)

DEFAULT_CATALOG = Path("data/catalog")

CatalogLocation = Path | str  # a local folder, or an object-storage URL kept as a string ("s3://bucket/catalog")


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


def catalog_location(value: str | os.PathLike) -> CatalogLocation:
    """A catalog as a command line or config names it: a URL kept as written (a Path would fold its
    ``//``), anything else a local Path."""
    return os.fspath(value) if is_url(value) else Path(value)


def absolute_location(value: str | os.PathLike) -> CatalogLocation:
    """The catalog named the same from any directory: a URL as it is, a local path made absolute
    against the working directory now."""
    return os.fspath(value) if is_url(value) else Path(os.path.abspath(value))


def coverage(catalog_path: CatalogLocation, bar_type: BarType) -> Coverage:
    """What the catalog holds of ``bar_type``; nothing for a local folder not made yet."""
    if not is_url(catalog_path) and not Path(catalog_path).exists():
        return Coverage([])
    return Coverage(open_catalog(catalog_path).get_intervals(Bar, str(bar_type)))


def open_catalog(catalog_path: CatalogLocation) -> ParquetDataCatalog:
    """The catalog at a local folder or an s3:// URL, or an error naming it if no catalog is there."""
    if is_url(catalog_path):
        return _open_url(os.fspath(catalog_path))
    catalog_path = Path(catalog_path)
    if not catalog_path.exists():
        raise CatalogError(f"no catalog at {catalog_path}: run `nautilus-lstm download` or `import-klines` first")
    return ParquetDataCatalog(str(catalog_path))


def _open_url(url: str) -> ParquetDataCatalog:
    protocol, _, path = url.partition("://")
    if protocol != "s3":
        raise CatalogError(f"{url}: a catalog in object storage is read from an s3:// URL (Amazon S3, or an "
                           f"S3-compatible store through AWS_ENDPOINT_URL), not {protocol}://")
    catalog = s3_catalog(path.rstrip("/"))
    try:
        held = catalog.fs.exists(f"{catalog.path}/data")
    except OSError as error:  # access denied, endpoint down: botocore's message says which
        raise CatalogError(f"cannot read the catalog at {url}: {error}") from error
    if not held:
        raise CatalogError(f"no catalog at {url}: nothing under {url.rstrip('/')}/data (copy a catalog folder there, "
                           f"e.g. `aws s3 sync data/catalog {url}`)")
    return catalog


def catalog_instrument(catalog_path: CatalogLocation, instrument_id: InstrumentId | str) -> Instrument:
    """The instrument the catalog stores as ``instrument_id`` (``download`` and ``import-klines``
    write it beside the bars), or an error naming those it holds."""
    catalog = open_catalog(catalog_path)
    instruments = catalog.instruments(instrument_ids=[str(instrument_id)])
    if not instruments:
        held = ", ".join(str(i.id) for i in catalog.instruments()) or "none"
        raise CatalogError(f"{catalog_path} has no instrument {instrument_id} (instruments held: {held})")
    return instruments[0]


def query_bars(
    catalog_path: CatalogLocation, bar_type: BarType | str, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None
) -> list[Bar]:
    """Nautilus bars of ``bar_type`` closing in [start, end], or an error that says what is held."""
    if start is not None and end is not None and start >= end:
        raise ValueError(f"empty date range: start {start} is not before end {end}")
    catalog = open_catalog(catalog_path)
    bars = catalog.bars(bar_types=[str(bar_type)], start=start, end=end)
    if not bars:
        raise no_bars_error(catalog_path, bar_type, start, end)
    return bars


def no_bars_error(catalog_path: CatalogLocation, bar_type: BarType | str, start: pd.Timestamp | None, end: pd.Timestamp | None) -> CatalogError:
    """The error for a range without bars: it names the range and the bar types the catalog holds."""
    held = ", ".join(sorted(_bar_types(open_catalog(catalog_path)))) or "none"
    return CatalogError(
        f"{catalog_path} holds no {bar_type} bars between {start or 'the first'} and {end or 'the last'} "
        f"(bar types held: {held})"
    )


def bar_chunks(catalog_path: CatalogLocation, bar_types: Sequence[str], start_ns: int, end_ns: int, span_ns: int,
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
    catalog_path: CatalogLocation, bar_type: BarType | str, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None
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
    directory = f"{catalog.path}/data/bar"  # through the catalog's filesystem: local or object storage
    return [PurePosixPath(p).name for p in catalog.fs.ls(directory, detail=False)] if catalog.fs.exists(directory) else []
