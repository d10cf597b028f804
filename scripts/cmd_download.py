"""``nautilus-lstm download``: OHLCV history from an exchange, through ccxt, into the catalog."""

from __future__ import annotations

import argparse

import pandas as pd

from marketdata.download import DownloadRequest, download_ohlcv
from marketdata.exchange import RetryPolicy
from marketdata.timeframes import NANOS_PER_MILLI, parse_timeframe
from scripts.options import add_bar_options

_DEFAULT_RETRY = RetryPolicy()


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "download",
        help="download OHLCV history from an exchange into the catalog",
        description=(
            "Download complete bars from an exchange through ccxt, validate every page, and write the\n"
            "bars to a Nautilus ParquetDataCatalog, stamped at their close time.\n\n"
            "Re-running fetches only what the catalog lacks; a run stopped at any moment (even kill -9)\n"
            "leaves whole pages behind to resume from. Network errors and rate limits are retried with\n"
            "exponential backoff. Public endpoints only: no API keys are read."
        ),
        epilog="example: nautilus-lstm download --exchange binance --symbol BTC/USDT --timeframe 1m "
        "--since 2025-05-20 --until 2025-05-27\n"
        "         nautilus-lstm download --symbol BTC/USDT --timeframe 1h --since 30d --market futures",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--exchange",
        default="binance",
        help="ccxt exchange id (default: binance; with --market futures that is Binance USDT-M, ccxt's binanceusdm)",
    )
    add_bar_options(parser)
    parser.add_argument(
        "--since",
        required=True,
        type=parse_time_ms,
        help="first bar open time: a UTC date (2025-05-20), date and time (2025-05-20T12:00), "
        "or a span back from now (7d, 12h)",
    )
    parser.add_argument(
        "--until",
        type=parse_time_ms,
        help="stop before bars opening at this time, same forms as --since (default: up to the last complete bar)",
    )
    parser.add_argument(
        "--api-url",
        help="send every REST request to this scheme and host instead, keeping the paths "
        "(e.g. http://127.0.0.1:8080, for a proxy or a test server)",
    )
    parser.add_argument(
        "--max-retries",
        type=int,
        default=_DEFAULT_RETRY.max_retries,
        help=f"retries of a request after network errors or rate limits (default: {_DEFAULT_RETRY.max_retries})",
    )
    parser.add_argument(
        "--backoff",
        type=float,
        default=_DEFAULT_RETRY.backoff_s,
        metavar="SECONDS",
        help=f"wait before the first retry; each further retry waits twice as long, at most "
        f"{_DEFAULT_RETRY.max_backoff_s:g}s (default: {_DEFAULT_RETRY.backoff_s:g})",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    request = DownloadRequest(
        exchange=args.exchange,
        symbol=args.symbol,
        timeframe=args.timeframe,
        since_ms=args.since,
        until_ms=args.until,
        market=args.market,
        catalog_path=args.data_dir,
        api_url=args.api_url,
        placeholder_policy=args.placeholders,
    )
    result = download_ohlcv(request, RetryPolicy(max_retries=args.max_retries, backoff_s=args.backoff))
    print(result.describe())
    return 0


def parse_time_ms(text: str, now: pd.Timestamp | None = None) -> int:
    """Epoch ms of a UTC date or date-time, or of a span such as ``7d`` counted back from ``now``."""
    try:
        span = parse_timeframe(text)
    except ValueError:
        pass
    else:
        now = pd.Timestamp.now(tz="UTC") if now is None else now
        return int(now.timestamp() * 1000) - span.ms
    try:
        moment = pd.Timestamp(text)
    except ValueError:
        moment = None
    if moment is None or pd.isna(moment):
        raise argparse.ArgumentTypeError(
            f"bad time {text!r}: expected a date (2025-05-20), a date and time (2025-05-20T12:00, UTC unless an "
            "offset is given) or a span back from now (7d, 12h, 90m)"
        )
    moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
    return int(moment.value // NANOS_PER_MILLI)
