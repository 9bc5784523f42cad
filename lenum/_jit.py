"""The one place that holds lenum's numba options.

Every kernel is compiled through :func:`jit` so that caching and the error model are
set once.  ``error_model="numpy"`` makes division by zero give inf/nan instead of
raising inside a kernel; no ``fastmath`` because log|R_ii| must keep -inf and NaN
must stay detectable.
"""

import hashlib
import os
import tempfile

import numba


def _cache_usable():
    # numba raises "no locator available" at decoration time when neither the
    # package folder nor NUMBA_CACHE_DIR is writable; compile without cache then.
    if os.environ.get("NUMBA_CACHE_DIR"):
        return True
    here = os.path.dirname(os.path.abspath(__file__))
    probe_dirs = [os.path.join(here, "__pycache__"), here]
    for d in probe_dirs:
        try:
            os.makedirs(d, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=d):
                pass
            return True
        except OSError:
            continue
    # numba's user-wide fallback locator (~/.cache or similar)
    try:
        from numba.misc.appdirs import AppDirs

        cache_dir = AppDirs(appname="numba", appauthor=False).user_cache_dir
        os.makedirs(cache_dir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cache_dir):
            pass
        return True
    except Exception:
        return False


CACHE = _cache_usable()

_HERE = os.path.dirname(os.path.abspath(__file__))


def _cache_dirs():
    """Folders where numba keeps this package's cache files."""
    root = os.environ.get("NUMBA_CACHE_DIR")
    if not root:
        for folder, _, _ in os.walk(_HERE):
            if os.path.basename(folder) == "__pycache__":
                yield folder
        return
    from numba.core.caching import UserProvidedCacheLocator

    # below NUMBA_CACHE_DIR, one folder per source folder, named by numba from its
    # path (its name and a hash of the whole path), beside other packages' folders
    for folder, dirs, _ in os.walk(_HERE):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        sub = UserProvidedCacheLocator.get_suitable_cache_subpath(
            os.path.join(folder, "__init__.py"))
        if os.path.isdir(os.path.join(root, sub)):
            yield os.path.join(root, sub)


def _drop_stale_cache():
    """Delete lenum's numba cache when any kernel source changed.

    numba checks only the source file of the function it caches, not the functions
    it calls: after an edit to a cell (or an upgrade in place that kept a module's
    timestamp) the cached window kernels would silently keep the old cell.  A hash of
    every source file of the package, kept beside the cache, decides.
    """
    digest = hashlib.sha256()
    for folder, _, files in sorted(os.walk(_HERE)):
        for name in sorted(files):
            if name.endswith(".py"):
                with open(os.path.join(folder, name), "rb") as f:
                    digest.update(name.encode() + f.read())
    stamp = digest.hexdigest()
    marker_dir = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(_HERE, "__pycache__")
    marker = os.path.join(marker_dir, "lenum-kernels.sha256")
    try:
        with open(marker) as f:
            if f.read().strip() == stamp:
                return
    except OSError:
        pass
    try:
        for folder in _cache_dirs():
            for name in os.listdir(folder):
                if name.endswith((".nbi", ".nbc")):
                    os.remove(os.path.join(folder, name))
        os.makedirs(marker_dir, exist_ok=True)
        with open(marker, "w") as f:
            f.write(stamp)
    except OSError:
        pass  # a read-only install: numba then compiles in memory or uses what is there


if CACHE:
    _drop_stale_cache()


def jit(*args, parallel=False, **kwargs):
    """``numba.njit`` with lenum's options (cache, numpy error model, no fastmath)."""
    options = dict(cache=CACHE, error_model="numpy", nogil=True, parallel=parallel)
    options.update(kwargs)
    if args and callable(args[0]):
        return numba.njit(**options)(args[0])
    return numba.njit(*args, **options)
