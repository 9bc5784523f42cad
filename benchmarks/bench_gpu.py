"""GPU throughput of lenum against its CPU path and a PyTorch reference on the same GPU.

For every cell, hidden size N, batch size B and number of exponents k (k = n and
k = 32), one layer, float32, on identical weights, inputs and initial basis:

* lenum on the GPU (:func:`lenum.lyapunov_spectrum` with ``device="gpu"``, one thread
  block per sequence, the whole batch in one chunk),
* lenum on the CPU (numba, all cores), only up to ``--cpu-max-n`` and for fewer steps,
* where torch with CUDA is installed, the PyTorch reference approach on the same GPU:
  dense Jacobians of every sequence by ``torch.func.vmap(torch.func.jacrev(step))``,
  ``Z = J @ Q`` as one batched matmul, ``torch.linalg.qr`` on all blocks, float32, the
  log-sums in float64.

Throughput is in sequence-steps per second (B x T / seconds) after a warm-up run that
compiles the kernels.  The number of steps shrinks on large sizes so that each timed
run does a bounded amount of work (``--work``, in tangent flops).  Before each size is
timed, lenum's GPU exponents are checked against its CPU path on a few steps (float64)
where the CPU path is run (column ``gpu-cpu f64``); ``gpu-torch`` is the largest
difference between lenum's and the PyTorch reference's exponents on the timed run
(float32: round-off over T steps, about 1e-4 or less on well-separated spectra).

Usage::

    python benchmarks/bench_gpu.py                       # the full table (a GPU)
    python benchmarks/bench_gpu.py --cells lstm --sizes 256,512 --batch 64
    python benchmarks/bench_gpu.py --smoke               # tiny sizes; works in the
                                                         # CUDA simulator (seconds)
    python benchmarks/bench_gpu.py --output results.md   # also write the table
"""

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

import lenum  # noqa: E402
from lenum.engine import default_basis  # noqa: E402

CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru")
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}


def random_network(cell, N, d, seed=0):
    """One-layer network; recurrent gain 1.5 (vanilla cells chaotic, spectra spread)."""
    rng = np.random.default_rng(seed)
    G = GATES[cell]
    gain = 0.9 if cell == "rnn_relu" else 1.5  # relu: bounded with a negative bias
    w = {
        "weight_ih_l0": rng.standard_normal((G * N, d)) / np.sqrt(d),
        "weight_hh_l0": gain * rng.standard_normal((G * N, N)) / np.sqrt(N),
        "bias_ih_l0": 0.1 * rng.standard_normal(G * N),
        "bias_hh_l0": 0.1 * rng.standard_normal(G * N),
    }
    if cell == "rnn_relu":
        w["bias_ih_l0"] = np.abs(w["bias_ih_l0"]) + 0.5  # most units active
    return lenum.Network.from_state_dict(cell, w)


def tangent_flops(cell, N, k):
    """Flops of one step's J @ Q per sequence (the dominant term)."""
    n = 2 * N if cell == "lstm" else N
    return 2.0 * n * N * k


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def run_lenum(net, x, k, device, dtype):
    B = x.shape[0]
    return lenum.lyapunov_spectrum(net, x, k=k, device=device, dtype=dtype, batch_chunk=B)


# --------------------------------------------------------------------------- torch


def _torch_cuda():
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def torch_spectrum(torch, net, x, q0, device="cuda"):
    """Per-sequence exponents (B, k) by the PyTorch reference approach (on the GPU)."""
    dev = torch.device(device)
    f32 = torch.float32
    sd = net.state_dict()
    W_ih = torch.as_tensor(sd["weight_ih_l0"], dtype=f32, device=dev)
    W_hh = torch.as_tensor(sd["weight_hh_l0"], dtype=f32, device=dev)
    b = torch.as_tensor(sd["bias_ih_l0"] + 0.0, dtype=f32, device=dev)
    bh = torch.as_tensor(sd["bias_hh_l0"] + 0.0, dtype=f32, device=dev)
    N = net.hidden_size
    cell = net.cell

    def step(s, xt):
        gi = W_ih @ xt + b
        if cell == "lstm":
            h, c = s[:N], s[N:]
            a = gi + W_hh @ h + bh
            i, f, g, o = (torch.sigmoid(a[:N]), torch.sigmoid(a[N:2 * N]),
                          torch.tanh(a[2 * N:3 * N]), torch.sigmoid(a[3 * N:]))
            c2 = f * c + i * g
            return torch.cat([o * torch.tanh(c2), c2])
        gh = W_hh @ s + bh
        if cell == "gru":
            r = torch.sigmoid(gi[:N] + gh[:N])
            z = torch.sigmoid(gi[N:2 * N] + gh[N:2 * N])
            nn_ = torch.tanh(gi[2 * N:] + r * gh[2 * N:])
            return (1 - z) * nn_ + z * s
        a = gi + gh
        return torch.tanh(a) if cell == "rnn_tanh" else torch.relu(a)

    jac = torch.func.vmap(torch.func.jacrev(step))
    fwd = torch.func.vmap(step)
    X = torch.as_tensor(x, dtype=f32, device=dev)
    B, T, _ = X.shape
    S = torch.zeros((B, net.state_size), dtype=f32, device=dev)
    Q = torch.as_tensor(q0, dtype=f32, device=dev).expand(B, -1, -1).contiguous()
    logsum = torch.zeros((B, Q.shape[2]), dtype=torch.float64, device=dev)
    with torch.no_grad():
        for t in range(T):
            J = jac(S, X[:, t])
            S = fwd(S, X[:, t])
            Qn, R = torch.linalg.qr(torch.bmm(J, Q))
            d = torch.diagonal(R, dim1=-2, dim2=-1)
            Q = Qn * torch.where(d < 0, -1.0, 1.0)[:, None, :]
            logsum += torch.log(torch.abs(d.double()))
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return (logsum / T).cpu().numpy()


