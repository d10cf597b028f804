"""Backtest statistics: hand-computed examples, and our equity accounting against a real Nautilus run."""

import math

import numpy as np
import pandas as pd
import pytest
from nautilus_trader.analysis import CAGR, CalmarRatio, MaxDrawdown
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.config import LoggingConfig, StrategyConfig
from nautilus_trader.model.currencies import BTC, USDT
from nautilus_trader.model.data import BarType
from nautilus_trader.model.enums import AccountType, OmsType, OrderSide
from nautilus_trader.model.identifiers import Venue
from nautilus_trader.model.objects import Money, Quantity
from nautilus_trader.trading.strategy import Strategy

from marketdata.catalog import to_nautilus_bars
from marketdata.instruments import BUILTIN_MARKETS, bar_type, instrument_from_market
from marketdata.klines import read_klines, to_bars_frame
from backtests.stats import (
    FILL_COLUMNS,
    opening_equity,
    STAT_KEYS,
    CurveSummary,
    curve_stats,
    daily_returns,
    empty_fills,
    equity_chunks,
    equity_curve,
    fills_from_nautilus,
    performance_stats,
    position_series,
    round_trip_pnls,
)
from marketdata.timeframes import parse_timeframe
from tests.conftest import FIXTURE_7D

M1 = parse_timeframe("1m")
SPOT = instrument_from_market(BUILTIN_MARKETS[("BTC/USDT", "spot")], "spot")
VENUE = Venue("BINANCE")


def fills(*rows) -> pd.DataFrame:
    """Fills from (ts, side, quantity, price, fee) rows."""
    table = pd.DataFrame(rows, columns=FILL_COLUMNS)
    table["ts"] = pd.to_datetime(table["ts"], utc=True)
    return table


def series(values, start="2025-01-01", freq="D") -> pd.Series:
    return pd.Series(values, index=pd.date_range(start, periods=len(values), freq=freq, tz="UTC"), dtype=float)


def stats_of(equity: pd.Series, trades: pd.DataFrame | None = None) -> dict:
    """Statistics of an equity path; with no fills the close does not matter."""
    trades = empty_fills() if trades is None else trades
    return performance_stats(equity, trades, equity, run_seconds=1.5)


# --- equity and positions ---------------------------------------------------------------------


def test_equity_curve_with_a_buy_and_a_sell_matches_a_hand_computation():
    close = series([100.0, 102.0, 105.0, 103.0])
    trades = fills(
        ("2025-01-01 12:00", "BUY", 2.0, 101.0, 0.2),  # between bars 0 and 1: applied at bar 1
        ("2025-01-03 00:00", "SELL", 2.0, 104.0, 0.3),  # exactly at bar 2's close: applied at bar 2
    )
    equity = equity_curve(trades, close, starting_equity=1000.0)
    cash_after_buy = 1000.0 - 2 * 101.0 - 0.2
    expected = [1000.0, cash_after_buy + 2 * 102.0, cash_after_buy + 2 * 104.0 - 0.3, cash_after_buy + 2 * 104.0 - 0.3]
    np.testing.assert_allclose(equity.to_numpy(), expected, rtol=0, atol=1e-12)
    assert list(position_series(trades, close.index)) == [0.0, 2.0, 0.0, 0.0]


def test_short_positions_are_marked_to_market_like_a_linear_perpetual():
    close = series([100.0, 90.0, 95.0])
    trades = fills(("2025-01-01", "SELL", 1.0, 100.0, 0.05), ("2025-01-03", "BUY", 1.0, 95.0, 0.05))
    equity = equity_curve(trades, close, starting_equity=1000.0)
    # Balance + unrealized PnL: 1000 - 0.05 + (100 - 90) on day 2, then 5 realized less both fees.
    np.testing.assert_allclose(equity.to_numpy(), [999.95, 1009.95, 1004.9], rtol=0, atol=1e-12)


def test_float_residue_of_a_closed_position_is_flat():
    close = series([100.0, 100.0, 100.0, 100.0])
    trades = fills(
        ("2025-01-01", "BUY", 0.1, 100.0, 0.0),
        ("2025-01-02", "BUY", 0.2, 100.0, 0.0),
        ("2025-01-03", "SELL", 0.3, 100.0, 0.0),  # 0.1 + 0.2 - 0.3 is 5.6e-17 in floats
    )
    assert position_series(trades, close.index).iloc[-1] == 0.0
    assert len(round_trip_pnls(trades)) == 1


