"""The one place that holds lenum's numba options.

Every kernel is compiled through :func:`jit` so that caching and the error model are
set once.  ``error_model="numpy"`` makes division by zero give inf/nan instead of
raising inside a kernel; no ``fastmath`` because log|R_ii| must keep -inf and NaN
must stay detectable.
"""

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


def jit(*args, parallel=False, **kwargs):
    """``numba.njit`` with lenum's options (cache, numpy error model, no fastmath)."""
    options = dict(cache=CACHE, error_model="numpy", nogil=True, parallel=parallel)
    options.update(kwargs)
    if args and callable(args[0]):
        return numba.njit(**options)(args[0])
    return numba.njit(*args, **options)
