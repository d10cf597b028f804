"""Checks every load of bars must pass, and the report of what was found.

Errors name the source and the line (file loads) or row (downloads). Nothing is dropped
silently: the only bars ever removed are flat zero-volume placeholders, under the policy below,
and the report lists each one.

Checks against the instrument, run on every write before anything is written
(:func:`check_instrument_prices`): prices finer than its tick are not its data (and Nautilus would
round them silently). On imports, prices more than :data:`PLAUSIBLE_FACTOR` beyond its price
filters, or off the close of the bar the catalog holds nearest to them (:func:`check_seam`), are
taken for another instrument's (an ETH file imported as BTC/USDT) and refused with the numbers;
``--force`` overrides these two, since a price can, rarely, move that far.

Placeholder policy. During exchange outages Binance emitted bars with open = high = low = close
and zero volume. They carry no price discovery; fed to a model they look like a sudden calm.
``drop`` (the default) removes them, so they become ordinary gaps; ``keep`` leaves them in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from nautilus_trader.model.instruments import Instrument

from marketdata.instruments import finer_than, max_decimals
from marketdata.klines import PRICE_COLUMNS
from marketdata.timeframes import Timeframe

log = logging.getLogger(__name__)

PLACEHOLDER_POLICIES = ("drop", "keep")
# Prices further than this factor from what an instrument can trade at are not its prices.
PLAUSIBLE_FACTOR = 3.0
_OVERRIDE = "if the file is right, import it with --force"


class BarValidationError(ValueError):
    """Bars that break an invariant; the message names the source and the row."""


class ImplausiblePricesError(BarValidationError):
    """Prices that cannot be the named instrument's; ``--force`` imports them anyway."""


@dataclass(frozen=True)
class Gap:
    """Bars missing after the bar that opened at ``after_open_ms``."""

    after_open_ms: int
    missing_bars: int


@dataclass
class ValidationReport:
    source: str
    timeframe: Timeframe
    bars: int
    first_open_ms: int
    last_open_ms: int
    gaps: list[Gap] = field(default_factory=list)
    placeholder_open_ms: list[int] = field(default_factory=list)
    placeholder_policy: str = "drop"

    @property
    def missing_bars(self) -> int:
        return sum(gap.missing_bars for gap in self.gaps)

    @property
    def largest_gap(self) -> Gap | None:
        return max(self.gaps, key=lambda gap: gap.missing_bars, default=None)

    def summary(self) -> str:
        span = f"{iso_minute(self.first_open_ms)} → {iso_minute(self.last_open_ms)}"
        lines = [f"{self.source}: {self.bars:,} {self.timeframe} bars, open times {span}"]
        if self.gaps:
            largest = self.largest_gap
            lines.append(
                f"  {len(self.gaps)} gaps, {self.missing_bars:,} missing bars; largest: {largest.missing_bars:,} bars "
                f"after {iso_minute(largest.after_open_ms)}"
            )
        else:
            lines.append("  no gaps")
        if self.placeholder_open_ms:
            action = "dropped (they become gaps)" if self.placeholder_policy == "drop" else "kept"
            times = ", ".join(iso_minute(t) for t in self.placeholder_open_ms[:5])
            more = f" and {len(self.placeholder_open_ms) - 5} more" if len(self.placeholder_open_ms) > 5 else ""
            lines.append(
                f"  {len(self.placeholder_open_ms)} flat zero-volume placeholder bars {action}: {times}{more}"
            )
        return "\n".join(lines)


