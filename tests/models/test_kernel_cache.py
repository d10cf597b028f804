"""numba's on-disk cache of the per-bar kernels starts afresh when any source they compile from changes."""

from __future__ import annotations

from pathlib import Path

import numba

from models.kernels import KERNEL_SOURCES, cache_folder
from models.kernels.features import OnlineFeatures


def test_a_change_to_any_kernel_source_moves_the_cache(tmp_path):
    sources = [tmp_path / name for name in ("lstm.py", "predict.py", "features.py")]
    for path in sources:
        path.write_text(f"# {path.name}\n")
    before = cache_folder(tmp_path, sources)
    assert cache_folder(tmp_path, sources) == before
    sources[0].write_text("# lstm.py, its step changed\n")  # predict.py, which inlines it, is untouched
    assert cache_folder(tmp_path, sources) != before


def test_the_kernels_cache_in_the_folder_of_their_sources():
    assert {path.name for path in KERNEL_SOURCES} >= {"lstm.py", "predict.py", "hybrids.py", "features.py", "heads.py"}
    folder = Path(numba.config.CACHE_DIR)
    assert folder == cache_folder(folder.parent, KERNEL_SOURCES)
    OnlineFeatures()  # compiles or loads update_features through the cache
    assert any(folder.rglob("features.update_features-*.nbi"))
