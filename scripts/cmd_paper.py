"""``nautilus-lstm paper``: the strategy on live Binance data, orders filled by Nautilus's sandbox."""

from __future__ import annotations

import argparse
from pathlib import Path


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
    parser.add_argument("--model", type=Path, help="model artifact directory (from `nautilus-lstm train`)")
    parser.add_argument("--symbol", help="unified symbol, e.g. BTC/USDT (must be the model's)")
    parser.add_argument("--market", choices=("spot", "futures"), help="spot or USDT-M futures (default: spot)")
    parser.add_argument("--balance", help="starting balance in the quote currency (default: 10000USDT)")
    parser.add_argument("--config", type=Path, help="node TOML file: [paper] (these options), [strategy], [node], [sandbox]")
    parser.add_argument("--run-dir", type=Path, help="run folder; an existing one resumes (default: runs/paper-<UTC time>)")
    parser.add_argument("--api-url", help="Binance REST base URL instead of Binance's (passed to base_url_http)")
    parser.add_argument("--ws-url", help="Binance market-stream base URL instead of Binance's (passed to base_url_ws)")
    flatten = parser.add_mutually_exclusive_group()
    flatten.add_argument("--flatten-on-stop", dest="flatten_on_stop", action="store_true", default=None,
                         help="close the position when stopping (the default)")
    flatten.add_argument("--keep-positions", dest="flatten_on_stop", action="store_false",
                         help="leave the position open when stopping")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from strategies.node import PaperSettings, command_options, read_config, run_paper

    raw = read_config(args.config) if args.config else {}
    paper = command_options(raw, "paper", args)
    run_dir = paper.pop("run_dir", None)
    settings = PaperSettings(
        model_path=Path(paper.pop("model")),
        run_dir=Path(run_dir) if run_dir else None,
        log_level="DEBUG" if args.verbose else "INFO",
        strategy=raw.get("strategy", {}),
        node=raw.get("node", {}),
        sandbox=raw.get("sandbox", {}),
        **paper,
    )
    run_dir = run_paper(settings)
    print(f"run folder: {run_dir}")
    return 0
