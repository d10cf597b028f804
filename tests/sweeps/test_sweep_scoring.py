"""A trial's objectives on hand-made forecasts, and the report's statistics wiring (PBO splits,
deflation over the complete trials) on hand-made trials."""

import numpy as np
import pandas as pd
import pytest

from models.volatility import log_realized_vol
from sweeps.report import daily_matrix, deflation, overfitting
from sweeps.statistics import deflated_sharpe_ratio, sharpe_ratios
from sweeps.trial import forecast_ic, forecast_qlike

HORIZON = 3
BAR, OTHER = "BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL", "ETHUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL"


@pytest.fixture
def close():
    rng = np.random.default_rng(0)
    index = pd.date_range("2025-01-01", periods=200, freq="1min", tz="UTC")
    return pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 1e-3, 200))), index=index)


def test_ic_of_the_realized_return_itself_is_one_and_the_unknown_tail_is_left_out(close):
    realized = np.log(close.shift(-HORIZON) / close)
    frame = pd.DataFrame({"prediction": realized.fillna(123.0)}, index=close.index)  # the tail's value is junk
    assert forecast_ic(frame, {BAR: close}, HORIZON) == pytest.approx(1.0)
    assert forecast_ic(frame.assign(prediction=-frame["prediction"]), {BAR: close}, HORIZON) == pytest.approx(-1.0)


def test_qlike_of_the_realized_volatility_itself_is_zero_and_positive_otherwise(close):
    realized = np.exp(log_realized_vol(close.to_numpy(), HORIZON))
    frame = pd.DataFrame({"volatility": realized}, index=close.index)
    assert forecast_qlike(frame, {BAR: close}, HORIZON) == pytest.approx(0.0, abs=1e-12)
    assert forecast_qlike(frame * 2, {BAR: close}, HORIZON) > 0
    with pytest.raises(ValueError, match="volatility head"):
        forecast_qlike(frame.rename(columns={"volatility": "prediction"}), {BAR: close}, HORIZON)


def test_pooled_ic_scores_each_instruments_rows_against_its_own_closes(close):
    other = close.iloc[::-1].set_axis(close.index) * 30  # another path on the same bar closes
    frames = []
    for bar_type, each in ((BAR, close), (OTHER, other)):
        realized = np.log(each.shift(-HORIZON) / each)
        frames.append(pd.DataFrame({"prediction": realized, "bar_type": bar_type}, index=each.index))
    pooled = pd.concat(frames)
    assert forecast_ic(pooled, {BAR: close, OTHER: other}, HORIZON) == pytest.approx(1.0)
    swapped = pooled.assign(bar_type=pooled["bar_type"].map({BAR: OTHER, OTHER: BAR}))  # each row against the wrong closes
    assert forecast_ic(swapped, {BAR: close, OTHER: other}, HORIZON) < 0.5
    realized_vol = {b: np.exp(log_realized_vol(c.to_numpy(), HORIZON)) for b, c in ((BAR, close), (OTHER, other))}
    vol = pd.concat([pd.DataFrame({"volatility": v, "bar_type": b}, index=close.index) for b, v in realized_vol.items()])
    assert forecast_qlike(vol, {BAR: close, OTHER: other}, HORIZON) == pytest.approx(0.0, abs=1e-12)

def trials(days: int, count: int = 3):
    rng = np.random.default_rng(1)
    dates = [d.date().isoformat() for d in pd.date_range("2025-01-01", periods=days)]
    return [{"number": n, "daily_returns": dict(zip(dates, rng.normal(0.001 * n, 0.01, days)))} for n in range(count)]


@pytest.mark.parametrize("days, splits", [(40, 16), (10, 4), (5, 2)])
def test_pbo_splits_fit_the_days(days, splits):
    result = overfitting(trials(days))
    assert result["splits"] == splits and result["days"] == days and 0 <= result["pbo"] <= 1


def test_pbo_needs_two_groups_of_two_days():
    assert "at least 4" in overfitting(trials(3))["error"]


def test_pbo_uses_the_days_every_trial_has():
    some = trials(10)
    del some[1]["daily_returns"][next(iter(some[1]["daily_returns"]))]
    assert len(daily_matrix(some)) == 9


def test_deflation_is_of_the_winners_daily_returns_against_every_trials_daily_sharpe():
    complete = trials(30, count=4)
    best = complete[3]
    expected = deflated_sharpe_ratio(np.array(list(best["daily_returns"].values())),
                                     sharpe_ratios(np.array([list(t["daily_returns"].values()) for t in complete]).T))
    assert deflation(best, complete) == expected
    flat = {"number": 9, "daily_returns": {"2025-01-01": 0.0, "2025-01-02": 0.0}}
    assert "error" in deflation(flat, [flat, *complete])
