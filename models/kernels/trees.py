"""The LightGBM benchmark's per-bar forecast as one compiled call: features, then the booster.

LightGBM's Python ``Booster.predict`` rebuilds its prediction setup on every call (~40-65 µs for
one row here). Its C library has a path for exactly one row at a time, which the Python package
does not wrap: ``LGBM_BoosterPredictForMatSingleRowFastInit`` parses the settings once into a
"fast config", and ``LGBM_BoosterPredictForMatSingleRowFast`` then only walks the trees. It is
bound here with ctypes from the library the lightgbm package loaded (the one its boosters live
in), its pointers passed as ``size_t`` addresses so that the compiled kernel calls it directly,
after the feature update, with no Python in between. Its output is the booster's own
``predict``, bit for bit (same trees, same float64 sums): tests/models/test_train.py.
"""

from __future__ import annotations

import ctypes
import weakref

import lightgbm
from lightgbm.basic import _LIB, _safe_call
from numba import njit

from models.kernels.features import update_features

_C_API_PREDICT_NORMAL = 0  # c_api.h: the raw prediction (the regression's value)
_C_API_DTYPE_FLOAT64 = 1

_LIB.LGBM_BoosterPredictForMatSingleRowFastInit.argtypes = [
    ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int32, ctypes.c_char_p,
    ctypes.POINTER(ctypes.c_void_p),
]
_LIB.LGBM_FastConfigFree.argtypes = [ctypes.c_void_p]
# (fast config, row data, out length, out values) as addresses, which numba passes as integers.
_predict_row = _LIB.LGBM_BoosterPredictForMatSingleRowFast
_predict_row.argtypes = [ctypes.c_size_t] * 4
_predict_row.restype = ctypes.c_int


# Not cached: the C function's address is fixed into the code and differs per process. It
# compiles once per process (about half a second), when the first OnlineLightGBM is built.
@njit(cache=False, error_model="numpy")
def predict_bar_lightgbm(close_time_ns, high, low, close, volume, index, coefficients, state, row, fast_config, out_length, out) -> int:
    """Advance the features by one bar; once they are defined, write the booster's forecast of
    the bar's row into ``out``. Returns -1 during the features' warm-up, else the C call's status
    (0: done; else LightGBM's last error says why)."""
    if not update_features(index, coefficients, state, row, close_time_ns, high, low, close, volume):
        return -1
    return _predict_row(fast_config, row.ctypes.data, out_length.ctypes.data, out.ctypes.data)


class SingleRowBooster:
    """A booster's fast single-row predictor for rows of ``n_features`` float64 values.

    ``fast_config`` is the C handle (an address) that ``predict_bar_lightgbm`` takes; it points
    into the booster, which is kept alive with it, and is freed when this object is collected.
    """

    def __init__(self, booster: lightgbm.Booster, n_features: int):
        self.booster = booster
        handle = ctypes.c_void_p()
        _safe_call(_LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
            booster._handle, _C_API_PREDICT_NORMAL, 0, -1, _C_API_DTYPE_FLOAT64, n_features, b"num_threads=1",
            ctypes.byref(handle),
        ))
        self.fast_config = int(handle.value)
        weakref.finalize(self, _free, handle, booster)  # the booster outlives its fast config


def _free(handle: ctypes.c_void_p, booster: lightgbm.Booster) -> None:
    _LIB.LGBM_FastConfigFree(handle)
