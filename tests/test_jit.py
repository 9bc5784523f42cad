"""The numba cache: kernels compiled from older sources are never reused."""

import os

from numba.core.caching import UserProvidedCacheLocator

from lenum import _jit


def _numba_folder(root, source_dir):
    # where numba itself puts the cache of the files in source_dir
    sub = UserProvidedCacheLocator.get_suitable_cache_subpath(
        os.path.join(source_dir, "module.py"))
    folder = root / sub
    folder.mkdir(parents=True)
    return folder


def test_stale_kernels_leave_a_numba_cache_dir(tmp_path, monkeypatch):
    """With NUMBA_CACHE_DIR set, numba keeps each source folder's cache in a folder of
    its own there, named from the source path.  After any source of the package
    changed (a marker that does not match), lenum's cache files go, other packages'
    stay; with the marker current, nothing is removed."""
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    here = os.path.dirname(os.path.abspath(_jit.__file__))
    ours = [_numba_folder(tmp_path, here), _numba_folder(tmp_path, os.path.join(here, "cells"))]
    other = tmp_path / "other_0123"
    other.mkdir()
    for folder in ours + [other]:
        for name in ("k.step-10.py311.nbi", "k.step-10.py311.1.nbc"):
            (folder / name).write_bytes(b"x")
    (tmp_path / "lenum-kernels.sha256").write_text("an older tree")

    _jit._drop_stale_cache()
    for folder in ours:
        assert list(folder.iterdir()) == []
    assert len(list(other.iterdir())) == 2
    stamp = (tmp_path / "lenum-kernels.sha256").read_text()
    assert stamp != "an older tree"

    (ours[0] / "k.step-10.py311.nbi").write_bytes(b"x")
    _jit._drop_stale_cache()  # the sources as they were: the new cache stays
    assert len(list(ours[0].iterdir())) == 1
    assert (tmp_path / "lenum-kernels.sha256").read_text() == stamp
