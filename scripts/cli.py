"""``nautilus-lstm``: one command, with a subcommand for each job.

This module is the one place that sets up logging; library code only calls
``logging.getLogger(__name__)``. Each subcommand lives in its own ``scripts/cmd_*.py``
with a ``register(subparsers)`` function.
"""

from __future__ import annotations

import argparse
import logging
import sys

from tqdm.contrib.logging import logging_redirect_tqdm

from scripts import (
    cmd_backtest,
    cmd_download,
    cmd_evaluate,
    cmd_import_klines,
    cmd_live,
    cmd_paper,
    cmd_report,
    cmd_sweep,
    cmd_train,
)

SUBCOMMANDS = [cmd_download, cmd_import_klines, cmd_train, cmd_evaluate, cmd_backtest, cmd_sweep, cmd_report, cmd_paper, cmd_live]

log = logging.getLogger("nautilus_lstm")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nautilus-lstm",
        description="Train an LSTM price forecaster on crypto history and trade it with NautilusTrader.",
        epilog="Run `nautilus-lstm SUBCOMMAND --help` for the options of each subcommand.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages too")
    subparsers = parser.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)
    for module in SUBCOMMANDS:
        module.register(subparsers)
    return parser


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    with logging_redirect_tqdm():
        try:
            return args.run(args) or 0
        except (ValueError, OSError) as exc:
            # Bad input: say what and where, without a traceback.
            log.error("%s", exc)
            return 2
        except KeyboardInterrupt:
            log.error("interrupted")
            return 130


if __name__ == "__main__":
    sys.exit(main())
