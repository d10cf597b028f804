"""LSTMStrategy: trade a symbol from the LSTM's forecasts of its forward log return.

The same class runs in backtests, paper trading and live nodes; Nautilus configs name it as
``strategies.lstm_strategy:LSTMStrategy`` with ``strategies.lstm_strategy:LSTMStrategyConfig``.

Lifecycle:

- ``on_start``: load the artifact (fail fast if it does not fit the bar type), subscribe to bars
  and request the history that warms the features and the LSTM's state; or, with state saved by
  an earlier run (``on_save``/``on_load``) that is recent enough, only the bars since it.
- Catching up: while a history request is out, every bar (history and live alike) waits in a
  buffer; when the answer comes (or the request times out) the buffer is fed in close-time order
  and a bar already seen (by close time) is never fed twice. So a live bar that beats the
  history is neither lost nor double-counted, and the first live bar is forecast by a warm model.
- ``on_bar``: update the online features and the LSTM one step, then decide (strategies.decision)
  and bring the position to the decided side with a market order. With ``backfill_gaps`` a bar
  that comes after missing ones (a dropped WebSocket) first has the missing bars requested from
  the venue; a gap the venue cannot fill pauses trading for ``gap_cooldown_bars``.
- With ``stale_feed_bars``, a timer warns and pauses trading once no bar has come for that many
  intervals.
- With any of the safety limits set (``max_order_notional``, ``max_position_notional``,
  ``max_orders_per_minute``, ``daily_loss_limit``, ``kill_file``: the live node's rails), every
  order passes :class:`strategies.safety.SafetyRails` before it is submitted, and a timer checks
  the kill file and the daily loss once a second.

Bar times: a bar's close time is :func:`backtests.timeframes.bar_close_ns` of its ``ts_event``,
which maps Nautilus's Binance stamps (close - 1 ms) and our catalog's (close) to the same time.
"""

from __future__ import annotations

import csv
import json
import math
import time
from datetime import timedelta
from pathlib import Path

import pandas as pd
import torch
from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.events import OrderDenied, OrderFilled, OrderRejected
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.trading.strategy import Strategy

from backtests.timeframes import NANOS_PER_SECOND, bar_close_ns
from models.artifact import artifact_digest, load_artifact
from models.predictor import OnlinePredictor, OnlineRidge
from strategies.decision import FLAT, LONG, SHORT, DecisionRule, decide, entry_threshold, instrument_order_quantity, stop_triggered
from strategies.safety import ProposedOrder, SafetyLimits, SafetyRails

FORECASTERS = ("lstm", "ridge")
STATE_KEY = "lstm_strategy"
STATE_VERSION = 1
_STALE_FEED_TIMER = "stale-feed"
_SAFETY_TIMER = "safety"


