"""The strategy's bar supply alone: history requests, held bars, timeouts, a silent feed."""

from types import SimpleNamespace

from strategies.catchup import CatchUp, FeedConfig, StaleFeed

SECOND = 1_000_000_000


class Clock:
    """The part of Nautilus's clock CatchUp uses; alerts fire when the test says."""

    def __init__(self):
        self.alerts, self.cancelled = {}, []

    def utc_now(self):
        import pandas as pd
        return pd.Timestamp("2025-08-18 12:00", tz="UTC")

    @property
    def timer_names(self):
        return [name for name in self.alerts if name not in self.cancelled]

    def set_time_alert(self, name, when, callback):
        self.alerts[name] = callback

    def cancel_timer(self, name):
        self.cancelled.append(name)


class Strategy:
    def __init__(self):
        self.clock, self.requests = Clock(), []

    def request_bars(self, bar_type, start, end, callback):
        self.requests.append((bar_type, start, callback))


def bar(n: int, bar_type="bars"):
    return SimpleNamespace(bar_type=bar_type, ts_event=n)


def test_bars_wait_while_a_request_is_out_and_come_back_together():
    strategy, answers = Strategy(), []
    catch_up = CatchUp(strategy, "bars", 60.0, lambda *answer: answers.append(answer))
    catch_up.request(0, "warm-up")
    assert catch_up.why == "warm-up" and len(strategy.requests) == 1
    catch_up.history_bar(bar(1))
    catch_up.history_bar(bar(2, bar_type="other bars"))  # not ours
    catch_up.hold(bar(3))
    strategy.requests[0][2]("request-id")  # the venue answered
    [(why, history, held, timed_out)] = answers
    assert (why, [b.ts_event for b in history], [b.ts_event for b in held], timed_out) == ("warm-up", [1], [3], False)
    assert catch_up.why is None and strategy.clock.cancelled == ["history-1"]
    catch_up.history_bar(bar(4))  # no request out: ignored
    catch_up.request(1, "back-fill")
    strategy.requests[1][2]("request-id")
    assert answers[-1][1] == []


def test_a_request_without_answer_times_out_and_a_late_answer_is_ignored():
    strategy, answers = Strategy(), []
    catch_up = CatchUp(strategy, "bars", 5.0, lambda *answer: answers.append(answer))
    catch_up.request(0, "back-fill")
    catch_up.hold(bar(7))
    strategy.clock.alerts["history-1"](None)  # the timeout fires
    assert answers == [("back-fill", [], answers[0][2], True)] and [b.ts_event for b in answers[0][2]] == [7]
    strategy.requests[0][2]("request-id")  # the answer after all: already given up on
    assert len(answers) == 1


def test_stale_feed_is_noticed_once_and_cleared_by_a_bar():
    feed = StaleFeed(3.0, 60 * SECOND, now_ns=0)
    assert feed.check(179 * SECOND) is None
    assert feed.check(180 * SECOND) == 3.0 and feed.stale
    assert feed.check(300 * SECOND) is None  # reported once
    assert feed.arrived(301 * SECOND) is True and not feed.stale
    assert feed.arrived(302 * SECOND) is False
    assert StaleFeed(None, 60 * SECOND, 0).check(10**15) is None  # off in backtests


def test_stale_bars_and_the_gap_cooldown_keep_the_strategy_from_trading():
    feed = FeedConfig(max_bar_delay_bars=2.0, gap_cooldown_bars=3)
    assert feed.no_trade(2.5, 10) == "stale bar (2.5 intervals old): no trade"
    assert feed.no_trade(0.0, 3) == "3 bars since a gap: no trade"
    assert feed.no_trade(2.0, 4) is None and feed.no_trade(-5.0, 4) is None  # a bar stamped ahead is never stale
