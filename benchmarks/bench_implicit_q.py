"""Would applying the reflectors to the next Jacobian beat forming Q?  (k = n)

At k = n a step of the QR method costs a QR of Z = J Q (geqrf, 4/3 n^3 flops), the
forming of its Q (orgqr, 4/3 n^3) and the next product J Q (2 n^3): 4.67 n^3.  Keeping
Q as its reflectors and applying them to J from the right (ormqr, 2 n^3) would need
3.33 n^3, 1.4x fewer flops.  This script times the parts on one thread, per block,
for a dense n x n J (a vanilla cell's D W, or a GRU's Jacobian):

- ``form``:  geqrf + orgqr + gemm, Q formed and multiplied (the engine's LAPACK path
  at k < n, and at k = n before ``lenum.qr.factor_step``)
- ``apply``: geqrf + ormqr, Q never formed (``factor_step``: the engine's path at
  k = n for sequences outside interleaved groups)
- ``lanes``: the engine's group path up to 256 rows, per block: the vanilla group
  step's product D (W Q) shared by 8 interleaved blocks, and their QR by
  ``lenum.lanes.lanes_qr`` (Q formed).  These are one-thread kernel times; on whole
  spectra with two threads the group path stayed the faster one (benchmarks/RESULTS.md).

LAPACK is called through ``scipy.linalg.lapack`` (a few microseconds per call, which
matters only at n = 64) with its optimal workspace.  Each time is the median of
``--repeats`` alternated runs of thread CPU time.

Usage::

    python benchmarks/bench_implicit_q.py [--sizes 64,128,256,512] [--repeats 5]
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from scipy.linalg import blas, lapack  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from lenum import lanes  # noqa: E402
from lenum._jit import jit  # noqa: E402


@jit
def _lanes_step(W, QA, ZA, D, work, reps):
    # the vanilla group step's tangent and QR: ZA = D (W QA), then ZA <- Q(ZA)
    _, logs, tau, ss, wy = work  # lanes_qr is inlined: numba takes no *args there
    for _ in range(reps):
        lanes.shared_product(W, QA, 0, ZA, 0, D, False, True)
        lanes.lanes_qr(ZA, logs, tau, ss, wy)


def _cpu_time(f, reps):
    t0 = time.thread_time()
    for _ in range(reps):
        f()
    return (time.thread_time() - t0) / reps


def measure(n, dtype, repeats=5, budget=0.05):
    """Seconds per block for each part, and the two ratios (see the module doc)."""
    rng = np.random.default_rng(0)
    p = "d" if dtype == "float64" else "s"
    geqrf, orgqr, ormqr = (getattr(lapack, p + name) for name in ("geqrf", "orgqr", "ormqr"))
    gemm = getattr(blas, p + "gemm")
    W = np.asfortranarray(rng.standard_normal((n, n)) / np.sqrt(n), dtype=dtype)
    Z = np.asfortranarray(rng.standard_normal((n, n)), dtype=dtype)
    lwork = 64 * n
    a, tau, _, _ = geqrf(Z, lwork=lwork)
    q, _, _ = orgqr(a, tau, lwork=lwork)
    # the two ways give the same product, to round-off
    c, _, _ = ormqr("R", "N", a, tau, W, lwork=lwork)
    assert np.allclose(c, gemm(1.0, W, q), atol=1e-4 if dtype == "float32" else 1e-12)
    parts = {
        "geqrf": lambda: geqrf(Z, lwork=lwork),
        "orgqr": lambda: orgqr(a, tau, lwork=lwork),
        "gemm": lambda: gemm(1.0, W, q),
        "ormqr": lambda: ormqr("R", "N", a, tau, W, lwork=lwork),
    }
    L = lanes.LANES
    use_lanes = n <= lanes.MAX_COLS
    if use_lanes:
        Wc = np.ascontiguousarray(W)
        QA = np.empty((n, n, L), dtype=dtype)
        for ln in range(L):
            QA[:, :, ln] = np.linalg.qr(rng.standard_normal((n, n)))[0].T
        ZA = np.empty_like(QA)
        D = np.full((n, L), 0.9, dtype=dtype)
        work = lanes.make_lanes(n, n, QA)
        _lanes_step(Wc, QA, ZA, D, work, 1)
        # the QR is timed with the product that makes its input: refactorising its own
        # orthonormal output would run on subnormal numbers, slowly
        parts["lanes"] = lambda: _lanes_step(Wc, QA, ZA, D, work, 1)
    flops = 4.67 * n ** 3
    reps = {name: max(1, int(budget * 30e9 / flops)) for name in parts}
    times = {name: [] for name in parts}
    with threadpool_limits(1):
        for _ in range(repeats):
            for name, f in parts.items():
                t = _cpu_time(f, reps[name])
                times[name].append(t / L if name == "lanes" else t)
    t = {name: float(np.median(v)) for name, v in times.items()}
    t["form"] = t["geqrf"] + t["orgqr"] + t["gemm"]
    t["apply"] = t["geqrf"] + t["ormqr"]
    t["form/apply"] = t["form"] / t["apply"]
    t["lanes/apply"] = t["lanes"] / t["apply"] if use_lanes else float("nan")
    return t


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="64,128,256,512")
    ap.add_argument("--dtypes", default="float64,float32")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--budget", type=float, default=0.05,
                    help="seconds per timed run, roughly")
    args = ap.parse_args(argv)
    cols = ("geqrf", "orgqr", "gemm", "ormqr", "lanes")
    print("| dtype | n | " + " | ".join(c + " (us)" for c in cols)
          + " | form / apply | lanes / apply |")
    print("|---" * (len(cols) + 4) + "|")
    rows = []
    for dtype in args.dtypes.split(","):
        for n in (int(s) for s in args.sizes.split(",")):
            t = measure(n, dtype, args.repeats, args.budget)
            rows.append((dtype, n, t))
            us = " | ".join(f"{t[c] * 1e6:.0f}" if c in t else "-" for c in cols)
            print(f"| {dtype} | {n} | {us} | {t['form/apply']:.2f} | {t['lanes/apply']:.2f} |",
                  flush=True)
    return rows


if __name__ == "__main__":
    main()
