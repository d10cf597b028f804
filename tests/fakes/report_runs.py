"""Small real output folders for the report tests: a backtest of a tiny model on 36 hours of the
7-day BTC/USDT fixture, and a sweep.json written by hand in the sweeps' schema."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tests.fakes.training import BAR_TYPE, tiny_config

# The first bar closes at midnight: the edge where stats.json's first day folds in that bar.
START = pd.Timestamp("2025-05-25", tz="UTC")
END = pd.Timestamp("2025-05-26 12:00", tz="UTC")


def tiny_backtest(root: Path, data_file: Path) -> Path:
    """A backtest folder (``backtests.report.write_report``) of a one-epoch model with a volatility
    head, trained on the days before; a tiny entry threshold so that it trades (mechanics, not skill)."""
    from backtests.report import write_report
    from backtests.runner import BacktestSettings, run_all
    from marketdata.history import import_klines
    from models.train import train_model

    catalog, model = root / "catalog", root / "model"
    import_klines(data_file, exchange="binance", symbol="BTC/USDT", timeframe="1m", market="spot", catalog_path=catalog)
    train_model(tiny_config(catalog, max_epochs=1).override(data={"start": "2025-05-20", "end": "2025-05-24 12:00"}), model)
    settings = BacktestSettings(model_path=model, catalog=catalog, bar_type=BAR_TYPE, start=START, end=END,
                                strategy={"entry_threshold": 1e-5})
    bars, runs = run_all(settings)
    write_report(root / "backtest", bars, runs, settings)
    return root / "backtest"


def hand_made_sweep(folder: Path, with_optional: bool = True) -> Path:
    """A sweep.json of 12 trials (one failed, one pruned); ``with_optional`` False leaves out every
    optional key (best, importances, deflated_sharpe, pbo, locked_segment, verdict)."""
    trials = [{"number": n, "state": "complete", "params": {"hidden_size": 8 * (n % 4 + 1), "entry_margin": 0.0005 * (n % 3)},
               "objective": 0.1 * n - 0.4 * (n % 3), "window_returns": [0.01 * (n % 5 - 2), -0.002 * n]} for n in range(10)]
    trials += [{"number": 10, "state": "failed", "params": {"hidden_size": 64}, "objective": None, "error": "boom"},
               {"number": 11, "state": "pruned", "params": {"hidden_size": 16}, "objective": None}]
    sweep: dict = {"objective": "sharpe", "trials": trials}
    if with_optional:
        sweep |= {
            "best": {"number": 9, "objective": 0.9, "params": trials[9]["params"]},
            "importances": {"hidden_size": 0.7, "entry_margin": 0.3},
            "deflated_sharpe": {"sharpe": 0.12, "trials": 10, "sharpe_variance": 0.004, "expected_max_sharpe": 0.09,
                                "observations": 60, "skewness": -0.2, "kurtosis": 4.1, "deflated_sharpe": 0.71, "survives": False},
            "pbo": {"pbo": 0.43, "logits": [-1.2, -0.3, 0.1, 0.5, 0.8, -0.7, 1.4], "splits": 8, "combinations": 7},
            "locked_segment": {"start": "2025-08-01", "end": "2025-08-14", "stats": {"sharpe": 0.4, "total_return": 0.01}},
            "verdict": "The winner does not survive the deflated Sharpe ratio: no evidence of skill beyond luck.",
        }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sweep.json").write_text(json.dumps(sweep))
    return folder
