"""The rows `evaluate` scores: every instrument of an artifact, its own walk-forward folds, end to end.

Each instrument's folds are cut from its own rows with the same parameters (models.splits). A
pooled model's instruments cover a common time span, so fold k covers nearly the same times for
all of them (their bar counts may differ by a few missing bars; an instrument whose history
starts later has its folds over a shorter span). For scoring, the instruments' rows are laid end
to end in ``[data] bar_types`` order: a forecast per row of each, one set of metrics over all.
A single instrument is the one-element case.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from models.config import TrainConfig
from models.dataset import Dataset
from models.features import FeatureSpec
from models.splits import Split, min_gap, walk_forward
from models.train import load_datasets


@dataclass(frozen=True)
class EvaluationData:
    bar_types: list[str]
    bars: list[pd.DataFrame]
    datasets: list[Dataset]
    splits: list[list[Split]]  # per instrument, per fold

    @classmethod
    def load(cls, config: TrainConfig, spec: FeatureSpec) -> EvaluationData:
        bars, datasets = load_datasets(config, spec)
        gap = min_gap(config.training.horizon, config.model.burn_in)
        splits = [walk_forward(len(data), config.evaluation.folds, config.evaluation.first_test_fraction,
                               config.training.val_fraction, gap) for data in datasets]
        return cls(list(config.data.bar_types), bars, datasets, splits)

    @cached_property
    def own_rows(self) -> list[list[np.ndarray]]:
        """Per instrument, per fold: its test rows, as rows of the end-to-end series."""
        offsets = np.cumsum([0] + [len(data) for data in self.datasets])
        return [[offset + np.arange(s.test.start, s.test.stop) for s in splits] for offset, splits in zip(offsets, self.splits)]

    @cached_property
    def fold_rows(self) -> list[np.ndarray]:
        """Per fold: every instrument's test rows."""
        return [np.concatenate(folds) for folds in zip(*self.own_rows)]

    @cached_property
    def test_rows(self) -> np.ndarray:
        """Every test row, instrument by instrument, in time order within each."""
        return np.concatenate([np.concatenate(folds) for folds in self.own_rows])

    def series(self, column: str) -> np.ndarray:
        """A per-row array of the datasets (``target``, ``volatility``), end to end."""
        return np.concatenate([getattr(data, column) for data in self.datasets])

    def folds_report(self) -> list[dict]:
        """Each fold's rows and test closes; a pooled model's per instrument, beside the span of all."""
        report = []
        for k in range(len(self.splits[0])):
            own = {
                bar_type: {"fit": [s.fit.start, s.fit.stop], "val": [s.val.start, s.val.stop], "test": [s.test.start, s.test.stop],
                           "test_first_close": data.index[s.test.start].isoformat(),
                           "test_last_close": data.index[s.test.stop - 1].isoformat()}
                for bar_type, data, s in zip(self.bar_types, self.datasets, (splits[k] for splits in self.splits))
            }
            report.append({"fold": k, **own[self.bar_types[0]]} if len(own) == 1 else {
                "fold": k, "test_first_close": min(e["test_first_close"] for e in own.values()),
                "test_last_close": max(e["test_last_close"] for e in own.values()), "instruments": own,
            })
        return report
