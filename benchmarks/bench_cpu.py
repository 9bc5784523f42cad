"""CPU throughput of lenum against the PyTorch and NumPy references and a GEMM floor.

For every cell, hidden size N, dtype and number of exponents k (k = n and k = 16), on
identical weights, inputs and initial basis in one process, this measures

* lenum (:func:`lenum.lyapunov_spectrum`, numba kernels, a thread pool over sequences),
* the batched NumPy reference and the PyTorch reference (benchmarks/reference.py;
  torch only when installed, with ``torch.set_num_threads`` equal to lenum's threads),
* the floor: the rate of a large GEMM on all cores, measured again next to each case
  (the best rate of the run so far is used), turned into sequence-steps per second by
  dividing by the flops one step needs at minimum, ``2 n^2 k`` for ``J Q`` plus
  ``4 n k^2 - 4 k^3 / 3`` for the QR with Q formed.

Throughput is in sequence-steps per second (B sequences x T steps / seconds), the best
of several runs after a compile warm-up; the methods take turns, one run each per
round.  Before timing, the exponents of all methods are compared on a few steps: a
method that disagrees stops the benchmark, so a fast wrong answer cannot be reported.
With torch, a summary follows the table: the rows where lenum reaches 5x the torch
reference, and for the others the fraction of the floor that 5x would take.

The startup costs are measured in subprocesses: the first call in a fresh process
with a warm numba cache, and the cold compile of everything a spectrum needs (numba
cache pointed at an empty folder).

Usage::

    python benchmarks/bench_cpu.py                 # the full table (several minutes)
    python benchmarks/bench_cpu.py --quick         # a subset
    python benchmarks/bench_cpu.py --smoke         # tiny sizes, seconds
    python benchmarks/bench_cpu.py --cells lstm --sizes 64,128 --dtype float32 --markdown
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from functools import partial

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

import reference
from turns import take_turns

# numba's kernels call SciPy's BLAS, a library separate from NumPy's; it must be loaded
# before lenum's engine first asks threadpoolctl which BLAS libraries to limit
import scipy.linalg.cython_blas  # noqa: F401
from threadpoolctl import threadpool_limits

import lenum
from lenum.engine import default_basis

try:
    import torch
except ImportError:  # the torch column is left out
    torch = None

# exponents of the references must match lenum's to this (absolute, nats per step)
TOLERANCE = {"float64": 1e-7, "float32": 5e-2}
INPUT_SIZE = 16


def threads():
    """Threads lenum's kernels run on (numba's thread pool)."""
    import numba

    return numba.config.NUMBA_NUM_THREADS


def step_flops(n, k):
    """Minimum flops of one QR-method step: J Q plus a Householder QR with Q formed."""
    return 2.0 * n * n * k + 4.0 * n * k * k - 4.0 * k ** 3 / 3.0


def gemm_rate(dtype, nthreads, size=1024, repeats=5):
    """Best flops per second of a size x size GEMM on ``nthreads`` BLAS threads."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    with threadpool_limits(limits=nthreads, user_api="blas"):
        a @ b
        best = np.inf
        for _ in range(repeats):
            t = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t)
    return 2.0 * size ** 3 / best


class Case:
    """One benchmark configuration: weights, inputs and basis shared by all methods."""

    def __init__(self, cell, N, k_kind, dtype, B, seed=0):
        self.cell, self.N, self.dtype, self.B = cell, N, dtype, B
        self.weights = reference.random_weights(cell, N, INPUT_SIZE, seed=seed)
        self.net = lenum.Network.from_state_dict(cell, self.weights)
        self.n = self.net.state_size
        self.k = self.n if k_kind == "n" else min(int(k_kind), self.n)
        self.q0 = default_basis(self.n, self.k)
        self.rng = np.random.default_rng(seed + 1)

    def inputs(self, T):
        return self.rng.standard_normal((self.B, T, INPUT_SIZE))

    def run(self, method, x):
        """Per-sequence exponents (B, k) of ``method`` on inputs ``x``."""
        if method == "lenum":
            return lenum.lyapunov_spectrum(self.net, x, q0=self.q0, dtype=self.dtype).per_sequence
        if method == "numpy":
            return reference.numpy_spectrum(self.cell, self.weights, x, self.q0, self.dtype)
        return reference.torch_spectrum(self.cell, self.weights, x, self.q0, self.dtype,
                                        threads=threads())


