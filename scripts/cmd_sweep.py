"""``nautilus-lstm sweep CONFIG.toml``: an Optuna search of walk-forward backtests run on Ray."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="search models, features, horizon, bar type and trading rule by walk-forward backtests (Optuna on Ray)",
        description=(
            "Search the config's space with Optuna (TPE, pruning on per-window values): each trial is one Ray task "
            "running a walk-forward backtest (retrain per window, trade out of sample, net of fees) on windows that "
            "end before a final locked segment, scored by the objective (Sharpe, IC or volatility QLIKE). Several "
            "instruments in [data] bar_types make every trial pooled: one model on all of them per window, all traded "
            "in one account, the Sharpe ratio the account's. At the end "
            "the winner is retrained before the locked segment and trades it once. Writes FOLDER/sweep.json (best, "
            "trials, deflated_sharpe, pbo, locked_segment, importances, verdict), report.html, leaderboard.png and "
            "window_returns.png; the study lives in FOLDER/study.db (or [sweep] storage). Run the same command "
            "again to resume after Ctrl-C, a crash or kill -9: finished trials are kept, unfinished ones rerun. "
            "The config's format: sweeps/config.py; an example: sweeps/example.toml."
        ),
        epilog=(
            "examples:\n"
            "  nautilus-lstm sweep sweeps/example.toml --out reports/sweep-example --workers 2\n"
            "  nautilus-lstm sweep sweeps/btc_eth_1h.toml --out reports/sweep-btc-eth-1h --workers 2   # pooled BTC+ETH\n"
            "  ray start --head --port 6379 --num-cpus 8   # then, on each other machine: ray start --address HEAD:6379\n"
            "  nautilus-lstm sweep my-sweep.toml --out /shared/sweeps/run1 --ray-address HEAD:6379\n"
            "  optuna-dashboard sqlite:///reports/sweep-example/study.db   # watch or browse the study"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", type=Path, metavar="CONFIG.toml", help="the sweep config (see sweeps/example.toml)")
    parser.add_argument("--out", type=Path,
                        help="sweep folder: report, trials' models, study.db; an existing one resumes "
                             "(default: reports/sweep-<config name>)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int,
                       help="trials at once on a Ray started here, one CPU each (default: this machine's cores)")
    where.add_argument("--ray-address", metavar="HOST:PORT",
                       help="run on the Ray cluster there (`ray start --head`) instead; its CPUs set the trials at once. "
                            "--out must be a path every node sees; the catalog too, or an s3:// URL ([data] catalog)")
    parser.add_argument("--trials", type=int, help="finished trials wanted (default: the config's [sweep] trials)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from backtests.parallel import Workers
    from reporting.html import write_report_html
    from sweeps.config import load_sweep_config
    from sweeps.driver import run_sweep

    config = load_sweep_config(args.config)
    if args.trials is not None:
        if args.trials < 1:
            raise ValueError(f"--trials must be >= 1, not {args.trials}")
        config = dataclasses.replace(config, sweep=dataclasses.replace(config.sweep, trials=args.trials))
    folder = args.out or Path("reports") / f"sweep-{args.config.stem}"
    report = run_sweep(config, folder, Workers(count=args.workers, address=args.ray_address))
    print(json.dumps({"best": report["best"], "locked_segment": report["locked_segment"] and {
        k: report["locked_segment"][k] for k in ("objective", "window")}}, indent=1))
    print(report["verdict"])
    print(f"report written to {write_report_html(folder)} (sweep.json, study.db and plots beside it)")
    return 0
