"""Read Binance kline files (the CSVs of data.binance.vision and freqtrade's downloads).

Accepted: CSV or CSV.gz; open times in milliseconds or microseconds (Binance switched its spot
files to µs in 2025).

With a header, columns are matched by NAME, in any order: the six of :data:`KLINE_COLUMNS` must
be there, and any of Binance's other kline columns (:data:`IGNORED_COLUMNS`, under the names its
files and tools use) may be; any other name is an error naming the file, so a column is never
read as the wrong field. Without a header the layout is positional: Binance's 6 columns
(open_time, open, high, low, close, volume) or its full 12, whose last 6 are ignored. A first row
with no number in it is a header.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from marketdata.timeframes import Timeframe, close_time_ns

KLINE_COLUMNS = ["open_time", "open", "high", "low", "close", "volume"]
PRICE_COLUMNS = ["open", "high", "low", "close"]
# Binance's other kline columns, as data.binance.vision's headers and common tools name them.
IGNORED_COLUMNS = frozenset({
    "close_time", "quote_volume", "quote_asset_volume", "count", "trades", "number_of_trades",
    "taker_buy_volume", "taker_buy_base_volume", "taker_buy_base_asset_volume",
    "taker_buy_quote_volume", "taker_buy_quote_asset_volume", "ignore",
})
_HEADERLESS_LAYOUTS = (6, 12)
# Epoch milliseconds stay below 1e14 until the year 5138; epoch microseconds are above it since 1973.
_MICROS_THRESHOLD = 10**14
_SECONDS_THRESHOLD = 10**11


class KlineFileError(ValueError):
    """A kline file that cannot be read, with the file and line at fault."""

    def __init__(self, source: str | Path, line: int | None, message: str):
        where = f"{source}, line {line}" if line is not None else str(source)
        super().__init__(f"{where}: {message}")
        self.source = str(source)
        self.line = line


def read_klines(path: str | Path) -> pd.DataFrame:
    """Return the file's bars as columns ``KLINE_COLUMNS`` plus ``line`` (1-based line in the file).

    ``open_time`` is int64 epoch milliseconds; prices and volume are float64. Nothing is
    validated beyond parsing: see :mod:`marketdata.validation`.
    """
    path = Path(path)
    if not path.is_file():
        raise KlineFileError(path, None, "no such file")
    try:
        raw = pd.read_csv(
            path, header=None, dtype=str, keep_default_na=False, skip_blank_lines=False, compression="infer"
        )
    except pd.errors.EmptyDataError:
        raise KlineFileError(path, None, "the file is empty") from None
    except pd.errors.ParserError as exc:
        # pandas names the line ("Expected 6 fields in line 7, saw 7"); keep its words.
        raise KlineFileError(path, None, f"not a kline CSV: {exc}") from None
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise KlineFileError(path, None, f"cannot read: {exc}") from None

    has_header = not any(_is_number(cell) for cell in raw.iloc[0])
    if has_header:
        positions = _column_positions(raw.iloc[0], path)
        raw = raw.iloc[1:]
    elif raw.shape[1] in _HEADERLESS_LAYOUTS:
        positions = {name: position for position, name in enumerate(KLINE_COLUMNS)}
    else:
        raise KlineFileError(path, 1, f"{raw.shape[1]} columns; a Binance kline file has 6 or 12")
    if raw.empty:
        raise KlineFileError(path, None, "no bars in the file")

    lines = np.arange(len(raw), dtype=np.int64) + (2 if has_header else 1)
    frame = {"line": lines}
    for name in KLINE_COLUMNS:
        frame[name] = _numeric_column(raw.iloc[:, positions[name]], name, lines, path)

    open_time = frame["open_time"]
    if not np.all(open_time == np.floor(open_time)):
        row = int(np.argmax(open_time != np.floor(open_time)))
        text = raw.iat[row, positions["open_time"]]
        raise KlineFileError(path, int(lines[row]), f"open_time is not an integer: {text!r}")
    open_time = open_time.astype(np.int64)
    too_small = open_time < _SECONDS_THRESHOLD
    if too_small.any():
        row = int(np.argmax(too_small))
        raise KlineFileError(
            path, int(lines[row]), f"open_time {open_time[row]} looks like seconds; expected milliseconds or microseconds"
        )
    micros = open_time >= _MICROS_THRESHOLD
    frame["open_time"] = np.where(micros, open_time // 1000, open_time)

    return pd.DataFrame(frame, columns=KLINE_COLUMNS + ["line"])


def _column_positions(header: pd.Series, path: Path) -> dict[str, int]:
    """Where each of :data:`KLINE_COLUMNS` is, by the header's names (case and spaces aside)."""
    names = [cell.strip().lower().replace(" ", "_") for cell in header]
    unknown = [name for name in names if name not in KLINE_COLUMNS and name not in IGNORED_COLUMNS]
    if unknown:
        raise KlineFileError(
            path, 1, f"unknown column {unknown[0]!r} in the header; a kline file's columns are "
            f"{', '.join(KLINE_COLUMNS)} and optionally {', '.join(sorted(IGNORED_COLUMNS))}",
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise KlineFileError(path, 1, f"column {repeated[0]!r} appears twice in the header")
    missing = [name for name in KLINE_COLUMNS if name not in names]
    if missing:
        raise KlineFileError(path, 1, f"the header lacks {', '.join(missing)} (it has {', '.join(names)})")
    return {name: names.index(name) for name in KLINE_COLUMNS}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _numeric_column(column: pd.Series, name: str, lines: np.ndarray, path: Path) -> np.ndarray:
    text = column.str.strip()
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    # "nan" parses as NaN: missing values are the validator's business, garbage is ours.
    garbage = np.isnan(values) & ~text.str.lower().isin(["", "nan"]).to_numpy()
    if garbage.any():
        row = int(np.argmax(garbage))
        count = int(garbage.sum())
        more = f" ({count - 1} more rows like it)" if count > 1 else ""
        raise KlineFileError(path, int(lines[row]), f"{name} is not a number: {column.iat[row]!r}{more}")
    if name == "open_time" and np.isnan(values).any():
        row = int(np.argmax(np.isnan(values)))
        raise KlineFileError(path, int(lines[row]), "open_time is missing")
    return values


def to_bars_frame(klines: pd.DataFrame, timeframe: Timeframe) -> pd.DataFrame:
    """Klines (open times in ms) → the canonical bars frame: float64 OHLCV indexed by CLOSE time (UTC).

    This is the layout :func:`marketdata.catalog.load_bars` returns and the models consume.
    """
    close_ns = close_time_ns(klines["open_time"].to_numpy(dtype=np.int64), timeframe)
    columns = ["open", "high", "low", "close", "volume"]
    index = pd.DatetimeIndex(close_ns, tz="UTC", name="close_time")
    return pd.DataFrame(klines[columns].to_numpy(dtype=np.float64), columns=columns, index=index)
