"""The bar-time convention, in one place.

Binance and ccxt stamp a kline with its OPEN time, but a bar is only known once it has
closed. Everything that enters Nautilus is stamped at the bar's CLOSE (open + interval);
stamping at the open would let every backtest see one bar into the future. Bars that come from
Nautilus's own Binance adapter (paper and live nodes) are stamped 1 ms earlier:
:func:`bar_close_ns` maps both to the close.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNITS = {
    # ccxt unit -> (milliseconds, Nautilus BarAggregation name)
    "s": (1_000, "SECOND"),
    "m": (60_000, "MINUTE"),
    "h": (3_600_000, "HOUR"),
    "d": (86_400_000, "DAY"),
    "w": (604_800_000, "WEEK"),
}

NANOS_PER_MILLI = 1_000_000


@dataclass(frozen=True)
class Timeframe:
    """A bar interval such as ``1m`` or ``4h``, in ccxt's notation."""

    step: int
    unit: str

    @property
    def text(self) -> str:
        return f"{self.step}{self.unit}"

    @property
    def ms(self) -> int:
        return self.step * _UNITS[self.unit][0]

    @property
    def ns(self) -> int:
        return self.ms * NANOS_PER_MILLI

    @property
    def bar_spec(self) -> str:
        """Nautilus bar specification, e.g. ``1-MINUTE-LAST``."""
        return f"{self.step}-{_UNITS[self.unit][1]}-LAST"

    def __str__(self) -> str:
        return self.text


def parse_timeframe(text: str) -> Timeframe:
    match = re.fullmatch(r"(\d+)([smhdw])", text.strip())
    if not match or int(match.group(1)) <= 0:
        units = ", ".join(_UNITS)
        raise ValueError(f"bad timeframe {text!r}: expected a number and a unit ({units}), e.g. 1m or 4h")
    return Timeframe(int(match.group(1)), match.group(2))


def timeframe_of_bar_spec(step: int, aggregation: str) -> Timeframe:
    """The timeframe of a Nautilus bar specification, e.g. ``(1, "MINUTE")`` → ``1m``."""
    for unit, (_, name) in _UNITS.items():
        if name == aggregation:
            return Timeframe(step, unit)
    raise ValueError(f"no timeframe for {step}-{aggregation} bars: expected time bars of {', '.join(n for _, n in _UNITS.values())}")


def close_time_ns(open_ms, timeframe: Timeframe):
    """Nanosecond close time of bars given their open time in milliseconds (int or int64 array)."""
    return (open_ms + timeframe.ms) * NANOS_PER_MILLI


def open_time_ms(close_ns, timeframe: Timeframe):
    """Inverse of :func:`close_time_ns`."""
    return close_ns // NANOS_PER_MILLI - timeframe.ms


NANOS_PER_SECOND = 1_000_000_000


def bar_close_ns(ts_event: int) -> int:
    """The close time of a bar from its ``ts_event``, however its source stamped it.

    Our catalog stamps a bar at its close (open + interval). Nautilus's Binance adapter stamps
    klines, from REST and from the WebSocket stream alike, with Binance's ``closeTime`` field
    ``T`` = open + interval - 1 ms, converted to nanoseconds through a float (so off by some tens
    of nanoseconds too). Every Binance interval is a whole number of seconds, so the close time
    is ``ts_event`` rounded to the nearest second under both conventions.
    """
    return (ts_event + NANOS_PER_SECOND // 2) // NANOS_PER_SECOND * NANOS_PER_SECOND
