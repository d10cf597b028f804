"""``nautilus-lstm report``: write (again) the report.html of an output folder."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write the self-contained report.html of a backtest, walk-forward, evaluate or sweep output folder",
        description=(
            "Build DIR/report.html from the files in DIR alone, as backtest, evaluate and sweep do at the end of a "
            "run: useful after an upgrade, or for a folder written before report.html existed.\n\n"
            "What the folder is comes from its files: sweep.json (a sweep: leaderboard, parameter importances, "
            "deflated Sharpe ratio, PBO, locked segment), metrics.json (evaluate: metrics, IC per fold, forecasts "
            "against what came true from forecasts.parquet), stats.json (a backtest: statistics, equity and drawdown "
            "beside the benchmarks from equity.parquet, fills on price, the forecasts against realized returns, "
            "rolling IC, the forecast distribution against the entry threshold, volatility forecast against realized, "
            "and the decisions the risk gate took, from predictions.parquet; windows.json adds the walk-forward "
            "windows).\n\n"
            "The page embeds plotly.js, so it opens offline in any browser; long series are thinned to a few "
            "thousand points per line (each stretch's high and low kept)."
        ),
        epilog="example: nautilus-lstm report reports/backtest\n         nautilus-lstm report artifacts/btc-1m/evaluation",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("folder", type=Path, metavar="DIR", help="an output folder of backtest, evaluate or sweep")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from reporting.html import write_report_html

    if not args.folder.is_dir():
        raise ValueError(f"{args.folder} is not a folder")
    print(f"report written to {write_report_html(args.folder)}")
    return 0
