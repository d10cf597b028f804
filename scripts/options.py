"""Command-line options shared by subcommands: those that load bars into the catalog, and those
that run a node on live data (``paper``, ``live``)."""

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


def add_node_options(parser: argparse.ArgumentParser, command: str, sections: str) -> None:
    """``--model``, ``--symbol``, ``--market``, ``--config`` (a node TOML file with ``sections``),
    ``--run-dir``, ``--api-url``, ``--ws-url`` and ``--flatten-on-stop``/``--keep-positions``."""
    parser.add_argument("--model", type=Path, help="model artifact directory (from `nautilus-lstm train`)")
    parser.add_argument("--symbol", help="unified symbol, e.g. BTC/USDT (must be the model's)")
    parser.add_argument("--market", choices=MARKETS, help="spot or USDT-M futures (default: spot)")
    parser.add_argument("--config", type=Path, help=f"node TOML file: [{command}] (these options), {sections}")
    parser.add_argument("--run-dir", type=Path, help=f"run folder; an existing one resumes (default: runs/{command}-<UTC time>)")
    parser.add_argument("--api-url", help="Binance REST base URL instead of Binance's (passed to base_url_http)")
    parser.add_argument("--ws-url", help="Binance stream base URL instead of Binance's (passed to base_url_ws)")
    flatten = parser.add_mutually_exclusive_group()
    flatten.add_argument("--flatten-on-stop", dest="flatten_on_stop", action="store_true", default=None,
                         help="close the position on SIGINT or SIGTERM (the default)")
    flatten.add_argument("--keep-positions", dest="flatten_on_stop", action="store_false",
                         help="leave the position open on SIGINT or SIGTERM")
