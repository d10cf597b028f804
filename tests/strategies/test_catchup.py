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
    assert catch_up.asked_until_ns == strategy.clock.utc_now().value  # what the answer can hold: bars closed by then
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


def test_bars_the_stream_missed_after_the_request_went_out_are_held_for_the_next_one():
    # Bars close every 10 s; the last one fed before the answer closed at 20 s, the request went out at 50 s.
    def hold(closes, last=20, asked_until=50):
        strategy, answers = Strategy(), []
        catch_up = CatchUp(strategy, "bars", 60.0, lambda *answer: answers.append(answer))
        catch_up.asked_until_ns = asked_until * SECOND
        held = catch_up.hold_unasked([bar(close * SECOND) for close in closes], last * SECOND, 10 * SECOND)
        assert [b.ts_event for b in catch_up._held] == [close * SECOND for close in closes[len(closes) - held:]]
        return held

    assert hold([30, 40, 50, 60, 70]) == 0  # the answer, then live bars from the next one on
    assert hold([30, 40, 50, 80, 90]) == 2  # 60 and 70 closed after the request: ask for them
    assert hold([30, 40, 90]) == 1  # 50 was asked for and not answered, 60 to 80 were not asked for
    assert hold([30, 60, 70]) == 0  # 40 and 50 were asked for and are missing: a gap the venue could not fill
    assert hold([20, 30, 30, 40, 50, 60]) == 0  # bars seen already, and twice, are no gap
    assert hold([80]) == 1  # a timed-out request's held bars after bars never asked for
    assert hold([80], last=0) == 0  # nothing fed yet: no gap to speak of


def test_a_back_fill_asks_from_the_last_bar_fed_and_says_how_many_are_missing():
    strategy, warnings = Strategy(), []
    strategy.log = SimpleNamespace(warning=warnings.append)
    catch_up = CatchUp(strategy, "bars", 60.0, lambda *answer: None)
    catch_up.back_fill(20 * SECOND, 60 * SECOND, 10 * SECOND)
    assert catch_up.why == "back-fill" and strategy.requests[0][1].value == 20 * SECOND
    assert warnings == ["3 bars missing before 1970-01-01T00:01:00+00:00: back-filling them from the venue"]


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
