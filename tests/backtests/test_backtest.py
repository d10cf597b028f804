"""Backtests: parity with offline predictions, no look-ahead, fills on the next bar, errors, report."""

import gc
import json
import tempfile
from dataclasses import replace

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from marketdata.catalog import load_bars
from marketdata.history import import_klines
from backtests.report import training_overlap, write_report
from backtests.runner import BacktestSettings, load_inputs, lstm_settings, lstm_strategy, run_all, run_strategy
from backtests.stats import STAT_KEYS
from models.artifact import load_artifact
from models.predictor import batch_predict
from models.train import train_model
from scripts.cli import main
from strategies.config import parse_strategy_config
from strategies.decision import FLAT, SHORT, entry_threshold
from strategies.volatility import annualizer
from strategies import decision_log
from strategies.decision_log import read_predictions
from tests.conftest import ETH_1M, FIXTURE_7D, NETWORK_UNITS_TOLERANCE, network_units_gap
from tests.fakes.training import tiny_config

SPOT = "BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL"
# We hold no perpetual data: ETH spot bars (ticks of 0.01, as the ETH perpetual's) stand in for it,
# which is enough to exercise shorts and the margin account.
PERP = "ETHUSDT-PERP.BINANCE-1-MINUTE-LAST-EXTERNAL"
START = pd.Timestamp("2025-05-25", tz="UTC")
END = pd.Timestamp("2025-05-26 12:00", tz="UTC")
MINUTE = pd.Timedelta(minutes=1)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, shared_data):
    """A catalog of real bars (BTC spot, ETH as a perpetual) and a tiny model per market,
    trained on the days before the backtest range."""
    root = tmp_path_factory.mktemp("backtest")
    catalog = root / "catalog"
    import_klines(shared_data / FIXTURE_7D, exchange="binance", symbol="BTC/USDT", timeframe="1m",
                  market="spot", catalog_path=catalog)
    import_klines(shared_data / ETH_1M, exchange="binance", symbol="ETH/USDT", timeframe="1m",
                  market="futures", catalog_path=catalog)
    models = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)  # the catalog given relative to the working directory, as a user might
        for bar_type in (SPOT, PERP):
            dates = {"bar_type": bar_type, "start": "2025-05-20", "end": "2025-05-24 12:00"}
            # A return head alone: one epoch of it gives forecasts of both signs, which these tests of
            # the trading mechanics need (beside a volatility head, one epoch leaves them all positive).
            config = tiny_config(catalog.relative_to(root), max_epochs=1).override(data=dates, model={"volatility_head": False})
            models[bar_type] = root / bar_type
            train_model(config, models[bar_type])
    return catalog, models


def settings_for(setup, bar_type=SPOT, **strategy) -> BacktestSettings:
    catalog, models = setup
    return BacktestSettings(model_path=models[bar_type], catalog=catalog, bar_type=bar_type, start=START, end=END,
                            strategy={"entry_threshold": 1e-5, **strategy})


def lstm_run(settings):
    instrument, bars = load_inputs(settings)
    return run_strategy("lstm", lstm_strategy(settings), settings, instrument, bars), bars


def test_backtest_predictions_equal_offline_batch_predictions(setup):
    settings = settings_for(setup)
    run, bars = lstm_run(settings)
    live = run.predictions
    assert live.index[0] == START and live.index[-1] == END and len(live) == len(bars)
    assert live.index.is_unique  # the warm-up history's overlap with the first live bar was not fed twice
    artifact = load_artifact(settings.model_path)
    # The strategy warms up on the features' warm-up + 4 burn-ins of history before its first bar.
    warmup = 415 + 4 * artifact.lstm.burn_in
    history = load_bars(settings.catalog, SPOT, start=START - (warmup + 1) * MINUTE, end=END)
    offline = batch_predict(artifact, history).loc[live.index, "prediction"]
    assert network_units_gap(live["prediction"], offline, artifact) <= NETWORK_UNITS_TOLERANCE