def test_a_fill_after_the_last_bar_is_refused():
    close = series([100.0, 101.0])
    with pytest.raises(ValueError, match="after the last bar close"):
        equity_curve(fills(("2025-01-02 00:00:01", "BUY", 1.0, 101.0, 0.0)), close, 1000.0)


# --- each statistic by hand -------------------------------------------------------------------


def test_stats_have_exactly_the_report_keys():
    assert tuple(stats_of(series([100.0, 101.0]))) == STAT_KEYS


def test_max_drawdown_total_return_and_calmar_by_hand():
    stats = stats_of(series([100.0, 120.0, 90.0, 130.0]))
    assert stats["max_drawdown"] == pytest.approx(0.25)  # 120 → 90
    assert stats["total_return"] == pytest.approx(0.30)
    assert stats["calmar"] == pytest.approx(stats["cagr"] / 0.25)


def test_cagr_over_two_years_by_hand():
    equity = pd.Series([100.0, 121.0], index=pd.DatetimeIndex(["2021-01-01", "2022-12-31"], tz="UTC"))  # 729 days
    years = 729 / 365
    assert stats_of(equity)["cagr"] == pytest.approx(1.21 ** (1 / years) - 1)
    two_years = pd.Series([100.0, 121.0], index=pd.DatetimeIndex(["2021-01-01", "2023-01-01"], tz="UTC"))
    assert stats_of(two_years)["cagr"] == pytest.approx(0.10)  # 730 days = 2 x 365


def test_no_drawdown_means_no_calmar():
    stats = stats_of(series([100.0, 101.0, 103.0]))
    assert stats["max_drawdown"] == 0.0
    assert math.isnan(stats["calmar"])


def test_sharpe_sortino_and_annual_return_from_daily_returns_by_hand():
    returns = [0.01, -0.02, 0.015, -0.005, 0.025]
    equity = series(100.0 * np.cumprod([1.0] + [1 + r for r in returns]))  # one bar per UTC midnight
    stats = stats_of(equity)
    mean = 0.005
    std = math.sqrt((0.005**2 + 0.025**2 + 0.01**2 + 0.01**2 + 0.02**2) / 4)  # n - 1
    downside = math.sqrt((0.02**2 + 0.005**2) / 5)  # negatives only, over all days
    assert stats["annual_return"] == pytest.approx(mean * 365)
    assert stats["sharpe"] == pytest.approx(mean / std * math.sqrt(365))
    assert stats["sortino"] == pytest.approx(mean / downside * math.sqrt(365))


def test_daily_returns_are_taken_at_utc_midnights_against_the_start():
    # Hourly bars from 01:00: the first day ends at the next midnight, the last day is partial.
    equity = series(np.linspace(100.0, 110.0, 40), start="2025-01-01 01:00", freq="h")
    daily = daily_returns(equity, start=99.0)
    assert list(daily.index) == list(pd.DatetimeIndex(["2025-01-02", "2025-01-03"], tz="UTC"))
    at_midnight = equity.loc["2025-01-02 00:00"]
    assert daily.iloc[0] == pytest.approx(at_midnight / 99.0 - 1)
    assert daily.iloc[1] == pytest.approx(110.0 / at_midnight - 1)


def test_ratios_are_nan_where_undefined():
    one_day = stats_of(series([100.0, 90.0]))  # a single daily return has no spread
    assert math.isnan(one_day["sharpe"]) and math.isnan(one_day["sortino"])
    never_down = stats_of(series([100.0, 101.0, 103.0, 104.0]))
    assert math.isnan(never_down["sortino"]) and not math.isnan(never_down["sharpe"])


def test_a_strategy_that_never_trades():
    stats = stats_of(series([100.0, 100.0, 100.0]))
    assert stats["total_return"] == 0.0 and stats["max_drawdown"] == 0.0
    assert math.isnan(stats["sharpe"]) and math.isnan(stats["calmar"])
    assert stats["trades"] == 0 and math.isnan(stats["win_rate"])
    assert (stats["turnover"], stats["fees"], stats["exposure"], stats["bars"]) == (0.0, 0.0, 0.0, 3)
    assert stats["run_seconds"] == 1.5


