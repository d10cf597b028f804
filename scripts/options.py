"""Command-line options shared by subcommands: those that load bars into the catalog, and those
that run a node on live data (``paper``, ``live``)."""

from __future__ import annotations

import argparse
import re
from importlib import metadata
from pathlib import Path

from marketdata.catalog import DEFAULT_CATALOG
from marketdata.instruments import MARKETS
from marketdata.object_storage import is_url
from marketdata.validation import PLACEHOLDER_POLICIES


def add_bar_options(parser: argparse.ArgumentParser) -> None:
    """``--symbol``, ``--timeframe``, ``--market``, ``--data-dir`` and ``--placeholders``."""
    parser.add_argument("--symbol", required=True, help="unified symbol, e.g. BTC/USDT")
    parser.add_argument("--timeframe", required=True, help="bar interval in ccxt notation, e.g. 1m, 1h")
    parser.add_argument("--market", choices=MARKETS, default="spot", help="spot or USDT-M futures (default: spot)")
    parser.add_argument(
        "--data-dir", type=local_folder, default=DEFAULT_CATALOG,
        help=f"catalog directory, local (default: {DEFAULT_CATALOG}); copy it to object storage afterwards if wanted"
    )
    parser.add_argument(
        "--placeholders",
        choices=PLACEHOLDER_POLICIES,
        default="drop",
        help="what to do with flat zero-volume outage bars: drop them (default; they become gaps) or keep them",
    )


def local_folder(value: str) -> Path:
    """A catalog to write: a local folder, never a URL (writers lock and move local files; readers take s3:// URLs)."""
    if is_url(value):
        raise argparse.ArgumentTypeError(f"{value}: bars are written to a local catalog folder; copy it to object "
                                         "storage afterwards (e.g. `aws s3 sync`) and read it from there by URL")
    return Path(value)


def add_node_options(parser: argparse.ArgumentParser, command: str, sections: str) -> None:
    """``--model``, ``--symbol``, ``--market``, ``--config`` (a node TOML file with ``sections``),
    ``--run-dir``, ``--api-url``, ``--ws-url`` and ``--flatten-on-stop``/``--keep-positions``."""
    parser.add_argument("--model", type=Path, help="model artifact directory (from `nautilus-lstm train`)")
    parser.add_argument("--symbol", help="unified symbol, e.g. BTC/USDT (must be the model's)")
    parser.add_argument("--market", choices=MARKETS, help="spot or USDT-M futures (default: spot)")
    parser.add_argument("--config", type=Path, help=f"node TOML file: [{command}] (these options), {sections}")
    parser.add_argument("--run-dir", type=Path, help=f"run folder; an existing one resumes (default: runs/{command}-<UTC time>)")
    parser.add_argument("--api-url", help="Binance REST base URL instead of Binance's (passed to base_url_http)")
    parser.add_argument("--ws-url", help="Binance market-data stream base URL instead of Binance's (passed to the data "
                                         "client's base_url_ws; on USDT-M futures Binance's is the /market route)")
    flatten = parser.add_mutually_exclusive_group()
    flatten.add_argument("--flatten-on-stop", dest="flatten_on_stop", action="store_true", default=None,
                         help="close the position on SIGINT or SIGTERM (the default)")
    flatten.add_argument("--keep-positions", dest="flatten_on_stop", action="store_false",
                         help="leave the position open on SIGINT or SIGTERM")


def require_supported_nautilus(installed: str | None = None) -> None:
    """Refuse to run a node on a nautilus_trader older than the one this project pins (in
    pyproject.toml): older Binance adapters use routes Binance has retired, and fail against it."""
    supported = next(re.search(r"==\s*([\d.]+)", requirement)[1] for requirement in metadata.requires("nautilus-lstm")
                     if re.match(r"nautilus[_-]trader\b", requirement, re.IGNORECASE))
    installed = installed or metadata.version("nautilus_trader")
    if _release(installed) < _release(supported):
        raise ValueError(f"nautilus_trader {installed} is installed, but paper and live need {supported} or newer "
                         f"(older Binance adapters use routes Binance has retired): run `make install`")


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])
