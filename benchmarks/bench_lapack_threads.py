"""LAPACK's QR calls on several threads at once, blocked against unblocked.

lenum's per-sequence kernels call LAPACK (SciPy's) from numba, one BLAS thread each,
on as many threads as there are cores.  LAPACK picks its blocked code (compact-WY
blocks through the level-3 BLAS) or its unblocked code (one reflector at a time, the
level-2 BLAS) from its block size and the work array it is given; this times, per
state size n and thread count, calls per second over all threads of

* ``ormqr blocked`` / ``ormqr unblocked``: C := C Q for n x n C and Q held as n
  reflectors (``qr.factor_step`` with a held basis), with a full work array (block
  size 32) or the least one (n, which makes LAPACK apply one reflector at a time);
* ``geqrf+orgqr blocked`` / ``unblocked``: the QR of an n x n block with Q formed.

Each thread runs its own compiled loop on its own arrays, in one process.

Usage::

    python benchmarks/bench_lapack_threads.py --sizes 64,96,128,192,256 --threads 1,2
"""

import argparse
import os
import sys
import threading
import time

import numpy as np
from numba import njit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import scipy.linalg.cython_blas  # noqa: F401  (SciPy's BLAS loaded before the limit)
from threadpoolctl import threadpool_limits

from lenum.qr import _geqrf, _orgqr, _ormqr_rn

# LAPACK's work array for its blocked code at every size here: n times the block size
# (32) plus the block reflector's triangle (65 x 64)
BLOCKED_EXTRA = 4160


@njit(nogil=True, cache=True)
def _ormqr_loop(F, tau, C0, C, lw, lwork, reps):
    s = 0.0
    for _ in range(reps):
        C[:] = C0
        s += _ormqr_rn(C.shape[0], F, tau, C, lw, lwork)
    return s


@njit(nogil=True, cache=True)
def _qr_loop(F, tau, C0, C, lw, lwork, reps):
    n = C.shape[0]
    s = 0.0
    for _ in range(reps):
        C[:] = C0
        s += _geqrf(n, n, n, C, tau, lw, lwork) + _orgqr(n, n, n, C, tau, lw, lwork)
    return s


@njit(cache=True)
def _factor(F, tau, lw):
    return _geqrf(F.shape[0], F.shape[0], F.shape[0], F, tau, lw, lw.size)


def _arrays(n, dtype, lwork, seed):
    rng = np.random.default_rng(seed)
    F = rng.standard_normal((n, n)).astype(dtype)
    tau = np.zeros(n, dtype)
    _factor(F, tau, np.zeros(32 * n + BLOCKED_EXTRA, dtype))
    C0 = rng.standard_normal((n, n)).astype(dtype)
    return F, tau, C0, C0.copy(), np.zeros(lwork, dtype), lwork


def rate(loop, n, dtype, lwork, threads, reps, rounds=3):
    """Calls per second over ``threads`` threads, best of ``rounds``."""
    args = [_arrays(n, dtype, lwork, seed) for seed in range(threads)]
    loop(*args[0], 1)
    best = 0.0
    for _ in range(rounds):
        ts = [threading.Thread(target=loop, args=(*a, reps)) for a in args]
        t = time.perf_counter()
        for th in ts:
            th.start()
        for th in ts:
            th.join()
        best = max(best, threads * reps / (time.perf_counter() - t))
    return best


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="64,80,96,128,192,256")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--dtype", default="float64")
    p.add_argument("--work", type=float, default=3e8, help="flops per thread per round")
    a = p.parse_args(argv)
    dtype = np.dtype(a.dtype)
    print(f"{dtype}, calls per second over all threads (best of 3 rounds)")
    print("| n | threads | ormqr blocked | ormqr unblocked | geqrf+orgqr blocked | "
          "geqrf+orgqr unblocked |")
    print("|---|---|---|---|---|---|")
    rows = []
    with threadpool_limits(limits=1, user_api="blas"):
        for n in (int(s) for s in a.sizes.split(",")):
            reps = max(10, int(a.work / (2 * n ** 3)))
            blocked, unblocked = 32 * n + BLOCKED_EXTRA, n
            for threads in (int(s) for s in a.threads.split(",")):
                r = [rate(loop, n, dtype, lw, threads, reps)
                     for loop in (_ormqr_loop, _qr_loop) for lw in (blocked, unblocked)]
                rows.append((n, threads, r))
                print(f"| {n} | {threads} | " + " | ".join(f"{v:.0f}" for v in r) + " |",
                      flush=True)
    return rows


if __name__ == "__main__":
    main()
