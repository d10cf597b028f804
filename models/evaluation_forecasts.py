"""forecasts.parquet: every model's out-of-sample forecast per test row of an evaluation, beside what came true.

One row per scored test row (index ``close_time``, UTC, the bar the forecast is made at):

- ``bar_type``: the instrument's bar type; ``fold``: the walk-forward fold (0-based) whose test block holds the row;
- ``realized_return``: the h-bar log return that followed (the return target; NaN where the data ends first);
- ``realized_log_volatility``: the h-bar log realized volatility that followed (the volatility target);
- ``return_MODEL``: each return model's forecast of ``realized_return`` (the LSTM's of its first seed);
- ``log_volatility_MODEL``: each volatility model's forecast of ``realized_log_volatility``.

Forecasts are stored as float32: the report draws them, the metrics in metrics.json come from the full precision.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from models.evaluation_data import EvaluationData

FORECASTS_FILE = "forecasts.parquet"


def write_forecasts(out: Path, evaluation: EvaluationData, returns: dict[str, list[np.ndarray]],
                    volatility: dict[str, list[np.ndarray]]) -> pd.DataFrame:
    """Write ``out/forecasts.parquet`` (module docstring) from per-model forecasts over every row, first seed each."""
    rows = evaluation.test_rows
    first, *rest = evaluation.datasets
    index = first.index.append([data.index for data in rest])
    bar_type = np.concatenate([np.full(len(data), name, dtype=object) for name, data in zip(evaluation.bar_types, evaluation.datasets)])
    fold = np.full(len(index), -1)
    for number, fold_rows in enumerate(evaluation.fold_rows):
        fold[fold_rows] = number
    columns = {
        "bar_type": bar_type[rows],
        "fold": fold[rows],
        "realized_return": evaluation.series("target")[rows],
        "realized_log_volatility": evaluation.series("volatility")[rows],
        **{f"return_{name}": forecasts[0][rows].astype(np.float32) for name, forecasts in returns.items()},
        **{f"log_volatility_{name}": forecasts[0][rows].astype(np.float32) for name, forecasts in volatility.items()},
    }
    frame = pd.DataFrame(columns, index=index[rows].rename("close_time"))
    frame.to_parquet(Path(out) / FORECASTS_FILE)
    return frame
