"""Tangent step of the vanilla cell: per-sequence products against one batch-shared GEMM.

``J_b Q_b = D_b W_hh Q_b`` (D_b = diag(phi'(a_b))) can be formed three ways for a batch:

``explicit``  (what the cell kernels do) build ``M_b = D_b W_hh`` (N^2 elementwise),
              then ``np.dot(M_b, Q_b)``: B small GEMMs plus B N^2 writes.
``scaled``    ``np.dot(W_hh, Q_b)``, then scale the rows of the product by D_b:
              B small GEMMs, no N^2 work per sequence.
``shared``    one GEMM ``W_hh @ [Q_1 | ... | Q_B]`` (N x Bk), then scale rows and copy
              each sequence's block out for its QR (and the QR's Q back in).
``copies``    ``scaled`` plus, per group of LANES sequences, the copies into and out
              of the interleaved layout of the group QR (``lenum.lanes``): the engine's
              vanilla path before ``interleaved``.
``interleaved`` ``lenum.lanes.shared_product`` on bases kept interleaved, LANES
              sequences per product, with no copies (what the engine does now for a
              group of vanilla sequences).

Each variant runs one thread with a one-threaded BLAS (one worker of the engine), and
is timed with the thread's CPU time, so other load on the machine does not count.
The QR (``lenum.qr.qr_logdiag``) of every block is timed too, for scale.

Usage::

    python benchmarks/bench_shared_gemm.py [--sizes 32,64] [--dtype float64,float32]
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import scipy.linalg.cython_blas  # noqa: F401  (loaded before threadpoolctl looks)
from threadpoolctl import threadpool_limits

from lenum._jit import jit
from lenum.lanes import LANES, gather, scatter, shared_product
from lenum.qr import qr_logdiag, work_rows


@jit
def explicit(W, D, Q, Z, M, reps):
    B, N = D.shape
    for _ in range(reps):
        for b in range(B):
            for i in range(N):
                d = D[b, i]
                for j in range(N):
                    M[i, j] = d * W[i, j]
            np.dot(M, Q[b], Z[b])


@jit
def scaled(W, D, Q, Z, M, reps):
    B, N = D.shape
    k = Q.shape[2]
    for _ in range(reps):
        for b in range(B):
            Zb = Z[b]
            np.dot(W, Q[b], Zb)
            for i in range(N):
                d = D[b, i]
                for j in range(k):
                    Zb[i, j] *= d


@jit
def shared(W, D, Qcat, Zcat, Z, Q, reps):
    B, N = D.shape
    k = Z.shape[2]
    for _ in range(reps):
        np.dot(W, Qcat, Zcat)
        for b in range(B):
            Zb = Z[b]
            for i in range(N):
                d = D[b, i]
                for j in range(k):
                    Zb[i, j] = d * Zcat[i, b * k + j]
        # the QR would run here on Z[b] into Q[b]; its Q goes back into the shared block
        for b in range(B):
            for i in range(N):
                for j in range(k):
                    Qcat[i, b * k + j] = Q[b, i, j]


@jit
def copies(W, D, Q, Z, M, A, reps):
    B = D.shape[0]
    for _ in range(reps):
        scaled(W, D, Q, Z, M, 1)
        for b0 in range(0, B, LANES):
            gather(Z[b0:b0 + LANES], LANES, A)
            scatter(A, LANES, Q, b0)


@jit
def interleaved(W, DA, QA, ZA, reps):
    top, no, yes = np.intp(0), np.bool_(False), np.bool_(True)
    for _ in range(reps):
        for g in range(QA.shape[0]):
            shared_product(W, QA[g], top, ZA[g], top, DA[g], no, yes)


@jit
def qr_all(Z, Q, A, logs, work, reps):
    for _ in range(reps):
        for b in range(Z.shape[0]):
            A[:, :] = Z[b]
            qr_logdiag(A, Q[b], logs, work)


def _time(fn, args, B, budget=0.3, repeats=5):
    fn(*args, 1)
    t = time.thread_time()
    fn(*args, 1)
    reps = max(1, int(budget / max(time.thread_time() - t, 1e-6)))
    best = np.inf
    for _ in range(repeats):
        t = time.thread_time()
        fn(*args, reps)
        best = min(best, (time.thread_time() - t) / (reps * B))
    return best


def measure(N, k, B, dtype):
    """Seconds per sequence-step of each tangent variant, and of the QR (B a multiple
    of LANES)."""
    rng = np.random.default_rng(0)
    W = (rng.standard_normal((N, N)) / np.sqrt(N)).astype(dtype)
    D = rng.uniform(0.1, 1.0, (B, N)).astype(dtype)
    Q = np.ascontiguousarray(rng.standard_normal((B, N, k)).astype(dtype))
    Z = np.empty_like(Q)
    M = np.empty((N, N), dtype=dtype)
    Qcat = np.ascontiguousarray(Q.transpose(1, 0, 2).reshape(N, B * k))
    Zcat = np.empty_like(Qcat)
    # B / LANES groups, each (k, N, LANES): the lanes layout
    QA = np.ascontiguousarray(Q.reshape(B // LANES, LANES, N, k).transpose(0, 3, 2, 1))
    ZA = np.empty_like(QA)
    DA = np.ascontiguousarray(D.reshape(B // LANES, LANES, N).transpose(0, 2, 1))
    A = np.empty(QA.shape[1:], dtype=dtype)
    out = {
        "explicit": _time(explicit, (W, D, Q, Z, M), B),
        "scaled": _time(scaled, (W, D, Q, Z, M), B),
        "shared": _time(shared, (W, D, Qcat, Zcat, Z, Q), B),
        "copies": _time(copies, (W, D, Q.copy(), Z, M, A), B),
        "interleaved": _time(interleaved, (W, DA, QA, ZA), B),
    }
    # sanity: every variant gives the same product
    explicit(W, D, Q, Z, M, 1)
    Z1 = Z.copy()
    scaled(W, D, Q, Z, M, 1)
    Z2 = Z.copy()
    Qcat[:] = Q.transpose(1, 0, 2).reshape(N, B * k)
    shared(W, D, Qcat, Zcat, Z, Q, 1)
    tol = 1e-4 if dtype == "float32" else 1e-10
    assert np.allclose(Z1, Z2, atol=tol) and np.allclose(Z1, Z, atol=tol)
    interleaved(W, DA, QA, ZA, 1)
    assert np.allclose(Z1, ZA.transpose(0, 3, 2, 1).reshape(B, N, k), atol=tol)
    A = np.empty((N, k), dtype=dtype)
    work = np.empty((work_rows(N), k), dtype=dtype)
    out["qr"] = _time(qr_all, (Z1, Q.copy(), A, np.empty(k), work), B)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="32,64,128,256")
    p.add_argument("--dtype", default="float64,float32")
    a = p.parse_args(argv)
    print("| dtype | N | k | B | explicit (us) | scaled (us) | shared (us) | copies (us) "
          "| interleaved (us) | QR (us) | explicit / shared | copies / interleaved "
          "| interleaved GFLOP/s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    with threadpool_limits(limits=1, user_api="blas"):
        for dtype in a.dtype.split(","):
            for N in [int(s) for s in a.sizes.split(",")]:
                B = 64 if N <= 32 else 16
                for k in sorted({N, 16}, reverse=True):
                    r = measure(N, k, B, dtype)
                    rate = 2 * N * N * k / r["interleaved"] / 1e9
                    print(f"| {dtype} | {N} | {k} | {B} | {r['explicit'] * 1e6:.2f} "
                          f"| {r['scaled'] * 1e6:.2f} | {r['shared'] * 1e6:.2f} "
                          f"| {r['copies'] * 1e6:.2f} | {r['interleaved'] * 1e6:.2f} "
                          f"| {r['qr'] * 1e6:.2f} | {r['explicit'] / r['shared']:.2f} "
                          f"| {r['copies'] / r['interleaved']:.2f} | {rate:.1f} |",
                          flush=True)


if __name__ == "__main__":
    main()
