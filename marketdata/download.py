"""OHLCV history from an exchange, through ccxt, into the catalog.

Resumable: only the bars the catalog lacks in [since, until) are fetched. Crash-safe: each page
is validated and written atomically before the next one is asked for, so a run killed at any
moment leaves the catalog as it was before or after some page, and the next run goes on from
there. Safe beside other writers: each page goes through
:func:`marketdata.catalog_writer.write_new_bars`, under the catalog's lock; bars another writer
stored meanwhile are compared and skipped, and a page that disagrees with them is refused.
Only complete bars are stored: one is complete once open + interval <= the exchange's now.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import ccxt
import pandas as pd
from nautilus_trader.model.data import BarType
from nautilus_trader.model.instruments import Instrument

from marketdata.catalog import DEFAULT_CATALOG, coverage
from marketdata.catalog_writer import WriteOutcome, write_new_bars
from marketdata.exchange import ExchangeCallError, RetryingCalls, RetryPolicy, make_exchange
from marketdata.history import HistoryResult, bars_frame_from_ohlcv
from marketdata.instruments import bar_type as make_bar_type
from marketdata.instruments import ccxt_symbol, instrument_from_market
from marketdata.progress import progress
from marketdata.timeframes import Timeframe, close_time_ns, open_time_ms, parse_timeframe, timeframe_of_bar_spec
from marketdata.validation import ValidationReport, validate_klines

log = logging.getLogger(__name__)

# Most bars Binance returns per klines request on spot; ccxt caps its futures requests there too.
PAGE_LIMIT = 1000


@dataclass(frozen=True)
class DownloadRequest:
    """What to download. Times are epoch milliseconds, bounding bar OPEN times."""

    exchange: str
    symbol: str
    timeframe: str
    since_ms: int
    until_ms: int | None = None  # exclusive; None: up to the last complete bar
    market: str = "spot"
    catalog_path: Path = DEFAULT_CATALOG
    api_url: str | None = None  # scheme and host to send every REST request to instead
    placeholder_policy: str = "drop"

    def __post_init__(self) -> None:
        if self.until_ms is not None and self.until_ms <= self.since_ms:
            raise ValueError(f"until ({_utc(self.until_ms)}) must be after since ({_utc(self.since_ms)})")


@dataclass
class _Tally:
    """Pages fetched and bars written so far."""

    pages: int = 0
    outcome: WriteOutcome = WriteOutcome()


@dataclass
class _Market:
    """The exchange side of one download: client, retrying caller, unified symbol, instrument."""

    exchange: ccxt.Exchange
    calls: RetryingCalls
    symbol: str
    instrument: Instrument
    bar_type: BarType
    timeframe: Timeframe


def download_ohlcv(request: DownloadRequest, retry: RetryPolicy = RetryPolicy()) -> HistoryResult:
    """Fetch the complete bars the catalog lacks in the request's window and write them, page by page."""
    started = time.monotonic()
    market = open_market(request, retry)
    now_ms = _exchange_now_ms(market)
    # A bar is complete once it has closed; the one still forming is left for a later run.
    last_open_ms = now_ms - market.timeframe.ms
    if request.until_ms is not None:
        last_open_ms = min(last_open_ms, request.until_ms - 1)

    nothing = HistoryResult(Path(request.catalog_path), market.bar_type, WriteOutcome(), None)
    if request.since_ms > last_open_ms:
        log.info("no %s bar opened at or after %s has closed yet", market.bar_type, _utc(request.since_ms))
        return nothing

    ranges = _missing_open_ranges(request.catalog_path, market, request.since_ms, last_open_ms)
    if not ranges:
        until = _utc(request.until_ms) if request.until_ms is not None else "now"
        log.info("%s already holds every %s bar from %s to %s", request.catalog_path, market.bar_type,
                 _utc(request.since_ms), until)
        return nothing
    log.info(
        "%s %s %s: fetching %d range(s) the catalog lacks, bars opening from %s to before %s",
        market.exchange.id, market.symbol, market.timeframe, len(ranges), _utc(ranges[0][0]), _utc(ranges[-1][1] + 1),
    )

    tally = _Tally()
    reports = []
    expected = sum((last - first) // market.timeframe.ms + 1 for first, last in ranges)
    with progress(total=expected, unit="bar", desc=f"{market.symbol} {market.timeframe}") as bar:
        for first, last in ranges:
            fetched = []
            for rows in _pages(market, first, last):
                fetched.append(_store_page(request, market, rows, tally))
                bar.update(len(rows))
            if fetched:
                reports.append(_range_report(request, market, fetched))

    log.info(
        "%s %s %s: %d pages, %d retries, %.1fs",
        market.exchange.id, market.symbol, market.timeframe, tally.pages, market.calls.retries,
        time.monotonic() - started,
    )
    return HistoryResult(Path(request.catalog_path), market.bar_type, tally.outcome, _merge(reports))


def open_market(request: DownloadRequest, retry: RetryPolicy) -> _Market:
    """The exchange side of ``request``: a ccxt client, the unified symbol and the instrument built
    from the exchange's public market data (no API keys). Also used by the paper node."""
    timeframe = parse_timeframe(request.timeframe)
    symbol = ccxt_symbol(request.symbol, request.market)
    exchange = make_exchange(request.exchange, request.market, request.api_url)
    calls = RetryingCalls(exchange.id, retry)
    markets = calls.run("load markets", exchange.load_markets)
    if symbol not in markets:
        raise ExchangeCallError(f"{exchange.id} has no {request.market} market {symbol}")
    if timeframe.text not in (exchange.timeframes or {}):
        offered = ", ".join(exchange.timeframes or {}) or "none"
        raise ExchangeCallError(f"{exchange.id} has no {timeframe} bars (it offers: {offered})")
    instrument = instrument_from_market(markets[symbol], request.market, request.exchange)
    return _Market(exchange, calls, symbol, instrument, make_bar_type(instrument.id, timeframe), timeframe)


def _exchange_now_ms(market: _Market) -> int:
    """The exchange's clock where it tells it (ours may be ahead, and keep a forming bar)."""
    if market.exchange.has.get("fetchTime"):
        return market.calls.run("fetch server time", market.exchange.fetch_time)
    return market.exchange.milliseconds()


def _missing_open_ranges(catalog_path: Path, market: _Market, first_open_ms: int, last_open_ms: int):
    """Open-time ranges (ms, inclusive) in [first, last] whose bars the catalog has no file for."""
    tf = market.timeframe
    held = coverage(catalog_path, market.bar_type)
    missing = held.missing(close_time_ns(first_open_ms, tf), close_time_ns(last_open_ms, tf))
    if held.intervals:
        # Snap onto the held bars' grid: between two adjacent files lies a sliver of close times
        # that no bar fits in, and fetching it would cost a request per file for nothing.
        phase = held.intervals[0][0] % tf.ns
        missing = [(start + (phase - start) % tf.ns, end - (end - phase) % tf.ns) for start, end in missing]
    return [(open_time_ms(start, tf), open_time_ms(end, tf)) for start, end in missing if start <= end]


def _pages(market: _Market, first_open_ms: int, last_open_ms: int) -> Iterator[list[list]]:
    """ccxt OHLCV rows with open times in [first, last], a page per request, oldest first."""
    cursor = first_open_ms
    while cursor <= last_open_ms:
        rows = market.calls.run(
            f"fetch {market.symbol} {market.timeframe} bars from {_utc(cursor)}",
            lambda: market.exchange.fetch_ohlcv(
                market.symbol, market.timeframe.text, since=cursor, limit=PAGE_LIMIT, params={"until": last_open_ms}
            ),
        )
        rows = [row for row in rows if cursor <= row[0] <= last_open_ms]  # not every exchange honours until
        if not rows:
            return
        yield rows
        cursor = int(rows[-1][0]) + market.timeframe.ms


def _store_page(request: DownloadRequest, market: _Market, rows: list[list], tally: _Tally) -> pd.DataFrame:
    """Validate one page and write its new bars atomically; returns the page as fetched."""
    tally.pages += 1
    page = bars_frame_from_ohlcv(rows)
    source = f"{market.exchange.id} {market.symbol} page {tally.pages} (from {_utc(rows[0][0])})"
    bars, _ = validate_klines(page, market.timeframe, source, request.placeholder_policy)
    tally.outcome += write_new_bars(
        request.catalog_path, market.instrument, market.bar_type, bars, market.timeframe, source=source
    )
    return page


def _range_report(request: DownloadRequest, market: _Market, pages: list[pd.DataFrame]) -> ValidationReport:
    """The report of one range's pages, validated as a whole so that gaps between pages count too."""
    bars = pd.concat(pages, ignore_index=True)
    source = f"{market.exchange.id} {market.symbol}"
    return validate_klines(bars, market.timeframe, source, request.placeholder_policy)[1]


def _merge(reports: list[ValidationReport]) -> ValidationReport | None:
    """One report for all ranges (between them lie bars the catalog held already)."""
    if not reports:
        return None
    return ValidationReport(
        source=reports[0].source,
        timeframe=reports[0].timeframe,
        bars=sum(report.bars for report in reports),
        first_open_ms=reports[0].first_open_ms,
        last_open_ms=reports[-1].last_open_ms,
        gaps=[gap for report in reports for gap in report.gaps],
        placeholder_open_ms=[t for report in reports for t in report.placeholder_open_ms],
        placeholder_policy=reports[0].placeholder_policy,
    )


def _utc(epoch_ms: int) -> str:
    return pd.Timestamp(int(epoch_ms), unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M:%S UTC")


INSTRUMENT_RETRY = RetryPolicy(max_retries=3)  # a node's exchangeInfo before it starts


def fetch_instrument(symbol: str, market: str, bar_type: str, api_url: str | None,
                     retry: RetryPolicy = INSTRUMENT_RETRY) -> Instrument:
    """The instrument from Binance's public exchangeInfo, as ``nautilus-lstm download`` builds it
    (an error if Binance has no such market, or no bars of ``bar_type``'s interval)."""
    step, aggregation, _ = str(BarType.from_str(bar_type).spec).split("-")  # e.g. 1-MINUTE-LAST
    timeframe = timeframe_of_bar_spec(int(step), aggregation)
    request = DownloadRequest(exchange="binance", symbol=symbol, timeframe=timeframe.text, since_ms=0, market=market, api_url=api_url)
    return open_market(request, retry).instrument
