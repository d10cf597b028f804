"""Catching up on history, and noticing a silent feed: the strategy's bar supply.

- :class:`CatchUp`: a history request (warm-up, resume, back-fill) and the bars that wait while it
  is out. While a request is out, every bar (history and live alike) is held; when the answer
  comes, or the request times out, the strategy gets all of them at once in close-time order and
  feeds those it has not seen. So a live bar that beats the history is neither lost nor
  double-counted, and the first live bar is forecast by a warm model. Nautilus's Binance adapter
  sends no answer at all when the venue has no bars, hence the timeout. A request asks for the bars
  closing up to the moment it goes out; bars the live stream missed after that (a stream still
  connecting at the start, or cut again during a back-fill) are asked for next
  (:meth:`CatchUp.hold_unasked`), not taken for a gap the venue could not fill.
- :class:`StaleFeed`: whether bars stopped coming (no bar for ``stale_feed_bars`` intervals).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import msgspec
import pandas as pd
from nautilus_trader.model.data import Bar

from marketdata.timeframes import bar_close_ns
from strategies.decision_log import iso_time
from strategies.kernel import AFTER_GAP, STALE_BAR, wait_core


class FeedConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How the strategy gets and trusts its bars (LSTMStrategyConfig's ``feed``).

    warmup_bars: history requested at start; default: the features' warm-up plus 4 × the LSTM burn-in.
    gap_cooldown_bars: after a gap in the bars, how many bars to wait before trading again.
    max_bar_delay_bars: a bar that closed more than this many intervals before now is stale: no
        trading on it (a bar stamped in the future, as in an accelerated replay, is never stale).
    backfill_gaps: when a bar arrives after missing ones, request the missing bars from the venue
        before going on (paper and live nodes; backtest data has no more to give).
    stale_feed_bars: warn and pause trading once no bar has arrived for this many intervals
        (paper and live nodes; off in backtests).
    request_timeout_s: give up on a history request that has no answer after this long, and go on
        with the bars at hand.
    """

    warmup_bars: int | None = None
    gap_cooldown_bars: int = 60
    max_bar_delay_bars: float = 2.0
    backfill_gaps: bool = False
    stale_feed_bars: float | None = None
    request_timeout_s: float = 60.0

    def no_trade(self, bar_age: float, bars_since_gap: int) -> str | None:
        """Why not to trade on a bar closed ``bar_age`` intervals ago, ``bars_since_gap`` bars after a gap; None: trade."""
        why = wait_core(bar_age, bars_since_gap, self.max_bar_delay_bars, self.gap_cooldown_bars)  # compiled: strategies.kernel
        if why == STALE_BAR:
            return f"stale bar ({bar_age:.1f} intervals old): no trade"
        if why == AFTER_GAP:
            return f"{bars_since_gap} bars since a gap: no trade"
        return None


def default_warmup_bars(predictor, network) -> int:
    """History to warm a model on before its first traded bar: the features' warm-up plus the
    network's ``state_warmup`` (models.network.LSTMConfig), so that its state has forgotten its zero start."""
    return predictor.warmup_bars + network.state_warmup


# What the strategy is handed when a request is answered or given up on: why it was made, the
# bars the venue sent, the live bars held meanwhile, and whether it timed out.
Answered = Callable[[str, list[Bar], list[Bar], bool], None]


class CatchUp:
    """One history request at a time, through the strategy's clock and ``request_bars``."""

    def __init__(self, strategy, bar_type, timeout_s: float, answered: Answered) -> None:
        self._strategy, self._bar_type, self._timeout_s, self._answered = strategy, bar_type, timeout_s, answered
        self.why: str | None = None  # what the request out is for (None: none is out)
        self.asked_until_ns = 0  # the end of the latest request: the moment it went out
        self._number = 0
        self._history: list[Bar] = []
        self._held: list[Bar] = []

    def request(self, start_ns: int, why: str) -> None:
        """Ask for the bars closing from ``start_ns`` to now; bars are held meanwhile."""
        self.why = why
        self._number += 1
        number = self._number
        clock = self._strategy.clock
        now = clock.utc_now()
        self.asked_until_ns = now.value
        clock.set_time_alert(f"history-{number}", now + timedelta(seconds=self._timeout_s),
                             callback=lambda event: self._done(number, timed_out=True))
        self._strategy.request_bars(self._bar_type, start=pd.Timestamp(start_ns, unit="ns", tz="UTC"), end=now,
                                    callback=lambda request_id: self._done(number, timed_out=False))

    def back_fill(self, last_ns: int, close_ns: int, interval_ns: int) -> None:
        """Ask for the bars missing between the last bar fed (closing ``last_ns``) and a held one (``close_ns``)."""
        missing = (close_ns - last_ns) // interval_ns - 1
        self._strategy.log.warning(f"{missing} bars missing before {iso_time(close_ns)}: back-filling them from the venue")
        self.request(last_ns, "back-fill")

    def history_bar(self, bar: Bar) -> None:
        """A bar of the answer (``on_historical_data``)."""
        if self.why and bar.bar_type == self._bar_type:
            self._history.append(bar)

    def hold(self, bar: Bar) -> None:
        """A live bar to feed once the request is answered."""
        self._held.append(bar)

    def hold_unasked(self, bars: list[Bar], last_ns: int, interval_ns: int) -> int:
        """Hold, for the next request, the bars of an answer (history and held bars in close-time
        order, fed after ``last_ns``) that come after a gap of bars all closing after this request
        went out: it could not have had those. How many were held (0: feed them all)."""
        for index, bar in enumerate(bars):
            close = bar_close_ns(bar.ts_event)
            if last_ns and close - interval_ns > max(last_ns, self.asked_until_ns):
                self._held.extend(bars[index:])
                return len(bars) - index
            last_ns = max(last_ns, close)
        return 0

    def _done(self, number: int, timed_out: bool) -> None:
        if number != self._number or self.why is None:
            return  # the answer to a request already given up on, or its timer after the answer
        alert = f"history-{number}"
        if not timed_out and alert in self._strategy.clock.timer_names:
            self._strategy.clock.cancel_timer(alert)
        why, self.why = self.why, None
        history, held = self._history, self._held
        self._history, self._held = [], []
        self._answered(why, history, held, timed_out)


class StaleFeed:
    """Whether the feed went silent: no bar for ``stale_bars`` intervals."""

    def __init__(self, stale_bars: float | None, interval_ns: int, now_ns: int) -> None:
        self._limit_ns = stale_bars * interval_ns if stale_bars else None
        self._interval_ns = interval_ns
        self.last_arrival_ns = now_ns
        self.stale = False

    def arrived(self, now_ns: int) -> bool:
        """A bar arrived; whether the feed was stale until now."""
        self.last_arrival_ns = now_ns
        was_stale, self.stale = self.stale, False
        return was_stale

    def check(self, now_ns: int) -> float | None:
        """The intervals of silence if the feed just went stale, else None."""
        if self._limit_ns is None or self.stale:
            return None
        silent = now_ns - self.last_arrival_ns
        if silent < self._limit_ns:
            return None
        self.stale = True
        return silent / self._interval_ns
