"""``nautilus-lstm import-klines``: a Binance kline file into the catalog."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from backtests.catalog import DEFAULT_CATALOG
from backtests.history import import_klines
from backtests.instruments import MARKETS
from backtests.validation import PLACEHOLDER_POLICIES

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "import-klines",
        help="import a Binance kline file (CSV or CSV.gz) into the catalog",
        description=(
            "Read a Binance kline file, validate every bar, and write the bars to a Nautilus "
            "ParquetDataCatalog, stamped at their close time. Accepts the 6- and 12-column layouts, "
            "with or without a header, open times in ms or µs. Bars the catalog already holds are skipped."
        ),
        epilog="example: nautilus-lstm import-klines ../shared/data/btcusdt_1m_2025-05-20_2025-08-18.csv.gz "
        "--exchange binance --symbol BTC/USDT --timeframe 1m",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("path", type=Path, help="the kline file (.csv or .csv.gz)")
    parser.add_argument("--exchange", default="binance", help="exchange the data came from (default: binance)")
    parser.add_argument("--symbol", required=True, help="unified symbol, e.g. BTC/USDT")
    parser.add_argument("--timeframe", required=True, help="bar interval in ccxt notation, e.g. 1m, 1h")
    parser.add_argument("--market", choices=MARKETS, default="spot", help="spot or USDT-M futures (default: spot)")
    parser.add_argument(
        "--data-dir", type=Path, default=DEFAULT_CATALOG, help=f"catalog directory (default: {DEFAULT_CATALOG})"
    )
    parser.add_argument(
        "--placeholders",
        choices=PLACEHOLDER_POLICIES,
        default="drop",
        help="what to do with flat zero-volume outage bars: drop them (default; they become gaps) or keep them",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    result = import_klines(
        args.path,
        exchange=args.exchange,
        symbol=args.symbol,
        timeframe=args.timeframe,
        market=args.market,
        catalog_path=args.data_dir,
        placeholder_policy=args.placeholders,
    )
    print(result.describe())
    return 0
