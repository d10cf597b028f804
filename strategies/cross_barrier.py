"""A cross-asset model's barrier: no instrument forecasts close time t before every instrument's bar of t is in.

A pooled model trained with cross-asset features (``[data] cross_asset``, models.pooling) forecasts
instrument k at close time t from k's own bars and every other instrument's 1-bar log return at t.
Its LSTMStrategy instances (one per instrument, sharing the artifact, in one engine) therefore share
one :class:`CrossBarrier` (:meth:`CrossBarrier.share`, before the engine starts). Each strategy
hands the barrier its bars instead of stepping on them; once a close time is resolved, the barrier
records its bars in a ``models.pooling.CrossReturns``, writes each instrument's cross columns
(``OnlinePredictor.set_cross``) and lets each instrument's own strategy step on its own bar
(forecast, decide, order), in the artifact's instrument order. So an order for A goes out from A's
strategy, on A's bar, at the clock time the close time was resolved: in a backtest, where a close
time's bars come one after another, that is the close time itself.

When a close time t is resolved, identical to the offline alignment (``models.pooling.cross_returns``):

- complete: as soon as every traded instrument's bar of t has come;
- a gap (some instrument has no bar of t): as soon as a bar of a later close time comes, from any
  instrument. Those with a bar of t step; the missing one's return at t is 0 in their rows, and
  at its own next bar too (its previous bar is not t's), exactly as offline. Their forecasts are the
  offline ones, made when the later bar comes (one bar late; not a stale bar for the strategy);
- late (live only, where bars of one close time come in any order): a bar of a close time already
  resolved steps its instrument alone at once, with the others' returns at t as far as known; the
  others' rows at t had 0 for it.
- An artifact instrument with no strategy here (a walk-forward window it has no bars in) sends no
  bars: its returns are 0, as they are offline without its bars.
- Warm-up and resume (strategies.catchup): every bar is held until every instrument's history
  request is answered, then all go through the rule above in close-time order, so the warm-up rows
  are aligned as the training rows were.
- A close time still incomplete when the bars end is never forecast (no later bar resolves it).

Back-filling gaps (``feed.backfill_gaps``) is refused: its bars would come after later ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from nautilus_trader.model.data import Bar, BarType

from models.pooling import CrossReturns

# A strategy's step on one bar, e.g. LSTMStrategy._update(bar, trade, backfilled, ts): forecast, decide, order.
Step = Callable[[Bar, bool, bool, int], None]


@dataclass
class _Member:
    """One traded instrument: its place among the artifact's instruments, its predictor and step."""

    index: int
    predictor: object = None  # models.predictor.OnlinePredictor, once its strategy joined
    step: Step | None = None
    caught_up: bool = False  # its warm-up or resume history is in
    last_ns: int = 0  # the latest close time handed in: older and repeated bars are dropped


@dataclass(frozen=True)
class _Arrival:
    ts: int  # close time
    index: int
    bar_type: str
    bar: Bar
    trade: bool
    backfilled: bool


class CrossBarrier:
    """Collects the traded instruments' bars by close time and steps them together (see the module docstring).

    ``bar_types``: the artifact's instruments, in its order (the cross columns' order);
    ``traded``: those whose strategies share this barrier.
    """

    def __init__(self, bar_types: Sequence[str], traded: Sequence[str], interval_ns: int) -> None:
        unknown = [b for b in traded if b not in bar_types]
        if unknown or len(set(traded)) != len(traded) or not traded:
            raise ValueError(f"a cross-asset barrier trades each of the model's bar types {list(bar_types)} at most once, "
                             f"not {list(traded)}")
        self._returns = CrossReturns(len(bar_types), interval_ns)
        self._members = {b: _Member(list(bar_types).index(b)) for b in traded}
        self._held: list[_Arrival] | None = []  # what came while a member was catching up; None once none is
        self._time = 0  # the close time being collected
        self._bars: dict[str, _Arrival] = {}  # its bars so far

    @classmethod
    def share(cls, artifact, strategies: Sequence) -> CrossBarrier:
        """One barrier for ``strategies`` (instances of one strategy class forecasting with ``artifact``,
        a cross-asset model, one per instrument, in one engine: LSTMStrategy, or the volatility-targeted
        buy-and-hold), set as each one's ``barrier`` before it starts."""
        if not artifact.config.data.cross_asset:
            raise ValueError(f"the model of {', '.join(artifact.bar_types)} has no cross-asset features: it needs no barrier")
        for strategy in strategies:
            config = strategy.config
            if getattr(config, "forecaster", "lstm") != "lstm":
                raise ValueError(f"{config.bar_type}: the {config.forecaster} forecaster sees no cross-asset features")
            if getattr(config, "feed", None) is not None and config.feed.backfill_gaps:
                raise ValueError(f"{config.bar_type}: a cross-asset model cannot back-fill gaps (backfill_gaps): "
                                 "back-filled bars would come after later close times")
        interval = BarType.from_str(artifact.bar_types[0]).spec.timedelta.value
        barrier = cls(artifact.bar_types, [str(s.config.bar_type) for s in strategies], interval)
        for strategy in strategies:
            strategy.barrier = barrier
        return barrier

    def join(self, bar_type: str, predictor, step: Step) -> Callable[..., None]:
        """``bar_type``'s strategy starts: its predictor and step. Returns what the strategy calls
        with each bar and its close time, ``(bar, trade, backfilled, ts)``, instead of stepping on it."""
        member = self._members.get(bar_type)
        if member is None:
            raise ValueError(f"{bar_type} is not one of this barrier's bar types {list(self._members)}")
        member.predictor, member.step = predictor, step
        return partial(self._arrive, bar_type)

    def caught_up(self, bar_type: str) -> None:
        """``bar_type``'s history request was answered; once every member's was, the held bars go through."""
        self._members[bar_type].caught_up = True
        if self._held is None or not all(member.caught_up for member in self._members.values()):
            return
        held, self._held = self._held, None
        for arrival in sorted(held, key=lambda a: (a.ts, a.index)):
            self._collect(arrival)

    def _arrive(self, bar_type: str, bar: Bar, trade: bool, backfilled: bool, ts: int) -> None:
        member = self._members[bar_type]
        if ts <= member.last_ns:
            return  # seen already (history overlapping the live stream)
        member.last_ns = ts
        arrival = _Arrival(ts, member.index, bar_type, bar, trade, backfilled)
        if self._held is not None:
            self._held.append(arrival)
        else:
            self._collect(arrival)

    def _collect(self, arrival: _Arrival) -> None:
        if arrival.ts < self._time:
            self._step(arrival.ts, [arrival])  # late: its close time is resolved already
            return
        if arrival.ts > self._time:
            self._resolve()  # a later close time: the one collected is as complete as it gets
            self._time = arrival.ts
        self._bars[arrival.bar_type] = arrival
        if len(self._bars) == len(self._members):
            self._resolve()

    def _resolve(self) -> None:
        arrivals, self._bars = sorted(self._bars.values(), key=lambda a: a.index), {}
        if arrivals:
            self._step(self._time, arrivals)

    def _step(self, ts: int, arrivals: list[_Arrival]) -> None:
        """Every bar of close time ``ts`` recorded first, then each instrument's cross row and step."""
        for arrival in arrivals:
            self._returns.update(arrival.index, ts, arrival.bar.close.as_double())
        for arrival in arrivals:
            member = self._members[arrival.bar_type]
            member.predictor.set_cross(self._returns.row(arrival.index, ts))
            member.step(arrival.bar, arrival.trade, arrival.backfilled, ts)
