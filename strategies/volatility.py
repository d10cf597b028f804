"""What the strategy does with the network's volatility forecast: size by it, and stay out when it spikes.

The forecast (output ``volatility``, see ``models.predictor.output_columns``) is the std of the
h-bar log return, h being the model's horizon. Traders think in annualized volatility, so both
settings below are read against ``sigma_annual = sigma_h * sqrt(bars_per_year / h)``, a year
being 365 days of bars (crypto trades every day): e.g. 1-minute bars, h = 15, sigma_h = 0.002
reads 0.002 * sqrt(525,600 / 15) = 37% a year.

- **Sizing** (``SizingConfig.target_volatility``): a new position's notional is the base notional
  (fixed or a fraction of equity) × target / forecast, capped by ``max_notional`` (and then
  reviewed by the rails like any order).
- **The gate** (:class:`VolatilityGateConfig`): no new exposure (opening, or the new side of a
  reversal) while the forecast exceeds ``volatility_gate`` × the median of the forecasts of the
  ``volatility_gate_window`` bars before it. Closing is never blocked: a reversal only closes.
  The median (:class:`TrailingMedian`) is fed every forecast from the warm-up on and recomputed
  every window / 24 bars (hourly for a day of minutes); the gate acts once the window is full.
"""

from __future__ import annotations

import math

import msgspec
import numpy as np

from strategies.decision import FLAT, Reason
from strategies.kernel import COUNT, OVER_MEDIAN, OVER_SIGMA, SHUT, SIGMA, gate_update, median_then_push

YEAR_NS = 365 * 24 * 3600 * 1_000_000_000
GATE_REASON = "volatility gate"  # what each reason the gate gives starts with (the report counts and marks them by it)
# The target of the backtests' volatility-targeted buy-and-hold when the strategy sets none: 50% a
# year, about bitcoin's long-run annualized volatility, so its position averages near the base notional.
DEFAULT_TARGET_VOLATILITY = 0.5


class VolatilityGateConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The volatility risk gate (LSTMStrategyConfig's ``volatility``); acts only with a model that forecasts volatility.

    volatility_gate: no new exposure while the forecast volatility exceeds this multiple of its
        trailing median (None: no gate). 2 lets ordinary clustering through and stops the spikes.
    volatility_gate_window: the trailing median's window, in bars (1440: a day of 1-minute bars,
        two months of hourly ones). The gate acts once this many forecasts were seen.
    """

    volatility_gate: float | None = 2.0
    volatility_gate_window: int = 1440

    def __post_init__(self) -> None:
        if self.volatility_gate is not None and not self.volatility_gate > 0:
            raise ValueError(f"volatility_gate must be a positive multiple, not {self.volatility_gate}")
        if not self.volatility_gate_window >= 1:
            raise ValueError(f"volatility_gate_window must be at least 1 bar, not {self.volatility_gate_window}")


def annualizer(interval_ns: int, horizon: int) -> float:
    """The factor from the std of an h-bar log return to annualized volatility: sqrt(bars a year / h)."""
    return math.sqrt(YEAR_NS / interval_ns / horizon)


class TrailingMedian:
    """The median of the last ``window`` values, recomputed every ``refresh`` values.

    Per value it only writes the ring; every ``refresh`` values it takes the median of the window
    (about 8 µs for a day of minutes). A sorted ring kept exact on every bar, measured inside the
    strategy on the 3-month 1m file, cost 3-5 µs a bar; a median of 1,440 forecasts moves little in
    60 more. Nothing after a value enters its median. The step is compiled
    (``strategies.kernel.median_then_push``), for the strategy's per-bar call; ``ring`` and
    ``state`` (COUNT, MEDIAN, REFRESH) are its arrays.
    """

    def __init__(self, window: int, refresh: int = 1) -> None:
        self.ring = np.zeros(window)
        self.state = np.array([0.0, math.nan, refresh])

    @property
    def window(self) -> int:
        return self.ring.size

    def median_then_push(self, value: float) -> float:
        """The median of the ``window`` values before this one as of its last refresh (NaN until
        there are that many), then ``value`` among them."""
        return float(median_then_push(value, self.ring, self.state))

    def values(self) -> list[float]:
        """The values held, oldest first."""
        count, window = int(self.state[COUNT]), self.ring.size
        held = min(count, window)
        return np.roll(self.ring, -(count % window))[-held:].tolist() if held else []


class VolatilityRisk:
    """The strategy's use of the forecast volatility: the latest forecast, annualized for sizing,
    and whether the gate is shut. Without a volatility forecast (``index`` None) it does nothing.

    Its state is arrays (``median``'s, and ``gate_state``: strategies.kernel's SIGMA ... MULTIPLE), which
    the strategy's compiled per-bar call updates in place (strategies.kernel.decide_bar) as
    :meth:`update` does.
    """

    def __init__(self, gate: VolatilityGateConfig, index: int | None, interval_ns: int, horizon: int) -> None:
        self.index = index
        self._annualizer = annualizer(interval_ns, horizon)
        self._multiple = gate.volatility_gate
        window = gate.volatility_gate_window
        gated = index is not None and self._multiple is not None
        self.median = TrailingMedian(window if gated else 0, refresh=max(1, window // 24))
        self.gate_state = np.array([math.nan, 0.0, math.nan, math.nan, self._multiple or 0.0])

    @classmethod
    def of(cls, config, volatility_index: int | None, interval_ns: int, horizon: int) -> VolatilityRisk:
        """The risk of an ``LSTMStrategyConfig`` whose forecaster outputs the volatility at
        ``volatility_index`` (None: none); a ValueError if ``target_volatility`` is set without one."""
        if config.sizing.target_volatility is not None and volatility_index is None:
            raise ValueError(f"target_volatility needs a volatility forecast, and {config.model_path} ({config.forecaster}) "
                             "has none: use a model trained with volatility_head = true and forecaster lstm, or no target_volatility")
        return cls(config.volatility, volatility_index, interval_ns, horizon)

    def update(self, outputs: list[float]) -> None:
        """Take a bar's outputs: the forecast against the median of those before it, then into the window."""
        if self.index is not None:
            gate_update(outputs[self.index], self.median.ring, self.median.state, self.gate_state)

    @property
    def annual(self) -> float | None:
        """The latest forecast, annualized (None: none yet, or no volatility forecast)."""
        sigma = self.gate_state[SIGMA]
        return None if self.index is None or math.isnan(sigma) else float(sigma * self._annualizer)

    @property
    def shut(self) -> str | None:
        """Why the gate is shut now (None: open); in words only when asked, off the per-bar path."""
        if not self.gate_state[SHUT]:
            return None
        sigma, median = self.gate_state[OVER_SIGMA], self.gate_state[OVER_MEDIAN]
        if math.isnan(sigma):
            return f"{GATE_REASON}: the forecast is not finite"
        return f"{GATE_REASON}: forecast {sigma:.6f} > {self._multiple:g} × trailing median {median:.6f}"

    def gate(self, target: int, reason: Reason, side: int) -> tuple[int, Reason]:
        """The decided ``target`` with no new exposure while the gate is shut: a reversal only closes."""
        if self.gate_state[SHUT] and target not in (FLAT, side):
            return FLAT, ("{}; {}: no new exposure", reason, self.shut)
        return target, reason

    def state(self) -> list[float] | None:
        return self.median.values() if self.median.window else None

    def restore(self, values: list[float] | None) -> None:
        """Refill the window from :meth:`state` (the gate knows its median after a restart)."""
        if self.median.window and values:
            for value in values[-self.median.window:]:
                self.median.median_then_push(float(value))
