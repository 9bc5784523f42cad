"""Where the cold compile of one spectrum goes: numba's compile time per function.

The cold compile target (everything a spectrum needs, under 30 s) is met on a quiet
machine, with less to spare for the gated cells' per-sequence kernels than the rest.
This script says which compiled functions take that time: it runs one spectrum in a
fresh process whose numba cache points at an empty folder, records numba's compile
events, and prints the functions by their own compile time (their callees' compiles
subtracted; a kernel's own time includes the machine code of everything inlined or
linked into it).

Usage::

    python benchmarks/compile_profile.py --cell gru --hidden 64 --k n --dtype float64
    python benchmarks/compile_profile.py --cell rnn_tanh --hidden 128 --top 10
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)


def profile(cell, N, k, dtype, B=16, T=3):
    """Run one spectrum in this process and return ``(seconds, rows)``: the process
    CPU time of the call and ``(own seconds, total seconds, name)`` per compiled
    function (wall clock, as numba's events stamp them), longest own time first.  In
    a process that already compiled the kernels, or with a warm cache, the rows are
    few or none."""
    from numba.core import event

    import lenum
    import reference

    listener = event.RecordingListener()
    event.register("numba:compile", listener)
    try:
        net = lenum.Network.from_state_dict(cell, reference.random_weights(cell, N, 16))
        x = np.random.default_rng(1).standard_normal((B, T, 16))
        t0 = time.process_time()
        lenum.lyapunov_spectrum(net, x, k=None if k == "n" else int(k), dtype=dtype)
        seconds = time.process_time() - t0
    finally:
        event.unregister("numba:compile", listener)
    # events nest: a function's compile contains those of the functions it calls
    stack, own, total = [], {}, {}
    for ts, ev in listener.buffer:
        if ev.is_start:
            d = ev.data.get("dispatcher")
            stack.append([d.py_func.__qualname__ if d is not None else "?", ts, 0.0])
            continue
        name, start, inner = stack.pop()
        took = ts - start
        own[name] = own.get(name, 0.0) + took - inner
        total[name] = total.get(name, 0.0) + took
        if stack:
            stack[-1][2] += took
    rows = sorted(((own[f], total[f], f) for f in own), reverse=True)
    return seconds, rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cell", default="gru", choices=["rnn_tanh", "lstm", "gru"])
    p.add_argument("--hidden", type=int, default=64, help="N, units per layer")
    p.add_argument("--k", default="n", help="number of exponents, or n for all")
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--top", type=int, default=15, help="rows to print")
    p.add_argument("--here", action="store_true",
                   help="profile in this process with the cache as it is (for tests)")
    a = p.parse_args(argv)
    if a.here:
        seconds, rows = profile(a.cell, a.hidden, a.k, a.dtype)
    else:
        with tempfile.TemporaryDirectory() as cache:
            code = (f"import json, sys; sys.path.insert(0, {HERE!r}); "
                    "import compile_profile as c; print(json.dumps(c.profile("
                    f"{a.cell!r}, {a.hidden}, {a.k!r}, {a.dtype!r})))")
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 env=dict(os.environ, NUMBA_CACHE_DIR=cache), check=True)
            seconds, rows = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{a.cell} N = {a.hidden}, k = {a.k}, {a.dtype}: spectrum call {seconds:.1f} s "
          f"(process CPU); compiles {sum(r[0] for r in rows):.1f} s (wall clock)")
    print("| own (s) | with callees (s) | function |")
    print("|---|---|---|")
    for own, total, name in rows[:a.top]:
        print(f"| {own:.2f} | {total:.2f} | `{name}` |")
    return seconds, rows


if __name__ == "__main__":
    main()
