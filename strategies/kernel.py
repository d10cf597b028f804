"""The strategy's per-bar decision as compiled code: the checks, the rule, the volatility gate, the record.

On every bar the strategy ran about ten small Python calls after the forecast (the gate's window,
the checks before the rule, the rule, the gate, the decision log's record). Inside a backtest each cost several times what it
costs in a tight loop, the engine's own work between bars leaving the caches cold: about 10 µs a
bar in all, against 4 for the forecast's compiled call (README, Performance). :func:`decide_bar`
does them in one compiled call. The rule (:func:`rule_core`), the checks (:func:`stop_core`,
:func:`wait_core`, :func:`drawdown_core`) and the gate's window (:func:`gate_update`) are written
here once: ``strategies.decision``, ``strategies.catchup``, ``strategies.safety`` and
``strategies.volatility`` call the same functions, and only put their codes into words.

What the compiled call does not decide it leaves to the strategy's Python (:data:`DEFER`): a
check before the rule that fires, a reason that wraps another (the minimum hold, the gate), a
quantile band's, a full staging buffer. When the account's equity is due to be read again it asks
for that first (:data:`READ_ACCOUNT`), before it changes anything, and the strategy calls it again.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

LONG, FLAT, SHORT = 1, 0, -1

# The rule's reasons, by code: a text, or a template of the point forecast and the threshold (the band's: low, high, threshold).
NOT_FINITE, INSIDE, ABOVE, BELOW, NO_SHORT, BAND = range(6)
RULE_REASONS = (
    "forecast is not finite: no trade",
    "forecast {:+.6f} inside ±{:.6f}",
    "forecast {:+.6f} > {:.6f}",
    "forecast {:+.6f} < -{:.6f}",
    "forecast {:+.6f} < -{:.6f} but this venue cannot short",
    "quantile band [{:+.6f}, {:+.6f}] does not clear {:.6f}",
)
HELD_REASON = "{}; held {} of {} minimum bars"
DEFER = -2  # decide_bar: the strategy's Python decides this bar
READ_ACCOUNT = -3  # decide_bar: nothing done yet; read the account's equity parts (AccountView.read_parts), then call again

# The checks before the rule (strategies.decision.stop_triggered, strategies.catchup.FeedConfig.no_trade), by code.
STOP_LOSS, TAKE_PROFIT = 1, 2
STALE_BAR, AFTER_GAP = 1, 2
# decide_bar's settings, in order: the rule's (threshold, allow_short, quantile_gate, min_holding_bars), the
# stops' (stop_loss, take_profit: NaN for none), the feed's (max_bar_delay_bars, gap_cooldown_bars),
# the bar interval in ns and the kill switch's max_drawdown (NaN: none): strategies.decision.BarDecision.
# An account's equity parts (strategies.account.AccountView.parts): cash, units, calls since read; they
# are read again once the calls reach EQUITY_REFRESH_BARS (a fill sets them there: read at the next call).
CASH, UNITS, CALLS = range(3)
EQUITY_REFRESH_BARS = 60
# The gate's state: the latest forecast, whether it is over its multiple of the median (1/0), that
# forecast and median, the multiple. The trailing median's: values pushed, the median, the refresh.
SIGMA, SHUT, OVER_SIGMA, OVER_MEDIAN, MULTIPLE = range(5)
COUNT, MEDIAN, REFRESH = range(3)
# A staging buffer's count: rows written, rows it holds, whether rows are kept at all (1/0).
ROWS, CAPACITY, KEEP = range(3)


@njit(cache=True, error_model="numpy")
def rule_core(point, low, high, has_band, side, bars_held, threshold, allow_short, quantile_gate, min_holding):
    """The rule (strategies.decision.decide): (target, reason code, whether the minimum hold kept ``side``)."""
    if not math.isfinite(point) or (has_band and not (math.isfinite(low) and math.isfinite(high))):
        return side, NOT_FINITE, False
    wanted, code = FLAT, INSIDE
    if point > threshold:
        wanted, code = LONG, ABOVE
    elif point < -threshold:
        if allow_short:
            wanted, code = SHORT, BELOW
        else:
            code = NO_SHORT
    if wanted != FLAT and quantile_gate and has_band:
        clears = low > threshold if wanted == LONG else high < -threshold
        if not clears:
            wanted, code = FLAT, BAND
    if side != FLAT and wanted != side and bars_held < min_holding:
        return side, code, True
    return wanted, code, False


@njit(cache=True, error_model="numpy")
def stop_core(side, entry_price, close, stop_loss, take_profit):
    """strategies.decision.stop_triggered: (STOP_LOSS, TAKE_PROFIT or 0, the move with the position);
    a stop of NaN is none."""
    if side == FLAT or entry_price <= 0:
        return 0, 0.0
    move = side * (close / entry_price - 1.0)
    if move <= -stop_loss:
        return STOP_LOSS, move
    if move >= take_profit:
        return TAKE_PROFIT, move
    return 0, move


@njit(cache=True, error_model="numpy")
def drawdown_core(equity, peak, max_drawdown):
    """strategies.safety.SafetyRails.drawdown_breached: (whether ``equity`` fell ``max_drawdown`` below
    the peak, the peak with it); a NaN equity is no evidence of one."""
    if not math.isfinite(equity):
        return False, peak
    peak = max(peak, equity)
    return peak > 0 and equity < peak * (1 - max_drawdown), peak


@njit(cache=True, error_model="numpy")
def wait_core(bar_age, bars_since_gap, max_bar_delay_bars, gap_cooldown_bars):
    """strategies.catchup.FeedConfig.no_trade: STALE_BAR, AFTER_GAP or 0 (trade)."""
    if bar_age > max_bar_delay_bars:
        return STALE_BAR
    if bars_since_gap <= gap_cooldown_bars:
        return AFTER_GAP
    return 0


@njit(cache=True, error_model="numpy")
def median_then_push(value, ring, median):
    """strategies.volatility.TrailingMedian's step on its ring and ``median`` state (COUNT, MEDIAN, REFRESH)."""
    count, window = int(median[COUNT]), ring.size
    if count >= window and (count - window) % int(median[REFRESH]) == 0:
        half = window // 2  # np.median's number, by one partition: its checks cost 5 times the partition
        if window % 2:
            median[MEDIAN] = np.partition(ring, half)[half]
        else:
            middle = np.partition(ring, (half - 1, half))
            median[MEDIAN] = (middle[half - 1] + middle[half]) / 2
    ring[count % window] = value
    median[COUNT] = count + 1
    return median[MEDIAN]


