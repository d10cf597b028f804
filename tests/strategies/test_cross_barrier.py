"""The cross-asset barrier alone (strategies.cross_barrier): bars of a close time in any order, gaps,
late bars and catch-up, each instrument's cross row equal to the offline alignment's
(models.pooling.cross_returns)."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from models.pooling import cross_returns
from strategies.cross_barrier import CrossBarrier

MINUTE = pd.Timedelta(minutes=1)
TYPES = ["A.X-1-MINUTE-LAST-EXTERNAL", "B.X-1-MINUTE-LAST-EXTERNAL", "C.X-1-MINUTE-LAST-EXTERNAL"]
START = pd.Timestamp("2025-05-20", tz="UTC")


def fake_bar(close: float):
    return SimpleNamespace(close=SimpleNamespace(as_double=lambda: close))


class Member:
    """One instrument's predictor and step, recording each cross row and what had arrived when it stepped."""

    def __init__(self, arrived: set):
        self.arrived, self.row, self.steps = arrived, None, []

    def set_cross(self, row):
        self.row = row

    def step(self, bar, trade, backfilled, ts):
        self.steps.append((ts, self.row.copy(), frozenset(self.arrived), trade))


def barrier_of(traded=TYPES, caught_up=True):
    """A barrier of ``traded`` (their histories in, if ``caught_up``), its members, and what hands it a bar."""
    barrier, arrived = CrossBarrier(TYPES, traded, MINUTE.value), set()
    members = {b: Member(arrived) for b in traded}
    feeds = {b: barrier.join(b, member, member.step) for b, member in members.items()}
    for b in traded if caught_up else ():
        barrier.caught_up(b)

    def feed(bar_type, ts: pd.Timestamp, close: float, trade=True):
        arrived.add((bar_type, ts.value))
        feeds[bar_type](fake_bar(close), trade, False, ts.value)

    return barrier, members, feed


def random_bars(seed: int, n: int = 300) -> dict[str, pd.DataFrame]:
    """Each instrument's closes on a random walk, with bars missing at random (single ones and runs),
    all three present at the last close time."""
    rng = np.random.default_rng(seed)
    index = pd.date_range(START, periods=n, freq="1min")
    bars = {}
    for b in TYPES:
        keep = rng.random(n) > 0.1
        keep[rng.integers(0, n - 20) + np.arange(5)] = False  # a run of missing bars
        keep[-1] = True
        close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
        bars[b] = pd.DataFrame({"close": close}, index=index)[keep]
    return bars


def offline_rows(bars: dict, bar_type: str) -> pd.DataFrame:
    others = [bars[b] for b in TYPES if b != bar_type]
    return pd.DataFrame(cross_returns(bars[bar_type].index, others, MINUTE), index=bars[bar_type].index)


def online_rows(member: Member) -> pd.DataFrame:
    return pd.DataFrame([row for _, row, _, _ in member.steps], index=pd.DatetimeIndex([ts for ts, *_ in member.steps], tz="UTC"))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bars_in_any_order_and_with_gaps_give_the_offline_rows(seed):
    bars = random_bars(seed)
    _, members, feed = barrier_of()
    rng = np.random.default_rng(seed + 100)
    times = sorted(set().union(*(frame.index for frame in bars.values())))
    for ts in times:
        for b in rng.permutation([b for b in TYPES if ts in bars[b].index]):
            feed(b, ts, float(bars[b].loc[ts, "close"]))
    for b in TYPES:
        online, offline = online_rows(members[b]), offline_rows(bars, b)
        assert online.index.equals(offline.index)  # every bar stepped once, in close-time order
        np.testing.assert_allclose(online.to_numpy(), offline.to_numpy(), rtol=0, atol=1e-15)
        assert (offline.to_numpy() == 0).any() and (offline.to_numpy() != 0).any()  # the gaps are in play
        # No instrument stepped on t before every bar of t there is had come.
        for ts, _, arrived, _ in members[b].steps:
            t = pd.Timestamp(ts, tz="UTC")
            assert {(other, ts) for other in TYPES if t in bars[other].index} <= arrived


