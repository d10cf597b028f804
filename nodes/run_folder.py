"""What paper and live nodes share: the run folder's lifecycle, building and running the node,
the strategy's settings on live data, and the log.

The run folder (``runs/<mode>-<UTC start time>`` unless given) holds ``run.json`` (the settings
of each session), ``node.log`` (Nautilus's log), ``predictions.csv`` (every decision, appended as
it is made), ``state.json`` (``LSTMStrategy.on_save()``, handed to ``on_load`` at the next start:
without a cache database Nautilus keeps no strategy state), and, written on stop for the session
just ended, ``fills.csv``, ``positions.csv``, ``predictions.parquet`` and, where the starting
balance is known (paper), ``stats.json`` (the backtest report's format, without benchmarks).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from nautilus_trader.adapters.binance import BINANCE
from nautilus_trader.common.component import flush_logger
from nautilus_trader.config import ImportableStrategyConfig, LoggingConfig, TradingNodeConfig
from nautilus_trader.live.node import TradingNode
from nautilus_trader.model.instruments import Instrument

from backtests.stats import equity_curve, fills_from_nautilus, performance_stats
from marketdata.catalog import catalog_instrument
from marketdata.download import INSTRUMENT_RETRY, fetch_instrument
from marketdata.exchange import RetryPolicy
from marketdata.instruments import instrument_id
from models.jsonio import write_json
from strategies.config import CONFIG_PATH, STRATEGY_PATH, parse_strategy_config, strategy_settings
from strategies.decision_log import prediction_columns
from strategies.lstm_strategy import LSTMStrategy

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
PREDICTIONS_FILE = "predictions.csv"
# What a node on live data (paper or live) changes in LSTMStrategy's defaults: decisions logged
# and written down, gaps back-filled, a silent feed noticed.
LIVE_DATA_STRATEGY_DEFAULTS = {"log_decisions": True, "backfill_gaps": True, "stale_feed_bars": 3.0}
# Each mode's TradingNodeConfig defaults; ``[node]`` settings (NODE_KEYS) go over them.
NODE_DEFAULTS = {
    "paper": {"trader_id": "PAPER-001", "timeout_post_stop": 2.0},
    "live": {"trader_id": "LIVE-001", "timeout_reconciliation": 30.0, "timeout_post_stop": 5.0},
}
NODE_KEYS = {"trader_id", "timeout_connection", "timeout_reconciliation", "timeout_portfolio",
             "timeout_disconnection", "timeout_post_stop", "timeout_shutdown"}


def check_node_settings(node: dict) -> None:
    unknown = set(node) - NODE_KEYS
    if unknown:
        raise ValueError(f"unknown [node] settings {sorted(unknown)}: expected some of {sorted(NODE_KEYS)}")


def strategy_config(*layers: dict) -> ImportableStrategyConfig:
    """LSTMStrategy on live data: its defaults there, the user's ``[strategy]`` settings over
    them, and what the node decides over both; checked before the node starts (Nautilus would
    ignore an unknown field)."""
    settings = strategy_settings(LIVE_DATA_STRATEGY_DEFAULTS, *layers)
    parse_strategy_config(settings)
    return ImportableStrategyConfig(strategy_path=STRATEGY_PATH, config_path=CONFIG_PATH, config=settings)


def node_settings(mode: str, node: dict) -> dict:
    return {**NODE_DEFAULTS[mode], **node}


def logging_config(run_dir: Path, level: str) -> LoggingConfig:
    """Nautilus's log on the console and appended to ``node.log`` in the run folder. (Nautilus's
    own size rotation would name the file by its start time instead: rotate with logrotate.)"""
    return LoggingConfig(
        log_level=level,
        log_level_file=level,
        log_directory=str(run_dir),
        log_file_name="node",
        log_colors=False,
    )


@dataclass(frozen=True)
class OpenedRun:
    """A run about to start: the instrument traded (and where it came from), the model's bar type
    and the run folder."""

    instrument: Instrument
    bar_type: str
    run_dir: Path
    started: pd.Timestamp
    instrument_source: str  # e.g. "Binance exchangeInfo"


def open_run(model_path: Path, symbol: str, market: str, api_url: str | None, run_dir: Path | None, mode: str,
             strategy: dict, create: bool = True, catalog: Path | None = None,
             retry: RetryPolicy = INSTRUMENT_RETRY) -> OpenedRun:
    """Check that the model fits the market and the run folder fits the model; fetch the
    instrument (or read it from ``catalog``); create the run folder (default
    ``runs/<mode>-<UTC start time>``) unless told not to."""
    from models.artifact import load_artifact
    from models.predictor import output_columns

    artifact = load_artifact(model_path)
    if artifact.config.data.cross_asset:  # a node runs one LSTMStrategy: no other instrument's bars, no barrier
        raise ValueError(f"{model_path} uses cross-asset features ([data] cross_asset): each forecast needs every "
                         f"instrument's bar of its close time ({', '.join(artifact.bar_types)}), and a paper or live node "
                         "trades one instrument; backtest it (nautilus-lstm backtest), or retrain without cross_asset")
    expected = instrument_id(symbol, market)
    if artifact.data["instrument_id"] != str(expected):
        raise ValueError(f"{model_path} was trained on {artifact.data['instrument_id']} bars, not {expected} ({symbol} {market})")
    if catalog is None:
        instrument, source = fetch_instrument(symbol, market, artifact.bar_type, api_url, retry), "Binance exchangeInfo"
    else:
        instrument, source = catalog_instrument(catalog, expected), f"catalog {catalog}"
    started = pd.Timestamp.now(tz="UTC")
    run_dir = Path(run_dir or Path("runs") / f"{mode}-{started:%Y%m%dT%H%M%SZ}")
    if create:
        run_dir.mkdir(parents=True, exist_ok=True)
    check_run_dir(run_dir, instrument, artifact.bar_type, output_columns(artifact, strategy.get("forecaster", "lstm")))
    return OpenedRun(instrument, artifact.bar_type, run_dir, started, source)


def run_node(config: TradingNodeConfig, run: OpenedRun, session: dict, data_factory, exec_factory,
             starting_balance: float | None) -> None:
    """Build the TradingNode (the instrument in its cache first), hand the strategy its saved
    state, run until the node stops (SIGINT, SIGTERM or a shutdown from within) and write the
    session's files; with a ``starting_balance``, its ``stats.json`` too."""
    node = TradingNode(config=config)
    node.cache.add_instrument(run.instrument)
    node.add_data_client_factory(BINANCE, data_factory)
    node.add_exec_client_factory(BINANCE, exec_factory)
    node.build()
    strategy = next(s for s in node.trader.strategies() if isinstance(s, LSTMStrategy))
    state = _read_state(run.run_dir)
    if state:
        strategy.load(state)
    try:
        node.run()
    finally:
        try:
            _finish_session(node, strategy, run.run_dir, session, starting_balance)
        finally:
            node.dispose()
            flush_logger()  # or the log file loses its last lines