@njit(cache=True, error_model="numpy")
def gate_update(sigma, ring, median, gate):
    """strategies.volatility.VolatilityRisk.update on its arrays: the latest forecast, and whether it
    is over the gate's multiple of the trailing median of those before it (never while that is NaN).
    A gate of no window (``ring`` empty) only keeps the forecast."""
    gate[SIGMA] = sigma
    if ring.size == 0:
        return
    if not math.isfinite(sigma):
        gate[SHUT], gate[OVER_SIGMA], gate[OVER_MEDIAN] = 1.0, math.nan, math.nan
        return
    before = median_then_push(sigma, ring, median)
    if sigma > gate[MULTIPLE] * before:
        gate[SHUT], gate[OVER_SIGMA], gate[OVER_MEDIAN] = 1.0, sigma, before
    else:
        gate[SHUT] = 0.0


@njit(cache=True, error_model="numpy")
def decide_bar(ts, close, out, trade, side, bars_held, entry_price, now_ns, bars_since_gap, guarded, at, settings,
               parts, peak, ring, median, gate, times, closes, outputs, sides, codes, numbers, rows) -> int:
    """One forecast bar after the forecast (``out``, the forecaster's outputs): the gate's window,
    then, if ``trade``, the checks before the rule, the rule and the gate, recorded in the staging
    buffer (times ... numbers; ``rows``: ROWS, CAPACITY, KEEP). Returns the side to hold, ``side``
    when not trading, DEFER, or READ_ACCOUNT having done nothing.

    ``guarded``: a check only Python makes stops the rule (the kill switch fired, an order is in
    flight); ``at``: where in ``out`` the point forecast, the lowest and highest quantile and the
    volatility are (-1: none); ``settings``: as above; ``parts``: the account's equity parts (CASH,
    UNITS, CALLS), ``peak`` (1,): the kill switch's peak equity; ``ring``, ``median``, ``gate``: the
    gate's arrays.
    """
    kill_switch = trade and not math.isnan(settings[9])  # the equity against its peak, every traded bar
    if kill_switch and parts[CALLS] >= EQUITY_REFRESH_BARS:
        return READ_ACCOUNT  # first, before any state moves: the account is read in Python
    if at[3] >= 0:
        gate_update(out[at[3]], ring, median, gate)
    if not trade:
        return side
    if kill_switch:
        parts[CALLS] += 1
        breached, peak[0] = drawdown_core(parts[CASH] + parts[UNITS] * close, peak[0], settings[9])
        if breached:
            return DEFER
    if (guarded or stop_core(side, entry_price, close, settings[4], settings[5])[0]
            or wait_core((now_ns - ts) / settings[8], bars_since_gap, settings[6], settings[7])):
        return DEFER  # a check decides: in Python, with its reason
    point = out[at[0]]
    has_band = at[1] >= 0
    low = out[at[1]] if has_band else math.nan
    high = out[at[2]] if has_band else math.nan
    target, code, held = rule_core(point, low, high, has_band, side, bars_held, settings[0], settings[1] > 0, settings[2] > 0,
                                   settings[3])
    if held or code == BAND or (gate[SHUT] > 0 and target != FLAT and target != side):
        return DEFER  # a reason that holds another, or three numbers: the Python record keeps them
    if rows[KEEP] == 0:
        return target
    row = rows[ROWS]
    if row == rows[CAPACITY]:
        return DEFER  # full: the Python record empties it first
    times[row], closes[row], sides[row], codes[row] = ts, close, target, code
    for i in range(out.size):
        outputs[row, i] = out[i]
    numbers[row, 0], numbers[row, 1] = (point, settings[0]) if code != NOT_FINITE else (math.nan, math.nan)
    rows[ROWS] = row + 1
    return target
