"""The trading rule, as plain functions the strategy calls: easy to read and to test alone.

Forecasts are log returns over the model's horizon. A position must be expected to earn more
than it costs: the entry threshold defaults to the round-trip taker fee plus a margin.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import msgspec
import numpy as np

from models.kernels import entry_point
# The sides and DEFER are defined with the compiled rule (strategies.kernel); the rest imports them from here.
from strategies.kernel import (  # noqa: F401
    BAND, DEFER, FLAT, HELD_REASON, LONG, NOT_FINITE, READ_ACCOUNT, RULE_REASONS, SHORT, STOP_LOSS, TAKE_PROFIT, decide_bar, rule_core,
    stop_core,
)


class RuleConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The trading rule's settings (LSTMStrategyConfig's ``rule``).

    entry_margin: added to the round-trip taker fee to make the default entry threshold (log return).
    entry_threshold: an explicit entry threshold (log return), replacing fee + margin.
    allow_short: whether to go short; by default only where the venue allows it (perpetuals).
    quantile_gate: with a quantile model, trade only when the whole quantile band clears the threshold.
    min_holding_bars: bars to hold a position before the rule may exit or reverse it (default: the horizon).
    stop_loss: exit when a bar closes this fraction against the entry price (e.g. 0.02).
    take_profit: exit when a bar closes this fraction in favour of the entry price.
    """

    entry_margin: float = 0.0005
    entry_threshold: float | None = None
    allow_short: bool | None = None
    quantile_gate: bool = False
    min_holding_bars: int | None = None
    stop_loss: float | None = None
    take_profit: float | None = None

    def threshold(self, taker_fee: float) -> float:
        """The entry threshold: the explicit one, or the round-trip taker fee plus the margin.
        The strategy and the live node's plan both ask this."""
        return self.entry_threshold if self.entry_threshold is not None else entry_threshold(taker_fee, self.entry_margin)


class SizingConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Position sizes (LSTMStrategyConfig's ``sizing``), in quote currency.

    order_notional: position size (used unless ``equity_fraction`` is set).
    equity_fraction: size positions at this fraction of account equity instead.
    max_notional: the cap on any position's notional.
    target_volatility: size by the model's volatility forecast: the notional above × this annualized
        volatility / the forecast's, annualized (``strategies.volatility``). None: no such scaling.
    """

    order_notional: float = 1_000.0
    equity_fraction: float | None = None
    max_notional: float = 100_000.0
    target_volatility: float | None = None

    def __post_init__(self) -> None:
        if self.target_volatility is not None and not self.target_volatility > 0:
            raise ValueError(f"target_volatility must be a positive annualized volatility, not {self.target_volatility}")

    def notional(self, equity: Callable[[], float], forecast_volatility: float | None = None) -> float:
        """The notional of a new position; ``equity()`` is asked for the account's equity only when
        sized by it. With ``target_volatility``, scaled by it over ``forecast_volatility`` (annualized):
        no forecast, or one not positive and finite, sizes nothing."""
        wanted = self.order_notional if self.equity_fraction is None else self.equity_fraction * equity()
        if self.target_volatility is not None:
            usable = forecast_volatility is not None and math.isfinite(forecast_volatility) and forecast_volatility > 0
            wanted = wanted * self.target_volatility / forecast_volatility if usable else 0.0
        return min(wanted, self.max_notional)


@dataclass(frozen=True)
class DecisionRule:
    threshold: float  # |forecast| a trade needs, as a log return
    allow_short: bool
    min_holding_bars: int
    quantile_gate: bool = False  # trade only when the whole quantile band clears the threshold

    @classmethod
    def of(cls, config: RuleConfig, instrument, horizon: int) -> DecisionRule:
        """The rule for a Nautilus ``instrument`` (its taker fee; shorts only where it is a
        perpetual or future) and a model of ``horizon`` bars (the default minimum holding)."""
        venue_shorts = instrument.instrument_class.name in ("SWAP", "FUTURE")
        return cls(
            threshold=config.threshold(float(instrument.taker_fee)),
            allow_short=venue_shorts if config.allow_short is None else config.allow_short and venue_shorts,
            min_holding_bars=config.min_holding_bars if config.min_holding_bars is not None else horizon,
            quantile_gate=config.quantile_gate,
        )


def entry_threshold(taker_fee: float, margin: float) -> float:
    """Round-trip taker cost plus a margin, as a log return."""
    return -math.log1p(-2.0 * taker_fee) + margin


# A reason is text, or (template, *args) put into words only when shown (reason_text): the rule runs
# on every bar, and formatting its forecast into a sentence cost more than deciding.
Reason = str | tuple


def reason_text(reason: Reason) -> str:
    """A reason in words; a (template, *args) one formatted here (its args may be reasons too)."""
    if isinstance(reason, str):
        return reason
    template, *args = reason
    return template.format(*(reason_text(arg) if isinstance(arg, tuple) else arg for arg in args))


def decide(rule: DecisionRule, point: float, band: tuple[float, float] | None, side: int, bars_held: int) -> tuple[int, Reason]:
    """The side to hold next (LONG, FLAT or SHORT) and why (a Reason).

    ``point`` is the point forecast, ``band`` the lowest and highest quantile forecasts (or
    None), ``side`` the side held now and ``bars_held`` for how many bars. The rule itself is
    ``strategies.kernel.rule_core``, which the strategy's compiled per-bar call runs too.
    """
    low, high = band if band is not None else (math.nan, math.nan)
    target, code, held = rule_core(point, low, high, band is not None, side, bars_held, rule.threshold, rule.allow_short,
                                   rule.quantile_gate, rule.min_holding_bars)
    reason = rule_reason(code, point, low, high, rule.threshold)
    if held:
        return side, (HELD_REASON, reason, bars_held, rule.min_holding_bars)
    return target, reason


def rule_reason(code: int, point: float, low: float, high: float, threshold: float) -> Reason:
    """The rule's reason of ``code`` (strategies.kernel.RULE_REASONS) with its numbers."""
    if code == NOT_FINITE:
        return RULE_REASONS[code]
    if code == BAND:
        return (RULE_REASONS[code], low, high, threshold)
    return (RULE_REASONS[code], point, threshold)


class BarDecision:
    """The rule, the gate and the record of a strategy's bars compiled in one call (strategies.kernel.decide_bar),
    bound to its forecaster, rule, gate (strategies.volatility.VolatilityRisk) and decision log's staging:
    ``call(ts, close, out, trade, side, bars_held, entry_price, now_ns, bars_since_gap, guarded, *arrays)``, past
    numba's dispatcher (models.kernels.entry_point). ``band``: where the forecaster's lowest and highest quantile
    are, or None; ``config``: the strategy's (LSTMStrategyConfig), for its stops, feed checks and kill switch;
    ``account`` (strategies.account.AccountView) and ``rails`` (strategies.safety.SafetyRails): the kill switch's equity and peak."""

    def __init__(self, predictor, band: tuple[int, int] | None, rule: DecisionRule, risk, staged: tuple, config, account, rails) -> None:
        self.point_index, self.band, self.rule, self.risk = predictor.point_index, band, rule, risk
        low, high = band or (-1, -1)
        at = np.array([self.point_index, low, high, -1 if risk.index is None else risk.index], np.int64)
        stops, feed = config.rule, config.feed
        settings = np.array([rule.threshold, rule.allow_short, rule.quantile_gate, rule.min_holding_bars,
                             _nan_if_none(stops.stop_loss), _nan_if_none(stops.take_profit), feed.max_bar_delay_bars,
                             feed.gap_cooldown_bars, config.bar_type.spec.timedelta.value, _nan_if_none(config.limits.max_drawdown)],
                            np.float64)
        self.arrays = (at, settings, account.parts, rails.peak_equity, risk.median.ring, risk.median.state, risk.gate_state, *staged)
        self.call = entry_point(decide_bar, 0, 1.0, predictor.out, True, 0, 0, 0.0, 0, 0, False, *self.arrays)

    def in_words(self, outputs: list[float], side: int, bars_held: int) -> tuple[int, Reason]:
        """The rule and the gate in Python, with the reason: what the compiled call decides, or left to Python."""
        band = (outputs[self.band[0]], outputs[self.band[1]]) if self.band else None
        return self.risk.gate(*decide(self.rule, outputs[self.point_index], band, side, bars_held), side)


def _nan_if_none(limit: float | None) -> float:
    """A limit as the compiled code reads it (strategies.kernel): NaN for one not set."""
    return math.nan if limit is None else limit


def stop_triggered(side: int, entry_price: float, close: float, stop_loss: float | None, take_profit: float | None) -> str | None:
    """Why a bar's close hits the stop-loss or take-profit of the position, or None (strategies.kernel.stop_core)."""
    code, move = stop_core(side, entry_price, close, _nan_if_none(stop_loss), _nan_if_none(take_profit))
    if code == STOP_LOSS:
        return f"stop-loss: {move:+.4%} against the position"
    if code == TAKE_PROFIT:
        return f"take-profit: {move:+.4%} with the position"
    return None


def order_quantity(notional: float, price: float, step: float, min_quantity: float, min_notional: float) -> tuple[float, str | None]:
    """Quantity for a quote ``notional``, rounded DOWN to the size step; 0 and a reason if too small."""
    if price <= 0 or notional <= 0:
        return 0.0, "no notional to trade"
    steps = math.floor(notional / price / step + 1e-9)
    quantity = steps * step
    if quantity < min_quantity or quantity <= 0:
        return 0.0, f"{notional:.2f} of quote buys {quantity:g}, under the minimum quantity {min_quantity:g}"
    if quantity * price < min_notional:
        return 0.0, f"order notional {quantity * price:.2f} is under the venue minimum {min_notional:.2f}"
    return quantity, None


def instrument_order_quantity(instrument, notional: float, price: float) -> tuple[float, str | None]:
    """:func:`order_quantity` with a Nautilus instrument's size step and venue minimums."""
    return order_quantity(
        notional, price, float(instrument.size_increment),
        float(instrument.min_quantity or 0), float(instrument.min_notional or 0),
    )