def test_round_trips_win_rate_turnover_fees_and_exposure_with_a_flip():
    close = series([100.0, 110.0, 120.0, 100.0, 100.0])
    trades = fills(
        ("2025-01-01", "BUY", 1.0, 100.0, 1.0),  # opens long 1
        ("2025-01-02", "SELL", 2.0, 110.0, 2.0),  # closes the long (+10 - 1 - 1), opens short 1
        ("2025-01-03", "BUY", 1.0, 120.0, 1.0),  # closes the short (-10 - 1 - 1)
        ("2025-01-04", "BUY", 1.0, 100.0, 1.0),  # opens a long still open at the end: no round trip
    )
    assert round_trip_pnls(trades) == pytest.approx([8.0, -12.0])
    equity = equity_curve(trades, close, starting_equity=1000.0)
    stats = performance_stats(equity, trades, close, run_seconds=0.0)
    assert stats["trades"] == 2
    assert stats["win_rate"] == 0.5
    assert stats["turnover"] == pytest.approx((100 + 220 + 120 + 100) / 1000)
    assert stats["fees"] == 5.0
    assert stats["exposure"] == pytest.approx(4 / 5)  # long, short, flat, long, long
    assert stats["total_return"] == pytest.approx((1000 + 8 - 12 - 1) / 1000 - 1)


def test_a_fee_on_the_first_bar_counts_against_the_run():
    close = series([100.0, 100.0])
    trades = fills(("2025-01-01", "BUY", 1.0, 100.0, 0.1))
    stats = performance_stats(equity_curve(trades, close, 1000.0), trades, close, run_seconds=0.0)
    assert stats["total_return"] == pytest.approx(-0.1 / 1000)
    assert stats["max_drawdown"] == pytest.approx(0.1 / 1000)


# --- real bars --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def week(shared_data) -> pd.DataFrame:
    return read_klines(shared_data / FIXTURE_7D)


def test_buy_and_hold_on_real_bars_returns_the_price_change_less_the_fee(week):
    close = to_bars_frame(week, M1)["close"]
    fee_rate, start = 0.001, 10_000.0
    quantity = start / (close.iloc[0] * (1 + fee_rate))  # all cash, fee included
    trades = fills((close.index[0], "BUY", quantity, close.iloc[0], fee_rate * quantity * close.iloc[0]))
    stats = performance_stats(equity_curve(trades, close, start), trades, close, run_seconds=0.0)
    # Exact for a fee charged on top of the notional; (1 - fee) is its first-order form.
    assert stats["total_return"] == pytest.approx(close.iloc[-1] / close.iloc[0] / (1 + fee_rate) - 1, abs=1e-12)
    assert stats["exposure"] == 1.0 and stats["trades"] == 0 and math.isnan(stats["win_rate"])
    assert stats["bars"] == 10_080


class ScriptedConfig(StrategyConfig, frozen=True):
    bar_type: str
    plan: dict  # bar number -> signed quantity to trade at that bar's close


class Scripted(Strategy):
    """Market orders of fixed sizes at fixed bars."""

    def __init__(self, config: ScriptedConfig):
        super().__init__(config)
        self.bars_seen = 0

    def on_start(self):
        self.subscribe_bars(BarType.from_str(self.config.bar_type))

    def on_bar(self, bar):
        quantity = self.config.plan.get(self.bars_seen)
        if quantity is not None:
            side = OrderSide.BUY if quantity > 0 else OrderSide.SELL
            size = Quantity(abs(quantity), SPOT.size_precision)
            self.submit_order(self.order_factory.market(SPOT.id, side, size))
        self.bars_seen += 1


# Long only: Nautilus 1.221's CashAccount misbooks a spot fill that flips the position (see equity_curve).
PLAN = {0: 0.05, 500: 0.03, 2_000: -0.05, 4_000: -0.03, 6_000: 0.02, 9_000: -0.01, 10_079: 0.004}
START_USDT, START_BTC = 10_000.0, 0.5