def check_run_dir(run_dir: Path, instrument: Instrument, bar_type: str, outputs: list[str]) -> None:
    """A run folder goes on with the same instrument, bars and model outputs, or not at all."""
    path = run_dir / "run.json"
    if path.exists():
        last = json.loads(path.read_text())["sessions"][-1]
        if (last["instrument_id"], last["bar_type"]) != (str(instrument.id), bar_type):
            raise ValueError(f"{run_dir} is a run of {last['bar_type']}, not {bar_type}: give another --run-dir")
    predictions = run_dir / PREDICTIONS_FILE
    if predictions.exists() and predictions.stat().st_size:
        header = predictions.open().readline().strip().split(",")
        expected = prediction_columns(outputs)
        if header != expected:
            raise ValueError(f"{predictions} has columns {header}, this model writes {expected}: give another --run-dir")


def start_session(run: OpenedRun, settings: dict) -> dict:
    """Append the session (its ``settings`` and what it trades) to the run folder's ``run.json``."""
    path = run.run_dir / "run.json"
    record = json.loads(path.read_text()) if path.exists() else {"sessions": []}
    session = {
        "started": run.started.isoformat(),
        **settings,
        "instrument_id": str(run.instrument.id),
        "bar_type": run.bar_type,
        "fees": {"maker": str(run.instrument.maker_fee), "taker": str(run.instrument.taker_fee)},
    }
    record["sessions"].append(session)
    write_json(path, record)
    return session


def _finish_session(node: TradingNode, strategy: LSTMStrategy, run_dir: Path, session: dict, starting_balance: float | None) -> None:
    """State, fills, positions and predictions of the session just ended; stats where the
    starting balance is known."""
    state = strategy.save()
    if state:
        write_json(run_dir / STATE_FILE, {key: value.decode() for key, value in state.items()})
    fills_report = node.trader.generate_fills_report()
    fills_report.to_csv(run_dir / "fills.csv")
    node.trader.generate_positions_report().to_csv(run_dir / "positions.csv")
    predictions = strategy.predictions_frame()
    predictions.to_parquet(run_dir / "predictions.parquet")

    stopped = pd.Timestamp.now(tz="UTC")
    warmup = [pd.Timestamp(t, unit="ns", tz="UTC").isoformat() for t in strategy.warmup_range] if strategy.warmup_range else None
    if starting_balance is not None:
        _write_stats(run_dir, session, fills_from_nautilus(fills_report), predictions["close"], starting_balance, stopped, warmup)
    record = json.loads((run_dir / "run.json").read_text())
    record["sessions"][-1].update(stopped=stopped.isoformat(), ready=strategy.ready, decisions=len(predictions),
                                  fills=len(fills_report), warmup=warmup)
    write_json(run_dir / "run.json", record)
    log.info("stopped: %d decisions, %d fills; run folder %s", len(predictions), len(fills_report), run_dir)


def _write_stats(run_dir: Path, session: dict, fills: pd.DataFrame, close: pd.Series, balance: float,
                 stopped: pd.Timestamp, warmup: list[str] | None) -> None:
    """``stats.json``: the backtest report's statistics of the session, without benchmarks."""
    if len(fills) and len(close):
        # A paper fill is priced at the latest bar's close, a moment after that close: count it there.
        latest = np.maximum(close.index.searchsorted(fills["ts"], side="right") - 1, 0)
        fills["ts"] = close.index[latest]
    seconds = (stopped - pd.Timestamp(session["started"])).total_seconds()
    if len(close):
        stats = performance_stats(equity_curve(fills, close, balance), fills, close, seconds)
    else:
        stats = {"bars": 0, "run_seconds": seconds}
    report = {
        **stats,
        "benchmarks": {},
        "settings": {
            "model": session["model"],
            "bar_type": session["bar_type"],
            "first_bar_close": close.index[0].isoformat() if len(close) else None,
            "last_bar_close": close.index[-1].isoformat() if len(close) else None,
            "starting_balance": balance,
            "strategy": session["strategy"],
            "mode": "paper",
            "started": session["started"],
            "stopped": stopped.isoformat(),
            "warmup": warmup,
        },
    }
    write_json(run_dir / "stats.json", report)


def _read_state(run_dir: Path) -> dict[str, bytes]:
    path = run_dir / STATE_FILE
    if not path.exists():
        return {}
    return {key: value.encode() for key, value in json.loads(path.read_text()).items()}
