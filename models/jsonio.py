"""JSON for reports: an undefined number (NaN, ±inf) is written as null, never as bare NaN,
which strict JSON readers (jq, JavaScript, most databases) refuse; a Decimal as its text.

And the one way the project writes a file that must never be seen half-written: into a staging
file beside it, then moved over it in one step (:func:`replacing`); and scratch files that go
when the object using them does (:func:`scratch_file`).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import numpy as np


def dumps(value) -> str:
    return json.dumps(_clean(value), indent=2, allow_nan=False)


def _clean(value):
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_clean(v) for v in value.tolist()]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A staging path beside ``path`` to write to; moved over ``path`` when the block ends without
    error, so a reader, or a crash (``kill -9``), sees the old file or the new one, never part of one."""
    path = Path(path)
    staging = path.with_name(f".{path.name}.partial")
    try:
        yield staging
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)


def write_json(path: Path, value) -> None:
    """``value`` as strict JSON (:func:`dumps`), written with :func:`replacing`."""
    with replacing(path) as staging:
        staging.write_text(dumps(value))


def scratch_file(owner: object, prefix: str, suffix: str = ".parquet") -> Path:
    """A new empty file in the temp folder, removed when ``owner`` is garbage-collected (or at exit)."""
    handle, name = tempfile.mkstemp(prefix=f"nautilus-lstm-{prefix}-", suffix=suffix)
    os.close(handle)
    weakref.finalize(owner, Path(name).unlink, missing_ok=True)
    return Path(name)
