"""A backtest's bars, streamed from the catalog in chunks so that its memory does not grow with its range.

:func:`load_feed` reads the range once, a chunk at a time, and keeps only what the report needs of
each bar: its close time and close, per bar type, as a float64 series on an int64 time index (16
bytes a bar). Each engine is then fed the bars again from the catalog, chunk by chunk
(:func:`feed_engine`), through Nautilus's streaming data iterator (``add_data_iterator``), so no
more than about ``chunk_bars`` Nautilus ``Bar`` objects are held at any time, and one ``run()``
covers the whole range exactly as if every bar had been added at once: the same bars in the same
order, the same start and end, the same results.

Bars are read by close time (``ts_event``), which is also when the engine sees them (``ts_init``):
the catalog's bars are stamped so (``marketdata.catalog.to_nautilus_bars``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from nautilus_trader.backtest.engine import BacktestEngine
from nautilus_trader.model.data import Bar, BarType

from marketdata.catalog import (
    CatalogError,
    CatalogLocation,
    bar_chunks,
    catalog_location,
    coverage,
    no_bars_error,
)
from marketdata.progress import progress

# Bars read at a time: a week of 1-minute bars, a few MB of Nautilus objects.
DEFAULT_CHUNK_BARS = 10_000


@dataclass(frozen=True)
class BarFeed:
    """The bars of a backtest: where they are and, per bar type, each bar's close by close time.

    ``closes`` holds one series per bar type traded (the first is the main one), indexed by close
    time (UTC); the bars themselves stay in ``catalog`` until an engine is fed (:meth:`chunks`).
    """

    catalog: CatalogLocation
    closes: dict[str, pd.Series]
    chunk_bars: int = DEFAULT_CHUNK_BARS

    def __post_init__(self):
        if self.chunk_bars < 1:
            raise ValueError(f"chunk_bars must be at least 1, not {self.chunk_bars}")

    def __len__(self) -> int:
        return sum(len(close) for close in self.closes.values())

    @property
    def bar_types(self) -> tuple[str, ...]:
        return tuple(self.closes)

    @property
    def first_ns(self) -> int:
        return min(int(close.index[0].value) for close in self.closes.values())

    @property
    def last_ns(self) -> int:
        return max(int(close.index[-1].value) for close in self.closes.values())

    def close(self, bar_type: str | None = None) -> pd.Series:
        """The closes of ``bar_type`` (default: the first), indexed by close time: ``close_time`` → ``close``."""
        return self.closes[bar_type or self.bar_types[0]]

    def first_close(self, bar_type: str | None = None) -> float:
        return float(self.close(bar_type).iloc[0])

    def window(self, start: pd.Timestamp, end: pd.Timestamp) -> BarFeed | None:
        """The bars closing in [start, end), of the bar types that have any there; None if none has."""
        closes = {key: close[(close.index >= start) & (close.index < end)] for key, close in self.closes.items()}
        closes = {key: close for key, close in closes.items() if len(close)}
        return BarFeed(self.catalog, closes, self.chunk_bars) if closes else None

    def chunks(self, label: str) -> Iterator[list[Bar]]:
        """Every bar, merged by close time (ties in ``bar_types`` order), in chunks of about
        ``chunk_bars`` bars of the shortest bar interval; the first chunk holds each bar type's first
        bar. A progress bar labelled ``label`` counts the bars as each chunk is used up."""
        span = self.chunk_bars * min(BarType.from_str(key).spec.timedelta.value for key in self.bar_types)
        first_end = max(int(close.index[0].value) for close in self.closes.values())
        read = bar_chunks(self.catalog, self.bar_types, self.first_ns, self.last_ns, span, first_end)
        with progress(total=len(self), desc=label, unit="bar", leave=False) as done:
            for chunk in read:
                yield chunk
                done.update(len(chunk))


def load_feed(catalog: CatalogLocation, bar_types: tuple[str, ...], start: pd.Timestamp | None = None, end: pd.Timestamp | None = None,
              chunk_bars: int = DEFAULT_CHUNK_BARS) -> BarFeed:
    """The feed of ``bar_types``' bars closing in [start, end] (None: from the first, to the last the
    catalog holds), read a chunk at a time; an error naming what the catalog holds if one has none."""
    if start is not None and end is not None and start >= end:
        raise ValueError(f"empty date range: start {start} is not before end {end}")
    closes = {}
    for bar_type in bar_types:
        held = coverage(catalog, BarType.from_str(bar_type))
        lower = start.value if start is not None else held.first_close_ns
        upper = end.value if end is not None else held.last_close_ns
        if lower is None or upper is None:
            raise no_bars_error(catalog, bar_type, start, end)
        span = chunk_bars * BarType.from_str(bar_type).spec.timedelta.value
        times, values = [], []
        for chunk in bar_chunks(catalog, [bar_type], lower, upper, span):
            times.append(np.fromiter((bar.ts_event for bar in chunk), dtype=np.int64, count=len(chunk)))
            values.append(np.fromiter((bar.close.as_double() for bar in chunk), dtype=np.float64, count=len(chunk)))
        if not times:
            raise no_bars_error(catalog, bar_type, start, end)
        index = pd.DatetimeIndex(np.concatenate(times), tz="UTC", name="close_time")
        closes[bar_type] = pd.Series(np.concatenate(values), index=index, name="close")
    return BarFeed(catalog_location(catalog), closes, chunk_bars)


def joined(feeds: list[BarFeed]) -> BarFeed:
    """One feed of consecutive feeds' bars (a walk-forward's windows), each bar type's closes in order."""
    if not feeds:
        raise CatalogError("no bars to join")
    keys = list(dict.fromkeys(key for feed in feeds for key in feed.bar_types))
    closes = {key: pd.concat([feed.closes[key] for feed in feeds if key in feed.closes]) for key in keys}
    return BarFeed(feeds[0].catalog, closes, feeds[0].chunk_bars)


def feed_engine(engine: BacktestEngine, feed: BarFeed | list[Bar], label: str,
                between_chunks: Callable[[], None] | None = None) -> int:
    """Give ``engine`` the feed's bars as a stream; return the close time (ns) to run it to, its last bar's.

    ``between_chunks`` runs inside the run each time the engine takes the next chunk, between two
    bars (``backtests.ledger.TradeLedger.purge``). A list of bars (sorted by close time) goes in
    whole, with no call: bars a test made that no catalog holds.
    """
    if isinstance(feed, list):
        engine.add_data(feed)
        return feed[-1].ts_init
    chunks = feed.chunks(label)
    # The first chunk goes in as plain data: that registers the venue's data client and each bar
    # type's subscription, so a strategy subscribing to the bars is not served them a second time
    # from the catalog the engine's data engine holds for warm-up requests.
    engine.add_data(next(chunks))
    engine.add_data_iterator("catalog-bars", _calling(between_chunks, chunks) if between_chunks else chunks)
    return feed.last_ns


def _calling(before_each: Callable[[], None], chunks: Iterator[list[Bar]]) -> Iterator[list[Bar]]:
    for chunk in chunks:
        before_each()
        yield chunk
