"""Walk-forward splits with a purge-and-embargo gap.

Rows are bars in time order. Every fold trains on an expanding past and tests on the block after
it. Between any training rows and the rows evaluated after them lies a gap of at least
``horizon + burn_in`` bars: the purge keeps a training target (which looks ``horizon`` bars
ahead) from overlapping the evaluated block, and the embargo keeps the model's recurrent context
(``burn_in`` bars) at the start of the evaluated block clear of bars that were trained on.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Split:
    """Row ranges, half-open: fit on ``fit``, early-stop on ``val``, evaluate on ``test``."""

    fold: int
    fit: range
    val: range
    test: range


def min_gap(horizon: int, burn_in: int) -> int:
    return horizon + burn_in


def train_val_split(n_rows: int, val_fraction: float, gap: int) -> Split:
    """The final model's split: fit on the past, early-stop on the most recent ``val_fraction``."""
    val_rows = int(n_rows * val_fraction)
    fit_end = n_rows - val_rows - gap
    if val_rows <= 0 or fit_end <= 0:
        raise ValueError(
            f"{n_rows} rows are too few for a validation share of {val_fraction} and a gap of {gap} bars"
        )
    return Split(fold=0, fit=range(0, fit_end), val=range(n_rows - val_rows, n_rows), test=range(n_rows, n_rows))


def walk_forward(n_rows: int, folds: int, first_test_fraction: float, val_fraction: float, gap: int) -> list[Split]:
    """``folds`` consecutive test blocks covering the data after ``first_test_fraction`` of it.

    Fold k fits on everything up to its test block (minus the gaps and its own validation tail).
    """
    if folds < 1:
        raise ValueError("need at least one fold")
    first_test = int(n_rows * first_test_fraction)
    block = (n_rows - first_test) // folds
    if block <= 0:
        raise ValueError(f"{n_rows} rows are too few for {folds} test folds")
    splits = []
    for fold in range(folds):
        test_start = first_test + fold * block
        test_end = n_rows if fold == folds - 1 else test_start + block
        inner = train_val_split(test_start - gap, val_fraction, gap)
        splits.append(Split(fold=fold, fit=inner.fit, val=inner.val, test=range(test_start, test_end)))
    return splits