def test_a_run_that_spills_its_decisions_in_many_row_groups_gives_the_same_predictions(setup, monkeypatch, tmp_path):
    # A run's decisions go to a scratch file SPILL_ROWS at a time, and into its predictions file a row
    # group at a time: a range of many row groups gives the frame a run held whole gives.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the scratch files' folder, to see them go
    settings = settings_for(setup)
    held, bars = lstm_run(settings)
    monkeypatch.setattr(decision_log, "SPILL_ROWS", 37)
    spilled, _ = lstm_run(settings)
    assert len(bars) > 3 * 37 and pq.ParquetFile(spilled.predictions_file).num_row_groups > 3
    pd.testing.assert_frame_equal(spilled.predictions, held.predictions)
    assert not list(tmp_path.glob("nautilus-lstm-decisions-*"))  # each run's scratch file went once its predictions were written


def test_without_an_entry_threshold_the_taker_fee_keeps_forecasts_from_trading(setup):
    """No entry_threshold: the threshold is the instrument's round-trip taker fee plus a margin so
    small that most forecasts clear the margin alone; the fee keeps every one of them inside."""
    margin = 1e-6
    settings = replace(settings_for(setup), strategy={"entry_margin": margin})
    instrument, _ = load_inputs(settings)
    threshold = entry_threshold(float(instrument.taker_fee), margin)
    assert float(instrument.taker_fee) == 0.001  # Binance spot's, as the catalog stores the instrument
    run, _ = lstm_run(settings)
    forecast = run.predictions["prediction"]
    assert (forecast > margin).sum() > len(forecast) / 2  # each a buy, were the fee left out
    assert (forecast.abs() < threshold).all()
    assert run.fills.empty and (run.predictions["side"] == FLAT).all()
    assert run.predictions["reason"].tolist() == [f"forecast {f:+.6f} inside ±{threshold:.6f}" for f in forecast]


def changed_after(settings, t, folder):
    """A copy of the settings' catalog whose every bar closing after ``t`` is changed."""
    bars = load_bars(settings.catalog, SPOT)
    rng = np.random.default_rng(1)
    later = bars.index > t
    scale = rng.uniform(0.97, 1.03, size=later.sum())
    bars.loc[later, ["open", "high", "low", "close"]] = bars.loc[later, ["open", "high", "low", "close"]].mul(scale, axis=0).round(2)
    bars.loc[later, "volume"] = (bars.loc[later, "volume"] * rng.uniform(0.5, 2, size=later.sum())).round(5)
    klines = pd.DataFrame({"open_time": (bars.index - MINUTE).as_unit("ms").asi8, **{c: bars[c] for c in bars}}).reset_index(drop=True)
    path = folder / "changed.csv"
    klines.to_csv(path, index=False)
    import_klines(path, exchange="binance", symbol="BTC/USDT", timeframe="1m", market="spot", catalog_path=folder / "catalog")
    return replace(settings, catalog=folder / "catalog")


def orders_until(run, t):
    return run.fills.loc[pd.to_datetime(run.fills["ts_event"]) <= t + MINUTE, ["order_side", "last_qty"]].reset_index(drop=True)


def test_no_look_ahead_and_fills_on_the_next_bar(setup, tmp_path):
    settings = settings_for(setup)
    base, _ = lstm_run(settings)
    t = pd.Timestamp("2025-05-25 18:00", tz="UTC")
    changed, _ = lstm_run(changed_after(settings, t, tmp_path))

    decided = lambda run: run.predictions.loc[:t, ["prediction", "side"]]  # noqa: E731
    pd.testing.assert_frame_equal(decided(base), decided(changed))
    assert not base.predictions.loc[t:].iloc[1:]["prediction"].equals(changed.predictions.loc[t:].iloc[1:]["prediction"])
    assert len(orders_until(base, t)) > 10
    pd.testing.assert_frame_equal(orders_until(base, t), orders_until(changed, t))

    # Every fill lands one bar after the decision that caused it, never on the decision's bar.
    sides = base.predictions["side"]
    decisions = sides.index[sides.ne(sides.shift(fill_value=FLAT))]
    fill_times = set(pd.to_datetime(base.fills["ts_event"]))
    assert fill_times == {d + MINUTE for d in decisions if d + MINUTE <= END}


