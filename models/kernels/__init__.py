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


def cache_folder(base: Path, sources: list[Path]) -> Path:
    """The cache folder under ``base`` for kernels compiled from ``sources`` (their bytes, in order)."""
    return base / f"kernels-{hashlib.sha256(b''.join(path.read_bytes() for path in sources)).hexdigest()[:16]}"


_HERE = Path(__file__).parent
KERNEL_SOURCES = sorted(_HERE.glob("*.py")) + [_HERE.parent / "features.py", _HERE.parent / "heads.py"]
numba.config.CACHE_DIR = str(cache_folder(Path(os.environ.get("NUMBA_CACHE_DIR") or _HERE / "__pycache__"), KERNEL_SOURCES))
