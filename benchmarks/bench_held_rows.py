"""Holding bases as reflectors beside other threads, against forming Q.

At k = n, a thread whose sequences do not fill an interleaved group either holds each
basis as the reflectors of its last QR and applies them to the next Jacobian (LAPACK's
ormqr), or forms Q (geqrf + orgqr) and multiplies by it.  A thread alone holds them at
every size; beside other threads up to ``cpu.HELD_BESIDE_MAX_ROWS`` rows (up to
``cpu.HELD_MANY_MAX_ROWS`` from ``cpu.HELD_MANY_THREADS`` threads), because on some
machines LAPACK's blocked code did not run on several threads at once (RESULTS.md).
This times both ways for one sequence per thread on every thread (B = threads), at
several state sizes, in one process, the two ways taking turns, after a check that
their exponents agree (``bench_cpu.measure``).

Usage::

    python benchmarks/bench_held_rows.py                      # rnn_tanh, n = 64..128
    python benchmarks/bench_held_rows.py --cells rnn_tanh,gru --sizes 64,96,128
    python benchmarks/bench_held_rows.py --warm               # compile only, no timing
"""

import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

import reference  # noqa: E402
from bench_cpu import measure  # noqa: E402  (also loads SciPy's BLAS before lenum's engine)

import lenum  # noqa: E402
from lenum import cpu  # noqa: E402

INPUT_SIZE = 16
# the limits of cpu.held_basis that make each way: held at every size beside other
# threads, or never
WAYS = {"held": {"HELD_BESIDE_MAX_ROWS": 1 << 30, "HELD_MANY_THREADS": 2,
                 "HELD_MANY_MAX_ROWS": 1 << 30},
        "formed": {"HELD_BESIDE_MAX_ROWS": 0, "HELD_MANY_THREADS": 1 << 30,
                   "HELD_MANY_MAX_ROWS": 0}}


def _spectrum(net, x, dtype, way):
    """Per-sequence exponents with the bases held (``way`` = "held") or Q formed."""
    saved = {name: getattr(cpu, name) for name in WAYS[way]}
    for name, value in WAYS[way].items():
        setattr(cpu, name, value)
    try:
        return lenum.lyapunov_spectrum(net, x, dtype=dtype).per_sequence
    finally:
        for name, value in saved.items():
            setattr(cpu, name, value)


class Case:
    """One cell, size and dtype, run either way (``bench_cpu.measure``'s methods)."""

    def __init__(self, cell, N, dtype, B, rng):
        self.cell, self.N, self.dtype, self.B, self.rng = cell, N, dtype, B, rng
        self.net = lenum.Network.from_state_dict(
            cell, reference.random_weights(cell, N, INPUT_SIZE))
        self.k = self.net.state_size

    def inputs(self, T):
        return self.rng.standard_normal((self.B, T, INPUT_SIZE))

    def run(self, way, x):
        return _spectrum(self.net, x, self.dtype, way)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", default="rnn_tanh")
    p.add_argument("--sizes", default="64,80,96,112,128", help="hidden sizes N")
    p.add_argument("--dtype", default="float64")
    p.add_argument("--batch", type=int, default=None, help="sequences (default: threads)")
    p.add_argument("--target", type=float, default=0.5, help="seconds per timed run")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warm", action="store_true", help="compile the kernels and stop")
    a = p.parse_args(argv)
    threads = cpu.num_threads()
    B = a.batch or threads
    rng = np.random.default_rng(1)
    if a.warm:
        for cell in a.cells.split(","):
            net = lenum.Network.from_state_dict(
                cell, reference.random_weights(cell, 8, INPUT_SIZE))
            for dt in a.dtype.split(","):
                for way in WAYS:
                    _spectrum(net, rng.standard_normal((2, 2, INPUT_SIZE)), dt, way)
        return []
    print(f"threads {threads}, B = {B}, k = n, HELD_BESIDE_MAX_ROWS = "
          f"{cpu.HELD_BESIDE_MAX_ROWS}, HELD_MANY_THREADS = {cpu.HELD_MANY_THREADS}")
    print("| cell | N | n | dtype | T (held) | held /s | formed /s | held / formed | max diff |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = []
    for dt in a.dtype.split(","):
        for cell in a.cells.split(","):
            for N in (int(s) for s in a.sizes.split(",")):
                case = Case(cell, N, dt, B, rng)
                for way in WAYS:  # compile both, or load them: the check run is timed
                    case.run(way, case.inputs(1))
                # float32: the tolerance of bench_cpu.py
                rates, steps, errors = measure(case, list(WAYS), a.target, a.repeats,
                                               check_steps=4,
                                               tol=1e-10 if dt == "float64" else 5e-2)
                rows.append((cell, N, case.k, dt, rates))
                print(f"| {cell} | {N} | {case.k} | {dt} | {steps['held']} | "
                      f"{rates['held']:.0f} | {rates['formed']:.0f} | "
                      f"{rates['held'] / rates['formed']:.2f} | {errors['formed']:.1e} |",
                      flush=True)
    return rows


if __name__ == "__main__":
    main()
