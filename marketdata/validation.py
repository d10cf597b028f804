"""Checks every load of bars must pass, and the report of what was found.

Errors name the source and the line (file loads) or row (downloads). Nothing is dropped
silently: the only bars ever removed are flat zero-volume placeholders, under the policy below,
and the report lists each one.

Placeholder policy. During exchange outages Binance emitted bars with open = high = low = close
and zero volume. They carry no price discovery; fed to a model they look like a sudden calm.
``drop`` (the default) removes them, so they become ordinary gaps; ``keep`` leaves them in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from marketdata.klines import PRICE_COLUMNS
from marketdata.timeframes import Timeframe

log = logging.getLogger(__name__)

PLACEHOLDER_POLICIES = ("drop", "keep")


class BarValidationError(ValueError):
    """Bars that break an invariant; the message names the source and the row."""


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
        span = f"{_iso(self.first_open_ms)} → {_iso(self.last_open_ms)}"
        lines = [f"{self.source}: {self.bars:,} {self.timeframe} bars, open times {span}"]
        if self.gaps:
            largest = self.largest_gap
            lines.append(
                f"  {len(self.gaps)} gaps, {self.missing_bars:,} missing bars; largest: {largest.missing_bars:,} bars "
                f"after {_iso(largest.after_open_ms)}"
            )
        else:
            lines.append("  no gaps")
        if self.placeholder_open_ms:
            action = "dropped (they become gaps)" if self.placeholder_policy == "drop" else "kept"
            times = ", ".join(_iso(t) for t in self.placeholder_open_ms[:5])
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

    def fail(mask: np.ndarray, message: str) -> None:
        if mask.any():
            row = int(np.argmax(mask))
            count = int(mask.sum())
            more = f" ({count - 1} more rows like it)" if count > 1 else ""
            raise BarValidationError(f"{source}, {_where(bars, row)}: {message(row)}{more}")

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
        fail(open_time % timeframe.ms != 0, lambda row: f"open time {_iso(open_time[row])} is not on the {timeframe} grid")

    steps = np.diff(open_time)
    fail(np.r_[False, steps == 0], lambda row: f"duplicate bar time {_iso(open_time[row])}")
    fail(
        np.r_[False, steps < 0],
        lambda row: f"bars out of order: {_iso(open_time[row])} comes after {_iso(open_time[row - 1])}",
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


def _where(bars: pd.DataFrame, row: int) -> str:
    if "line" in bars:
        return f"line {int(bars['line'].iat[row])}"
    return f"row {row + 1}"


def _ohlc(values: np.ndarray) -> str:
    return "open={} high={} low={} close={}".format(*values)


def _iso(open_ms: int) -> str:
    return pd.Timestamp(int(open_ms), unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M")
