"""JSON for reports: an undefined number (NaN, ±inf) is written as null, never as bare NaN,
which strict JSON readers (jq, JavaScript, most databases) refuse; a Decimal as its text."""

from __future__ import annotations

import json
import math
from decimal import Decimal

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
