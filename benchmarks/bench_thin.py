"""Products by a thin basis: lenum.thin's kernel against the BLAS (numba's np.dot).

``Y = A @ X`` with A (m, p) and X (p, k) for k = 8-64, the shape of a cell's tangent
at k << n.  Both run in compiled loops on one thread (thread CPU time), alternated,
best of ``--repeats``; the rate counts 2 m p k flops.

Usage::

    python benchmarks/bench_thin.py                       # the default sizes
    python benchmarks/bench_thin.py --sizes 128,256 --k 16,32 --dtype float64
"""

import argparse
import os
import sys
import time

import numpy as np
from numba import njit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from lenum.thin import _thin_product  # noqa: E402


@njit
def _blas(R, A, X, Y):
    for _ in range(R):
        np.dot(A, X, Y)


@njit
def _thin(R, A, X, Y):
    for _ in range(R):
        _thin_product(A, X, Y)


def measure(m, p, k, dtype, repeats=5, budget=0.05):
    """Seconds per product of the BLAS and of the thin kernel, and the largest
    difference between their results relative to the largest entry."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((m, p)).astype(dtype)
    X = rng.standard_normal((p, k)).astype(dtype)
    Yb, Yt = np.empty((m, k), dtype), np.empty((m, k), dtype)
    _blas(1, A, X, Yb)
    _thin(1, A, X, Yt)
    R = max(1, int(budget * 3e10 / (2 * m * p * k)))  # about budget s at 30 GFLOP/s
    best = {"blas": np.inf, "thin": np.inf}
    for _ in range(repeats):
        for name, f, Y in (("blas", _blas, Yb), ("thin", _thin, Yt)):
            t = time.thread_time()
            f(R, A, X, Y)
            best[name] = min(best[name], (time.thread_time() - t) / R)
    diff = float(np.max(np.abs(Yb - Yt)) / max(np.max(np.abs(Yb)), 1e-300))
    return best["blas"], best["thin"], diff


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="32,64,128,256", help="m = p, comma separated")
    ap.add_argument("--k", default="8,16,24,32,48,64")
    ap.add_argument("--dtype", default="float64,float32")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--budget", type=float, default=0.05, help="seconds per timed run")
    a = ap.parse_args(argv)
    rows = []
    print("| dtype | m = p | k | BLAS GFLOP/s | thin GFLOP/s | BLAS time / thin time | "
          "max rel. difference |")
    print("|---|---|---|---|---|---|---|")
    for dt in a.dtype.split(","):
        for n in (int(s) for s in a.sizes.split(",")):
            for k in (int(s) for s in a.k.split(",")):
                tb, tt, diff = measure(n, n, k, np.dtype(dt), a.repeats, a.budget)
                fl = 2.0 * n * n * k
                rows.append(dict(dtype=dt, n=n, k=k, blas=tb, thin=tt, diff=diff))
                print(f"| {dt} | {n} | {k} | {fl / tb / 1e9:.1f} | {fl / tt / 1e9:.1f} | "
                      f"{tb / tt:.2f} | {diff:.1e} |", flush=True)
    return rows


if __name__ == "__main__":
    main()
