"""History into the catalog: the step shared by file imports and exchange downloads."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from nautilus_trader.model.data import BarType

from marketdata.catalog import clear_stale_staging, write_new_bars
from marketdata.instruments import bar_type as make_bar_type
from marketdata.instruments import offline_instrument
from marketdata.klines import read_klines
from marketdata.timeframes import parse_timeframe
from marketdata.validation import ValidationReport, validate_klines

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HistoryResult:
    """What a history load did to the catalog."""

    catalog_path: Path
    bar_type: BarType
    written: int
    skipped: int
    report: ValidationReport | None

    def describe(self) -> str:
        lines = [self.report.summary()] if self.report else []
        lines.append(
            f"{self.written:,} new bars written to {self.catalog_path} as {self.bar_type}"
            + (f"; {self.skipped:,} already there, skipped" if self.skipped else "")
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
) -> HistoryResult:
    """Read, validate and write a Binance kline file; nothing is written unless every bar passes."""
    tf = parse_timeframe(timeframe)
    bars = read_klines(path)
    bars, report = validate_klines(bars, tf, source=str(path), placeholder_policy=placeholder_policy)
    instrument = offline_instrument(symbol, market, bars, exchange)
    bar_type = make_bar_type(instrument.id, tf)
    clear_stale_staging(catalog_path)
    written, skipped = write_new_bars(catalog_path, instrument, bar_type, bars, tf)
    return HistoryResult(Path(catalog_path), bar_type, written, skipped, report)


def bars_frame_from_ohlcv(rows: list[list[float]]) -> pd.DataFrame:
    """ccxt's ``[[open_ms, o, h, l, c, v], ...]`` in the layout :func:`read_klines` returns."""
    frame = pd.DataFrame(rows, columns=["open_time", "open", "high", "low", "close", "volume"])
    frame["open_time"] = frame["open_time"].astype("int64")
    return frame
