"""Where does ``qr_every > 1`` stay accurate?  Speed and error against qr_every = 1.

A GRU (N = 64, full spectrum) driven by random inputs: for each interval M the
spectrum is computed with ``qr_every=M`` and compared with ``qr_every=1`` on the same
data.  The spread of the exponents, (lambda_1 - lambda_k) * M, is printed next to the
error: without re-orthonormalisation the columns of the basis grow apart by that many
nats, and once it nears -log(eps) (36 in float64, 16 in float32) the small exponents
are lost to round-off.

    python benchmarks/bench_qr_every.py [--N 64] [--T 2000]
"""

import argparse
import time

import numpy as np

import lenum


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--N", type=int, default=64)
    ap.add_argument("--T", type=int, default=2000)
    ap.add_argument("--B", type=int, default=4)
    ap.add_argument("--gain", type=float, default=1.5)
    ap.add_argument("--intervals", default="1,2,3,5,10,20",
                    help="qr_every values, comma separated (the first is the reference)")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    N = args.N
    sd = {"weight_ih_l0": rng.standard_normal((3 * N, 8)),
          "weight_hh_l0": args.gain * rng.standard_normal((3 * N, N)) / np.sqrt(N)}
    net = lenum.Network.from_state_dict("gru", sd)
    x = rng.standard_normal((args.B, args.T, 8))
    warmup = min(100, args.T // 4)
    print(f"gru N={N}, B={args.B}, T={args.T}, k=n, warmup={warmup}")
    print("| dtype | qr_every | spread x M (nats) | max abs error | error of the top 8 | "
          "time / time(M=1) |")
    print("|---|---|---|---|---|---|")
    rows = []
    for dtype in ("float64", "float32"):
        ref = None
        for M in (int(m) for m in args.intervals.split(",")):
            lenum.lyapunov_spectrum(net, x[:, :20], qr_every=M, dtype=dtype)  # compile
            t = time.perf_counter()
            res = lenum.lyapunov_spectrum(net, x, warmup=warmup, qr_every=M, dtype=dtype)
            dt = time.perf_counter() - t
            if ref is None:
                ref, t1 = res.exponents, dt
            spread = (ref[0] - ref[-1]) * M
            err = np.abs(res.exponents - ref)
            rows.append({"dtype": dtype, "qr_every": M, "error": float(err.max()),
                         "top_error": float(err[:8].max())})
            print(f"| {dtype} | {M} | {spread:.1f} | {err.max():.2e} | {err[:8].max():.2e} | "
                  f"{dt / t1:.2f} |")
    return rows


if __name__ == "__main__":
    main()
