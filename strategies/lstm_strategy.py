"""LSTMStrategy: trade a symbol from the LSTM's forecasts of its forward log return.

The same class runs in backtests, paper trading and live nodes (``strategies.config.STRATEGY_PATH``).
``on_start`` loads the artifact (failing fast if it does not fit the bar type), takes the venue's
position and requests the history that warms the model, or only the bars since saved state;
``on_bar`` steps the model, decides, logs and trades. The rest is handed to collaborators: the bar supply
(``strategies.catchup``), the rule (``strategies.decision``), sizing by and gating on the volatility forecast
(``strategies.volatility``), the log (``strategies.decision_log``), the rails and kill switch (``strategies.safety``),
the account (``strategies.account``) and a cross-asset model's shared barrier (``strategies.cross_barrier``). A
bar's close time is ``marketdata.timeframes.bar_close_ns(ts_event)``, which maps Nautilus's Binance stamps
(close - 1 ms) and our catalog's (close) to the same time.
"""

from __future__ import annotations

import json
import math
import time
from datetime import timedelta
from pathlib import Path

import torch
from nautilus_trader.model.data import Bar
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.events import OrderDenied, OrderRejected
from nautilus_trader.trading.strategy import Strategy

from marketdata.timeframes import bar_close_ns
from models.artifact import artifact_digest, load_artifact
from models.predictor import OnlineForecaster, online_forecaster, output_columns
from strategies.account import AccountView
from strategies.catchup import CatchUp, StaleFeed, default_warmup_bars
from strategies.config import LSTMStrategyConfig
from strategies.decision import DEFER, FLAT, LONG, READ_ACCOUNT, SHORT, BarDecision, DecisionRule, stop_triggered
from strategies.decision_log import SIDE_NAMES, DecisionLog, iso_time
from strategies.safety import ProposedOrder, SafetyRails
from strategies.volatility import VolatilityRisk

STATE_KEY = "lstm_strategy"
STATE_VERSION = 1
_STALE_FEED_TIMER = "stale-feed"
_SAFETY_TIMER = "safety"


