"""LSTMStrategy's configuration: a short config whose related settings come in groups.

Nautilus builds the strategy from ``STRATEGY_PATH`` and ``CONFIG_PATH`` (``ImportableStrategyConfig``,
as ``BacktestNode`` and ``TradingNode`` do). Users write the settings flat (a node file's
``[strategy]`` section, a backtest's strategy overrides): :func:`strategy_settings` puts each
field into its group by the group's own field names.
"""

from __future__ import annotations

import json

import msgspec
from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.data import BarType
from nautilus_trader.model.identifiers import InstrumentId

from marketdata.timeframes import NANOS_PER_SECOND
from strategies.catchup import FeedConfig
from strategies.decision import RuleConfig, SizingConfig
from strategies.safety import SafetyLimits
from strategies.volatility import VolatilityGateConfig

STRATEGY_PATH = "strategies.lstm_strategy:LSTMStrategy"
CONFIG_PATH = "strategies.lstm_strategy:LSTMStrategyConfig"
FORECASTERS = ("lstm", "ridge", "lightgbm")  # the LSTM, then the benchmarks stored in its artifact


class LSTMStrategyConfig(StrategyConfig, frozen=True):
    """Configuration for ``LSTMStrategy``.

    Parameters
    ----------
    instrument_id : InstrumentId
        The instrument to trade, e.g. ``BTCUSDT.BINANCE`` or ``BTCUSDT-PERP.BINANCE``.
    bar_type : BarType
        The bars to forecast from; must be the bar type the model was trained on.
    model_path : str
        The model artifact directory written by ``nautilus-lstm train``.
    forecaster : str, default "lstm"
        "lstm", or "ridge" or "lightgbm" for the ridge or LightGBM baseline stored in the same
        artifact (fitted on the same rows and features, traded under the same rule: the benchmarks
        that isolate what the LSTM adds).
    rule : RuleConfig
        The trading rule: entry threshold (default: round-trip taker fee + margin), shorts,
        quantile gate, minimum holding, stop-loss and take-profit (``strategies.decision``).
    sizing : SizingConfig
        Position sizes: a fixed notional (1,000 by default) or a fraction of equity, capped; optionally
        scaled to a target volatility by the model's volatility forecast (``strategies.volatility``).
    volatility : VolatilityGateConfig
        The risk gate: no new exposure while the forecast volatility exceeds a multiple (2 by default)
        of its trailing median (``strategies.volatility``); only with a model that forecasts volatility.
    limits : SafetyLimits
        The safety rails (``strategies.safety``): the drawdown kill switch (25% by default), and
        the live node's order, position, rate and daily-loss limits and kill file (off by default).
    feed : FeedConfig
        Warm-up, gaps, stale bars, back-fill and the stale-feed timer (``strategies.catchup``).
    log_decisions : bool, default False
        Log every bar's decision on one line (paper and live runs), not only changes.
    predictions_path : str, optional
        Append every decision (close time, close, outputs, side, reason) to this CSV file.
    close_positions_on_stop : bool, default True
        Flatten the position when the strategy stops.
    inference_threads : int, default 1
        Torch threads for inference; one avoids oversubscribing the cores the engine and the feed need.
    measure_latency : bool, default False
        Record each live bar's wall time (features, LSTM step, decision) in ``latencies_ns``.
    """

    instrument_id: InstrumentId
    bar_type: BarType
    model_path: str
    forecaster: str = "lstm"
    rule: RuleConfig = msgspec.field(default_factory=RuleConfig)
    sizing: SizingConfig = msgspec.field(default_factory=SizingConfig)
    volatility: VolatilityGateConfig = msgspec.field(default_factory=VolatilityGateConfig)
    limits: SafetyLimits = msgspec.field(default_factory=SafetyLimits)
    feed: FeedConfig = msgspec.field(default_factory=FeedConfig)
    log_decisions: bool = False
    predictions_path: str | None = None
    close_positions_on_stop: bool = True
    inference_threads: int = 1
    measure_latency: bool = False

    def __post_init__(self) -> None:
        if self.forecaster not in FORECASTERS:
            raise ValueError(f"forecaster must be one of {FORECASTERS}, not {self.forecaster!r}")
        if self.bar_type.instrument_id != self.instrument_id:
            raise ValueError(f"bar type {self.bar_type} is not for instrument {self.instrument_id}")
        if self.bar_type.spec.timedelta.value % NANOS_PER_SECOND:
            raise ValueError(f"{self.bar_type}: bars must last whole seconds")


GROUPS = {"rule": RuleConfig, "sizing": SizingConfig, "volatility": VolatilityGateConfig, "limits": SafetyLimits, "feed": FeedConfig}
_GROUP_OF = {f.name: group for group, struct in GROUPS.items() for f in msgspec.structs.fields(struct)}
_TOP_LEVEL = {f.name for f in msgspec.structs.fields(LSTMStrategyConfig)}


def strategy_settings(*layers: dict) -> dict:
    """LSTMStrategyConfig's fields from flat settings, later layers over earlier ones: each group
    field (``entry_threshold``, ``order_notional``, ``max_drawdown``, ...) goes into its group.
    Checked as the config parses them; an unknown name is a ValueError naming it."""
    unknown = sorted({name for layer in layers for name in layer if name not in _GROUP_OF and name not in _TOP_LEVEL})
    if unknown:
        raise ValueError(f"bad [strategy] settings: LSTMStrategyConfig has no {unknown}")
    nested: dict = {}
    for layer in layers:
        for name, value in layer.items():
            if name in _GROUP_OF:
                nested.setdefault(_GROUP_OF[name], {})[name] = value
            elif name in GROUPS and isinstance(value, dict):
                nested.setdefault(name, {}).update(value)
            else:
                nested[name] = value
    return nested


def parse_strategy_config(settings: dict) -> LSTMStrategyConfig:
    """The config of :func:`strategy_settings`' output, or a ValueError saying what is wrong."""
    try:
        return LSTMStrategyConfig.parse(json.dumps(settings))
    except msgspec.MsgspecError as exc:
        raise ValueError(f"bad [strategy] settings: {exc}") from None
