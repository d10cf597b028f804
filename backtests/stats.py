"""Performance statistics of a backtest, from its fills and the bars it traded on.

Everything is computed from one small table of fills (``FILL_COLUMNS``): ``ts`` (tz-aware UTC
time of the fill), ``side`` ("BUY"/"SELL"), ``quantity`` (base units, positive), ``price`` and
``fee`` (quote currency, positive = paid). :func:`fills_from_nautilus` builds it from Nautilus's
``trader.generate_fills_report()``.

Equity is marked to market at every bar close, in quote currency, from cash flows:
``equity_t = starting + sum over fills applied by t of (-signed_qty * price - fee) + position_t * close_t``.
A fill is applied at the first bar close at or after its time. This is the equity of a spot CASH
account (quote balance + base held at the close) and of a linear (USDT-M) perpetual on a MARGIN
account (balance + unrealized PnL) alike; funding payments are not modelled.

Statistics (:func:`performance_stats`). ``equity_start`` is the equity before any fill: the first
bar's equity with that bar's fills undone, so a fee paid on the first bar counts against the run.

- ``total_return``: ``equity_end / equity_start - 1``.
- ``annual_return``: mean daily return x ``periods_per_year`` (365: crypto trades every day).
- ``sharpe``: mean daily return / standard deviation of daily returns (n - 1) x sqrt(365);
  Nautilus's ``SharpeRatio``. NaN with fewer than two days or no variation.
- ``sortino``: mean daily return / sqrt(sum of squared negative daily returns / number of days)
  x sqrt(365); Nautilus's ``SortinoRatio``. NaN with fewer than two days or no losing day.
- ``max_drawdown``: the largest fall from a running peak of equity (``equity_start`` included),
  as a positive fraction of that peak; 0.0 if equity never falls. Ours, not Nautilus's
  ``MaxDrawdown``: Nautilus's takes returns, and fed the daily returns it sees the equity at each
  UTC midnight only; this one marks every bar, so a trough within a day counts too. On the day
  ends alone the two agree (``tests/backtests/test_stats.py`` checks it on a real run).
- ``cagr``: Nautilus's ``CAGR``: ``(equity_end / equity_start) ** (365 / days) - 1``, days = the
  number of daily returns (each UTC day the run touches counts whole, as in Sharpe and Sortino).
  NaN with no daily return.
- ``calmar``: ``cagr / max_drawdown``; NaN if there is no drawdown. Ours, for the reason
  ``max_drawdown`` is: Nautilus's ``CalmarRatio`` divides by the drawdown of the day ends.
- ``trades``: completed round trips. A round trip runs from flat to flat; a fill that flips the
  position closes one round trip and opens the next, its quantity, cash and fee split between them.
  A position still open after the last bar is not a round trip (its PnL is in the equity).
- ``win_rate``: share of round trips whose PnL after fees is above zero; NaN if there are none.
- ``turnover``: traded notional (sum of quantity x price) / ``equity_start``.
- ``fees``: total fees paid, quote currency.
- ``exposure``: share of bars that end with a non-zero position.
- ``bars``: number of bars; ``run_seconds``: passed through.

Daily returns are those of the equity at each UTC midnight (the close of the day's last bar),
the first taken against ``equity_start``; a final partial day counts as a day, and a day without
bars has a zero return.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pandas as pd
from nautilus_trader.analysis import CAGR, SharpeRatio, SortinoRatio, WinRate
from nautilus_trader.model.objects import Money

FILL_COLUMNS = ["ts", "side", "quantity", "price", "fee"]
STAT_KEYS = (
    "total_return", "annual_return", "sharpe", "sortino", "max_drawdown", "cagr", "calmar",
    "win_rate", "trades", "turnover", "fees", "exposure", "bars", "run_seconds",
)
DAYS_PER_YEAR = 365
_DAY = pd.Timedelta(days=1)
# Positions are sums of float quantities: a residue this small relative to the fills is flat.
_FLAT_TOLERANCE = 1e-9


def fills_from_nautilus(report: pd.DataFrame) -> pd.DataFrame:
    """``trader.generate_fills_report()`` (one row per fill event) → the fills table, in time order.

    The per-order ``generate_order_fills_report()`` would merge partial fills into an average
    price, so the per-fill report is the one used. The report must hold one strategy's fills of
    one instrument (filter it by ``strategy_id`` first), with fees in the quote currency.
    """
    if report.empty:
        return empty_fills()
    for column in ("strategy_id", "instrument_id"):
        if report[column].nunique() > 1:
            raise ValueError(f"the fills report mixes several {column}s; pass one strategy's fills of one instrument")
    fees = [Money.from_str(str(text)) for text in report["commission"]]
    wrong = {fee.currency.code for fee in fees} - set(report["currency"])
    if wrong:
        raise ValueError(f"fees paid in {sorted(wrong)}, not the quote currency: they cannot be priced from the fills")
    fills = pd.DataFrame(
        {
            "ts": pd.to_datetime(report["ts_event"], utc=True).array,
            "side": report["order_side"].astype(str).to_numpy(),
            "quantity": [float(str(q)) for q in report["last_qty"]],
            "price": [float(str(p)) for p in report["last_px"]],
            "fee": [fee.as_double() for fee in fees],
        }
    )
    return fills.sort_values("ts", kind="stable", ignore_index=True)


def empty_fills() -> pd.DataFrame:
    """A fills table without fills (a strategy that never traded)."""
    return pd.DataFrame(
        {
            "ts": pd.Series(dtype="datetime64[ns, UTC]"),
            "side": pd.Series(dtype=object),
            "quantity": pd.Series(dtype=float),
            "price": pd.Series(dtype=float),
            "fee": pd.Series(dtype=float),
        }
    )


def position_series(fills: pd.DataFrame, index: pd.DatetimeIndex) -> pd.Series:
    """Signed base position held after each bar (long > 0), exactly 0.0 when flat."""
    traded = _running_sums(_signed_quantity(fills), _bar_numbers(fills, index), 0, len(index), 0.0)
    return pd.Series(_held(traded, _flat_tolerance(fills)), index=index, name="position")


def equity_curve(fills: pd.DataFrame, close: pd.Series, starting_equity: float) -> pd.Series:
    """Mark-to-market equity at every bar close, quote currency (see the module docstring).

    Nautilus 1.221's ``CashAccount`` books quote currency only for the part of a fill that closes
    the open position, so after a spot fill that flips long to short its USDT balance falls short
    of this curve by the opening leg's notional. Spot strategies should not flip.
    """
    equity, _ = next(equity_chunks(fills, close, starting_equity, max(len(close), 1)))
    return equity


def equity_chunks(fills: pd.DataFrame, close: pd.Series, starting_equity: float, rows: int) -> Iterator[tuple[pd.Series, np.ndarray]]:
    """:func:`equity_curve` ``rows`` bars at a time, with the position held after each bar: the same
    values (the running sums carried from chunk to chunk, added in the same order), none of the
    whole range held at once."""
    bars, flows, signed, tolerance = _bar_numbers(fills, close.index), _cash_flows(fills), _signed_quantity(fills), _flat_tolerance(fills)
    cash, traded = 0.0, 0.0  # the running sums at the end of the chunk before
    for start in range(0, max(len(close), 1), rows):
        part = close.iloc[start : start + rows]
        cash_sums = _running_sums(flows, bars, start, len(part), cash)
        traded_sums = _running_sums(signed, bars, start, len(part), traded)
        if len(part):
            cash, traded = float(cash_sums[-1]), float(traded_sums[-1])
        position = _held(traded_sums, tolerance)
        yield pd.Series(starting_equity + cash_sums + position * part.to_numpy(dtype=float), index=part.index, name="equity"), position


def performance_stats(
    equity: pd.Series,
    fills: pd.DataFrame,
    close: pd.Series,
    run_seconds: float,
    periods_per_year: int | None = None,
) -> dict:
    """The report's statistics, keys ``STAT_KEYS``, defined in the module docstring.

    ``equity`` is :func:`equity_curve` of ``fills`` on ``close``. ``periods_per_year`` is the
    number of daily returns in a year used to annualize the mean return, Sharpe and Sortino
    (365 if None, as crypto trades every day).
    """
    if not equity.index.equals(close.index):
        raise ValueError("equity and close must share one bar index")
    exposed = (position_series(fills, close.index) != 0.0).to_numpy()
    start = opening_equity(equity, fills, close)
    return curve_stats(CurveSummary(start).add(equity, exposed), [fills], run_seconds, periods_per_year)


def account_stats(equity: pd.Series, fills: dict[str, pd.DataFrame], closes: dict[str, pd.Series], starting_equity: float,
                  run_seconds: float) -> dict:
    """:func:`performance_stats` of one account trading several instruments (keys ``STAT_KEYS``).

    ``equity`` is :func:`account_equity` of the per-instrument ``fills`` and ``closes`` (each close
    already on equity's index); the equity before any fill is ``starting_equity``; round trips,
    turnover and fees count every instrument's fills; exposure is the share of bars ending with
    any position open.
    """
    exposed = np.zeros(len(equity), dtype=bool)
    for key, close in closes.items():
        exposed |= (position_series(fills[key], close.index) != 0.0).to_numpy()
    return curve_stats(CurveSummary(starting_equity).add(equity, exposed), list(fills.values()), run_seconds, None)


def account_equity(fills: dict[str, pd.DataFrame], closes: dict[str, pd.Series], starting_equity: float) -> pd.Series:
    """One account's equity over several instruments: ``starting_equity`` plus each instrument's
    cash flows and marked position (:func:`equity_curve` from zero), on the union of their bar
    closes; an instrument without a bar at a close is marked at its last close before it (at its
    first, before it has any)."""
    index = pd.DatetimeIndex(sorted(set().union(*(close.index for close in closes.values()))))
    total = pd.Series(float(starting_equity), index=index, name="equity")
    for key, close in closes.items():
        total += equity_curve(fills[key], close.reindex(index).ffill().bfill(), 0.0)
    return total


class CurveSummary:
    """What the statistics read of an equity curve, given a chunk at a time in time order: its bars,
    its last equity, the equity at each UTC day's end, its largest drawdown from the running peak
    (``start``, the equity before any fill, included) and the bars ending with a position open.
    Chunks give the figures the whole curve gives (the same values compared and kept)."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.bars = self.exposed = 0
        self.first_close: pd.Timestamp | None = None
        self.end = math.nan
        self.peak, self.max_drawdown = start, 0.0
        self._day_ends: list[pd.Series] = []

    def add(self, equity: pd.Series, exposed: np.ndarray | None = None) -> CurveSummary:
        """The next bars' ``equity``; ``exposed``: whether each ends with a position open."""
        if not len(equity):
            return self
        if self.first_close is None:
            self.first_close = equity.index[0]
        self.max_drawdown = max(self.max_drawdown, float(drawdown(equity, self.peak).max()))
        self.peak = max(self.peak, float(equity.max()))
        self._day_ends.append(equity.resample(_DAY, closed="right", label="right").last())
        self.bars += len(equity)
        self.exposed += int(np.count_nonzero(exposed)) if exposed is not None else 0
        self.end = float(equity.iloc[-1])
        return self

    def daily_returns(self) -> pd.Series:
        """Returns of the equity at each UTC midnight, the first against ``start`` (:func:`daily_returns`)."""
        if not self._day_ends:
            return pd.Series(dtype=float, name="daily_return")
        # A day two chunks share ends with the later one's last bar; a day between them without a bar carries the last.
        day_ends = pd.concat(self._day_ends).groupby(level=0).last().asfreq(_DAY).ffill()
        # A run whose first bar closes at midnight has a day end at its start: not a day of trading.
        day_ends = day_ends[day_ends.index > self.first_close]
        levels = np.concatenate([[self.start], day_ends.to_numpy()])
        return pd.Series(levels[1:] / levels[:-1] - 1.0, index=day_ends.index, name="daily_return")


def curve_stats(curve: CurveSummary, fills: list[pd.DataFrame], run_seconds: float, periods_per_year: int | None) -> dict:
    """The statistics (``STAT_KEYS``, the module docstring) of a curve summed up, and its fills."""
    per_year = periods_per_year or DAYS_PER_YEAR
    start, end, max_dd = curve.start, curve.end, curve.max_drawdown
    daily = curve.daily_returns()
    growth = float(CAGR(period=per_year).calculate_from_returns(_by_day(daily))) if len(daily) else math.nan
    trips = [pnl for each in fills for pnl in round_trip_pnls(each)]
    return {
        "total_return": end / start - 1.0,
        "annual_return": float(daily.mean()) * per_year,
        "sharpe": _nautilus_ratio(SharpeRatio(period=per_year), daily),
        "sortino": _nautilus_ratio(SortinoRatio(period=per_year), daily),
        "max_drawdown": max_dd,
        "cagr": growth,
        "calmar": growth / max_dd if max_dd > 0 else math.nan,
        # Nautilus's WinRate answers 0.0 for no trades; no trades means no win rate.
        "win_rate": float(WinRate().calculate_from_realized_pnls(trips)) if trips else math.nan,
        "trades": len(trips),
        "turnover": sum(float((each["quantity"] * each["price"]).sum()) for each in fills) / start,
        "fees": sum(float(each["fee"].sum()) for each in fills),
        "exposure": curve.exposed / curve.bars,
        "bars": curve.bars,
        "run_seconds": run_seconds,
    }


def opening_equity(equity: pd.Series, fills: pd.DataFrame, close: pd.Series) -> float:
    """Equity before any fill: the first bar's equity with that bar's fills undone."""
    first_bar = _bar_numbers(fills, close.index) == 0
    at_open = fills.loc[first_bar]
    held = float(_signed_quantity(at_open).sum())
    return float(equity.iloc[0]) - float(_cash_flows(at_open).sum()) - held * float(close.iloc[0])


def daily_returns(equity: pd.Series, start: float) -> pd.Series:
    """Returns of the equity at each UTC midnight, the first against ``start`` (equity before any fill)."""
    return CurveSummary(start).add(equity).daily_returns()


def drawdown(equity: pd.Series, peak_before: float = -np.inf) -> pd.Series:
    """Fall below the running peak at each point, as a positive fraction of the peak; ``peak_before``:
    the peak before the first point (a later part of a curve)."""
    return 1.0 - equity / np.maximum(equity.cummax(), peak_before)


def round_trip_pnls(fills: pd.DataFrame) -> list[float]:
    """PnL after fees of each completed round trip, in the order they close."""
    tolerance = _flat_tolerance(fills)
    position, pnl, pnls = 0.0, 0.0, []
    for signed, flow in zip(_signed_quantity(fills), _cash_flows(fills)):
        after = position + signed
        if abs(after) <= tolerance:
            after = 0.0
        flips = position * after < 0
        # The share of this fill that belongs to the round trip open before it.
        share = abs(position) / abs(signed) if flips else 1.0
        pnl += share * flow
        if position != 0.0 and (after == 0.0 or flips):
            pnls.append(pnl)
            pnl = 0.0
        pnl += (1.0 - share) * flow
        position = after
    return pnls


def _nautilus_ratio(statistic, daily: pd.Series) -> float:
    # Nautilus's SortinoRatio (1.221) answers a number for a single day; one day has no spread.
    if len(daily) < 2:
        return math.nan
    return float(statistic.calculate_from_returns(_by_day(daily)))


def _by_day(daily: pd.Series) -> dict[int, float]:
    # Nautilus sums returns within a UTC day; ours are already one per day, keyed at midnight.
    return {ts.value: r for ts, r in daily.items()}


def _signed_quantity(fills: pd.DataFrame) -> np.ndarray:
    sides = fills["side"].to_numpy()
    unknown = set(sides) - {"BUY", "SELL"}
    if unknown:
        raise ValueError(f"fill sides must be BUY or SELL, not {sorted(unknown)}")
    return np.where(sides == "BUY", 1.0, -1.0) * fills["quantity"].to_numpy(dtype=float)


def _cash_flows(fills: pd.DataFrame) -> np.ndarray:
    """Quote currency received by each fill: minus what a buy pays, plus what a sell gets, less the fee."""
    return -_signed_quantity(fills) * fills["price"].to_numpy(dtype=float) - fills["fee"].to_numpy(dtype=float)


def _bar_numbers(fills: pd.DataFrame, index: pd.DatetimeIndex) -> np.ndarray:
    """The bar each fill is applied at: the first bar close at or after the fill."""
    bars = index.searchsorted(pd.DatetimeIndex(fills["ts"]), side="left")
    if (bars >= len(index)).any():
        late = fills["ts"].iloc[int(np.argmax(bars >= len(index)))]
        raise ValueError(f"a fill at {late} comes after the last bar close {index[-1]}")
    return bars


def _running_sums(values: np.ndarray, bars: np.ndarray, start: int, length: int, before: float) -> np.ndarray:
    """The running sum, from ``before``, of per-fill ``values`` (``bars``: each fill's bar) over the bars
    ``start`` to ``start + length``: the same additions, in the same order, as one cumulative sum over
    every bar, so a curve made in chunks equals the whole one."""
    here = (bars >= start) & (bars < start + length)
    per_bar = np.bincount(bars[here] - start, weights=values[here], minlength=length)
    return np.cumsum(np.concatenate([[before], per_bar]))[1:]


def _held(traded: np.ndarray, tolerance: float) -> np.ndarray:
    """The position from the running sum of signed quantities: exactly 0.0 within ``tolerance`` of flat."""
    return np.where(np.abs(traded) <= tolerance, 0.0, traded)


def _flat_tolerance(fills: pd.DataFrame) -> float:
    return _FLAT_TOLERANCE * float(fills["quantity"].max()) if len(fills) else 0.0
