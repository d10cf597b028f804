"""LSTMStrategy: trade a symbol from the LSTM's forecasts of its forward log return.

The same class runs in backtests, paper trading and live nodes; Nautilus configs name it as
``strategies.lstm_strategy:LSTMStrategy`` with ``strategies.lstm_strategy:LSTMStrategyConfig``.

Lifecycle:

- ``on_start``: load the artifact (fail fast if it does not fit the bar type), request enough
  history to warm the features and the LSTM's state, and subscribe to bars. History arrives in
  ``on_historical_data``; live bars that arrive meanwhile wait in a buffer, and a bar already
  seen (by close time) is never fed twice, so the first live bar is forecast by a warm model.
- ``on_bar``: update the online features and the LSTM one step, then decide (strategies.decision)
  and bring the position to the decided side with a market order.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pandas as pd
import torch
from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.trading.strategy import Strategy

from models.artifact import load_artifact
from models.predictor import OnlinePredictor, OnlineRidge
from strategies.decision import FLAT, LONG, SHORT, DecisionRule, decide, entry_threshold, order_quantity, stop_triggered

FORECASTERS = ("lstm", "ridge")


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


class LSTMStrategy(Strategy):
    """Trades the sign of the forecast when it clears the trading costs."""

    def __init__(self, config: LSTMStrategyConfig) -> None:
        if config.forecaster not in FORECASTERS:
            raise ValueError(f"forecaster must be one of {FORECASTERS}, not {config.forecaster!r}")
        super().__init__(config)
        self.instrument: Instrument | None = None
        self.predictor: OnlinePredictor | OnlineRidge | None = None
        self.rule: DecisionRule | None = None
        self.records: list[tuple] = []  # (close ns, outputs..., side, reason) per forecast bar
        self.latencies_ns: list[int] = []
        self.output_names: list[str] = []
        self._interval_ns = 0
        self._last_ts = 0
        self._warming = False
        self._start_ns = 0
        self._pending: list[Bar] = []
        self._bars_since_gap = 0
        self._side = FLAT
        self._bars_held = 0
        self._entry_price = 0.0
        self._peak_equity = 0.0
        self._halted = False

    # -- lifecycle ---------------------------------------------------------------------------

    def on_start(self) -> None:
        config = self.config
        self.instrument = self.cache.instrument(config.instrument_id)
        if self.instrument is None:
            raise ValueError(f"instrument {config.instrument_id} is not in the cache: add it before starting the strategy")
        if config.bar_type.instrument_id != config.instrument_id:
            raise ValueError(f"bar type {config.bar_type} is not for instrument {config.instrument_id}")
        torch.set_num_threads(config.inference_threads)
        artifact = load_artifact(Path(config.model_path), bar_type=str(config.bar_type))
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
        self._interval_ns = config.bar_type.spec.timedelta.value
        warmup = config.warmup_bars or self.predictor.warmup_bars + 4 * artifact.lstm.burn_in
        self.log.info(
            f"model {config.model_path} ({config.forecaster}), threshold {threshold:.6f}, "
            f"short {'on' if self.rule.allow_short else 'off'}, warming up on {warmup} bars"
        )
        now = self.clock.utc_now()
        self._start_ns = now.value
        self._warming = True
        self.request_bars(
            config.bar_type,
            start=now - pd.Timedelta(self._interval_ns * (warmup + 1), unit="ns"),
            end=now,
            callback=self._on_warmup_done,
        )
        self.subscribe_bars(config.bar_type)

    def on_historical_data(self, data) -> None:
        if isinstance(data, Bar) and data.bar_type == self.config.bar_type:
            if data.ts_event >= self._start_ns:
                self._pending.append(data)  # closed after we started: a bar to trade on, not history
            else:
                self._update(data, trade=False)

    def _on_warmup_done(self, request_id) -> None:
        self._warming = False
        pending, self._pending = sorted(self._pending, key=lambda bar: bar.ts_event), []
        for bar in pending:
            self._update(bar, trade=True)
        self.log.info(f"warm-up done at {pd.Timestamp(self._last_ts, tz='UTC') if self._last_ts else 'no bars'}: ready")

    def on_bar(self, bar: Bar) -> None:
        if self._warming:
            self._pending.append(bar)  # a live bar that beat the history: keep it for later
            return
        if self.config.measure_latency:
            started = time.perf_counter_ns()
            self._update(bar, trade=True)
            self.latencies_ns.append(time.perf_counter_ns() - started)
        else:
            self._update(bar, trade=True)

    def on_stop(self) -> None:
        if self.config.close_positions_on_stop and self.instrument is not None:
            self.close_all_positions(self.instrument.id)

    # -- per bar -----------------------------------------------------------------------------

    def _update(self, bar: Bar, trade: bool) -> None:
        ts = bar.ts_event
        if ts <= self._last_ts:
            return  # seen already (history overlapping the live stream)
        if self._last_ts and ts - self._last_ts > self._interval_ns:
            missing = (ts - self._last_ts) // self._interval_ns - 1
            self.log.warning(f"gap of {missing} bars before {pd.Timestamp(ts, tz='UTC')}: no trading for {self.config.gap_cooldown_bars} bars")
            self._bars_since_gap = 0
        self._last_ts = ts
        self._bars_since_gap += 1
        close = bar.close.as_double()
        outputs = self.predictor.update(ts, bar.open.as_double(), bar.high.as_double(), bar.low.as_double(), close, bar.volume.as_double())
        if self._side != FLAT:
            self._bars_held += 1
        if outputs is None or not trade:
            return
        point = float(outputs[self.predictor.point_index])
        band = (float(outputs[self._band[0]]), float(outputs[self._band[1]])) if self._band else None
        target, reason = self._decide(point, band, close, ts)
        self.records.append((ts, *map(float, outputs), target, reason))
        if target != self._side:
            self.log.info(f"{pd.Timestamp(ts, tz='UTC')} {_SIDE_NAMES[self._side]} -> {_SIDE_NAMES[target]}: {reason}")
            self._move_to(target, close)
        elif self.config.log_decisions:
            self.log.info(f"{pd.Timestamp(ts, tz='UTC')} forecast {point:+.6f} hold {_SIDE_NAMES[target]}: {reason}")

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
        instrument_id = self.instrument.id
        if self.cache.orders_inflight_count(instrument_id=instrument_id) or self.cache.orders_open_count(instrument_id=instrument_id):
            # The venue has not answered the last order yet: the position it leaves is unknown.
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
            quantity, problem = order_quantity(
                notional, close, float(self.instrument.size_increment),
                float(self.instrument.min_quantity or 0), float(self.instrument.min_notional or 0),
            )
            if problem:
                self.log.warning(f"not opening a position: {problem}")
                target = FLAT
            else:
                self._submit(OrderSide.BUY if target == LONG else OrderSide.SELL, quantity)
        self._side, self._bars_held, self._entry_price = target, 0, close if target != FLAT else 0.0

    def _submit(self, side: OrderSide, quantity: float) -> None:
        order = self.order_factory.market(self.instrument.id, side, self.instrument.make_qty(quantity))
        self.submit_order(order)

    def _notional(self, close: float) -> float:
        wanted = self.config.order_notional
        if self.config.equity_fraction is not None:
            wanted = self.config.equity_fraction * self._equity(close)
        return min(wanted, self.config.max_notional)

    def _equity(self, close: float) -> float:
        """Account equity in quote currency, marked at ``close``."""
        account = self.portfolio.account(self.instrument.id.venue)
        if account is None:
            return math.nan
        quote, base = self.instrument.quote_currency, self.instrument.base_currency
        if account.is_cash_account:
            quote_total = account.balance_total(quote)
            base_total = account.balance_total(base)
            return (quote_total.as_double() if quote_total else 0.0) + (base_total.as_double() * close if base_total else 0.0)
        settlement = self.instrument.get_settlement_currency()
        balance = account.balance_total(settlement)
        unrealized = self.portfolio.unrealized_pnl(self.instrument.id)
        return (balance.as_double() if balance else 0.0) + (unrealized.as_double() if unrealized else 0.0)

    # -- results -----------------------------------------------------------------------------

    def predictions_frame(self) -> pd.DataFrame:
        """Every in-strategy forecast with its bar close time, the decided side and the reason."""
        columns = ["close_time", *self.output_names, "side", "reason"]
        frame = pd.DataFrame(self.records, columns=columns)
        frame["close_time"] = pd.to_datetime(frame["close_time"], utc=True)
        return frame.set_index("close_time")


_SIDE_NAMES = {LONG: "LONG", FLAT: "FLAT", SHORT: "SHORT"}
