"""The per-bar numba kernels: the online features and the LSTM step the strategy runs on every bar.

numba's on-disk cache (``cache=True``) checks only the file of the function it loads: a kernel in
predict.py that inlined lstm.py's step keeps the old step after lstm.py changes, silently. So the
cache lives in a folder named by a digest of every source the kernels compile from (this package,
and the models.features and models.heads parts they call or freeze in as constants): a change to
any of them starts a fresh cache. Set before any kernel module is imported (they are below).
"""

import hashlib
import os
from pathlib import Path

import numba
import numpy as np


def cache_folder(base: Path, sources: list[Path]) -> Path:
    """The cache folder under ``base`` for kernels compiled from ``sources`` (their bytes, in order)."""
    return base / f"kernels-{hashlib.sha256(b''.join(path.read_bytes() for path in sources)).hexdigest()[:16]}"


_HERE = Path(__file__).parent
KERNEL_SOURCES = sorted(_HERE.glob("*.py")) + [_HERE.parent / "features.py", _HERE.parent / "heads.py"]
numba.config.CACHE_DIR = str(cache_folder(Path(os.environ.get("NUMBA_CACHE_DIR") or _HERE / "__pycache__"), KERNEL_SOURCES))


def entry_point(kernel: numba.core.dispatcher.Dispatcher, *args):
    """``kernel`` compiled (or loaded from the cache) for the exact types of ``args``, as the function
    to call on every bar with arguments of those types.

    Through numba's dispatcher, each call types every argument again to pick the compiled version:
    for the LSTM's 13 arrays that took about 0.4 µs of a 0.9 µs call, and the per-bar call takes the
    same arrays every bar (measured on the 2-core machine, a no-op kernel of 13 arrays: 0.92 µs a call
    through the dispatcher, 0.53 µs through its entry point). The entry point checks each array's
    dtype and dimensions, but not its layout: call it with the same arrays, or ones of the same types.
    """
    return kernel.compile(tuple(numba.typeof(arg) for arg in args))


ALIGNMENT = 64  # bytes: a cache line, and one AVX-512 vector


def aligned(array: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of ``array`` whose data starts on a 64-byte boundary: every array
    OnlinePredictor's per-bar kernel takes (the features', the network's, the heads') is made so.

    NumPy promises 16 bytes, and where an array lands varies from one allocation to the next. Off a
    64-byte boundary, the LSTM step's vectorized loops split loads and stores across cache lines: on
    the 2-core machine (AMD Zen 5, AVX-512), a predictor's compiled call took 1.21 times as long with
    its arrays copied 16 bytes past a boundary as on them (medians of 9 rounds taking turns in one
    process, every round 1.08 to 1.59: ``scripts/bench_step.py``, ``alignment``).
    """
    array = np.ascontiguousarray(array)
    buffer = np.empty(array.nbytes + ALIGNMENT, np.uint8)
    start = -buffer.ctypes.data % ALIGNMENT
    out = buffer[start : start + array.nbytes].view(array.dtype).reshape(array.shape)
    out[...] = array
    return out
