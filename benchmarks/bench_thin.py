"""Products by a thin basis: lenum.thin's kernel against the BLAS (numba's np.dot).

``Y = A @ X`` with A (m, p) and X (p, k) for k = 8-64, the shape of a cell's tangent
at k << n.  Both run in compiled loops on one thread (thread CPU time), alternated,
best of ``--repeats``; the rate counts 2 m p k flops.

With ``--gated`` it times instead a gated cell's Jacobian block (GRU or LSTM, N
units) formed in memory as the cells form it and multiplied by ``thin_dot``, against
``gated_dot`` / ``lstm_gated_dot``, which never form it, and checks that the two agree
to the bit.

Usage::

    python benchmarks/bench_thin.py                       # the default sizes
    python benchmarks/bench_thin.py --sizes 128,256 --k 16,32 --dtype float64
    python benchmarks/bench_thin.py --gated --sizes 64,128,256 --k 16,24
"""

import argparse
import os
import sys
import time

import numpy as np
from numba import njit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from lenum.cells.gru import gru_block_row  # noqa: E402
from lenum.cells.lstm import _lstm_block  # noqa: E402
from lenum.cells.stack import GRU_GATES, LSTM_GATES  # noqa: E402
from lenum.thin import (  # noqa: E402
    _thin_product,
    gated_dot,
    gated_pack,
    gated_pays,
    gated_rows,
    lstm_gated_dot,
    thin_dot,
)


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


@njit
def _formed(R, lstm, W, C, D, X, Y, M):
    # the block as lenum.cells.gru / lstm form it, then its product
    N = W.shape[1]
    for _ in range(R):
        for i in range(N):
            if lstm:
                _lstm_block(W, N, C[0, i], C[1, i], C[2, i], C[3, i], D[i], M, i)
            else:
                gru_block_row(W, N, C[0, i], C[1, i], C[2, i], M, i)
                M[i, i] += D[i]
        thin_dot(M, X, Y)


@njit
def _gated(R, lstm, P, C, D, X, Y):
    for _ in range(R):
        if lstm:
            lstm_gated_dot(P, C, D, X, Y)
        else:
            gated_dot(P, C, D, X, Y)


def measure_gated(cell, N, k, dtype, repeats=5, budget=0.05):
    """Seconds per step of the formed block and product and of the gated kernel, and
    whether their results are equal to the bit."""
    rng = np.random.default_rng(0)
    lstm = cell == "lstm"
    G, rows = (4, 2 * N) if lstm else (3, N)
    W = rng.standard_normal((G * N, N)).astype(dtype)
    C = rng.standard_normal((G, N)).astype(dtype)
    D = rng.standard_normal(N).astype(dtype)
    V = gated_rows(W)
    P = np.empty((N // V, N, G, V), dtype)
    gated_pack(W, np.array(LSTM_GATES if lstm else GRU_GATES), P)
    X = rng.standard_normal((N, k)).astype(dtype)
    Yf, Yg = np.empty((rows, k), dtype), np.empty((rows, k), dtype)
    M = np.empty((rows, N), dtype)
    _formed(1, lstm, W, C, D, X, Yf, M)
    _gated(1, lstm, P, C, D, X, Yg)
    R = max(1, int(budget * 3e10 / (2 * rows * N * k)))
    best = {"formed": np.inf, "gated": np.inf}
    for _ in range(repeats):
        for name in best:
            t = time.thread_time()
            if name == "formed":
                _formed(R, lstm, W, C, D, X, Yf, M)
            else:
                _gated(R, lstm, P, C, D, X, Yg)
            best[name] = min(best[name], (time.thread_time() - t) / R)
    return best["formed"], best["gated"], bool(np.array_equal(Yf, Yg))


def main_gated(a):
    print("| cell | dtype | N | k | formed + thin_dot (us) | gated (us) | speed-up | equal |")
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for cell in ("gru", "lstm"):
        for dt in a.dtype.split(","):
            for N in (int(s) for s in a.sizes.split(",")):
                for k in (int(s) for s in a.k.split(",")):
                    if not gated_pays(N, k, np.empty(1, dt)):
                        continue
                    tf, tg, same = measure_gated(cell, N, k, np.dtype(dt), a.repeats,
                                                 a.budget)
                    rows.append(dict(cell=cell, dtype=dt, N=N, k=k, formed=tf, gated=tg,
                                     same=same))
                    print(f"| {cell} | {dt} | {N} | {k} | {tf * 1e6:.1f} | {tg * 1e6:.1f} | "
                          f"{tf / tg:.2f} | {same} |", flush=True)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="32,64,128,256", help="m = p, comma separated")
    ap.add_argument("--k", default="8,16,24,32,48,64")
    ap.add_argument("--dtype", default="float64,float32")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--budget", type=float, default=0.05, help="seconds per timed run")
    ap.add_argument("--gated", action="store_true",
                    help="gated cells' blocks formed then multiplied, against gated_dot")
    a = ap.parse_args(argv)
    if a.gated:
        return main_gated(a)
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
