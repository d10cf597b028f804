"""Command-line options every subcommand that loads bars into the catalog shares."""

from __future__ import annotations

import argparse
from pathlib import Path

from backtests.catalog import DEFAULT_CATALOG
from backtests.instruments import MARKETS
from backtests.validation import PLACEHOLDER_POLICIES


def add_bar_options(parser: argparse.ArgumentParser) -> None:
    """``--symbol``, ``--timeframe``, ``--market``, ``--data-dir`` and ``--placeholders``."""
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
