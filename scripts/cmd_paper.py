"""``nautilus-lstm paper``: the strategy on live Binance data, orders filled by Nautilus's sandbox."""

from __future__ import annotations

import argparse

from scripts.options import add_node_options, require_supported_nautilus


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "paper",
        help="paper-trade a model artifact on live Binance data with Nautilus's sandbox execution",
        description=(
            "Start a Nautilus TradingNode: Nautilus's Binance data client (spot or USDT-M futures), its sandbox "
            "execution client (simulated market-order fills at the latest bar's close, the starting balance and the venue's fees) "
            "and LSTMStrategy. The model warms up from the exchange's recent history, so the first live bar can "
            "trade; every decision is logged on one line and appended to predictions.csv in the run folder. A "
            "dropped stream is back-filled through REST; a gap the exchange cannot fill, or a silent feed, pauses "
            "trading. Ctrl-C (SIGINT) or SIGTERM stops it: positions are flattened (unless --keep-positions), the "
            "strategy's state is saved for a restart with the same --run-dir, and fills.csv, positions.csv, "
            "predictions.parquet and stats.json are written. No API keys are needed."
        ),
        epilog=(
            "example: nautilus-lstm paper --model artifacts/btc-1m --symbol BTC/USDT\n"
            "         nautilus-lstm paper --model artifacts/btc-perp-1m --symbol BTC/USDT --market futures --balance 5000USDT\n"
            "         nautilus-lstm paper --model artifacts/btc-1m --symbol BTC/USDT --config node.toml --run-dir runs/btc"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_node_options(parser, "paper", "[strategy], [node], [sandbox]")
    parser.add_argument("--balance", help="starting balance in the quote currency (default: 10000USDT)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    require_supported_nautilus()
    from nodes.paper import PaperSettings, run_paper
    from scripts.node_config import command_settings, read_config

    raw = read_config(args.config) if args.config else {}
    run_dir = run_paper(PaperSettings(**command_settings(raw, "paper", args, ("strategy", "node", "sandbox"))))
    print(f"run folder: {run_dir}")
    return 0
