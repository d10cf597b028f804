"""``nautilus-lstm train``: fit the LSTM forecaster and write a model artifact."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from models.config import DEFAULT_CONFIG, load_config


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the LSTM forecaster on bars from the catalog and write a model artifact",
        description=(
            "Build features from the catalog's bars, fit the LSTM on the past and early-stop it on the most "
            "recent validation share (with a purge-and-embargo gap between them), and write an artifact "
            "directory: weights, feature spec, fitted scaler, full config, data fingerprint, metrics and "
            "library versions. Re-running with the same --out resumes from the last epoch's checkpoint. "
            f"Without --config the shipped default is used ({DEFAULT_CONFIG.name}); flags override it."
        ),
        epilog=(
            "example: nautilus-lstm train --bar-type BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL --out artifacts/btc-1m\n"
            "         nautilus-lstm train --bar-type BTCUSDT.BINANCE-1-HOUR-LAST-EXTERNAL "
            "--bar-type ETHUSDT.BINANCE-1-HOUR-LAST-EXTERNAL --out artifacts/btc-eth-1h"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, help="a TOML training config (default: the shipped one)")
    parser.add_argument("--catalog", help="catalog directory, or an s3://bucket/prefix URL read with the AWS_* "
                                           "environment variables (config [data] catalog)")
    parser.add_argument(
        "--bar-type", action="append",
        help="e.g. BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL; repeat it to pool several instruments of one timeframe "
        "into one model (config [data] bar_type / bar_types)",
    )
    parser.add_argument("--start", help="first bar close to use, ISO date/time UTC (config [data] start)")
    parser.add_argument("--end", help="last bar close to use, ISO date/time UTC (config [data] end)")
    parser.add_argument(
        "--holdout-days", type=float,
        help="keep the last N days out of training, for an out-of-sample backtest (config [data] holdout_days)",
    )
    parser.add_argument("--max-epochs", type=int, help="epoch limit (config [training] max_epochs)")
    parser.add_argument("--seed", type=int, help="random seed (config [training] seed)")
    parser.add_argument(
        "--search-trials", type=int,
        help="Optuna hyperparameter search with N trials (TPE sampler seeded with --seed, median pruning on each "
        "epoch's validation loss) over a small space, judged on the validation rows only; the artifact keeps the "
        "winner and records every trial under metrics.search (config [training] search_trials)",
    )
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where to train (config [training] device)")
    parser.add_argument("--out", type=Path, required=True, help="the artifact directory to write")
    parser.set_defaults(run=run)


def config_from_args(args: argparse.Namespace):
    return load_config(args.config).override(
        data={"catalog": args.catalog, "bar_types": tuple(args.bar_type or ()), "start": args.start, "end": args.end,
              "holdout_days": args.holdout_days},
        training={"max_epochs": args.max_epochs, "seed": args.seed, "device": args.device,
                  "search_trials": args.search_trials},
    )


def run(args: argparse.Namespace) -> int:
    from models.train import train_model  # torch loads only for the subcommands that need it

    artifact = train_model(config_from_args(args), args.out)
    pooled = len(artifact.instruments) > 1
    for bar_type in artifact.bar_types:
        validation = artifact.metrics["validation"][bar_type] if pooled else artifact.metrics["validation"]
        print(f"{bar_type} validation ({artifact.metrics['best_epoch']} epochs kept): {json.dumps(_summary(validation))}")
    print(f"artifact written to {args.out}")
    return 0


def _summary(validation: dict) -> dict:
    summary = {key: validation[key] for key in ("rmse_ratio_vs_zero", "directional_accuracy", "majority_rate", "ic") if key in validation}
    if "volatility" in validation:
        summary["volatility"] = {key: validation["volatility"][key] for key in ("qlike", "rmse_log", "mz_r2")}
    return summary