# --------------------------------------------------------------------------- table


def _fmt(v, width=11):
    if v is None:
        return "-".rjust(width)
    if isinstance(v, float):
        return f"{v:{width}.3g}"
    return str(v).rjust(width)


COLUMNS = [("cell", "cell"), ("N", "N"), ("n", "n"), ("B", "B"), ("k", "k"),
           ("steps", "T gpu"), ("gpu", "gpu seq-steps/s"), ("cpu", "cpu seq-steps/s"),
           ("torch", "torch seq-steps/s"), ("speedup_cpu", "gpu/cpu"),
           ("speedup_torch", "gpu/torch"), ("max_diff", "gpu-cpu f64"),
           ("torch_diff", "gpu-torch")]


def print_table(rows, file=sys.stdout):
    print(" ".join(_fmt(title, 11) for _, title in COLUMNS), file=file)
    for r in rows:
        print(" ".join(_fmt(r.get(key)) for key, _ in COLUMNS), file=file)
    file.flush()


def _diff(a, b):
    """Largest difference; equal infinities (a dead relu unit) count as agreement."""
    with np.errstate(invalid="ignore"):
        return float(np.max(np.where(a == b, 0.0, np.abs(a - b))))


def bench_one(cell, N, B, k_spec, args, torch):
    d = 8 if not args.smoke else 2
    net = random_network(cell, N, d)
    n = net.state_size
    k = n if k_spec == "n" else min(int(k_spec), n)
    rng = np.random.default_rng(1)
    row = {"cell": cell, "N": N, "n": n, "B": B, "k": k}
    flops = tangent_flops(cell, N, k) * B
    T = int(max(2, min(args.steps, args.work / flops)))
    row["steps"] = T
    x = rng.standard_normal((B, T, d))
    cpu_ok = N <= args.cpu_max_n
    if cpu_ok:
        # correctness on a few steps in float64, before anything is timed
        xc = x[:, :min(T, 4)]
        g = run_lenum(net, xc, k, "gpu", "float64").per_sequence
        c = run_lenum(net, xc, k, "cpu", "float64").per_sequence
        row["max_diff"] = _diff(g, c)
    run_lenum(net, x[:, :2], k, "gpu", args.dtype)  # compile / warm up
    res, dt = _timed(lambda: run_lenum(net, x, k, "gpu", args.dtype))
    row["gpu"] = B * T / dt
    if cpu_ok:
        Tc = max(2, min(T, args.cpu_steps))
        run_lenum(net, x[:, :2], k, "cpu", args.dtype)
        _, dt = _timed(lambda: run_lenum(net, x[:, :Tc], k, "cpu", args.dtype))
        row["cpu"] = B * Tc / dt
        row["speedup_cpu"] = row["gpu"] / row["cpu"]
    if torch is not None and B * n * n * 4 * 3 < args.torch_max_bytes:
        q0 = default_basis(n, k)
        try:
            torch_spectrum(torch, net, x[:, :2], q0)  # warm up
            ref, dt = _timed(lambda: torch_spectrum(torch, net, x, q0))
        except torch.cuda.OutOfMemoryError:
            # the dense (B, n, n) Jacobians and jacrev's intermediates do not fit
            torch.cuda.empty_cache()
        else:
            row["torch"] = B * T / dt
            row["torch_diff"] = _diff(res.per_sequence, ref)
            row["speedup_torch"] = row["gpu"] / row["torch"]
    return row


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", default=",".join(CELLS))
    p.add_argument("--sizes", default="128,256,512,1024")
    p.add_argument("--batch", default="64,256")
    p.add_argument("--k", default="n,32", help="comma list of k values; 'n' for all")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--steps", type=int, default=128, help="most timed steps on the GPU")
    p.add_argument("--work", type=float, default=4e12,
                   help="tangent flops per timed GPU run (fewer steps on large sizes)")
    p.add_argument("--cpu-max-n", type=int, default=256, help="largest N run on the CPU")
    p.add_argument("--cpu-steps", type=int, default=4)
    p.add_argument("--torch-max-bytes", type=float, default=16e9,
                   help="skip the torch reference where its Jacobians need more memory")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes, float64, every cell; runs in the CUDA simulator")
    p.add_argument("--output", help="also write the table (and JSON rows) to this file")
    args = p.parse_args(argv)
    if args.smoke:
        args.sizes, args.batch, args.k = "2", "1", "n"
        args.steps, args.cpu_steps, args.dtype = 3, 3, "float64"
        args.no_torch = True
    return args


def main(argv=None):
    """Run the benchmark, print the table and return the rows (dicts); None when the
    GPU is not usable."""
    args = parse(argv)
    from lenum import gpu

    reason = gpu.unavailable_reason()
    if reason is not None:
        print(f"GPU not usable: {reason}", file=sys.stderr)
        return None
    torch = None if args.no_torch else _torch_cuda()
    rows = []
    print(f"lenum GPU benchmark: dtype {args.dtype}, torch reference "
          f"{'on' if torch is not None else 'off'}")
    print_table([])
    for cell in args.cells.split(","):
        for N in (int(s) for s in args.sizes.split(",")):
            for B in (int(s) for s in args.batch.split(",")):
                for k in args.k.split(","):
                    row = bench_one(cell, N, B, k, args, torch)
                    rows.append(row)
                    print(" ".join(_fmt(row.get(key)) for key, _ in COLUMNS), flush=True)
    if args.output:
        with open(args.output, "w") as f:
            print_table(rows, file=f)
            for row in rows:
                print(json.dumps(row), file=f)
    return rows


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
