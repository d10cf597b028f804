"""The report's count of decisions by kind of reason (reporting.forecasts.reason_counts)."""

import pandas as pd
import pytest

from reporting.forecasts import REASON_KINDS, reason_counts

REASONS = [
    "forecast +0.000123 inside ±0.002502",
    "forecast +0.000101 inside ±0.002502",
    "forecast +0.003100 > 0.002502",
    "forecast -0.003100 < -0.002502",
    "forecast -0.003100 < -0.002502 but this venue cannot short",
    "forecast +0.003100 > 0.002502; held 3 of 15 minimum bars",
    "forecast +0.003100 > 0.002502; volatility gate: forecast 0.010000 > 2 × trailing median 0.004000: no new exposure",
    "quantile band [-0.001000, +0.004000] does not clear 0.002502",
    "an order is still in flight: no new decision",
    "stop-loss: -2.1000% against the position",
    "take-profit: +3.0000% with the position",
    "halted by the drawdown kill switch",
    "forecast is not finite: no trade",
    "stale bar (3.0 intervals old): no trade",
    "5 bars since a gap: no trade",
    "5 bars since a gap: no trade",
]


def kind_of(reason: str) -> str:
    """The definition, one reason at a time: the first listed text it holds, else its words before a colon."""
    return next((kind for text, kind in REASON_KINDS if text in reason), reason.split(":")[0])


@pytest.mark.parametrize("dtype", [pd.StringDtype("pyarrow"), object])
def test_reasons_are_counted_by_the_first_kind_they_hold(dtype):
    reasons = pd.Series(REASONS * 3, dtype=dtype)
    expected = pd.Series([kind_of(reason) for reason in reasons]).value_counts()
    counts = reason_counts(reasons)
    assert counts.to_dict() == expected.to_dict()
    assert counts.is_monotonic_increasing and counts.sum() == len(reasons)
    assert counts["blocked by the volatility gate"] == 3  # a composed reason goes to its first match, not to "long signal"
    assert counts["5 bars since a gap"] == 6


def test_no_reasons_count_nothing():
    assert reason_counts(pd.Series([], dtype=pd.StringDtype("pyarrow"))).empty