class LSTMStrategyConfig(StrategyConfig, frozen=True):
    """Configuration for :class:`LSTMStrategy`.

    Parameters
    ----------
    instrument_id : InstrumentId
        The instrument to trade, e.g. ``BTCUSDT.BINANCE`` or ``BTCUSDT-PERP.BINANCE``.
    bar_type : BarType
        The bars to forecast from; must be the bar type the model was trained on.
    model_path : str
        The model artifact directory written by ``nautilus-lstm train``.
    forecaster : str, default "lstm"
        "lstm", or "ridge" for the ridge baseline stored in the same artifact (same features,
        same rule: the benchmark that isolates what the LSTM adds).
    entry_margin : float, default 0.0005
        Added to the round-trip taker fee to make the default entry threshold (log return).
    entry_threshold : float, optional
        An explicit entry threshold (log return), replacing fee + margin.
    allow_short : bool, optional
        Whether to go short; by default only where the venue allows it (perpetuals).
    quantile_gate : bool, default False
        With a quantile model, trade only when the whole quantile band clears the threshold.
    min_holding_bars : int, optional
        Bars to hold a position before the rule may exit or reverse it (default: the horizon).
    order_notional : float, default 1000.0
        Position size in quote currency (used unless ``equity_fraction`` is set).
    equity_fraction : float, optional
        Size positions at this fraction of account equity instead.
    max_notional : float, default 100000.0
        The cap on any position's notional, in quote currency.
    stop_loss : float, optional
        Exit when a bar closes this fraction against the entry price (e.g. 0.02).
    take_profit : float, optional
        Exit when a bar closes this fraction in favour of the entry price.
    max_drawdown : float, optional, default 0.25
        Kill switch: flatten and stop trading once equity falls this fraction below its peak.
    warmup_bars : int, optional
        History requested at start; default: the features' warm-up plus 4 × the LSTM burn-in.
    gap_cooldown_bars : int, default 60
        After a gap in the bars, how many bars to wait before trading again.
    max_bar_delay_bars : float, default 2.0
        A bar that closed more than this many intervals before now is stale: no trading on it.
        (A bar stamped in the future, as in an accelerated replay, is never stale.)
    log_decisions : bool, default False
        Log every bar's decision on one line (paper and live runs), not only changes.
    close_positions_on_stop : bool, default True
        Flatten the position when the strategy stops.
    inference_threads : int, default 1
        Torch threads for this process's inference; one avoids oversubscribing the cores the
        engine and the feed also need (per-bar work is far too small to gain from more).
    measure_latency : bool, default False
        Record the wall time of each live bar's work (features, LSTM step, decision) in
        ``latencies_ns``, for the benchmark.
    predictions_path : str, optional
        Append every decision (close time, close, outputs, side, reason) to this CSV file as it
        is made, for comparing a paper or live run with a backtest over the same bars.
    backfill_gaps : bool, default False
        When a bar arrives after missing ones, request the missing bars from the venue before
        going on (paper and live nodes; backtest data has no more to give).
    stale_feed_bars : float, optional
        Warn and pause trading once no bar has arrived for this many intervals (paper and live
        nodes; off in backtests).
    request_timeout_s : float, default 60.0
        Give up on a history request (warm-up or back-fill) that has no answer after this long,
        and go on with the bars at hand. Nautilus's Binance adapter sends no answer at all when
        the venue returns no bars.
    max_order_notional, max_position_notional : float, optional
        Safety rails (live): block an order adding exposure worth more than this, or leaving a
        position worth more than this (quote currency). ``max_notional`` sizes positions; these
        refuse what gets past sizing (a position taken over from the venue, a bug).
    max_orders_per_minute : int, optional
        Safety rail (live): block orders adding exposure once this many went out in a minute.
    daily_loss_limit : float, optional
        Safety rail (live): flatten and open nothing more until the next UTC day once equity is
        this far (quote currency) below the day's starting equity.
    kill_file : str, optional
        Safety rail (live): once this file exists, flatten and stop the node.
    """

    instrument_id: InstrumentId
    bar_type: BarType
    model_path: str
    forecaster: str = "lstm"
    entry_margin: float = 0.0005
    entry_threshold: float | None = None
    allow_short: bool | None = None
    quantile_gate: bool = False
    min_holding_bars: int | None = None
    order_notional: float = 1_000.0
    equity_fraction: float | None = None
    max_notional: float = 100_000.0
    stop_loss: float | None = None
    take_profit: float | None = None
    max_drawdown: float | None = 0.25
    warmup_bars: int | None = None
    gap_cooldown_bars: int = 60
    max_bar_delay_bars: float = 2.0
    log_decisions: bool = False
    close_positions_on_stop: bool = True
    inference_threads: int = 1
    measure_latency: bool = False
    predictions_path: str | None = None
    backfill_gaps: bool = False
    stale_feed_bars: float | None = None
    request_timeout_s: float = 60.0
    max_order_notional: float | None = None
    max_position_notional: float | None = None
    max_orders_per_minute: int | None = None
    daily_loss_limit: float | None = None
    kill_file: str | None = None


