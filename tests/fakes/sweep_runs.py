"""A tiny sweep for tests: three half-day walk-forward windows and a half-day locked segment of the
7-day fixture's first three days, a model that trains in a second or two per window."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd

from tests.fakes.training import BAR_TYPE

TINY_SWEEP = """
[sweep]
trials = {trials}
objective = "{objective}"
seed = 0
heartbeat_s = 1  # a killed driver's trials are orphaned 3 s after its last beat
{storage}
[data]
catalog = "{catalog}"
{bar_types}
end = "2025-05-23T00:00"

[walk_forward]
train_days = 1.0
test_days = 0.5
locked_days = 0.5

[train.model]
hidden_size = 8
num_layers = 1
dropout = 0.0
burn_in = 16

[train.training]
horizon = 5
sequence_length = 128
max_epochs = 1
device = "cpu"

[space]
hidden_size = [4, 8]
learning_rate = {{ low = 1e-4, high = 1e-2, log = true }}
"""


def write_tiny_sweep(folder: Path, catalog: Path, trials: int = 3, objective: str = "ic",
                     bar_types: tuple[str, ...] = (BAR_TYPE,), storage: str = "") -> Path:
    """The tiny sweep's TOML in ``folder``; several ``bar_types``: a pooled sweep of them; ``storage``:
    the study's URL (default: a SQLite file in the sweep folder)."""
    path = Path(folder) / "sweep.toml"
    data = f'bar_type = "{bar_types[0]}"' if len(bar_types) == 1 else f"bar_types = {json.dumps(list(bar_types))}"
    path.write_text(TINY_SWEEP.format(trials=trials, objective=objective, catalog=catalog, bar_types=data,
                                      storage=f'storage = "{storage}"' if storage else ""))
    return path


def stored_trials(study_db: Path) -> dict[int, tuple[str, str | None]]:
    """Each stored trial's number: (state, completion time), read straight from the SQLite file."""
    with sqlite3.connect(study_db) as db:
        rows = db.execute("SELECT number, state, datetime_complete FROM trials").fetchall()
    return {number: (state, complete) for number, state, complete in rows}


def assert_locked_segment_unseen(report: dict) -> dict:
    """No trial's window or daily return reaches the locked segment, and the winner's locked run starts
    there, trained before it; returns that run's window."""
    locked_start = pd.Timestamp(report["range"]["locked_start"])
    for trial in report["trials"]:
        for window in trial["windows"]:
            assert pd.Timestamp(window["test_end"]) <= locked_start and pd.Timestamp(window["train_end"]) < locked_start
        assert all(pd.Timestamp(day, tz="UTC") < locked_start for day in trial["daily_returns"])
    locked = report["locked_segment"]["window"]
    assert pd.Timestamp(locked["test_start"]) == locked_start
    assert pd.Timestamp(locked["train_end"]) < locked_start and locked["bars"] > 0
    return locked
