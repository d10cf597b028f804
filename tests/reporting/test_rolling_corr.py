"""The report's rolling IC, made a chunk at a time, is pandas' rolling correlation of the whole series."""

import numpy as np
import pandas as pd
import pytest

from reporting.forecasts import rolling_corr


@pytest.mark.parametrize(("rows", "window", "chunk_rows"), [(1_000, 40, 97), (1_000, 40, 1_000), (500, 100, 30), (10, 8, 3), (0, 5, 4)])
def test_chunks_give_the_whole_series_rolling_correlation(rows, window, chunk_rows):
    rng = np.random.default_rng(rows + window)
    index = pd.date_range("2025-01-01", periods=rows, freq="min", tz="UTC")
    x = pd.Series(rng.standard_normal(rows), index=index)
    y = 0.3 * x + pd.Series(rng.standard_normal(rows), index=index)
    whole = x.rolling(window, min_periods=window // 2).corr(y)
    chunked = rolling_corr(x, y, window, chunk_rows)
    assert chunked.index.equals(whole.index)
    np.testing.assert_allclose(chunked.to_numpy(), whole.to_numpy(), rtol=0, atol=1e-12, equal_nan=True)
    assert whole.notna().sum() == max(0, rows - window // 2 + 1)  # NaN only before min_periods pairs
