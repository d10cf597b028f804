"""The training config: defaults, typos and overrides."""

import pytest

from models.config import DEFAULT_CONFIG, TrainConfig, load_config
from tests.conftest import PROJECT_ROOT


def test_shipped_default_matches_the_dataclass_defaults():
    assert load_config() == TrainConfig()
    assert load_config(DEFAULT_CONFIG).training.horizon == 15


def test_round_trip_through_dict():
    config = load_config()
    assert TrainConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("text, message", [
    ("[trainng]\nseed = 1\n", r"unknown section\(s\) \['trainng'\]"),
    ("[training]\nsed = 1\n", r"\[training\]: unknown key\(s\) \['sed'\]"),
    ("[training]\nhorizon = 'five'\n", r"horizon must be int, not 'five'"),
    ("[model]\nquantiles = [0.9, 0.1]\n", "quantiles must be increasing"),
    ("[training]\nhorizon = 0\n", "horizon must be >= 1"),
    ("[model\n", "not valid TOML"),
])
def test_bad_configs_name_file_and_field(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as error:
        load_config(path)
    assert str(path) in str(error.value)


def test_overrides_ignore_none_and_validate():
    config = load_config().override(training={"seed": 7, "max_epochs": None}, data={"start": "2025-06-01"})
    assert config.training.seed == 7 and config.training.max_epochs == TrainConfig().training.max_epochs and config.data.start == "2025-06-01"
    with pytest.raises(ValueError, match="max_epochs must be >= 1"):
        load_config().override(training={"max_epochs": 0})


def test_the_readmes_pooled_hourly_config_loads():
    config = load_config(PROJECT_ROOT / "models" / "btc_eth_1h.toml")
    assert config.data.bar_types == ("BTCUSDT.BINANCE-1-HOUR-LAST-EXTERNAL", "ETHUSDT.BINANCE-1-HOUR-LAST-EXTERNAL")
    assert config.training.horizon == 24 and config.model.volatility_head