def validate_klines(
    bars: pd.DataFrame, timeframe: Timeframe, source: str, placeholder_policy: str = "drop"
) -> tuple[pd.DataFrame, ValidationReport]:
    """Check ``bars`` (columns of :data:`marketdata.klines.KLINE_COLUMNS`, optional ``line``).

    Returns the bars to keep (placeholders handled by ``placeholder_policy``) and the report.
    Raises :class:`BarValidationError` at the first broken invariant.
    """
    if placeholder_policy not in PLACEHOLDER_POLICIES:
        raise ValueError(f"placeholder policy must be one of {PLACEHOLDER_POLICIES}, not {placeholder_policy!r}")
    if bars.empty:
        raise BarValidationError(f"{source}: no bars")

    prices = bars[PRICE_COLUMNS].to_numpy(dtype=np.float64)
    volume = bars["volume"].to_numpy(dtype=np.float64)
    open_time = bars["open_time"].to_numpy(dtype=np.int64)
    open_, high, low, close = prices.T

    def fail(mask: np.ndarray, message) -> None:
        _refuse_first(bars, source, mask, message)

    for name in PRICE_COLUMNS + ["volume"]:
        values = bars[name].to_numpy(dtype=np.float64)
        fail(~np.isfinite(values), lambda row, name=name: f"{name} is missing or not finite ({bars[name].iat[row]})")
    fail((prices <= 0).any(axis=1), lambda row: f"prices must be positive: {_ohlc(prices[row])}")
    fail(volume < 0, lambda row: f"volume is negative: {volume[row]}")
    fail(
        (low > np.minimum(open_, close)) | (high < np.maximum(open_, close)) | (low > high),
        lambda row: f"OHLC violates low <= open, close <= high: {_ohlc(prices[row])}",
    )
    if timeframe.unit != "w":  # Binance's weeks open on Mondays, not on multiples of 7 days since 1970
        fail(open_time % timeframe.ms != 0, lambda row: f"open time {iso_minute(open_time[row])} is not on the {timeframe} grid")

    steps = np.diff(open_time)
    fail(np.r_[False, steps == 0], lambda row: f"duplicate bar time {iso_minute(open_time[row])}")
    fail(
        np.r_[False, steps < 0],
        lambda row: f"bars out of order: {iso_minute(open_time[row])} comes after {iso_minute(open_time[row - 1])}",
    )

    gap_rows = np.flatnonzero(steps > timeframe.ms)
    gaps = [Gap(int(open_time[i]), int(steps[i] // timeframe.ms - 1)) for i in gap_rows]

    placeholder = (open_ == high) & (high == low) & (low == close) & (volume == 0)
    report = ValidationReport(
        source=source,
        timeframe=timeframe,
        bars=len(bars),
        first_open_ms=int(open_time[0]),
        last_open_ms=int(open_time[-1]),
        gaps=gaps,
        placeholder_open_ms=[int(t) for t in open_time[placeholder]],
        placeholder_policy=placeholder_policy,
    )
    if placeholder.any() and placeholder_policy == "drop":
        bars = bars.loc[~placeholder].reset_index(drop=True)
        report.bars = len(bars)
    return bars, report


def check_instrument_prices(bars: pd.DataFrame, instrument: Instrument, source: str, *, plausible: bool) -> None:
    """Refuse prices finer than ``instrument``'s tick and, if ``plausible``, prices more than
    :data:`PLAUSIBLE_FACTOR` beyond its price filters (where it has them)."""
    prices = bars[PRICE_COLUMNS].to_numpy(dtype=np.float64)
    finer = finer_than(prices, instrument.price_precision)

    def too_fine(row: int) -> str:
        name, value = _first_price(prices, finer, row)
        return (f"{name} {value} has {max_decimals(value)} decimals but {instrument.id} ticks in "
                f"{instrument.price_increment}: this is not that instrument's data")

    _refuse_first(bars, source, finer.any(axis=1), too_fine)
    if not plausible:
        return
    lowest = instrument.min_price.as_double() / PLAUSIBLE_FACTOR if instrument.min_price is not None else 0.0
    highest = instrument.max_price.as_double() * PLAUSIBLE_FACTOR if instrument.max_price is not None else np.inf
    outside = (prices < lowest) | (prices > highest)

    def implausible(row: int) -> str:
        name, value = _first_price(prices, outside, row)
        side, kind, limit = ("below", "minimum", instrument.min_price) if value < lowest else (
            "above", "maximum", instrument.max_price)
        return (f"{name} {value} is more than {PLAUSIBLE_FACTOR:g}x {side} {instrument.id}'s {kind} price {limit}: "
                f"not that instrument's data? {_OVERRIDE}")

    _refuse_first(bars, source, outside.any(axis=1), implausible, ImplausiblePricesError)


def check_seam(bars: pd.DataFrame, source: str, held_open_ms: int, held_close: float, held_where: str) -> None:
    """Refuse bars whose close nearest in time to a held bar (opened at ``held_open_ms``) is more
    than :data:`PLAUSIBLE_FACTOR` away from that bar's close: they are another instrument's."""
    open_time = bars["open_time"].to_numpy(dtype=np.int64)
    row = int(np.argmin(np.abs(open_time - held_open_ms)))
    close = float(bars["close"].iat[row])
    ratio = max(close / held_close, held_close / close)
    if ratio > PLAUSIBLE_FACTOR:
        raise ImplausiblePricesError(
            f"{source}, {row_location(bars, row)}: close {close} (bar opened {iso_minute(open_time[row])}) is {ratio:.1f}x "
            f"off the close {held_close} of the bar opened {iso_minute(held_open_ms)} that {held_where} holds; prices more "
            f"than {PLAUSIBLE_FACTOR:g}x apart are not the same instrument's: {_OVERRIDE}"
        )


def row_location(bars: pd.DataFrame, row: int) -> str:
    """``line N`` of the file the bars came from, or ``row N`` where they came from no file."""
    if "line" in bars:
        return f"line {int(bars['line'].iat[row])}"
    return f"row {row + 1}"


def _refuse_first(bars: pd.DataFrame, source: str, mask: np.ndarray, message, error=BarValidationError) -> None:
    """Raise ``error`` naming the first row in ``mask`` (and how many more there are)."""
    if mask.any():
        row = int(np.argmax(mask))
        count = int(mask.sum())
        more = f" ({count - 1} more rows like it)" if count > 1 else ""
        raise error(f"{source}, {row_location(bars, row)}: {message(row)}{more}")


def _first_price(prices: np.ndarray, flagged: np.ndarray, row: int) -> tuple[str, float]:
    column = int(np.argmax(flagged[row]))
    return PRICE_COLUMNS[column], float(prices[row, column])


def _ohlc(values: np.ndarray) -> str:
    return "open={} high={} low={} close={}".format(*values)


def iso_minute(open_ms: int) -> str:
    return pd.Timestamp(int(open_ms), unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M")
