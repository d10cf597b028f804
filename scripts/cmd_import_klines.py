"""``nautilus-lstm import-klines``: a Binance kline file into the catalog."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from marketdata.history import import_klines
from scripts.options import add_bar_options

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "import-klines",
        help="import a Binance kline file (CSV or CSV.gz) into the catalog",
        description=(
            "Read a Binance kline file, validate every bar, and write the bars to a Nautilus\n"
            "ParquetDataCatalog, stamped at their close time. Accepts the 6- and 12-column layouts, with\n"
            "or without a header (a header's names say which column is which, in any order), open times\n"
            "in ms or µs. Nothing is written unless every bar passes. Bars the catalog already holds are\n"
            "compared and skipped; a file that disagrees with them is refused. Safe to run beside other\n"
            "imports and downloads into the same catalog."
        ),
        epilog="example: nautilus-lstm import-klines ../shared/data/btcusdt_1m_2025-05-20_2025-08-18.csv.gz "
        "--exchange binance --symbol BTC/USDT --timeframe 1m",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("path", type=Path, help="the kline file (.csv or .csv.gz)")
    parser.add_argument("--exchange", default="binance", help="exchange the data came from (default: binance)")
    add_bar_options(parser)
    parser.add_argument(
        "--force",
        action="store_true",
        help="import prices that look like another instrument's (more than 3x off its price filters or "
        "the bars held next to them); never overrides a disagreement with bars already held",
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
        force=args.force,
    )
    print(result.describe())
    return 0
