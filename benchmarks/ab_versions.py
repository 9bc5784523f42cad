"""Two versions of lenum timed side by side in one process (an A/B run).

Separate benchmark runs on a shared machine move by more than a small change does.
This imports two copies of the package under different names, alternates their
``lyapunov_spectrum`` calls on identical inputs, and reports old time / new time (the
median of ``--repeats``) with the largest difference in the first 16 exponents.

Usage (two checkouts, e.g. ``git worktree add ../old REV``)::

    python benchmarks/ab_versions.py ../old .            # every cell, N, k, dtype
    python benchmarks/ab_versions.py ../old . --cells lstm --sizes 64,128 --dtypes float32
    python benchmarks/ab_versions.py ../old . --qr --sizes 96,128,256 --k n,32

With ``--qr`` the interleaved QR alone (``lenum.lanes.lanes_qr`` on one group of LANES
random n x k blocks) is timed instead of whole spectra, in thread CPU time, the two
versions taking turns; the speed-up is the median of the per-turn ratios.  The calls
run in a compiled loop that passes on whatever ``make_lanes`` returns, so the two
versions' workspaces may differ, and Python's call overhead (microseconds, as long as
a whole QR at n = 8) is not timed.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from functools import partial

import numba
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import reference  # noqa: E402
from turns import take_turns  # noqa: E402

# numba's kernels call SciPy's BLAS: load it before either copy limits BLAS threads
import scipy.linalg.cython_blas  # noqa: E402, F401


def load_versions(old_root, new_root, into):
    """Copy each checkout's ``lenum`` to ``into`` as ``lenum_old`` / ``lenum_new`` and
    import them (the package uses relative imports only, so a rename is enough)."""
    import importlib

    for name, root in (("lenum_old", old_root), ("lenum_new", new_root)):
        shutil.copytree(os.path.join(root, "lenum"), os.path.join(into, name),
                        ignore=shutil.ignore_patterns("__pycache__"))
    sys.path.insert(0, into)
    return importlib.import_module("lenum_old"), importlib.import_module("lenum_new")


def compare(mods, cell, N, k_spec, dtype, repeats, work, batch=None):
    w = reference.random_weights(cell, N, 16)
    n = 2 * N if cell == "lstm" else N
    k = n if k_spec == "n" else min(int(k_spec), n)
    B = batch or (64 if N == 32 else 16)
    T = max(2, int(work / (B * (2 * n * n * k + 4 * n * k * k))))
    x = np.random.default_rng(0).standard_normal((B, T, 16))
    nets = {m: mods[m].Network.from_state_dict(cell, w) for m in mods}
    out = {m: mods[m].lyapunov_spectrum(nets[m], x, k=k, dtype=dtype).per_sequence
           for m in mods}  # compiles, and the exponents to compare
    times = take_turns({m: partial(mods[m].lyapunov_spectrum, nets[m], x, k=k, dtype=dtype)
                        for m in mods}, repeats)
    speedup = np.median(times["old"]) / np.median(times["new"])
    lead = float(np.max(np.abs(out["old"][:, :16] - out["new"][:, :16])))
    return n, k, B, T, speedup, lead


@numba.njit
def _qr_loop(qr, A0, reps, *work):
    # work: make_lanes' tuple, whatever its version holds; work[0] is the block
    for _ in range(reps):
        work[0][:] = A0
        qr(*work)


def compare_qr(mods, n, k_spec, dtype, repeats):
    k = n if k_spec == "n" else min(int(k_spec), n)
    L = mods["old"].lanes.LANES
    A0 = np.random.default_rng(0).standard_normal((k, n, L)).astype(dtype)
    work = {m: mods[m].lanes.make_lanes(n, k, A0) for m in mods}
    reps = max(1, int(3e8 / (L * 4 * n * k * k)))

    def turn(m):
        t = time.thread_time()
        _qr_loop(mods[m].lanes.lanes_qr, A0, reps, *work[m])
        return time.thread_time() - t

    for m in mods:
        turn(m)  # compiles
    ratios = []
    for _ in range(repeats):
        times = {m: turn(m) for m in mods}
        ratios.append(times["old"] / times["new"])
    lead = float(np.max(np.abs(work["old"][1] - work["new"][1])))
    return k, float(np.median(ratios)), lead


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("old", help="checkout holding the old lenum/")
    p.add_argument("new", help="checkout holding the new lenum/")
    p.add_argument("--cells", default="rnn_tanh,lstm,gru")
    p.add_argument("--sizes", default="32,64,128,256")
    p.add_argument("--k", default="n,16")
    p.add_argument("--dtypes", default="float64,float32")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--work", type=float, default=3e7,
                   help="tangent flops per run (T = work / (B x flops per step), at least "
                        "2: raise it where T comes out small, or a run is milliseconds)")
    p.add_argument("--batch", type=int, default=None,
                   help="sequences B (default 16, 64 at N = 32)")
    p.add_argument("--lstm-512", action="store_true", help="also LSTM N = 256 (n = 512)")
    p.add_argument("--qr", action="store_true",
                   help="time lanes.lanes_qr alone, at n = each of --sizes")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        old, new = load_versions(args.old, args.new, tmp)
        mods = {"old": old, "new": new}
        if args.qr:
            print("| n | k | dtype | speed-up | largest log difference |")
            print("|---|---|---|---|---|")
            for dtype in args.dtypes.split(","):
                for n in (int(s) for s in args.sizes.split(",")):
                    for k in args.k.split(","):
                        kk, sp, lead = compare_qr(mods, n, k, dtype, args.repeats)
                        rows.append(sp)
                        print(f"| {n} | {kk} | {dtype} | {sp:.2f} | {lead:.0e} |", flush=True)
        else:
            print("| cell | N | n | k | dtype | B | T | speed-up | leading diff |")
            print("|---|---|---|---|---|---|---|---|---|")
            for dtype in args.dtypes.split(","):
                for cell in args.cells.split(","):
                    for N in (int(s) for s in args.sizes.split(",")):
                        if cell == "lstm" and N > 128 and not args.lstm_512:
                            continue  # n = 512: minutes per case
                        for k in args.k.split(","):
                            n, kk, B, T, sp, lead = compare(mods, cell, N, k, dtype,
                                                            args.repeats, args.work,
                                                            args.batch)
                            rows.append(sp)
                            print(f"| {cell} | {N} | {n} | {kk} | {dtype} | {B} | {T} | "
                                  f"{sp:.2f} | {lead:.0e} |", flush=True)
    print(f"\nmedian speed-up {np.median(rows):.2f} over {len(rows)} cases "
          f"({min(rows):.2f}-{max(rows):.2f})")
    return rows


if __name__ == "__main__":
    main()
