"""``nautilus-lstm backtest``: the strategy and its benchmarks on Nautilus's engine, with a report."""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path

import pandas as pd

from backtests.feed import DEFAULT_CHUNK_BARS
from marketdata.catalog import catalog_location
from strategies.decision import SizingConfig
from strategies.volatility import DEFAULT_TARGET_VOLATILITY, VolatilityGateConfig

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "backtest",
        help="backtest a model artifact with Nautilus, beside buy-and-hold, EMA-cross, ridge and LightGBM benchmarks",
        description=(
            "Run LSTMStrategy on the catalog's bars with Nautilus's BacktestEngine and the venue's fees, then run "
            "the benchmarks on the same bars and engine: buy-and-hold, Nautilus's EMA-cross example, and the same "
            "decision rule and sizing fed by the artifact's ridge and LightGBM baselines (fitted on the same rows and "
            "features), and, with a model that forecasts volatility, a "
            "volatility-targeted buy-and-hold (what sizing alone is worth). Orders fill on the bar after the decision. "
            "Writes stats.json, equity.parquet (each strategy's equity and returns per bar), fills.csv, positions.csv, "
            "predictions.parquet, report.html (every chart, self-contained; `nautilus-lstm report` rewrites it), "
            "equity.png and trades.png, and ends with a verdict: each strategy's round trips, the return net of fees "
            "against each benchmark, the forecasts scored on the traded bars against the random walk and EWMA, and "
            "where the report is. "
            "With --walk-forward, retrain on a trailing window before each test window and stitch the windows."
        ),
        epilog=(
            "example: nautilus-lstm backtest --model artifacts/btc-1m --start 2025-08-01 --end 2025-08-18 --out reports/bt\n"
            "         nautilus-lstm backtest --model artifacts/btc-1m --walk-forward --train-days 30 --test-days 7 --out reports/wf"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", type=Path, required=True, help="model artifact directory (from `nautilus-lstm train`)")
    parser.add_argument("--catalog", type=catalog_location,
                        help="catalog directory, or an s3://bucket/prefix URL read with the AWS_* environment variables "
                             "(default: the one the model was trained on)")
    parser.add_argument(
        "--bar-type", action="append",
        help="bars to trade on (default: the artifact's bar types); repeat it to trade several instruments together "
        "in one engine and one account (backtests.pooled); a model with cross-asset features trades all its bar types",
    )
    parser.add_argument(
        "--start", help="first bar close, ISO date/time UTC (default: the first bar after the model's training data)"
    )
    parser.add_argument("--end", help="last bar close, ISO date/time UTC (default: the last)")
    parser.add_argument("--out", type=Path, default=Path("reports/backtest"), help="report folder (default: reports/backtest)")
    parser.add_argument("--balance", type=float, default=10_000.0, help="starting balance in quote currency (default: 10000)")
    parser.add_argument("--notional", type=float,
                        help=f"position size in quote currency (default: {SizingConfig().order_notional:g})")
    parser.add_argument("--entry-threshold", type=float, help="forecast (log return) needed to trade (default: round-trip taker fee + margin)")
    gate = VolatilityGateConfig()
    parser.add_argument(
        "--target-volatility", type=float, metavar="SIGMA",
        help="size each position to this annualized volatility, e.g. 0.5 for 50%%: notional = --notional × SIGMA / the "
             "model's volatility forecast annualized (std of the h-bar log return × sqrt(bars a year / h)), capped at "
             "max_notional; needs a model with the volatility head (default: off, fixed notional). The volatility-targeted "
             f"buy-and-hold benchmark uses the same target (default: {DEFAULT_TARGET_VOLATILITY:g})",
    )
    parser.add_argument(
        "--volatility-gate", type=_multiple, metavar="M",
        help="add no exposure while the model's volatility forecast exceeds M × its median over the last "
             "--volatility-gate-window bars: no new position, and a reversal only closes (exits always go out; the "
             f"decision log says why); 'off' for no gate (default: {gate.volatility_gate:g}, with a model that "
             "forecasts volatility)",
    )
    parser.add_argument("--volatility-gate-window", type=int, metavar="BARS",
                        help=f"bars in the volatility gate's trailing median (default: {gate.volatility_gate_window})")
    parser.add_argument("--maker-fee", type=float, help="override the venue's maker fee rate (default: the instrument's)")
    parser.add_argument("--taker-fee", type=float, help="override the venue's taker fee rate (default: the instrument's)")
    parser.add_argument(
        "--chunk-bars", type=_positive_int, default=DEFAULT_CHUNK_BARS, metavar="N",
        help="bars read from the catalog at a time: each engine is fed the range chunk by chunk, so memory does not "
             f"grow with the range (default: {DEFAULT_CHUNK_BARS})",
    )
    parser.add_argument("--walk-forward", action="store_true", help="retrain on a trailing window before each test window")
    parser.add_argument("--train-days", type=float, default=30.0, help="with --walk-forward: days to train on (default: 30)")
    parser.add_argument("--test-days", type=float, default=7.0, help="with --walk-forward: days per test window (default: 7)")
    parser.add_argument(
        "--workers", type=int, metavar="N",
        help="with --walk-forward: train the windows' models as N tasks at a time on a local Ray started by the "
             "command (default: the machine's cores; 1: one by one in this process, no Ray); trading stays in window "
             "order here, so the report is the same whatever N",
    )
    parser.add_argument(
        "--ray-address", metavar="ADDR",
        help="with --walk-forward: train the windows' models on the Ray cluster at ADDR (e.g. 127.0.0.1:6379, or "
             "'auto' for the one started on this machine with `ray start`) instead of a local Ray; --out must be on a filesystem every node sees, under the "
             "same path, and the catalog too, or in object storage (--catalog s3://...)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from backtests.report import stats_table
    from backtests.runner import BacktestSettings
    from backtests.verdict import verdict
    from models.artifact import ArtifactError, load_artifact
    from reporting.html import write_report_html

    artifact = load_artifact(args.model)
    bar_types = tuple(args.bar_type or artifact.bar_types)
    for bar_type in bar_types:  # every one traded is one the model was trained on
        if bar_type not in artifact.bar_types:
            raise ArtifactError(f"{args.model}: trained on {', '.join(artifact.bar_types)} bars, not {bar_type}")
    if artifact.config.data.cross_asset and set(bar_types) != set(artifact.bar_types):
        raise ArtifactError(f"{args.model} uses cross-asset features ([data] cross_asset): each instrument's forecast needs "
                            f"every instrument's bars, so it trades {', '.join(artifact.bar_types)} together, not "
                            f"{', '.join(bar_types)} alone")
    # The last training bar of any instrument traded: after it, no traded bar was seen in training.
    trained_until = max(pd.Timestamp(artifact.instrument(b).data["last_bar_close"]) for b in bar_types)
    # By default trade only bars the model has never seen: those after its training data.
    start = _time(args.start) if args.start else None if args.walk_forward else trained_until + pd.Timedelta(1, unit="ns")
    given = {"order_notional": args.notional, "entry_threshold": args.entry_threshold, "target_volatility": args.target_volatility,
             "volatility_gate": args.volatility_gate, "volatility_gate_window": args.volatility_gate_window}
    strategy = {name: None if value == "off" else value for name, value in given.items() if value is not None}
    settings = BacktestSettings(
        model_path=args.model,
        catalog=args.catalog or artifact.config.data.catalog,
        bar_types=bar_types,
        start=start,
        end=_time(args.end),
        starting_balance=args.balance,
        maker_fee=args.maker_fee,
        taker_fee=args.taker_fee,
        strategy=strategy,
        chunk_bars=args.chunk_bars,
    )
    if (args.workers is not None or args.ray_address) and not args.walk_forward:
        raise ValueError("--workers and --ray-address spread the windows of --walk-forward; a plain backtest runs here")
    # The runs' frames are gone once it returns: report.html, the command's peak, reads the folder's files.
    report = _run_and_report(args, settings)
    print(stats_table(report))
    write_report_html(args.out)
    if report["in_sample"]:
        log.warning("these results are IN-SAMPLE: the bars traded overlap the model's training data (stats.json: in_sample, "
                    "training); use --start after %s, or --walk-forward", trained_until.isoformat())
    print("\n".join(verdict(args.out)))
    return 0


def _run_and_report(args: argparse.Namespace, settings) -> dict:
    """Run the backtest ``args`` ask for (walk-forward, pooled, or plain) and write its report files; the stats."""
    if args.walk_forward:
        from backtests.parallel import Workers

        workers = Workers(count=args.workers, address=args.ray_address)
        if len(settings.bar_types) > 1:
            from backtests.walk_forward_pooled import run_pooled_walk_forward

            return run_pooled_walk_forward(settings, args.train_days, args.test_days, args.out, workers)
        from backtests.walk_forward import run_walk_forward

        return run_walk_forward(settings, args.train_days, args.test_days, args.out, workers)
    if len(settings.bar_types) > 1:
        from backtests.pooled import run_pooled, write_pooled_report

        bars, runs = run_pooled(settings)
        return write_pooled_report(args.out, bars, runs, settings)
    from backtests.report import write_report
    from backtests.runner import run_all

    bars, runs = run_all(settings)
    return write_report(args.out, bars, runs, settings)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")
    return value


def _multiple(text: str) -> float | str:
    """A positive multiple, or "off"."""
    if text.lower() == "off":
        return "off"
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0:
        raise argparse.ArgumentTypeError(f"not a positive multiple or 'off': {text!r}")
    return value


def _time(text: str | None) -> pd.Timestamp | None:
    if not text:
        return None
    try:
        return pd.Timestamp(text, tz="UTC")
    except ValueError:
        raise ValueError(f"not a date or time: {text!r} (use e.g. 2025-08-01 or 2025-08-01T12:00)") from None
