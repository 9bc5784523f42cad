"""Time lenum's QR kernels per block size, the way the engine calls them.

Each variant factorises a batch of B blocks (n x k) in a numba loop, one block after
another on one thread with a one-threaded BLAS, as one worker thread of the engine
does.  The time per block is the best of several repeats.  ``lanes`` is
:mod:`lenum.lanes`: the B blocks in groups of LANES, interleaved, factorised together,
and written back, as the engine does for batches (its time includes the interleaving).

Usage::

    python benchmarks/bench_qr.py [--sizes 8,16,...] [--dtype float64,float32] [--markdown]
"""

import argparse
import os
import sys
import time

import numpy as np

# numba's np.dot and np.linalg.qr run on SciPy's BLAS (a library separate from NumPy's);
# it must be loaded before threadpoolctl looks, or the one-thread limit misses it
import scipy.linalg.cython_blas  # noqa: F401

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from threadpoolctl import threadpool_limits

from lenum import lanes, qr
from lenum._jit import jit

VARIANTS = ("plain", "blocked", "lapack", "lq", "geqrf", "dispatch", "lanes")


@jit
def _loop(variant, Z, A, Q, logs, work, reps):
    # one function with a branch, not a closure per kernel: numba's cache keys a
    # closure by its code only, so closures over different kernels would collide
    for _ in range(reps):
        for b in range(Z.shape[0]):
            A[:, :] = Z[b]
            if variant == 0:
                qr.householder_qr(A, Q, logs, work)
            elif variant == 1:
                qr.blocked_qr(A, Q, logs, work)
            elif variant == 2:
                qr.lapack_qr(A, Q, logs, work)
            elif variant == 3:
                qr.lq_qr(A, Q, logs, work)
            elif variant == 4:
                qr.geqrf_qr(A, Q, logs, work)
            else:
                qr.qr_logdiag(A, Q, logs, work)


@jit
def _loop_lanes(Z, Q, work, reps):
    A, logs, tau, ss, wy = work
    L = lanes.LANES
    for _ in range(reps):
        for b0 in range(0, Z.shape[0], L):
            m = min(L, Z.shape[0] - b0)
            lanes.gather(Z[b0:b0 + m], m, A)
            lanes.lanes_qr(A, logs, tau, ss, wy)
            lanes.scatter(A, m, Q, b0)


def qr_flops(n, k):
    """Flops of a Householder QR with Q formed: 2nk^2 - 2k^3/3, twice."""
    return 2 * (2.0 * n * k * k - 2.0 * k ** 3 / 3.0)


def time_variant(name, n, k, dtype, budget=0.3, repeats=3):
    """Seconds per block of variant ``name`` (best of ``repeats``).

    Timed with the thread's CPU time: the loop runs on this thread alone (BLAS limited
    to one thread), so other processes on the machine do not count.
    """
    rng = np.random.default_rng(0)
    B = 16
    Z = rng.standard_normal((B, n, k)).astype(dtype)
    A = np.empty((n, k), dtype=dtype)
    Q = np.empty((n, k), dtype=dtype)
    logs = np.empty(k)
    work = np.empty((qr.work_rows(n), k), dtype=dtype)
    if name == "lanes":
        Qs = np.empty_like(Z)
        lw = lanes.make_lanes(n, k, Z)

        def call(reps):
            _loop_lanes(Z, Qs, lw, reps)
    else:
        v = VARIANTS.index(name)

        def call(reps):
            _loop(v, Z, A, Q, logs, work, reps)
    call(1)  # compile
    t = time.thread_time()
    call(1)
    once = max(time.thread_time() - t, 1e-7)
    reps = max(1, int(budget / once))
    best = np.inf
    for _ in range(repeats):
        t = time.thread_time()
        call(reps)
        best = min(best, (time.thread_time() - t) / (reps * B))
    return best


def run(sizes, dtypes, variants, markdown=False, budget=0.3):
    """Measure every variant at every (n, k) with k = n and k = 16; print a table."""
    rows = []
    with threadpool_limits(limits=1, user_api="blas"):
        for dtype in dtypes:
            for n in sizes:
                for k in sorted({n, min(16, n)}, reverse=True):
                    times = {v: time_variant(v, n, k, dtype, budget) for v in variants}
                    rows.append((dtype, n, k, times))
                    if not markdown:
                        best = min(times, key=times.get)
                        print(f"{dtype:8s} n={n:4d} k={k:4d} " + " ".join(
                            f"{v}={times[v] * 1e6:9.2f}us" for v in variants)
                            + f"  best={best}", flush=True)
    if markdown:
        print("| dtype | n | k | " + " | ".join(f"{v} (us)" for v in variants)
              + " | best | GFLOP/s (best) |")
        print("|---|---|---|" + "---|" * len(variants) + "---|---|")
        for dtype, n, k, times in rows:
            best = min(times, key=times.get)
            gf = qr_flops(n, k) / times[best] / 1e9
            print(f"| {dtype} | {n} | {k} | " + " | ".join(
                f"{times[v] * 1e6:.2f}" for v in variants) + f" | {best} | {gf:.1f} |")
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="8,16,32,48,64,96,128,192,256,384,512")
    p.add_argument("--dtype", default="float64,float32")
    p.add_argument("--variants", default="geqrf,lanes")
    p.add_argument("--budget", type=float, default=0.3, help="seconds per measurement")
    p.add_argument("--markdown", action="store_true")
    a = p.parse_args(argv)
    run([int(s) for s in a.sizes.split(",")], a.dtype.split(","), a.variants.split(","),
        a.markdown, a.budget)


if __name__ == "__main__":
    main()
