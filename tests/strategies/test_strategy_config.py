"""LSTMStrategy's config: flat settings go into their groups, and what is wrong is named."""

import pytest

from strategies.catchup import FeedConfig
from strategies.config import LSTMStrategyConfig, parse_strategy_config, strategy_settings
from strategies.decision import RuleConfig, SizingConfig
from strategies.safety import SafetyLimits

BARS = {"instrument_id": "BTCUSDT.BINANCE", "bar_type": "BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL", "model_path": "m"}


def test_flat_settings_go_into_their_groups_later_layers_winning():
    settings = strategy_settings(
        BARS,
        {"entry_threshold": 0.003, "order_notional": 500.0, "max_drawdown": 0.1, "stale_feed_bars": 3.0, "log_decisions": True},
        {"order_notional": 250.0, "limits": {"kill_file": "KILL"}},
    )
    config = parse_strategy_config(settings)
    assert config.rule == RuleConfig(entry_threshold=0.003)
    assert config.sizing == SizingConfig(order_notional=250.0)
    assert config.limits == SafetyLimits(max_drawdown=0.1, kill_file="KILL")
    assert config.feed == FeedConfig(stale_feed_bars=3.0)
    assert config.log_decisions and config.forecaster == "lstm"


def test_defaults():
    config = LSTMStrategyConfig.parse(parse_strategy_config(BARS).json())
    assert (config.sizing.order_notional, config.sizing.max_notional, config.limits.max_drawdown) == (1_000.0, 100_000.0, 0.25)
    assert not config.limits.guards_orders
    # The default entry threshold: a round trip at a 0.1% taker fee costs -log(1 - 0.002), plus the 0.05% margin.
    assert config.rule.threshold(0.001) == pytest.approx(0.0025020027, abs=1e-10)
    assert RuleConfig(entry_threshold=0.01).threshold(0.001) == 0.01


@pytest.mark.parametrize("settings, message", [
    ({"order_notionl": 1.0, "max_dradown": 0.1}, r"LSTMStrategyConfig has no \['max_dradown', 'order_notionl'\]"),
    ({"order_notional": "lots"}, r"bad \[strategy\] settings: Expected `float`, got `str` - at `\$.sizing.order_notional`"),
    ({"forecaster": "arima"}, "forecaster must be one of"),
    ({"max_drawdown": 2.0}, "max_drawdown must be a fraction between 0 and 1"),
    ({"instrument_id": "ETHUSDT.BINANCE"}, "bar type BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL is not for instrument ETHUSDT.BINANCE"),
    ({"bar_type": "BTCUSDT.BINANCE-100-MILLISECOND-LAST-EXTERNAL"}, "bars must last whole seconds"),
])
def test_bad_settings_name_the_field(settings, message):
    with pytest.raises(ValueError, match=message):
        parse_strategy_config(strategy_settings(BARS, settings))