def test_equity_matches_the_nautilus_cash_account(week):
    bars_type = bar_type(SPOT.id, M1)
    engine = BacktestEngine(BacktestEngineConfig(logging=LoggingConfig(bypass_logging=True)))
    engine.add_venue(
        VENUE, oms_type=OmsType.NETTING, account_type=AccountType.CASH, base_currency=None,
        starting_balances=[Money(START_USDT, USDT), Money(START_BTC, BTC)],
    )
    engine.add_instrument(SPOT)
    engine.add_data(to_nautilus_bars(week, bars_type, SPOT, M1))
    engine.add_strategy(Scripted(ScriptedConfig(bar_type=str(bars_type), plan=PLAN)))
    engine.run()

    trades = fills_from_nautilus(engine.trader.generate_fills_report())
    close = to_bars_frame(week, M1)["close"]
    equity = equity_curve(trades, close, starting_equity=START_USDT)
    balances = engine.portfolio.account(VENUE).balances_total()
    engine.dispose()

    assert len(trades) == len(PLAN)
    assert list(trades["side"]) == ["BUY" if q > 0 else "SELL" for q in PLAN.values()]
    assert (trades["ts"].to_numpy() == close.index[list(PLAN)].to_numpy()).all()  # filled at the bar's close
    assert (trades["fee"] > 0).all()
    usdt, btc = balances[USDT].as_double(), balances[BTC].as_double()
    assert position_series(trades, close.index).iloc[-1] == pytest.approx(btc - START_BTC, abs=1e-12)
    # The starting BTC is not the strategy's: Nautilus's account holds it beside the strategy's position.
    nautilus_value = usdt + btc * close.iloc[-1]
    assert equity.iloc[-1] + START_BTC * close.iloc[-1] == pytest.approx(nautilus_value, abs=1e-6)


    # Nautilus's own statistics of the run's daily returns: its CAGR is ours; its MaxDrawdown and
    # CalmarRatio see the day ends only, where ours marks every bar (see backtests/stats.py).
    stats = performance_stats(equity, trades, close, run_seconds=0.0)
    daily = daily_returns(equity, opening_equity(equity, trades, close))
    by_day = {ts.value: r for ts, r in daily.items()}
    assert stats["cagr"] == CAGR(period=365).calculate_from_returns(by_day)
    day_ends = np.concatenate([[1.0], np.cumprod(1.0 + daily.to_numpy())])
    daily_drawdown = float((1.0 - day_ends / np.maximum.accumulate(day_ends)).max())
    assert -MaxDrawdown().calculate_from_returns(by_day) == pytest.approx(daily_drawdown, rel=1e-12)
    assert CalmarRatio(period=365).calculate_from_returns(by_day) == pytest.approx(stats["cagr"] / daily_drawdown, rel=1e-12)
    assert stats["max_drawdown"] > daily_drawdown > 0  # intraday troughs deeper than any day end's
    assert stats["calmar"] == stats["cagr"] / stats["max_drawdown"]


def test_an_empty_nautilus_report_is_no_fills():
    table = fills_from_nautilus(pd.DataFrame())
    assert list(table.columns) == FILL_COLUMNS and table.empty


@pytest.mark.parametrize("rows", [1, 7, 997, 1_440, 20_000])
def test_curves_and_statistics_made_in_chunks_are_the_whole_ones_exactly(week, rows):
    """What the report writes a row group at a time: the equity, the positions and every statistic
    are the values the whole curve gives, not merely close to them (days split across chunks too)."""
    close = to_bars_frame(week, M1)["close"]
    rng = np.random.default_rng(rows)
    times = close.index[np.sort(rng.choice(len(close), size=60, replace=False))] - pd.Timedelta(seconds=30)
    # Long, flat, short and flips, with fees: every kind of step the sums carry.
    trades = fills(*((t, side, q, float(close.asof(t)) if t >= close.index[0] else float(close.iloc[0]), 0.02 * q)
                     for t, side, q in zip(times, rng.choice(["BUY", "SELL"], size=60), rng.uniform(0.01, 0.2, 60).round(3))))
    whole = equity_curve(trades, close, 10_000.0)
    parts = list(equity_chunks(trades, close, 10_000.0, rows))
    pd.testing.assert_series_equal(pd.concat([equity for equity, _ in parts]), whole, check_exact=True)
    np.testing.assert_array_equal(np.concatenate([position for _, position in parts]), position_series(trades, close.index).to_numpy())
    summary = CurveSummary(opening_equity(whole, trades, close))
    for equity, position in parts:
        summary.add(equity, position != 0.0)
    chunked, expected = curve_stats(summary, [trades], 0.0, None), performance_stats(whole, trades, close, run_seconds=0.0)
    assert chunked.keys() == expected.keys()
    for key, value in expected.items():
        assert chunked[key] == value or (math.isnan(value) and math.isnan(chunked[key])), key
    pd.testing.assert_series_equal(summary.daily_returns(), daily_returns(whole, summary.start), check_exact=True)
