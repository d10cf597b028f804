"""A backtest that purges closed orders from Nautilus's cache between chunks (backtests.ledger) reports
exactly what one that keeps them all does, while the cache holds a bounded number of orders however
many it traded: the EMA cross trades some 500 times over the 7-day fixture's 10,080 bars."""

import re
from pathlib import Path

import pytest
from nautilus_trader.model.data import BarType

import backtests.runner
from backtests.benchmarks import benchmark_strategies
from backtests.ledger import BENCHMARK_FILL_COLUMNS, TradeLedger
from backtests.runner import BacktestSettings, load_inputs, run_strategy
from backtests.stats import equity_curve, fills_from_nautilus, performance_stats
from tests.fakes.training import BAR_TYPE

CHUNK_BARS = 500  # 21 chunks of the fixture's week: 20 purges
NOTIONAL = 1_000.0
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def settings_for(catalog, purge: bool) -> BacktestSettings:
    return BacktestSettings(model_path=Path(), catalog=catalog, bar_type=BAR_TYPE, chunk_bars=CHUNK_BARS,
                            purge_closed_orders=purge)


def run_benchmark(name: str, settings: BacktestSettings, main: bool = True):
    """One of the benchmarks (backtests.benchmarks) over the fixture's week: (its run, the feed);
    ``main`` False: run as a benchmark of the report, not as its main strategy."""
    instrument, bars = load_inputs(settings)
    strategy = benchmark_strategies(instrument, BarType.from_str(BAR_TYPE), NOTIONAL, bars.first_close())[name]
    return run_strategy(name, strategy, settings, instrument, bars, main), bars


def comparable(run) -> dict:
    """What a run reports, less what differs between any two runs: random event ids and snapshot UUIDs."""
    return {"fills": run.fills.drop(columns="event_id").to_csv(), "positions": UUID.sub("UUID", run.positions.to_csv())}


@pytest.mark.parametrize("name", ["ema_cross", "buy_and_hold"])
def test_a_purged_run_reports_what_an_unpurged_one_does(catalog, name):
    (purged, bars), (kept, _) = (run_benchmark(name, settings_for(catalog, purge)) for purge in (True, False))
    assert len(kept.fills) == 1 if name == "buy_and_hold" else len(kept.fills) > 300
    assert comparable(purged) == comparable(kept)
    close = bars.close()
    stats = []
    for run in (purged, kept):
        fills = fills_from_nautilus(run.fills)
        stats.append(performance_stats(equity_curve(fills, close, 10_000.0), fills, close, 0.0))
    assert stats[0] == stats[1]


COUNTS: list[dict] = []  # what the cache held at each purge of the run below


class CountingLedger(TradeLedger):
    """A ledger that records what the cache holds before and after each purge."""

    def purge(self) -> None:
        before = len(self._cache.orders())
        super().purge()
        accounts = self._cache.accounts()  # none at the first call: the engine takes a first chunk before its run
        if accounts:
            COUNTS.append({"before": before, "after": len(self._cache.orders()), "account_states": len(accounts[0].events),
                           "position_snapshots": len(self._cache.position_snapshots())})


def test_the_cache_holds_a_bounded_number_of_orders_however_many_are_traded(catalog, monkeypatch):
    COUNTS.clear()
    monkeypatch.setattr(backtests.runner, "TradeLedger", CountingLedger)
    run, _ = run_benchmark("ema_cross", settings_for(catalog, True))
    orders = len(run.fills)  # one fill an order (bar execution fills a market order whole)
    assert orders > 300 and len(COUNTS) >= 15
    # Each purge leaves at most the order in flight and the last account state; before the next,
    # the cache holds a chunk's orders, not every order so far.
    assert max(c["after"] for c in COUNTS) <= 1 and max(c["account_states"] for c in COUNTS) == 1
    assert max(c["before"] for c in COUNTS) < orders / 8
    assert COUNTS[-1]["before"] < COUNTS[1]["before"] + orders / 8  # as many held at the end as early on


def test_a_benchmark_run_purges_its_closed_positions_and_trades_alike(catalog, monkeypatch):
    """Run as a benchmark (``main`` False), whose positions no report reads, the EMA cross trades the
    same fills while the cache lets its closed round trips go, snapshots and all; its fills report is
    Nautilus's, less the columns no reader of a benchmark's run uses, purged or not."""
    kept, _ = run_benchmark("ema_cross", settings_for(catalog, True))
    unpurged, _ = run_benchmark("ema_cross", settings_for(catalog, False), main=False)
    COUNTS.clear()
    monkeypatch.setattr(backtests.runner, "TradeLedger", CountingLedger)
    benchmark, _ = run_benchmark("ema_cross", settings_for(catalog, True), main=False)
    assert list(benchmark.fills.columns) == list(BENCHMARK_FILL_COLUMNS)
    assert benchmark.fills.to_csv() == kept.fills[list(BENCHMARK_FILL_COLUMNS)].to_csv() == unpurged.fills.to_csv()
    assert benchmark.fills.dtypes.to_dict() == kept.fills[list(BENCHMARK_FILL_COLUMNS)].dtypes.to_dict()
    assert benchmark.positions.empty and not kept.positions.empty and benchmark.predictions is None
    round_trips = len(kept.positions)
    assert round_trips > 150 and len(COUNTS) >= 15
    # A chunk's round trips at most: the position is purged whenever a chunk ends with it closed.
    snapshots = [c["position_snapshots"] for c in COUNTS]
    assert snapshots.count(0) > len(snapshots) / 3 and max(snapshots) < round_trips / 4