def measure(case, methods, target, repeats, check_steps, tol=None):
    """Sequence-steps per second of each method (best of ``repeats``), after a check.

    All methods first run the same ``check_steps`` steps; their exponents must agree
    with those of the first method (lenum) within ``tol`` (default :data:`TOLERANCE`).
    That run also sizes T so that one timed run takes about ``target`` seconds.  The
    timed runs alternate between the methods, ``repeats`` rounds of one run each.
    Returns the rates, the steps T of each method's timed runs, and each method's
    largest difference from the first in the check.
    """
    first = methods[0]
    x = case.inputs(check_steps)
    case.run(first, x[:, :1])  # compile (or load from the cache)
    results, per_step = {}, {}
    for m in methods:
        t = time.perf_counter()
        results[m] = case.run(m, x)
        per_step[m] = (time.perf_counter() - t) / check_steps
    tol = TOLERANCE[case.dtype] if tol is None else tol
    errors = {}
    for m in methods:
        errors[m] = err = float(np.max(np.abs(results[m] - results[first])))
        if not err <= tol:
            raise AssertionError(
                f"{case.cell} N={case.N} k={case.k} {case.dtype}: {m} disagrees with {first} "
                f"by {err:.3g} (tolerance {tol:g}); not timing a wrong answer"
            )
    steps = {m: int(min(20000, max(2, round(target / max(per_step[m], 1e-9)))))
             for m in methods}
    inputs = {m: case.inputs(steps[m]) for m in methods}
    times = take_turns({m: partial(case.run, m, inputs[m]) for m in methods}, repeats)
    rates = {m: case.B * steps[m] / min(times[m]) for m in methods}
    return rates, steps, errors


def startup_times(cold=True, prewarm=True):
    """Import and first-call times in fresh processes (warm cache; cold compile).

    ``prewarm`` runs the warm-cache process once first, in case this source has not
    been compiled into the cache yet.
    """
    script = (
        "import time, json, sys; t0 = time.perf_counter()\n"
        "import numpy as np, lenum\n"
        "t1 = time.perf_counter()\n"
        "out = {'import_s': t1 - t0}\n"
        "net = lenum.Network.from_state_dict('lstm', {"
        "'weight_ih_l0': np.full((32, 3), 0.1), 'weight_hh_l0': np.full((32, 8), 0.1)})\n"
        "x = np.zeros((2, 5, 3))\n"
        "for dt in sys.argv[1:]:\n"
        "    t = time.perf_counter(); lenum.lyapunov_spectrum(net, x, dtype=dt)\n"
        "    out['first_call_' + dt + '_s'] = time.perf_counter() - t\n"
        "print(json.dumps(out))\n"
    )
    root = os.path.join(HERE, "..")
    env = dict(os.environ)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")

    def run(extra_env):
        e = dict(env, **extra_env)
        p = subprocess.run([sys.executable, "-c", script, "float64", "float32"], env=e,
                           capture_output=True, text=True, check=True, cwd=root)
        return json.loads(p.stdout.strip().splitlines()[-1])

    if prewarm:
        run({})
    out = {"warm": run({})}
    if cold:
        with tempfile.TemporaryDirectory() as d:
            out["cold"] = run({"NUMBA_CACHE_DIR": d})
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description="lenum CPU benchmark (see the module docstring)")
    p.add_argument("--quick", action="store_true", help="a subset: N = 32, 128")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, seconds")
    p.add_argument("--cells", default=",".join(reference.CELLS))
    p.add_argument("--sizes", default=None, help="hidden sizes N, comma separated")
    p.add_argument("--dtype", default="float64,float32")
    p.add_argument("--k", default="n,16", help="numbers of exponents: n and/or integers")
    p.add_argument("--target", type=float, default=None, help="seconds per timed run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--no-startup", action="store_true", help="skip the subprocess timings")
    p.add_argument("--markdown", action="store_true", help="print a markdown table")
    a = p.parse_args(argv)

    if a.smoke:
        sizes, target, repeats, check_steps = [8], a.target or 0.02, 1, 3
    else:
        sizes = [32, 128] if a.quick else [32, 64, 128, 256]
        target, repeats, check_steps = a.target or 0.7, a.repeats, 4
    if a.sizes:
        sizes = [int(s) for s in a.sizes.split(",")]
    cells = a.cells.split(",")
    dtypes = a.dtype.split(",")
    kinds = a.k.split(",")
    methods = ["lenum", "numpy"] + ([] if (torch is None or a.no_torch) else ["torch"])
    nthreads = threads()

    gemm_size = 256 if a.smoke else 1024
    floor_rate = {dt: gemm_rate(dt, nthreads, size=gemm_size) for dt in dtypes}
    print(f"threads: {nthreads}; GEMM floor: " + ", ".join(
        f"{dt} {r / 1e9:.1f} GFLOP/s" for dt, r in floor_rate.items()), flush=True)

    rows = []
    for dt in dtypes:
        for cell in cells:
            for N in sizes:
                for kind in kinds:
                    B = 4 if a.smoke else (64 if N == 32 else 16)
                    case = Case(cell, N, kind, dt, B)
                    if kind != "n" and case.k == case.n and "n" in kinds:
                        continue  # k = 16 >= n is the k = n case again
                    rates, steps, _ = measure(case, methods, target, repeats, check_steps)
                    # the GEMM again next to each case, and the best rate of the run so
                    # far taken: a GEMM timed in a slow spell (41 GFLOP/s against 65-75
                    # in the rows beside it) would lower the floor and flatter lenum
                    floor_rate[dt] = max(floor_rate[dt],
                                         gemm_rate(dt, nthreads, size=gemm_size, repeats=3))
                    gemm = floor_rate[dt]
                    floor = gemm / step_flops(case.n, case.k)
                    row = dict(cell=cell, N=N, n=case.n, k=case.k, dtype=dt, B=B,
                               T=steps["lenum"], floor=floor, gemm=gemm, **rates)
                    rows.append(row)
                    print(_text_row(row, methods), flush=True)

    if a.markdown:
        print()
        print(markdown_table(rows, methods))
    if "torch" in methods:
        print()
        print(torch_target_summary(rows))
    if not a.no_startup:
        st = startup_times(cold=not a.smoke, prewarm=not a.smoke)
        print()
        for kind, v in st.items():
            print(f"fresh process, {kind} numba cache: " + ", ".join(
                f"{key} {val:.2f}" for key, val in v.items()), flush=True)
    return rows