class LSTMStrategy(Strategy):
    """Trades the sign of the forecast when it clears the trading costs."""

    def __init__(self, config: LSTMStrategyConfig) -> None:
        if config.forecaster not in FORECASTERS:
            raise ValueError(f"forecaster must be one of {FORECASTERS}, not {config.forecaster!r}")
        super().__init__(config)
        self.instrument: Instrument | None = None
        self.predictor: OnlinePredictor | OnlineRidge | None = None
        self.rule: DecisionRule | None = None
        self.records: list[tuple] = []  # (close ns, close, outputs..., side, reason) per forecast bar
        self.latencies_ns: list[int] = []
        self.output_names: list[str] = []
        self.ready = False  # warmed up (or resumed) and trading on live bars
        self.warmup_range: tuple[int, int] | None = None  # close times of the first and last bar fed
        self._model_digest = ""
        self._interval_ns = 0
        self._last_ts = 0
        self._start_ns = 0
        # History requests (warm-up, resume, back-fill): what for, which one, the bars it brought
        # and the live bars held back until it is answered.
        self._catching_up: str | None = None
        self._catch_up_number = 0
        self._history: list[Bar] = []
        self._held: list[Bar] = []
        self._last_arrival_ns = 0
        self._feed_stale = False
        self._saved: dict | None = None
        self._unanswered: set = set()  # client order ids of our orders the venue has not finished with
        self._predictions_file = None
        self._predictions_writer = None
        self._bars_since_gap = 0
        self._side = FLAT
        self._bars_held = 0
        self._entry_price = 0.0
        self._peak_equity = 0.0
        self._equity_parts: tuple[float, float] | None = None  # (cash, units): see _equity
        self._bars_since_equity_refresh = 0
        self._halted = False
        self.rails: SafetyRails | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def on_start(self) -> None:
        config = self.config
        self.instrument = self.cache.instrument(config.instrument_id)
        if self.instrument is None:
            raise ValueError(f"instrument {config.instrument_id} is not in the cache: add it before starting the strategy")
        if config.bar_type.instrument_id != config.instrument_id:
            raise ValueError(f"bar type {config.bar_type} is not for instrument {config.instrument_id}")
        self._interval_ns = config.bar_type.spec.timedelta.value
        if self._interval_ns % NANOS_PER_SECOND:
            raise ValueError(f"{config.bar_type}: bars must last whole seconds")
        torch.set_num_threads(config.inference_threads)
        artifact = load_artifact(Path(config.model_path), bar_type=str(config.bar_type))
        self._model_digest = artifact_digest(Path(config.model_path))
        self.predictor = OnlinePredictor(artifact) if config.forecaster == "lstm" else OnlineRidge(artifact)
        quantiles = artifact.lstm.quantiles if config.forecaster == "lstm" else ()
        self.output_names = [f"q{q:g}" for q in quantiles] or ["prediction"]
        self._band = (0, len(quantiles) - 1) if len(quantiles) > 1 else None

        venue_shorts = self.instrument.instrument_class.name in ("SWAP", "FUTURE")
        threshold = config.entry_threshold
        if threshold is None:
            threshold = entry_threshold(float(self.instrument.taker_fee), config.entry_margin)
        self.rule = DecisionRule(
            threshold=threshold,
            allow_short=venue_shorts if config.allow_short is None else config.allow_short and venue_shorts,
            min_holding_bars=config.min_holding_bars if config.min_holding_bars is not None else artifact.config.training.horizon,
            quantile_gate=config.quantile_gate,
        )
        if config.allow_short and not venue_shorts:
            self.log.warning(f"allow_short ignored: {self.instrument.id} is a spot pair and cannot be shorted")
        warmup = config.warmup_bars or self.predictor.warmup_bars + 4 * artifact.lstm.burn_in
        self.log.info(
            f"model {config.model_path} ({config.forecaster}), threshold {threshold:.6f}, "
            f"short {'on' if self.rule.allow_short else 'off'}, warm-up {warmup} bars"
        )
        self._open_predictions_file()
        self._take_position_from_venue()
        self._start_rails()

        now = self.clock.timestamp_ns()
        self._start_ns = self._last_arrival_ns = now
        self.subscribe_bars(config.bar_type)
        resumed_at = self._restore(now, warmup)
        if resumed_at:
            self._request_history(resumed_at, "resume")
        else:
            self._request_history(now - (warmup + 1) * self._interval_ns, "warm-up")
        if config.stale_feed_bars:
            self.clock.set_timer(_STALE_FEED_TIMER, timedelta(microseconds=self._interval_ns / 1000), callback=self._check_feed)

    def on_stop(self) -> None:
        for timer in (_STALE_FEED_TIMER, _SAFETY_TIMER):
            if timer in self.clock.timer_names:
                self.clock.cancel_timer(timer)
        if self.config.close_positions_on_stop and self.instrument is not None:
            self._flatten("stopping")  # and the saved state says flat
        if self._predictions_file is not None:
            self._predictions_file.close()
            self._predictions_file = self._predictions_writer = None

    def on_save(self) -> dict[str, bytes]:
        """The model's running state and the guards', so that a restart need not warm up again."""
        if self.predictor is None or not self._last_ts:
            return {}
        state = {
            "version": STATE_VERSION,
            "model": self._model_digest,
            "bar_type": str(self.config.bar_type),
            "forecaster": self.config.forecaster,
            "last_close_ns": self._last_ts,
            "predictor": self.predictor.get_state(),
            "bars_since_gap": self._bars_since_gap,
            "halted": self._halted,
            "side": self._side,
            "bars_held": self._bars_held,
            "entry_price": self._entry_price,
            "rails": self.rails.state() if self.rails else None,
        }
        return {STATE_KEY: json.dumps(state).encode()}

    def on_load(self, state: dict[str, bytes]) -> None:
        """Keep saved state for ``on_start``, which applies it once the model is loaded."""
        if STATE_KEY in state:
            self._saved = json.loads(state[STATE_KEY])

    def _restore(self, now: int, warmup: int) -> int:
        """Apply saved state if it is this model's and recent; its last bar's close time, or 0."""
        saved, self._saved = self._saved, None
        if not saved:
            return 0
        mine = (STATE_VERSION, self._model_digest, str(self.config.bar_type), self.config.forecaster)
        theirs = (saved.get("version"), saved.get("model"), saved.get("bar_type"), saved.get("forecaster"))
        if mine != theirs:
            self.log.warning("saved state is of another model, bar type or forecaster: warming up from scratch")
            return 0
        last = int(saved["last_close_ns"])
        behind = (now - last) // self._interval_ns
        if behind > warmup:
            self.log.info(f"saved state ends {behind} bars ago, more than a warm-up: warming up from scratch")
            return 0
        self.predictor.set_state(saved["predictor"])
        self._last_ts = last
        self._bars_since_gap = int(saved["bars_since_gap"])
        self._halted = bool(saved["halted"])
        if saved["side"] == self._side:
            self._bars_held, self._entry_price = int(saved["bars_held"]), float(saved["entry_price"])
        else:
            self.log.warning(
                f"saved state held {_SIDE_NAMES[saved['side']]} but the venue's position is {_SIDE_NAMES[self._side]}: "
                "going on from the venue's"
            )
        self.log.info(f"resuming from saved state at {_time(last)}: fetching the {behind} bars since instead of warming up")
        return last

    def _take_position_from_venue(self) -> None:
        """Go on from the position the venue holds, counting orders in flight: at start (flat in
        backtests and a fresh sandbox; reconciled with the venue in a live node), and after an
        order was refused."""
        position = self._expected_position()
        side = LONG if position > 0 else SHORT if position < 0 else FLAT
        if side == self._side:
            return
        self._side, self._bars_held, self._entry_price = side, 0, 0.0
        if side != FLAT:
            opened = self.cache.positions_open(instrument_id=self.instrument.id)
            self._entry_price = float(opened[0].avg_px_open) if opened else 0.0
            self.log.warning(f"the venue holds a {_SIDE_NAMES[side]} position of {position:g}: managing it")

    def _start_rails(self) -> None:
        """The safety rails, if any limit is set, with the day's loss tracking of the saved state."""
        config = self.config
        limits = SafetyLimits(
            max_order_notional=config.max_order_notional, max_position_notional=config.max_position_notional,
            max_orders_per_minute=config.max_orders_per_minute, daily_loss_limit=config.daily_loss_limit,
            kill_file=config.kill_file,
        )
        if limits == SafetyLimits():
            return
        self.rails = SafetyRails(limits)
        if self._saved and self._saved.get("rails"):
            self.rails.restore(self._saved["rails"])
            if self.rails.halted:
                self.log.warning(f"still halted: {self.rails.halted}")
        self.clock.set_timer(_SAFETY_TIMER, timedelta(seconds=1), callback=self._check_rails)

    def _check_rails(self, event) -> None:
        if self.rails.kill_requested():
            self.log.error(f"kill file {self.config.kill_file} found: flattening and stopping the node")
            self.clock.cancel_timer(_SAFETY_TIMER)
            self._flatten("kill file")
            self.shutdown_system(f"kill file {self.config.kill_file}")
            return
        bar = self.cache.bar(self.config.bar_type)
        equity = self._equity(bar.close.as_double()) if bar is not None else math.nan
        if math.isfinite(equity) and (reason := self.rails.check(self.clock.timestamp_ns(), equity)):
            self.log.error(f"{reason}: flattening, and no new position until the next UTC day")
            self._flatten(reason)

    def _flatten(self, why: str) -> None:
        """Close the position, counting the orders in flight (whatever the rails' limits)."""
        position = self._expected_position()
        if position:
            self.log.warning(f"flattening a position of {position:g}: {why}")
            self._submit(OrderSide.SELL if position > 0 else OrderSide.BUY, abs(position), reduce_only=True)
        self._side, self._bars_held, self._entry_price = FLAT, 0, 0.0

    def _expected_position(self) -> float:
        """The signed net position once the orders still in flight are done."""
        position = float(self.portfolio.net_position(self.instrument.id))
        for client_order_id in self._unanswered:
            order = self.cache.order(client_order_id)
            if order is not None and not order.is_closed:
                position += float(order.leaves_qty) * (1 if order.side == OrderSide.BUY else -1)
        return position

    # -- history requests --------------------------------------------------------------------

    def _request_history(self, start_ns: int, why: str) -> None:
        """Ask for the bars closing from ``start_ns`` to now; bars wait in the buffer meanwhile."""
        self._catching_up = why
        self._catch_up_number += 1
        number = self._catch_up_number
        now = self.clock.utc_now()
        self.clock.set_time_alert(
            f"history-{number}",
            now + timedelta(seconds=self.config.request_timeout_s),
            callback=lambda event: self._history_done(number, timed_out=True),
        )
        self.request_bars(
            self.config.bar_type,
            start=pd.Timestamp(start_ns, unit="ns", tz="UTC"),
            end=now,
            callback=lambda request_id: self._history_done(number, timed_out=False),
        )

    def on_historical_data(self, data) -> None:
        if self._catching_up and isinstance(data, Bar) and data.bar_type == self.config.bar_type:
            self._history.append(data)

    def _history_done(self, number: int, timed_out: bool) -> None:
        if number != self._catch_up_number or self._catching_up is None:
            return  # the answer to a request already given up on, or its timer after the answer
        alert = f"history-{number}"
        if not timed_out and alert in self.clock.timer_names:
            self.clock.cancel_timer(alert)
        why, self._catching_up = self._catching_up, None
        history, held = self._history, self._held
        self._history, self._held = [], []
        if timed_out:
            self.log.warning(f"no answer to the {why} request in {self.config.request_timeout_s:g}s: going on with the bars at hand")
        first = None
        for bar in sorted(history + held, key=lambda bar: bar.ts_event):
            close = bar_close_ns(bar.ts_event)
            if first is None and close > self._last_ts:
                first = close
            self._update(bar, trade=close >= self._start_ns, backfilled=why == "back-fill")
        fed = f"{_time(first)} to {_time(self._last_ts)}" if first else "none"
        summary = f"{len(history)} bars from the venue, {len(held)} live bars held meanwhile; new bars fed: {fed}"
        if why == "back-fill":
            self.log.info(f"back-fill done: {summary}")
            return
        self.warmup_range = (first, self._last_ts) if first else None
        self.ready = True
        self.log.info(f"{why} done: {summary}; ready")

    # -- live bars ---------------------------------------------------------------------------

    def on_bar(self, bar: Bar) -> None:
        self._last_arrival_ns = self.clock.timestamp_ns()
        if self._feed_stale:
            self._feed_stale = False
            self.log.info(f"feed resumed: a bar closing {_time(bar_close_ns(bar.ts_event))} arrived")
        if self._catching_up:
            self._held.append(bar)  # a live bar that beat the history: keep it for later
            return
        close = bar_close_ns(bar.ts_event)
        if self.config.backfill_gaps and self._last_ts and close - self._last_ts > self._interval_ns:
            missing = (close - self._last_ts) // self._interval_ns - 1
            self.log.warning(f"{missing} bars missing before {_time(close)}: back-filling them from the venue")
            self._held.append(bar)
            self._request_history(self._last_ts, "back-fill")
            return
        if self.config.measure_latency:
            started = time.perf_counter_ns()
            self._update(bar, trade=True, ts=close)
            self.latencies_ns.append(time.perf_counter_ns() - started)
        else:
            self._update(bar, trade=True, ts=close)

    def _check_feed(self, event) -> None:
        if self._feed_stale or self._catching_up:
            return
        silent = self.clock.timestamp_ns() - self._last_arrival_ns
        if silent >= self.config.stale_feed_bars * self._interval_ns:
            self._feed_stale = True
            self.log.warning(
                f"stale feed: no bar for {silent / self._interval_ns:.1f} intervals (last closed "
                f"{_time(self._last_ts) if self._last_ts else '-'}): trading paused until bars come again"
            )

    # -- per bar -----------------------------------------------------------------------------

    def _update(self, bar: Bar, trade: bool, backfilled: bool = False, ts: int | None = None) -> None:
        if ts is None:
            ts = bar_close_ns(bar.ts_event)
        if ts <= self._last_ts:
            return  # seen already (history overlapping the live stream)
        if self._last_ts and ts - self._last_ts > self._interval_ns:
            missing = (ts - self._last_ts) // self._interval_ns - 1
            unfilled = " the venue could not fill" if backfilled else ""
            self.log.warning(f"gap of {missing} bars{unfilled} before {_time(ts)}: no trading for {self.config.gap_cooldown_bars} bars")
            self._bars_since_gap = 0
        self._last_ts = ts
        self._bars_since_gap += 1
        close = bar.close.as_double()
        outputs = self.predictor.update(ts, bar.open.as_double(), bar.high.as_double(), bar.low.as_double(), close, bar.volume.as_double())
        if self._side != FLAT:
            self._bars_held += 1
        if outputs is None or not trade:
            return
        outputs = outputs.tolist()
        point = outputs[self.predictor.point_index]
        band = (outputs[self._band[0]], outputs[self._band[1]]) if self._band else None
        target, reason = self._decide(point, band, close, ts)
        self._record(ts, close, outputs, target, reason)
        if target != self._side or self.config.log_decisions:
            self.log.info(self._decision_line(ts, outputs, target, reason))
        if target != self._side:
            self._move_to(target, close)

    def _decide(self, point: float, band, close: float, ts: int) -> tuple[int, str]:
        if self._halted:
            return FLAT, "halted by the drawdown kill switch"
        equity = self._equity(close)
        self._peak_equity = max(self._peak_equity, equity)
        limit = self.config.max_drawdown
        if limit is not None and self._peak_equity > 0 and equity < self._peak_equity * (1 - limit):
            self._halted = True
            self.log.error(f"equity {equity:.2f} is {1 - equity / self._peak_equity:.2%} below its peak: flattening and halting")
            return FLAT, "drawdown kill switch"
        stop = stop_triggered(self._side, self._entry_price, close, self.config.stop_loss, self.config.take_profit)
        if stop is not None:
            return FLAT, stop
        if self._unanswered:
            # The venue has not finished with the last order yet: the position it leaves is unknown.
            return self._side, "an order is still in flight: no new decision"
        delay = self.clock.timestamp_ns() - ts
        if delay > self.config.max_bar_delay_bars * self._interval_ns:
            return self._side, f"stale bar ({delay / self._interval_ns:.1f} intervals old): no trade"
        if self._bars_since_gap <= self.config.gap_cooldown_bars:
            return self._side, f"{self._bars_since_gap} bars since a gap: no trade"
        return decide(self.rule, point, band, self._side, self._bars_held)

    def _move_to(self, target: int, close: float) -> None:
        """Bring the net position to ``target`` with one market order per leg."""
        position = float(self.portfolio.net_position(self.instrument.id))
        if position != 0:
            self._submit(OrderSide.SELL if position > 0 else OrderSide.BUY, abs(position))
        if target != FLAT:
            notional = self._notional(close)
            quantity, problem = instrument_order_quantity(self.instrument, notional, close)
            if problem:
                self.log.warning(f"not opening a position: {problem}")
                target = FLAT
            elif not self._submit(OrderSide.BUY if target == LONG else OrderSide.SELL, quantity):
                target = FLAT
        self._side, self._bars_held, self._entry_price = target, 0, close if target != FLAT else 0.0

    def _submit(self, side: OrderSide, quantity: float, reduce_only: bool = False) -> bool:
        """Submit a market order, if the safety rails let it go out; whether it went."""
        if self.rails is not None:
            quantity, problem = self.rails.review(self._proposed(side, quantity), self.clock.timestamp_ns())
            if problem:
                self.log.warning(f"{side.name} order {'cut' if quantity else 'blocked'}: {problem}")
            if not quantity:
                return False
            self.rails.sent(self.clock.timestamp_ns())
        order = self.order_factory.market(self.instrument.id, side, self.instrument.make_qty(quantity), reduce_only=reduce_only)
        self._unanswered.add(order.client_order_id)
        self.submit_order(order)
        return True

    def _proposed(self, side: OrderSide, quantity: float) -> ProposedOrder:
        bar = self.cache.bar(self.config.bar_type)
        account = self.portfolio.account(self.instrument.id.venue)
        free_base = None
        if account is not None and account.is_cash_account:
            free = account.balance_free(self.instrument.base_currency)
            free_base = free.as_double() if free is not None else 0.0
        not_ready = "warm-up not complete" if not self.ready else "stale feed" if self._feed_stale else None
        return ProposedOrder(
            side=1 if side == OrderSide.BUY else -1, quantity=quantity, price=bar.close.as_double() if bar else math.nan,
            position=self._expected_position(), size_increment=float(self.instrument.size_increment),
            min_quantity=float(self.instrument.min_quantity or 0), free_base=free_base, not_ready=not_ready,
        )

    def on_order_event(self, event) -> None:
        # In a live node an order waits in the engines' queues for a while: not yet in flight in
        # the cache's sense, but its fill will change the position all the same.
        order = self.cache.order(event.client_order_id)  # None at OrderInitialized: not cached yet
        if order is not None and order.is_closed:
            self._unanswered.discard(event.client_order_id)
        if isinstance(event, OrderFilled):
            self._equity_parts = None  # balances and position changed
        if isinstance(event, (OrderDenied, OrderRejected)) and self.instrument is not None:
            # The position is not what the decision that sent the order assumed: go on from the venue's.
            self.log.warning(f"{type(event).__name__} {event.client_order_id}: {event.reason}")
            self._take_position_from_venue()

    def _notional(self, close: float) -> float:
        wanted = self.config.order_notional
        if self.config.equity_fraction is not None:
            wanted = self.config.equity_fraction * self._equity(close)
        return min(wanted, self.config.max_notional)

    def _equity(self, close: float) -> float:
        """Account equity in quote currency, marked at ``close``: ``cash + units * close``.

        The two figures change only with fills (and, on futures, funding), so they are read from
        the account after a fill and every ``_EQUITY_REFRESH_BARS`` bars, not on every bar.
        """
        if self._equity_parts is None or self._bars_since_equity_refresh >= _EQUITY_REFRESH_BARS:
            self._equity_parts = self._read_equity_parts()
            self._bars_since_equity_refresh = 0
        self._bars_since_equity_refresh += 1
        cash, units = self._equity_parts
        return cash + units * close

    def _read_equity_parts(self) -> tuple[float, float]:
        account = self.portfolio.account(self.instrument.id.venue)
        if account is None:
            return math.nan, 0.0
        if account.is_cash_account:
            # Spot: quote balance plus the base asset held, valued at the close.
            quote_total = account.balance_total(self.instrument.quote_currency)
            base_total = account.balance_total(self.instrument.base_currency)
            return (quote_total.as_double() if quote_total else 0.0), (base_total.as_double() if base_total else 0.0)
        # Linear perpetual: balance + units * (close - entry price).
        balance = account.balance_total(self.instrument.get_settlement_currency())
        cash, units = (balance.as_double() if balance else 0.0), 0.0
        for position in self.cache.positions_open(instrument_id=self.instrument.id):
            units += position.signed_qty
            cash -= position.signed_qty * position.avg_px_open
        return cash, units

    # -- what it decided ---------------------------------------------------------------------

    def _record(self, ts: int, close: float, outputs: list[float], side: int, reason: str) -> None:
        self.records.append((ts, close, *outputs, side, reason))
        if self._predictions_writer is not None:
            self._predictions_writer.writerow([_time(ts), repr(close), *map(repr, outputs), side, reason])
            self._predictions_file.flush()

    def _decision_line(self, ts: int, outputs: list[float], target: int, reason: str) -> str:
        """One line per decision: bar time, prediction, quantiles, action and reason."""
        point = outputs[self.predictor.point_index]
        quantiles = " ".join(f"{name}={value:+.6f}" for name, value in zip(self.output_names, outputs)) if self._band else "none"
        if target == self._side:
            action = f"HOLD {_SIDE_NAMES[target]}"
        else:
            action = f"{'BUY' if target > self._side else 'SELL'} {_SIDE_NAMES[self._side]}->{_SIDE_NAMES[target]}"
        return f"decision bar={_time(ts)} prediction={point:+.6f} quantiles=[{quantiles}] action={action} reason={reason}"

    def _open_predictions_file(self) -> None:
        if not self.config.predictions_path:
            return
        path = Path(self.config.predictions_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists() or path.stat().st_size == 0
        self._predictions_file = path.open("a", newline="")
        self._predictions_writer = csv.writer(self._predictions_file)
        if new:
            self._predictions_writer.writerow(["close_time", "close", *self.output_names, "side", "reason"])

    def predictions_frame(self) -> pd.DataFrame:
        """Every in-strategy forecast with its bar close time and close, the decided side and the reason."""
        columns = ["close_time", "close", *self.output_names, "side", "reason"]
        frame = pd.DataFrame(self.records, columns=columns)
        frame["close_time"] = pd.to_datetime(frame["close_time"], utc=True)
        return frame.set_index("close_time")


def read_predictions(path: Path) -> pd.DataFrame:
    """A predictions file written through ``predictions_path``, as :meth:`LSTMStrategy.predictions_frame`."""
    frame = pd.read_csv(path)
    frame["close_time"] = pd.to_datetime(frame["close_time"], utc=True)
    return frame.set_index("close_time")


def _time(ns: int) -> str:
    return pd.Timestamp(ns, unit="ns", tz="UTC").isoformat()


_EQUITY_REFRESH_BARS = 60
_SIDE_NAMES = {LONG: "LONG", FLAT: "FLAT", SHORT: "SHORT"}