class LSTMStrategy(Strategy):
    """Trades the sign of the forecast when it clears the trading costs."""

    def __init__(self, config: LSTMStrategyConfig) -> None:
        super().__init__(config)
        self.predictor: OnlineForecaster | None = None
        self.rule: DecisionRule | None = None
        self.log_book: DecisionLog | None = None
        self.keep_decisions = True  # every bar's decision kept for predictions_frame(); set before the start
        self.spill_decisions = False  # kept in a scratch file as the run goes (DecisionLog spill); set before the start
        self.risk: VolatilityRisk | None = None  # sizing and gate by the volatility forecast
        self.account: AccountView | None = None  # once started
        self.latencies_ns: list[int] = []
        self.ready = False  # warmed up (or resumed) and trading on live bars
        self.warmup_range: tuple[int, int] | None = None  # close times of the first and last bar fed
        self.rails = SafetyRails(config.limits)
        self.barrier = None  # a cross-asset model's CrossBarrier (strategies.cross_barrier), set before the start
        self._saved: dict | None = None
        self._last_ts = self._bars_since_gap = 0
        self._side, self._bars_held, self._entry_price = FLAT, 0, 0.0

    # -- lifecycle ---------------------------------------------------------------------------

    def on_start(self) -> None:
        self._load()
        self._take_position_from_venue()
        self._start_rails()
        self._start_ns = now = self.clock.timestamp_ns()
        self.catch_up = CatchUp(self, self.config.bar_type, self.config.feed.request_timeout_s, self._history_answered)
        self.feed = StaleFeed(self.config.feed.stale_feed_bars, self._interval_ns, now)
        self.subscribe_bars(self.config.bar_type)
        resumed_at = self._restore(now)
        self.catch_up.request(resumed_at or now - (self._warmup + 1) * self._interval_ns, "resume" if resumed_at else "warm-up")
        if self.config.feed.stale_feed_bars:
            self.clock.set_timer(_STALE_FEED_TIMER, timedelta(microseconds=self._interval_ns / 1000), callback=self._check_feed)

    def _load(self) -> None:
        """The instrument, the account, the model and the rule, or a clear error."""
        config = self.config
        self.instrument = self.cache.instrument(config.instrument_id)
        if self.instrument is None:
            raise ValueError(f"instrument {config.instrument_id} is not in the cache: add it before starting the strategy")
        self.account = AccountView(self.portfolio, self.cache, self.instrument)
        self._interval_ns = config.bar_type.spec.timedelta.value
        torch.set_num_threads(config.inference_threads)
        artifact = load_artifact(Path(config.model_path), bar_type=str(config.bar_type))
        self._model_digest = artifact_digest(Path(config.model_path))
        self.predictor = online_forecaster(artifact, config.forecaster, str(config.bar_type), cross_asset=self.barrier is not None)
        self._feed = self.barrier.join(str(config.bar_type), self.predictor, self._update) if self.barrier else self._update
        if self.predictor.point_index is None:
            raise ValueError(f"{config.model_path} forecasts volatility only (return_target none): it cannot decide trades")
        outputs = output_columns(artifact, config.forecaster)
        self.log_book = DecisionLog(outputs, self.predictor.point_index, config.predictions_path, self.keep_decisions, self.spill_decisions)
        quantiles = len(artifact.lstm.quantiles) if config.forecaster == "lstm" else 0
        band = (0, quantiles - 1) if quantiles else None  # the lowest and highest quantile (decoded first)
        self.rule = DecisionRule.of(config.rule, self.instrument, artifact.config.training.horizon)
        self.risk = VolatilityRisk.of(config, self.predictor.volatility_index, self._interval_ns, artifact.config.training.horizon)
        self.decision = BarDecision(self.predictor, band, self.rule, self.risk, self.log_book.staged, config, self.account, self.rails)
        self._decide_bar, self._bar_arrays, self._out = self.decision.call, self.decision.arrays, self.predictor.out
        if config.rule.allow_short and not self.rule.allow_short:
            self.log.warning(f"allow_short ignored: {self.instrument.id} is a spot pair and cannot be shorted")
        self._warmup = config.feed.warmup_bars or default_warmup_bars(self.predictor, artifact.lstm)
        self.log.info(f"model {config.model_path} ({config.forecaster}), threshold {self.rule.threshold:.6f}, "
                      f"short {'on' if self.rule.allow_short else 'off'}, warm-up {self._warmup} bars")

    def on_stop(self) -> None:
        for timer in {_STALE_FEED_TIMER, _SAFETY_TIMER} & set(self.clock.timer_names):
            self.clock.cancel_timer(timer)
        if self.config.close_positions_on_stop and self.account is not None:
            self._flatten("stopping")  # and the saved state says flat
        if self.log_book is not None:
            self.log_book.close()

    def on_save(self) -> dict[str, bytes]:
        """The model's running state and the guards', so that a restart need not warm up again."""
        if self.predictor is None or not self._last_ts:
            return {}
        state = {
            "version": STATE_VERSION, "model": self._model_digest, "bar_type": str(self.config.bar_type),
            "forecaster": self.config.forecaster, "last_close_ns": self._last_ts, "predictor": self.predictor.get_state(),
            "bars_since_gap": self._bars_since_gap, "halted": self.rails.drawdown_halted, "side": self._side,
            "bars_held": self._bars_held, "entry_price": self._entry_price, "volatility": self.risk.state(),
            "rails": self.rails.state() if self.config.limits.guards_orders else None,
        }
        return {STATE_KEY: json.dumps(state).encode()}

    def on_load(self, state: dict[str, bytes]) -> None:
        """Keep saved state for ``on_start``, which applies it once the model is loaded."""
        if STATE_KEY in state:
            self._saved = json.loads(state[STATE_KEY])

    def _restore(self, now: int) -> int:
        """Apply saved state if it is this model's and recent; its last bar's close time, or 0."""
        saved, self._saved = self._saved, None
        if not saved:
            return 0
        mine = (STATE_VERSION, self._model_digest, str(self.config.bar_type), self.config.forecaster)
        if mine != (saved.get("version"), saved.get("model"), saved.get("bar_type"), saved.get("forecaster")):
            self.log.warning("saved state is of another model, bar type or forecaster: warming up from scratch")
            return 0
        last = int(saved["last_close_ns"])
        behind = (now - last) // self._interval_ns
        if behind > self._warmup:
            self.log.info(f"saved state ends {behind} bars ago, more than a warm-up: warming up from scratch")
            return 0
        self.predictor.set_state(saved["predictor"])
        self.risk.restore(saved.get("volatility"))
        self._last_ts, self._bars_since_gap = last, int(saved["bars_since_gap"])
        self.rails.drawdown_halted = bool(saved["halted"])
        if saved["side"] == self._side:
            self._bars_held, self._entry_price = int(saved["bars_held"]), float(saved["entry_price"])
        else:
            self.log.warning(f"saved state held {SIDE_NAMES[saved['side']]} but the venue's position is "
                             f"{SIDE_NAMES[self._side]}: going on from the venue's")
        self.log.info(f"resuming from saved state at {iso_time(last)}: fetching the {behind} bars since instead of warming up")
        return last

    def _take_position_from_venue(self) -> None:
        """Go on from the position the venue holds, counting orders in flight: at start (flat in backtests and a
        fresh sandbox; reconciled with the venue in a live node), and after an order was refused."""
        position = self.account.expected_position()
        side = LONG if position > 0 else SHORT if position < 0 else FLAT
        if side == self._side:
            return
        self._side, self._bars_held, self._entry_price = side, 0, 0.0
        if side != FLAT:
            self._entry_price = self.account.entry_price()
            self.log.warning(f"the venue holds a {SIDE_NAMES[side]} position of {position:g}: managing it")

    def _start_rails(self) -> None:
        """The live node's rails, if a limit is set: the day's loss tracking of the saved state, and their timer."""
        if not self.config.limits.guards_orders:
            return
        if self._saved and self._saved.get("rails"):
            self.rails.restore(self._saved["rails"])
            if self.rails.halted:
                self.log.warning(f"still halted: {self.rails.halted}")
        self.clock.set_timer(_SAFETY_TIMER, timedelta(seconds=1), callback=self._check_rails)

    def _check_rails(self, event) -> None:
        kill_file = self.config.limits.kill_file
        if self.rails.kill_requested():
            self.log.error(f"kill file {kill_file} found: flattening and stopping the node")
            self.clock.cancel_timer(_SAFETY_TIMER)
            self._flatten("kill file")
            self.shutdown_system(f"kill file {kill_file}")
            return
        bar = self.cache.bar(self.config.bar_type)
        equity = self.account.equity(bar.close.as_double()) if bar is not None else math.nan
        if math.isfinite(equity) and (reason := self.rails.check(self.clock.timestamp_ns(), equity)):
            self.log.error(f"{reason}: flattening, and no new position until the next UTC day")
            self._flatten(reason)

    def _flatten(self, why: str) -> None:
        """Close the position, counting the orders in flight (whatever the rails' limits)."""
        position = self.account.expected_position()
        if position:
            self.log.warning(f"flattening a position of {position:g}: {why}")
            self._submit(OrderSide.SELL if position > 0 else OrderSide.BUY, abs(position), reduce_only=True)
        self._side, self._bars_held, self._entry_price = FLAT, 0, 0.0

    # -- bars --------------------------------------------------------------------------------

    def on_historical_data(self, data) -> None:
        if isinstance(data, Bar):
            self.catch_up.history_bar(data)

    def _history_answered(self, why: str, history: list[Bar], held: list[Bar], timed_out: bool) -> None:
        if timed_out:
            self.log.warning(f"no answer to the {why} request in {self.config.feed.request_timeout_s:g}s: going on with the bars at hand")
        bars = sorted(history + held, key=lambda bar: bar.ts_event)
        unasked = self.catch_up.hold_unasked(bars, self._last_ts, self._interval_ns) if self.config.feed.backfill_gaps else 0
        first = last = None
        for bar in bars[:len(bars) - unasked]:
            last = bar_close_ns(bar.ts_event)
            first = first or (last if last > self._last_ts else None)
            self._feed(bar, trade=last >= self._start_ns, backfilled=why == "back-fill", ts=last)
        if self.barrier:
            self.barrier.caught_up(str(self.config.bar_type))
        fed = f"{iso_time(first)} to {iso_time(last)}" if first else "none"
        summary = f"{len(history)} bars from the venue, {len(held)} live bars held meanwhile; new bars fed: {fed}"
        if why == "back-fill":
            self.log.info(f"back-fill done: {summary}")
        else:
            self.warmup_range, self.ready = (first, last) if first else None, True
            self.log.info(f"{why} done: {summary}; ready")
        if unasked:  # the live stream missed bars after the request went out: ask for them
            self.catch_up.back_fill(self._last_ts, bar_close_ns(bars[-unasked].ts_event), self._interval_ns)

    def on_bar(self, bar: Bar) -> None:
        if self.feed.arrived(self.clock.timestamp_ns()):
            self.log.info(f"feed resumed: a bar closing {iso_time(bar_close_ns(bar.ts_event))} arrived")
        if self.catch_up.why:
            self.catch_up.hold(bar)  # a live bar that beat the history: keep it for later
            return
        close = bar_close_ns(bar.ts_event)
        if self.config.feed.backfill_gaps and self._last_ts and close - self._last_ts > self._interval_ns:
            self.catch_up.hold(bar)
            self.catch_up.back_fill(self._last_ts, close, self._interval_ns)
            return
        if self.config.measure_latency:
            started = time.perf_counter_ns()
            self._feed(bar, True, False, close)  # (bar, trade, backfilled, ts): positional, as it runs every bar
            self.latencies_ns.append(time.perf_counter_ns() - started)
        else:
            self._feed(bar, True, False, close)

    def _check_feed(self, event) -> None:
        if self.catch_up.why or (silent := self.feed.check(self.clock.timestamp_ns())) is None:
            return
        self.log.warning(f"stale feed: no bar for {silent:.1f} intervals (last closed "
                         f"{iso_time(self._last_ts) if self._last_ts else '-'}): trading paused until bars come again")

    def _update(self, bar: Bar, trade: bool, backfilled: bool, ts: int) -> None:
        if ts <= self._last_ts:
            return  # seen already (history overlapping the live stream)
        if self._last_ts and ts - self._last_ts > self._interval_ns:
            missing, unfilled = (ts - self._last_ts) // self._interval_ns - 1, " the venue could not fill" if backfilled else ""
            self.log.warning(f"gap of {missing} bars{unfilled} before {iso_time(ts)}: "
                             f"no trading for {self.config.feed.gap_cooldown_bars} bars")
            self._bars_since_gap = 0
        self._last_ts = ts
        self._bars_since_gap += 1
        close = bar.close.as_double()
        forecast = self.predictor.forecast(ts, bar.high.as_double(), bar.low.as_double(), close, bar.volume.as_double())
        self._bars_held += self._side != FLAT  # one more bar held, if any
        if not forecast:
            return
        guarded = self.rails.drawdown_halted or bool(self.account.in_flight)  # checks only Python makes
        while (target := self._decide_bar(ts, close, self._out, trade, self._side, self._bars_held, self._entry_price,
                                          self.clock.timestamp_ns(), self._bars_since_gap, guarded, *self._bar_arrays)) == READ_ACCOUNT:
            self.account.read_parts()  # compiled: strategies.kernel, which first asks for the equity when it is due
        if not trade:
            return
        outputs = self._out.tolist() if target != self._side or self.config.log_decisions else None  # DEFER is no side
        if target == DEFER:  # a check decides, or the rule and gate with a reason the compiled call does not keep
            target, reason = self._checks(close, ts) or self.decision.in_words(outputs, self._side, self._bars_held)
            self.log_book.record(ts, close, outputs, target, reason)
        elif outputs:  # the compiled call's decision, to log: the same rule and gate, in words
            reason = self.decision.in_words(outputs, self._side, self._bars_held)[1]
        if target != self._side or self.config.log_decisions:
            self.log.info(self.log_book.line(ts, outputs, self._side, target, reason))
        if target != self._side:
            self._move_to(target, close)

    # -- decisions and orders ----------------------------------------------------------------

    def _checks(self, close: float, ts: int) -> tuple[int, str] | None:
        """What decides before the rule (kill switch, stop, order in flight, stale bar, recent gap), if the compiled call deferred."""
        if self.rails.drawdown_halted:
            return FLAT, "halted by the drawdown kill switch"
        if breached := self.rails.drawdown_breached(self.account.marked(close)):
            self.log.error(f"{breached}: flattening and halting")
            return FLAT, "drawdown kill switch"
        if stop := stop_triggered(self._side, self._entry_price, close, self.config.rule.stop_loss, self.config.rule.take_profit):
            return FLAT, stop
        if self.account.in_flight:  # the venue has not finished with the last order: the position it leaves is unknown
            return self._side, "an order is still in flight: no new decision"
        if wait := self.config.feed.no_trade((self.clock.timestamp_ns() - ts) / self._interval_ns, self._bars_since_gap):
            return self._side, wait
        return None

    def _move_to(self, target: int, close: float) -> None:
        """Bring the net position to ``target`` with one market order per leg."""
        position = self.account.net_position()
        if position != 0:
            self._submit(OrderSide.SELL if position > 0 else OrderSide.BUY, abs(position))
        if target != FLAT:
            quantity, problem = self.account.opening_quantity(self.config.sizing, close, self.risk.annual)
            if problem:
                self.log.warning(f"not opening a position: {problem}")
                target = FLAT
            elif not self._submit(OrderSide.BUY if target == LONG else OrderSide.SELL, quantity):
                target = FLAT
        self._side, self._bars_held, self._entry_price = target, 0, close if target != FLAT else 0.0

    def _submit(self, side: OrderSide, quantity: float, reduce_only: bool = False) -> bool:
        """Submit a market order, if the safety rails let it go out; whether it went."""
        if self.config.limits.guards_orders:
            quantity, problem = self.rails.review(self._proposed(side, quantity), self.clock.timestamp_ns())
            if problem:
                self.log.warning(f"{side.name} order {'cut' if quantity else 'blocked'}: {problem}")
            if not quantity:
                return False
            self.rails.sent(self.clock.timestamp_ns())
        order = self.order_factory.market(self.instrument.id, side, self.instrument.make_qty(quantity), reduce_only=reduce_only)
        self.account.sent(order.client_order_id)
        self.submit_order(order)
        return True

    def _proposed(self, side: OrderSide, quantity: float) -> ProposedOrder:
        bar = self.cache.bar(self.config.bar_type)
        not_ready = "warm-up not complete" if not self.ready else "stale feed" if self.feed.stale else None
        return self.account.proposed(1 if side == OrderSide.BUY else -1, quantity, bar.close.as_double() if bar else math.nan, not_ready)

    def on_order_event(self, event) -> None:
        self.account.order_event(event)
        if isinstance(event, (OrderDenied, OrderRejected)):
            # The position is not what the decision that sent the order assumed: go on from the venue's.
            self.log.warning(f"{type(event).__name__} {event.client_order_id}: {event.reason}")
            self._take_position_from_venue()

    def predictions_frame(self):
        """Every in-strategy forecast with its bar close time and close, the decided side and the reason."""
        return self.log_book.frame()