def test_a_complete_close_time_steps_at_once_and_a_gap_waits_for_the_next_bar():
    _, members, feed = barrier_of(TYPES[:2])  # C traded elsewhere (or not at all): its returns are 0
    t = START
    feed(TYPES[1], t, 200.0)
    assert not members[TYPES[1]].steps  # A's bar of t has not come
    feed(TYPES[0], t, 100.0)
    assert [s[0] for s in members[TYPES[0]].steps] == [s[0] for s in members[TYPES[1]].steps] == [t.value]
    feed(TYPES[0], t + MINUTE, 101.0)  # B's bar of t + 1 never comes ...
    assert len(members[TYPES[0]].steps) == 1
    feed(TYPES[1], t + 2 * MINUTE, 202.0)  # ... a later one resolves t + 1: A steps with B's return 0
    ts, row, _, _ = members[TYPES[0]].steps[-1]
    assert ts == (t + MINUTE).value and row.tolist() == [0.0, 0.0]
    feed(TYPES[0], t + 2 * MINUTE, 102.0)
    assert members[TYPES[0]].steps[-1][1].tolist() == [0.0, 0.0]  # B's previous bar is not t + 1's: 0 too
    feed(TYPES[0], t + 3 * MINUTE, 103.0)
    feed(TYPES[1], t + 3 * MINUTE, 203.0)
    assert members[TYPES[0]].steps[-1][1] == pytest.approx([np.log(203 / 202), 0.0], abs=1e-15)
    assert members[TYPES[1]].steps[-1][1] == pytest.approx([np.log(103 / 102), 0.0], abs=1e-15)


def test_a_late_bar_steps_its_instrument_alone_with_the_others_returns():
    _, members, feed = barrier_of(TYPES[:2])
    a, b = members[TYPES[0]], members[TYPES[1]]
    feed(TYPES[0], START, 100.0)
    feed(TYPES[1], START, 200.0)
    feed(TYPES[0], START + MINUTE, 101.0)
    feed(TYPES[0], START + 2 * MINUTE, 102.0)  # resolves START + 1 without B's bar
    assert a.steps[-1][0] == (START + MINUTE).value and a.steps[-1][1][0] == 0.0
    feed(TYPES[1], START + MINUTE, 201.0)  # B's bar of START + 1, late (live bars come in any order)
    assert b.steps[-1][0] == (START + MINUTE).value
    assert b.steps[-1][1] == pytest.approx([np.log(101 / 100), 0.0], abs=1e-15)  # A's return there, known
    feed(TYPES[1], START + 2 * MINUTE, 202.0)  # and B's next return is from its late bar
    assert a.steps[-1][1] == pytest.approx([np.log(202 / 201), 0.0], abs=1e-15)


def test_nothing_steps_until_every_instruments_history_is_in():
    bars = random_bars(3, n=40)
    barrier, members, feed = barrier_of(caught_up=False)
    live = START + 30 * MINUTE
    for b, frame in bars.items():  # each strategy's history answer: the venue's bars and the live ones held meanwhile
        for ts, close in frame["close"].items():
            feed(b, ts, close, trade=ts >= live)
        if b == TYPES[2]:  # a bar the history and the live stream both hold: handed in once
            feed(b, frame.index[-2], frame["close"].iloc[-2])
        if b != TYPES[2]:
            barrier.caught_up(b)
            assert not any(m.steps for m in members.values())  # C's history is not in yet
    barrier.caught_up(TYPES[2])
    for b in TYPES:  # then all of it, in close-time order, aligned as offline
        online, offline = online_rows(members[b]), offline_rows(bars, b)
        assert online.index.equals(offline.index)
        np.testing.assert_allclose(online.to_numpy(), offline.to_numpy(), rtol=0, atol=1e-15)
        assert [trade for *_, trade in members[b].steps] == list(offline.index >= live)


def test_share_refuses_what_it_cannot_feed(tmp_path):
    def strategy(bar_type, forecaster="lstm", backfill=False):
        config = SimpleNamespace(bar_type=bar_type, forecaster=forecaster, feed=SimpleNamespace(backfill_gaps=backfill))
        return SimpleNamespace(config=config, barrier=None)

    def artifact(cross):
        return SimpleNamespace(config=SimpleNamespace(data=SimpleNamespace(cross_asset=cross)), bar_types=TYPES)

    pair = [strategy(TYPES[0]), strategy(TYPES[1])]
    barrier = CrossBarrier.share(artifact(True), pair)
    assert pair[0].barrier is barrier and pair[1].barrier is barrier
    with pytest.raises(ValueError, match="has no cross-asset features"):
        CrossBarrier.share(artifact(False), pair)
    with pytest.raises(ValueError, match="the ridge forecaster sees no cross-asset features"):
        CrossBarrier.share(artifact(True), [strategy(TYPES[0], "ridge")])
    with pytest.raises(ValueError, match=r"cannot back-fill gaps \(backfill_gaps\)"):
        CrossBarrier.share(artifact(True), [strategy(TYPES[0], backfill=True)])
    with pytest.raises(ValueError, match="at most once"):
        CrossBarrier(TYPES, [TYPES[0], "D.X-1-MINUTE-LAST-EXTERNAL"], MINUTE.value)
    with pytest.raises(ValueError, match="is not one of this barrier's bar types"):
        CrossBarrier(TYPES, TYPES[:1], MINUTE.value).join(TYPES[1], None, None)
