"""History into the catalog: the step shared by file imports and exchange downloads.

An import reads the whole file, validates every bar (:mod:`marketdata.validation`, the
instrument's tick included) and only then writes, through
:func:`marketdata.catalog_writer.write_new_bars`: a file that fails anywhere, at its last line
too, leaves the catalog untouched. It also refuses prices that cannot be the named instrument's
(far off its price filters, or off the bars held next to them); ``force`` lets them in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from nautilus_trader.model.data import BarType

from marketdata.catalog_writer import WriteOutcome, write_new_bars
from marketdata.instruments import bar_type as make_bar_type
from marketdata.instruments import offline_instrument
from marketdata.klines import read_klines
from marketdata.progress import progress
from marketdata.timeframes import parse_timeframe
from marketdata.validation import ValidationReport, validate_klines

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HistoryResult:
    """What a history load did to the catalog."""

    catalog_path: Path
    bar_type: BarType
    outcome: WriteOutcome
    report: ValidationReport | None

    def describe(self) -> str:
        lines = [self.report.summary()] if self.report else []
        outcome = self.outcome
        lines.append(
            f"{outcome.written:,} new bars written to {self.catalog_path} as {self.bar_type}"
            + (f"; {outcome.already_held:,} already there, skipped" if outcome.already_held else "")
            + (f"; {outcome.in_held_gaps:,} not written: they fall in gaps inside files the catalog holds"
               if outcome.in_held_gaps else "")
        )
        return "\n".join(lines)


def import_klines(
    path: Path,
    *,
    exchange: str,
    symbol: str,
    timeframe: str,
    market: str,
    catalog_path: Path,
    placeholder_policy: str = "drop",
    force: bool = False,
) -> HistoryResult:
    """Read, validate and write a Binance kline file; nothing is written unless every bar passes.

    ``force`` imports prices that look like another instrument's (see the module docstring)."""
    tf = parse_timeframe(timeframe)
    with progress(total=3, desc=f"import {Path(path).name}", unit="step") as steps:  # a 1m year: about a minute
        bars = read_klines(path)
        steps.set_postfix(done="read")
        steps.update(1)
        bars, report = validate_klines(bars, tf, source=str(path), placeholder_policy=placeholder_policy)
        steps.set_postfix(done="validated")
        steps.update(1)
        instrument = offline_instrument(symbol, market, bars, exchange)
        bar_type = make_bar_type(instrument.id, tf)
        outcome = write_new_bars(catalog_path, instrument, bar_type, bars, tf, source=str(path), plausible=not force)
        steps.set_postfix(done="written")
        steps.update(1)
    return HistoryResult(Path(catalog_path), bar_type, outcome, report)


def bars_frame_from_ohlcv(rows: list[list[float]]) -> pd.DataFrame:
    """ccxt's ``[[open_ms, o, h, l, c, v], ...]`` in the layout :func:`read_klines` returns."""
    frame = pd.DataFrame(rows, columns=["open_time", "open", "high", "low", "close", "volume"])
    frame["open_time"] = frame["open_time"].astype("int64")
    return frame
