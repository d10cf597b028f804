"""The sweep config: each section checked with errors that name the field; parameters mapped onto
the training config, the strategy settings and the bar type."""

from pathlib import Path

import pytest
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from models.features import FeatureSpec
from sweeps.config import load_sweep_config, sweep_config_from_dict

BASE = {"data": {"catalog": "cat", "bar_type": "BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL"}}


def config(**sections):
    return sweep_config_from_dict({**BASE, **sections}, "s.toml")


@pytest.mark.parametrize("sections, message", [
    ({"sweeps": {}}, "unknown sections ['sweeps']"),
    ({"sweep": {"trails": 3}}, "[sweep]: unknown key(s) ['trails']"),
    ({"sweep": {"objective": "sortino"}}, "[sweep] objective must be one of ['ic', 'qlike', 'sharpe']"),
    ({"sweep": {"trials": 0}}, "[sweep] trials must be >= 1"),
    ({"sweep": {"trials": "3"}}, "[sweep]: trials must be int"),
    ({"walk_forward": {"locked_days": 0}}, "[walk_forward] locked_days must be > 0"),
    ({"space": {"hiden_size": [4]}}, "[space] hiden_size: not a searchable parameter"),
    ({"space": {"hidden_size": {"low": 8, "high": 4}}}, "[space] hidden_size: low must be below high"),
    ({"space": {"dropout": {"low": 0.1}}}, "[space] dropout: a range needs low and high"),
    ({"space": {"architecture": ["lstm", "gru"]}}, "[space] architecture = 'gru'"),
    ({"space": {"features": ["short"]}}, "[space] features: no [feature_sets.short] table"),
    ({"strategy": {"entry_margn": 0.001}}, "[strategy]: bad [strategy] settings: LSTMStrategyConfig has no ['entry_margn']"),
    ({"train": {"modle": {}}}, "[train]: unknown tables ['modle']"),
    ({"feature_sets": {"short": {"return_lag": [1]}}}, "[feature_sets.short]: "),
    ({"feature_sets": {"short": {"return_lags": [0]}}}, "[feature_sets.short]: return_lags must hold distinct positive"),
    ({"train": {"model": {"hidden_size": "big"}}}, "[train] [model]: hidden_size must be int"),
])
def test_a_bad_config_is_refused_naming_the_section_and_field(sections, message):
    with pytest.raises(ValueError) as error:
        config(**sections)
    assert message in str(error.value)
    assert str(error.value).startswith("s.toml")


def test_ranges_and_choices_become_optuna_distributions():
    space = config(space={"hidden_size": {"low": 4, "high": 64, "log": True}, "dropout": {"low": 0.0, "high": 0.5},
                          "architecture": ["lstm", "alstm", "cnn_lstm"]}).space
    assert space["hidden_size"] == IntDistribution(4, 64, log=True)
    assert space["dropout"] == FloatDistribution(0.0, 0.5)
    assert space["architecture"] == CategoricalDistribution(["lstm", "alstm", "cnn_lstm"])


def test_a_trials_parameters_land_in_the_training_config_the_rule_and_the_bar_type():
    hourly = "ETHUSDT.BINANCE-1-HOUR-LAST-EXTERNAL"
    sweep = config(
        train={"model": {"hidden_size": 16}, "training": {"max_epochs": 2}},
        strategy={"order_notional": 500.0},
        feature_sets={"short": {"return_lags": [1, 5]}, "default": {}},
        space={"architecture": ["alstm"], "hidden_size": [8], "learning_rate": [0.01], "sequence_length": [96],
               "horizon": [30], "features": ["short", "default"], "bar_type": [hourly], "entry_margin": [0.001],
               "target_volatility": ["off", 0.5], "volatility_gate": ["off"], "min_holding_bars": [10]},
    )
    train, strategy, bar_types = sweep.trial_config({
        "architecture": "alstm", "hidden_size": 8, "learning_rate": 0.01, "sequence_length": 96, "horizon": 30,
        "features": "short", "bar_type": hourly, "entry_margin": 0.001, "target_volatility": "off",
        "volatility_gate": "off", "min_holding_bars": 10,
    })
    assert (train.model.architecture, train.model.hidden_size) == ("alstm", 8)
    assert (train.training.learning_rate, train.training.sequence_length, train.training.horizon) == (0.01, 96, 30)
    assert train.training.max_epochs == 2  # the base config's, kept
    assert train.features == FeatureSpec(return_lags=(1, 5)).to_dict()  # the rest at their defaults, versioned
    assert train.data.bar_types == (hourly,) and bar_types == (hourly,) and train.data.catalog == "cat"
    assert strategy == {"order_notional": 500.0, "entry_margin": 0.001, "target_volatility": None,
                        "volatility_gate": None, "min_holding_bars": 10}


def test_several_data_bar_types_make_every_trial_pooled_and_refuse_a_searched_bar_type():
    pair = ["BTCUSDT.BINANCE-1-HOUR-LAST-EXTERNAL", "ETHUSDT.BINANCE-1-HOUR-LAST-EXTERNAL"]
    sweep = sweep_config_from_dict({"data": {"catalog": "cat", "bar_types": pair}, "space": {"hidden_size": [8]}}, "s.toml")
    train, _, bar_types = sweep.trial_config({"hidden_size": 8})
    assert bar_types == tuple(pair) and train.data.bar_types == tuple(pair)
    with pytest.raises(ValueError, match=r"s.toml: \[space\] bar_type chooses one instrument"):
        sweep_config_from_dict({"data": {"catalog": "cat", "bar_types": pair}, "space": {"bar_type": [pair[0]]}}, "s.toml")

def test_storage_defaults_to_a_sqlite_file_in_the_sweep_folder(tmp_path):
    assert config().storage_url(tmp_path) == f"sqlite:///{tmp_path.resolve()}/study.db"
    assert config(sweep={"storage": "postgresql://h/db"}).storage_url(tmp_path) == "postgresql://h/db"


@pytest.mark.parametrize("name", ["example.toml", "btc_1m.toml", "btc_eth_1h.toml"])
def test_the_shipped_sweeps_load_and_never_enter_below_costs(name):
    shipped = load_sweep_config(Path(__file__).resolve().parents[2] / "sweeps" / name)
    assert shipped.sweep.objective == "sharpe" and shipped.space
    assert shipped.space["entry_margin"].low >= 0.0  # a margin over the round-trip fee, never under it
    assert "entry_threshold" not in shipped.strategy
