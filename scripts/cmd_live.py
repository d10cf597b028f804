"""``nautilus-lstm live``: the strategy trading on Binance (its test environments unless told otherwise), behind safety rails."""

from __future__ import annotations

import argparse
from pathlib import Path

from scripts.options import add_node_options, require_supported_nautilus


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "live",
        help="trade a model artifact on Binance (testnet or demo by default) through Nautilus's Binance clients",
        description=(
            "Start a Nautilus TradingNode with Nautilus's Binance data and execution clients (spot or USDT-M futures) "
            "and LSTMStrategy behind safety rails: max order and position notional, max orders per minute, a daily "
            "loss limit, the drawdown kill switch and a kill file (<run folder>/KILL by default: create it to "
            "flatten and stop). Nautilus reconciles orders, fills and positions with Binance at start, so a restart "
            "picks up an open position. Spot trades on Binance's spot testnet and futures on its demo environment by "
            "default; mainnet needs --mainnet and --i-understand-this-trades-real-money, and explicit limits in "
            "--config. API keys (Ed25519, recommended, or HMAC) come from the environment only and are never printed "
            "or logged: BINANCE_TESTNET_API_KEY/_SECRET on the spot testnet, BINANCE_FUTURES_TESTNET_API_KEY/_SECRET "
            "on the futures testnet, BINANCE_DEMO_API_KEY/_SECRET on the demo environment, "
            "BINANCE_API_KEY/_SECRET on mainnet. Before it starts, it prints what it will do, with the routes its "
            "clients use; --dry-run-config prints that and exits (--catalog: offline, with the catalog's instrument)."
        ),
        epilog=(
            "example: nautilus-lstm live --model artifacts/btc-1m --symbol BTC/USDT --config node.toml --dry-run-config\n"
            "         nautilus-lstm live --model artifacts/btc-1m --symbol BTC/USDT --dry-run-config --catalog data/catalog\n"
            "         nautilus-lstm live --model artifacts/btc-1m --symbol BTC/USDT --config node.toml\n"
            "         nautilus-lstm live --model artifacts/btc-perp-1m --symbol BTC/USDT --market futures --leverage 2 --config node.toml\n"
            "         nautilus-lstm live --config node.toml --mainnet --i-understand-this-trades-real-money"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_node_options(parser, "live", "[strategy], [limits], [node]")
    network = parser.add_mutually_exclusive_group()
    network.add_argument("--testnet", dest="network", action="store_const", const="testnet",
                         help="trade on Binance's testnet (the default on spot)")
    network.add_argument("--demo", dest="network", action="store_const", const="demo",
                         help="trade on Binance's demo environment (the default on futures)")
    network.add_argument("--mainnet", dest="network", action="store_const", const="mainnet",
                         help="trade on Binance itself, with real money (needs --i-understand-this-trades-real-money)")
    parser.add_argument("--i-understand-this-trades-real-money", dest="real_money", action="store_true",
                        help="acknowledge that --mainnet trades real money (only ever taken from the command line)")
    parser.add_argument("--ws-api-url", help="Binance WebSocket API URL instead of Binance's (user data; passed to base_url_ws)")
    parser.add_argument("--ws-user-url", help="futures: the user-data stream base URL instead of Binance's /private route "
                                              "(passed to base_url_ws_stream)")
    parser.add_argument("--leverage", type=int, help="futures leverage, set on Binance at start (default: 1)")
    parser.add_argument("--dry-run-config", action="store_true", help="print what the node would do, and exit")
    parser.add_argument("--catalog", type=Path,
                        help="with --dry-run-config: read the instrument from this catalog (as `download` or "
                             "`import-klines` stored it) instead of Binance's exchangeInfo, offline")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    require_supported_nautilus()
    from nodes.live import LiveSettings, prepare_live, run_live
    from scripts.node_config import command_settings, read_config

    raw = read_config(args.config) if args.config else {}
    settings = LiveSettings(**command_settings(raw, "live", args, ("strategy", "limits", "node")), real_money=args.real_money)
    plan = prepare_live(settings, dry_run=args.dry_run_config, catalog=args.catalog)
    print(plan.text, flush=True)
    if args.dry_run_config:
        return 0
    run_live(plan)
    print(f"run folder: {plan.run.run_dir}")
    return 0