def _text_row(r, methods):
    s = (f"{r['cell']:8s} N={r['N']:4d} n={r['n']:4d} k={r['k']:4d} {r['dtype']:7s} "
         f"B={r['B']:3d} T={r['T']:6d}  lenum {r['lenum']:10.0f}/s  numpy {r['numpy']:10.0f}/s")
    if "torch" in methods:
        s += f"  torch {r['torch']:10.0f}/s  lenum/torch {r['lenum'] / r['torch']:6.2f}"
    s += f"  lenum/numpy {r['lenum'] / r['numpy']:6.2f}  floor {r['floor']:10.0f}/s"
    s += f"  lenum/floor {r['lenum'] / r['floor']:5.2f}  (GEMM {r['gemm'] / 1e9:.1f} GFLOP/s)"
    return s


def _row_name(r):
    return f"{r['cell']} N={r['N']} k={r['k']} {r['dtype']}"


def torch_target_summary(rows, factor=5.0):
    """Which rows reach ``factor`` times the torch reference, and, for the others, the
    fraction of the floor that would take (``factor`` x torch / floor): above 1, no
    method doing the floor's flops at GEMM speed could reach it on this machine."""
    below = [r for r in rows if r["lenum"] < factor * r["torch"]]
    lines = [f"lenum >= {factor:g}x torch at {len(rows) - len(below)} of {len(rows)} rows"]
    for r in below:
        need = factor * r["torch"] / r["floor"]
        lines.append(f"  below: {_row_name(r)}: {r['lenum'] / r['torch']:.2f}x; "
                     f"{factor:g}x would need {need:.2f} of the floor (lenum at "
                     f"{r['lenum'] / r['floor']:.2f})" + ("; above the floor" if need > 1 else ""))
    return "\n".join(lines)


def markdown_table(rows, methods):
    """The rows as a markdown table (throughput in sequence-steps per second)."""
    has_torch = "torch" in methods
    head = "| cell | N | n | k | dtype | B | lenum | numpy |"
    sep = "|---|---|---|---|---|---|---|---|"
    if has_torch:
        head += " torch |"
        sep += "---|"
    head += " GEMM GFLOP/s | floor | lenum / floor |"
    sep += "---|---|---|"
    if has_torch:
        head += " torch / floor | lenum / torch |"
        sep += "---|---|"
    head += " lenum / numpy |"
    sep += "---|"
    lines = [head, sep]
    for r in rows:
        s = (f"| {r['cell']} | {r['N']} | {r['n']} | {r['k']} | {r['dtype']} | {r['B']} "
             f"| {r['lenum']:.0f} | {r['numpy']:.0f} |")
        if has_torch:
            s += f" {r['torch']:.0f} |"
        s += f" {r['gemm'] / 1e9:.1f} | {r['floor']:.0f} | {r['lenum'] / r['floor']:.2f} |"
        if has_torch:
            s += f" {r['torch'] / r['floor']:.2f} | {r['lenum'] / r['torch']:.2f} |"
        s += f" {r['lenum'] / r['numpy']:.2f} |"
        lines.append(s)
    return "\n".join(lines)


if __name__ == "__main__":
    main()
