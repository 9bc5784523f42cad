"""How far float32 full spectra on the GPU are from float64, for lenum and PyTorch.

For a few chaotic one-layer networks (those of ``bench_gpu.py``), B = 64 sequences of
T = 32 steps, k = n: lenum on the GPU in float64 is the reference; lenum in float32 and
the PyTorch reference approach (float32, on the same GPU) are compared with it, over all
exponents and over the leading 32.  Also prints lenum's GPU throughput in both dtypes.

Usage (a machine with a GPU and torch with CUDA)::

    python benchmarks/gpu_float32_accuracy.py
    python benchmarks/gpu_float32_accuracy.py --smoke   # tiny network, torch on the
                                                        # CPU; works in the CUDA simulator
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_gpu as bg  # noqa: E402

from lenum.engine import default_basis  # noqa: E402

CASES = [("rnn_tanh", 256), ("lstm", 128), ("rnn_tanh", 512)]


def main(argv=None):
    """Print one line per network; return the rows (dicts), or None without torch."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args(argv)
    if args.smoke:
        try:
            import torch
        except ImportError:
            torch = None
        cases, (B, T, d), torch_device = [("rnn_tanh", 3)], (2, 3, 2), "cpu"
    else:
        torch = bg._torch_cuda()
        cases, (B, T, d), torch_device = CASES, (64, 32, 8), "cuda"
    if torch is None:
        print("needs torch" + ("" if args.smoke else " with CUDA"), file=sys.stderr)
        return None
    rows = []
    for cell, N in cases:
        net = bg.random_network(cell, N, d)
        n = net.state_size
        x = np.random.default_rng(1).standard_normal((B, T, d))
        res, rate = {}, {}
        for dtype in ("float64", "float32"):
            bg.run_lenum(net, x[:, :2], n, "gpu", dtype)  # compile / warm up
            t = time.perf_counter()
            res[dtype] = bg.run_lenum(net, x, n, "gpu", dtype).per_sequence
            rate[dtype] = B * T / (time.perf_counter() - t)
        ref = res["float64"]
        ours = res["float32"]
        theirs = bg.torch_spectrum(torch, net, x, default_basis(n, n), device=torch_device)

        def err(a, cols=slice(None)):
            return float(np.max(np.abs(a[:, cols] - ref[:, cols])))

        worst = int(np.argmax(np.max(np.abs(ours - ref), axis=0)))
        rows.append({"cell": cell, "N": N, "lenum_f32": err(ours), "torch_f32": err(theirs),
                     "lenum_f32_top": err(ours, slice(0, 32)),
                     "torch_f32_top": err(theirs, slice(0, 32)), "worst": worst})
        print(f"{cell} N={N} n={n}: f64 exponents {ref.max():.3g} .. {ref.min():.3g} | "
              f"lenum f32-f64 all {err(ours):.3g} top32 {err(ours, slice(0, 32)):.3g} | "
              f"torch f32-f64 all {err(theirs):.3g} top32 {err(theirs, slice(0, 32)):.3g} | "
              f"lenum's worst exponent index {worst} | "
              f"lenum gpu seq-steps/s f64 {rate['float64']:.0f} f32 {rate['float32']:.0f}",
              flush=True)
    return rows


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
