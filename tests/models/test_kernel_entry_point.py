"""The per-bar kernels are called through their compiled entry point, past numba's dispatcher, on
arrays that start on a 64-byte boundary."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from models.kernels import ALIGNMENT, aligned, entry_point
from models.kernels.features import OnlineFeatures
from models.kernels.hybrids import streaming_network
from models.network import ARCHITECTURES, LSTMConfig, LSTMForecaster


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


def starts_on_a_boundary(array: np.ndarray) -> bool:
    return array.ctypes.data % ALIGNMENT == 0


@pytest.mark.parametrize("array", [np.arange(7, dtype=np.float32), np.arange(12.0).reshape(3, 4),
                                   np.arange(5, dtype=np.int64),
                                   np.arange(24.0).reshape(4, 6)[:, ::2]])  # the last not contiguous
def test_aligned_copies_an_array_onto_a_64_byte_boundary(array):
    copy = aligned(array)
    assert starts_on_a_boundary(copy) and copy.flags.c_contiguous and copy.flags.writeable
    assert copy.dtype == array.dtype and copy.shape == array.shape
    np.testing.assert_array_equal(copy, array)
    assert not np.shares_memory(copy, array)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_every_array_a_streaming_network_and_the_features_pass_their_kernel_starts_on_a_boundary(architecture):
    network = streaming_network(LSTMForecaster(LSTMConfig(n_features=12, architecture=architecture)).eval())
    arrays = [a for a in (*network._kernel_arrays, *OnlineFeatures()._kernel_arrays) if isinstance(a, np.ndarray)]
    assert len(arrays) >= 8
    assert all(starts_on_a_boundary(array) for array in arrays)
