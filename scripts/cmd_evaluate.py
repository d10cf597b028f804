"""``nautilus-lstm evaluate``: the model against baselines, out of sample, fold by fold."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="walk-forward out-of-sample evaluation of a model config against naive and classical baselines, "
        "for returns and volatility",
        description=(
            "Retrain the artifact's config on each walk-forward fold (once per seed) and forecast the fold's "
            "test block; fit every baseline once per fold on the same past and score all on the same test rows.\n\n"
            "Returns (the h-bar log return): zero return (random walk), drift, momentum, ridge and LightGBM on "
            "the same features, AR, and Prophet (trend + seasonality fitted on the training span's log close; "
            "its forecast is its fitted path's change over the next h bars). Metrics: MAE, RMSE, RMSE ratio vs "
            "the random walk, directional accuracy beside the majority rate, IC, rank IC, Diebold-Mariano "
            "p-value vs the random walk.\n\n"
            "Volatility (the log realized volatility over the next h bars), in metrics.json's volatility section: "
            "EWMA (RiskMetrics), HAR-RV, GARCH(1,1), a constant, and the network when its config has a volatility "
            "head. Metrics: QLIKE, RMSE of log volatility, Mincer-Zarnowitz R², Diebold-Mariano p-values vs "
            "EWMA and vs HAR.\n\n"
            "Everything as mean and std over seeds, plus per fold; a verdict on both targets (does the network "
            "beat its best baseline, with p-values), the seconds each model took, and plots. forecasts.parquet holds "
            "every model's forecast per test row beside what came true; report.html draws them."
        ),
        epilog="example: nautilus-lstm evaluate artifacts/btc-1m --seeds 3 --out reports/eval-btc-1m",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("artifact", type=Path, help="a model artifact directory from `nautilus-lstm train`")
    parser.add_argument("--start", help="first bar close to evaluate on, ISO date/time UTC (default: the artifact's)")
    parser.add_argument("--end", help="last bar close, ISO date/time UTC (default: the artifact's)")
    parser.add_argument("--seeds", type=int, default=3, help="LSTM trainings per fold, with consecutive seeds (default: 3)")
    parser.add_argument("--out", type=Path, help="report folder (default: ARTIFACT/evaluation)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from models.evaluate import evaluate, summary_table
    from reporting.html import write_report_html

    if args.seeds < 1:
        raise ValueError("--seeds must be at least 1")
    out = args.out or args.artifact / "evaluation"
    report = evaluate(args.artifact, start=args.start, end=args.end, seeds=args.seeds, out=out)
    print(summary_table(report))
    print(report["verdict"])
    print(f"report written to {write_report_html(out)} (metrics.json, forecasts.parquet beside it)")
    return 0
