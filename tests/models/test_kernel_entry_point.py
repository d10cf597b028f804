"""The per-bar kernels are called through their compiled entry point, past numba's dispatcher."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from models.kernels import entry_point


@njit
def _scaled_sum(scale, values, out):
    out[0] = scale * values.sum()
    return out[0] > 0


def test_the_entry_point_computes_what_the_dispatcher_does():
    values, out = np.arange(5.0), np.zeros(1)
    call = entry_point(_scaled_sum, 2.0, values, out)
    assert call(2.0, values, out) is True and out[0] == 20.0
    assert call(-1.0, values, out) is False and out[0] == -10.0
    assert _scaled_sum(-1.0, values, np.zeros(1)) is False


def test_the_entry_point_refuses_an_array_of_another_dtype():
    call = entry_point(_scaled_sum, 1.0, np.arange(5.0), np.zeros(1))
    with pytest.raises(TypeError):
        call(1.0, np.arange(5, dtype=np.float32), np.zeros(1))