def test_report_has_every_file_key_and_benchmark(setup, tmp_path):
    settings = settings_for(setup)
    bars, runs = run_all(settings)
    report = write_report(tmp_path, bars, runs, settings)
    assert set(report["benchmarks"]) == {"ridge", "lightgbm", "ema_cross", "buy_and_hold"}  # no volatility head: no vol-targeted benchmark
    text = (tmp_path / "stats.json").read_text()
    assert "NaN" not in text  # strict JSON: undefined figures are null
    stats = json.loads(text)
    assert set(STAT_KEYS) <= set(stats)
    for name, entry in stats["benchmarks"].items():
        assert set(entry) == set(STAT_KEYS), name
        assert entry["bars"] == len(bars)
    assert stats["trades"] > 0 and stats["benchmarks"]["buy_and_hold"]["exposure"] > 0.99
    assert stats["settings"]["horizon"] == 5 and stats["settings"]["entry_threshold"] == {SPOT: 1e-5}
    for name in ("fills.csv", "positions.csv", "predictions.parquet", "equity.parquet", "equity.png", "trades.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    predictions = pd.read_parquet(tmp_path / "predictions.parquet")
    assert len(predictions) == len(bars) and (predictions["side"] != SHORT).all()  # spot never shorts
    assert stats["in_sample"] is False and stats["training"] == [{
        "model": str(settings.model_path),
        "trained": {"first_bar_close": "2025-05-20T00:01:00+00:00", "last_bar_close": "2025-05-24T12:00:00+00:00"},
        "traded": {"first_bar_close": START.isoformat(), "last_bar_close": END.isoformat()},
        "in_sample": False,
    }]


def test_in_sample_means_the_bars_traded_overlap_the_training_bars(setup):
    model = setup[1][SPOT]  # trained on the bars closing from 2025-05-20 00:01 to 2025-05-24 12:00

    def in_sample(first: str, last: str) -> bool:
        return training_overlap(model, pd.DatetimeIndex([first, last], tz="UTC"))["in_sample"]

    assert in_sample("2025-05-24 12:00", "2025-05-25") and in_sample("2025-05-19", "2025-05-20 00:01")
    assert in_sample("2025-05-21", "2025-05-22") and in_sample("2025-05-19", "2025-05-26")
    assert not in_sample("2025-05-24 12:01", "2025-05-25") and not in_sample("2025-05-19", "2025-05-20 00:00")


def test_a_backtest_over_the_training_data_says_it_is_in_sample(setup, tmp_path, caplog):
    catalog, models = setup
    out = tmp_path / "out"
    assert main(["backtest", "--model", str(models[SPOT]), "--catalog", str(catalog), "--start", "2025-05-24T11:00",
                 "--end", "2025-05-24T13:00", "--out", str(out)]) == 0
    stats = json.loads((out / "stats.json").read_text())
    assert stats["in_sample"] is True and stats["training"][0]["in_sample"] is True
    assert stats["training"][0]["trained"]["last_bar_close"] == "2025-05-24T12:00:00+00:00"
    assert "these results are IN-SAMPLE" in caplog.text and "--start after 2025-05-24T12:00:00+00:00" in caplog.text


def test_perpetual_goes_short_on_a_margin_account(setup):
    run, _ = lstm_run(settings_for(setup, PERP))
    assert (run.predictions["side"] == SHORT).any()
    assert (run.positions["entry"] == "SELL").any()  # positions opened by selling: shorts


def test_the_objects_before_a_run_sit_out_of_the_collector_during_it_and_only_then(setup):
    settings = settings_for(setup)
    instrument, bars = load_inputs(settings)
    strategy = lstm_strategy(settings)
    frozen = []
    on_start = strategy.on_start
    strategy.on_start = lambda: (frozen.append(gc.get_freeze_count()), on_start())
    assert gc.get_freeze_count() == 0
    run = run_strategy("lstm", strategy, settings, instrument, bars)
    assert frozen and frozen[0] > 100_000  # torch's, pandas', Nautilus's objects, set aside during the run
    assert gc.get_freeze_count() == 0 and len(run.predictions) > 0  # and back after it


def test_drawdown_kill_switch_flattens_and_stops(setup):
    run, _ = lstm_run(settings_for(setup, max_drawdown=0.0005, order_notional=5_000.0))
    reasons = run.predictions["reason"]
    halted = reasons.index[reasons == "drawdown kill switch"]
    assert len(halted) == 1
    after = run.predictions.loc[halted[0]:]
    assert (after["side"] == FLAT).all() and after["reason"].iloc[1:].str.contains("halted").all()
    last_fill = pd.to_datetime(run.fills["ts_event"]).max()
    assert last_fill <= halted[0] + MINUTE  # the flattening order was the last


@pytest.mark.parametrize("change, message", [
    (lambda a, s: a.__setitem__(a.index("--model"), "--model") or a.__setitem__(a.index("--model") + 1, str(s / "nope")), "is not a model artifact"),
    (lambda a, s: a.extend(["--bar-type", "ETHUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL"]), "trained on BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL bars, not ETHUSDT"),
    (lambda a, s: a.extend(["--start", "2025-05-26", "--end", "2025-05-25"]), "empty date range"),
    (lambda a, s: a.extend(["--start", "2026-01-01"]), "holds no BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL bars between"),
    (lambda a, s: a.__setitem__(a.index("--catalog") + 1, str(s / "empty-catalog")), "no catalog at"),
])
def test_bad_input_gives_a_clear_error(setup, tmp_path, caplog, change, message):
    catalog, models = setup
    args = ["backtest", "--model", str(models[SPOT]), "--catalog", str(catalog), "--out", str(tmp_path / "out")]
    change(args, tmp_path)
    assert main(args) == 2
    assert message in caplog.text
    assert not (tmp_path / "out").exists()


def test_without_catalog_the_models_own_is_found_from_any_directory(setup, tmp_path, monkeypatch):
    _, models = setup
    monkeypatch.chdir(tmp_path)
    args = ["backtest", "--model", str(models[SPOT]), "--start", "2025-05-26 10:00", "--end", "2025-05-26 12:00", "--out", "out"]
    assert main(args) == 0
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["bars"] == 121


def test_catalog_without_the_instrument(setup, tmp_path, shared_data, caplog):
    _, models = setup
    other = tmp_path / "eth-only"
    import_klines(shared_data / FIXTURE_7D, exchange="binance", symbol="ETH/USDT", timeframe="1m", market="spot", catalog_path=other)
    assert main(["backtest", "--model", str(models[SPOT]), "--catalog", str(other), "--out", str(tmp_path / "out")]) == 2
    assert "has no instrument BTCUSDT.BINANCE (instruments held: ETHUSDT.BINANCE)" in caplog.text


def strategy_run(settings, state=None):
    """(run, strategy): the strategy kept, to save its state or read what it did."""
    instrument, bars = load_inputs(settings)
    strategy = lstm_strategy(settings)
    if state:
        strategy.load(state)
    return run_strategy("lstm", strategy, settings, instrument, bars), strategy


def test_saved_state_resumes_without_warming_up(setup, tmp_path, capfd):
    middle = pd.Timestamp("2025-05-25 18:00", tz="UTC")
    straight, _ = strategy_run(settings_for(setup))
    _, stopped = strategy_run(replace(settings_for(setup), end=middle))
    state = stopped.save()
    assert set(state) == {"lstm_strategy"} and json.loads(state["lstm_strategy"])["last_close_ns"] == middle.value
    capfd.readouterr()

    # Restarted ten bars later: the ten missed bars come from history, the model goes on exactly.
    later = replace(settings_for(setup, predictions_path=str(tmp_path / "predictions.csv")), start=middle + 11 * MINUTE)
    resumed, strategy = strategy_run(later, state)
    assert strategy.warmup_range == ((middle + MINUTE).value, (middle + 11 * MINUTE).value)
    columns = ["prediction"]
    pd.testing.assert_frame_equal(resumed.predictions[columns], straight.predictions.loc[middle + 11 * MINUTE:, columns])
    # The predictions file holds the same decisions, to the last bit.
    pd.testing.assert_frame_equal(read_predictions(tmp_path / "predictions.csv"), resumed.predictions)

    # Another model's state, or one older than a warm-up, is not used: a full warm-up instead.
    other = json.loads(state["lstm_strategy"])
    other["model"] = "0" * 64
    _, strategy = strategy_run(later, {"lstm_strategy": json.dumps(other).encode()})
    assert strategy.warmup_range[0] < middle.value
    _, strategy = strategy_run(replace(later, start=middle + 600 * MINUTE, end=None), state)
    assert strategy.warmup_range[0] > middle.value + 50 * MINUTE.value


def test_stale_feed_warns_and_gaps_pause_trading(setup, tmp_path, shared_data, capfd):
    """A silent feed is noticed by the timer; the gap it leaves (no more bars to back-fill from the
    catalog) pauses trading for the cooldown."""
    catalog, _ = setup
    klines = load_bars(catalog, SPOT)
    gap = klines.index[(klines.index > START + 30 * MINUTE) & (klines.index <= START + 40 * MINUTE)]
    klines = klines.drop(index=gap)
    frame = pd.DataFrame({"open_time": (klines.index - MINUTE).as_unit("ms").asi8, **{c: klines[c] for c in klines}})
    frame.to_csv(tmp_path / "gap.csv", index=False)
    import_klines(tmp_path / "gap.csv", exchange="binance", symbol="BTC/USDT", timeframe="1m", market="spot", catalog_path=tmp_path / "catalog")
    settings = replace(settings_for(setup, stale_feed_bars=3.0, backfill_gaps=True, gap_cooldown_bars=5),
                       catalog=tmp_path / "catalog", end=START + 60 * MINUTE)
    run, _ = strategy_run(settings)
    out = capfd.readouterr().out  # the backtest logs warnings and errors only
    assert "stale feed: no bar for 3.0 intervals (last closed 2025-05-25T00:30:00+00:00)" in out
    assert "10 bars missing before 2025-05-25T00:41:00+00:00: back-filling them from the venue" in out
    assert "gap of 10 bars the venue could not fill before 2025-05-25T00:41:00+00:00: no trading for 5 bars" in out
    after = run.predictions.loc[START + 41 * MINUTE:, "reason"]
    assert after.iloc[:5].str.contains("bars since a gap: no trade").all() and not after.iloc[5:].str.contains("gap").any()


@pytest.fixture(scope="module")
def vol_model(setup):
    """A tiny spot model with the volatility head, trained on the same days as the others, and the
    settings that make it trade and gate over the backtest range."""
    catalog, models = setup
    path = models[SPOT].parent / "with-volatility"
    dates = {"bar_type": SPOT, "start": "2025-05-20", "end": "2025-05-24 12:00"}
    train_model(tiny_config(catalog, max_epochs=1).override(data=dates, model={"volatility_head": True}), path)
    # One epoch leaves its return forecasts all positive and its volatility forecast moving by a
    # few percent: an entry threshold at the median forecast has it go in and out, and a gate at
    # the ratio of the 90th percentile forecast to the median (a 4-hour median) shuts now and then.
    history = load_bars(catalog, SPOT, start=START - pd.Timedelta(days=1), end=END)
    forecasts = batch_predict(load_artifact(path), history).loc[START:END]
    volatility = forecasts["volatility"]
    return path, {"entry_threshold": float(forecasts["prediction"].median()), "target_volatility": 0.5,
                  "volatility_gate": float(volatility.quantile(0.9) / volatility.median()), "volatility_gate_window": 240}


def vol_settings(setup, vol_model):
    path, strategy = vol_model
    return replace(settings_for(setup, **strategy), model_path=path)


def test_volatility_sizing_and_gate_trade_real_bars_beside_the_vol_targeted_benchmark(setup, vol_model, tmp_path):
    settings = vol_settings(setup, vol_model)
    bars, runs = run_all(settings)
    stats = write_report(tmp_path, bars, runs, settings)
    predictions, fills = runs["lstm"].predictions, runs["lstm"].fills
    assert stats["trades"] > 0
    artifact = load_artifact(settings.model_path)
    annual = predictions["volatility"] * annualizer(MINUTE.value, artifact.config.training.horizon)

    # Each position opened is 1,000 × 0.5 / the forecast at its decision bar (rounded down to the size step).
    sides = predictions["side"]
    opened = sides.index[(sides != FLAT) & (sides.shift(fill_value=FLAT) == FLAT)]
    entry_fills = fills.set_index(pd.to_datetime(fills["ts_event"]))["last_qty"].astype(float)
    for decided in opened[:20]:
        wanted = min(1_000.0 * 0.5 / annual[decided], 100_000.0) / predictions.loc[decided, "close"]
        assert wanted - 1e-5 < entry_fills[decided + MINUTE] <= wanted, decided
    assert entry_fills[opened + MINUTE].nunique() > 3

    # The gate: logged, and never lets a position open while shut.
    gated = predictions[predictions["reason"].str.contains("volatility gate")]
    assert len(gated) > 0 and (gated["side"] == FLAT).all()
    assert gated["reason"].str.contains(r"^forecast .* > .*; volatility gate: forecast .* > .* × trailing median .*: no new exposure$").all()
    assert not set(gated.index) & set(opened)

    # The benchmark buys at the first bar as the strategy would size it there (the same forecast),
    # and re-sizes only past the band, which this model's steady forecast never leaves.
    bench = runs["vol_target_buy_and_hold"].fills
    first = min(1_000.0 * 0.5 / annual[START], 100_000.0) / predictions.loc[START, "close"]
    assert pd.Timestamp(bench["ts_event"].iloc[0]) == START + MINUTE and bench["order_side"].iloc[0] == "BUY"
    assert first - 1e-5 < float(bench["last_qty"].iloc[0]) <= first
    assert len(bench) < len(bars) / 20
    report = json.loads((tmp_path / "stats.json").read_text())["benchmarks"]
    assert set(report["vol_target_buy_and_hold"]) == set(STAT_KEYS) and report["vol_target_buy_and_hold"]["exposure"] > 0.99
    # The ridge and LightGBM benchmarks forecast no volatility: they run at the base size, ungated.
    # (The report keeps the main strategy's forecasts alone: theirs are read from runs of their own.)
    assert runs["ridge"].predictions is None and runs["lightgbm"].predictions is None
    instrument, _ = load_inputs(settings)
    unreported = lstm_strategy(settings, "ridge")  # as run_all runs a benchmark: it keeps no decisions
    assert run_strategy("ridge", unreported, settings, instrument, bars, main=False).predictions is None
    with pytest.raises(ValueError, match="not kept"):
        unreported.predictions_frame()
    for name in ("ridge", "lightgbm"):
        alone = run_strategy(name, lstm_strategy(settings, name), settings, instrument, bars)
        assert len(alone.predictions) > 0 and not alone.predictions["reason"].str.contains("volatility gate").any()
        assert parse_strategy_config(lstm_settings(settings, name)).sizing.target_volatility is None


def test_the_compiled_per_bar_decision_is_the_python_rules_on_every_bar(setup, vol_model, tmp_path):
    """strategies.kernel.decide_bar decides, gates and records as the rule and gate in Python do. A
    log with a file stages nothing, so with a predictions_path every bar is decided in Python: the
    two runs must give the same forecasts, sides, reasons and fills, with trades, holds, stops and the gate shut."""
    settings = vol_settings(setup, vol_model)
    settings = replace(settings, strategy={**settings.strategy, "min_holding_bars": 5, "stop_loss": 0.002, "take_profit": 0.002})
    compiled, _ = lstm_run(settings)
    in_python, _ = lstm_run(replace(settings, strategy={**settings.strategy, "predictions_path": str(tmp_path / "p.csv")}))
    pd.testing.assert_frame_equal(compiled.predictions, in_python.predictions)
    orders = lambda run: run.fills[["ts_event", "order_side", "last_qty", "last_px"]]  # noqa: E731 (ids are fresh each run)
    pd.testing.assert_frame_equal(orders(compiled), orders(in_python))
    reasons = compiled.predictions["reason"]
    assert len(compiled.fills) > 10 and (compiled.predictions["side"] != FLAT).mean() > 0.1
    for kind in ("inside", " > ", "volatility gate", "minimum bars", "in flight", "stop-loss", "take-profit"):
        assert reasons.str.contains(kind, regex=False).any(), kind


def test_backtest_cli_passes_the_volatility_settings(setup, vol_model, tmp_path):
    catalog, _ = setup
    out = tmp_path / "out"
    assert main(["backtest", "--model", str(vol_model[0]), "--catalog", str(catalog), "--start", "2025-05-26 10:00",
                 "--end", "2025-05-26 12:00", "--target-volatility", "0.4", "--volatility-gate", "off", "--out", str(out)]) == 0
    stats = json.loads((out / "stats.json").read_text())
    assert stats["settings"]["strategy"] == {"target_volatility": 0.4, "volatility_gate": None}
    assert "vol_target_buy_and_hold" in stats["benchmarks"]
    assert not pd.read_parquet(out / "predictions.parquet")["reason"].str.contains("volatility gate").any()
    assert "The volatility gate" in (out / "report.html").read_text()  # the command wrote the report


def test_no_look_ahead_in_volatility_sizing_and_the_gate(setup, vol_model, tmp_path):
    """Bars after t change nothing at or before t: the forecasts, the gate's decisions and reasons,
    and the order sizes set by the volatility forecast."""
    settings = vol_settings(setup, vol_model)
    base, _ = lstm_run(settings)
    gated = base.predictions.index[base.predictions["reason"].str.contains("volatility gate")]
    t = gated[0] + 30 * MINUTE  # late enough for the gate to have shut before it
    assert t < END - 60 * MINUTE
    changed, _ = lstm_run(changed_after(settings, t, tmp_path))
    decided = lambda run: run.predictions.loc[:t, ["prediction", "volatility", "side", "reason"]]  # noqa: E731
    pd.testing.assert_frame_equal(decided(base), decided(changed))
    assert not base.predictions.loc[t:].iloc[1:]["volatility"].equals(changed.predictions.loc[t:].iloc[1:]["volatility"])
    assert len(orders_until(base, t)) > 10 and orders_until(base, t)["last_qty"].nunique() > 3  # sized by the forecast
    pd.testing.assert_frame_equal(orders_until(base, t), orders_until(changed, t))


def test_saved_state_carries_the_volatility_gates_window(setup, vol_model):
    """A restart goes on with the gate's trailing window as it was, not an empty one."""
    settings = vol_settings(setup, vol_model)
    middle = pd.Timestamp("2025-05-25 18:00", tz="UTC")
    end = middle + 100 * MINUTE  # fewer bars than the window: the restored forecasts are still in it
    _, straight = strategy_run(replace(settings, end=end))
    _, stopped = strategy_run(replace(settings, end=middle))
    _, resumed = strategy_run(replace(settings, start=middle + 11 * MINUTE, end=end), stopped.save())
    assert resumed.warmup_range[0] == (middle + MINUTE).value  # resumed from the state, not warmed up afresh
    window = settings.strategy["volatility_gate_window"]
    assert len(resumed.risk.state()) == window and resumed.risk.state() == straight.risk.state()
