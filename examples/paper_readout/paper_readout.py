"""The Lyapunov spectrum as a readout of training stability, on a small scale.

Vogt, Puelma Touzel, Shlizerman & Lajoie (2020) compute the Lyapunov spectra of many
trained and untrained RNNs and find that the spectrum reads out how well a network
trains.  This script repeats the experiment in miniature, on the CPU, with PyTorch:

1. trains GRUs and LSTMs (N=32) on the 3-bit flip-flop task (Sussillo & Barak, 2013)
   from a grid of initial recurrent gains (weight_hh drawn with spectral radius about
   ``gain``) and seeds, saving a checkpoint collection per run (``epoch_000`` is the
   initialisation) with :func:`lenum.save_network`;
2. writes held-out input sequences and a manifest (one row per checkpoint, with the
   run's hyperparameters, the checkpoint's loss and the run's final loss);
3. sweeps the manifest with lenum on a local Dask cluster (serially without Dask);
4. prints a table and Spearman correlations of the spectrum's statistics (largest
   exponent, mean exponent, Kaplan-Yorke dimension) with the final loss, and saves a
   figure.

Run from anywhere (about 6 minutes on a busy 2-core machine)::

    pip install torch==2.13.0 matplotlib "lenum[dask]"
    python examples/paper_readout/paper_readout.py [--out DIR] [--workers 2]

Outputs go to ``DIR`` (default: ``output/`` beside this script): ``runs/*.h5``
checkpoints, ``inputs.h5``, ``manifest.csv``, ``spectra/`` (one result file per
checkpoint and ``summary.csv``), ``readout.png``.  Rerunning skips finished training
runs and finished spectra.
"""

import argparse
import csv
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, os.pardir, os.pardir))

import lenum  # noqa: E402
from lenum import io  # noqa: E402
from lenum.sweep import sweep  # noqa: E402

CELLS = ("gru", "lstm")
GAINS = (0.5, 1.0, 1.5, 2.0, 3.0)
SEEDS = (0, 1)
HIDDEN = 32
BITS = 3
PULSE_PROB = 0.05
TRAIN_T = 60
BATCH = 32
EPOCHS = 10
STEPS_PER_EPOCH = 25
CHECKPOINT_EVERY = 2
LR = 3e-3
SPECTRUM_B, SPECTRUM_T, WARMUP = 8, 300, 50


# --------------------------------------------------------------------------- task


def flip_flop(rng, batch, steps):
    """3-bit flip-flop: rare +-1 pulses in; the sign of each channel's last pulse out."""
    pulses = rng.random((batch, steps, BITS)) < PULSE_PROB
    signs = np.where(rng.random((batch, steps, BITS)) < 0.5, -1.0, 1.0)
    x = pulses * signs
    y = np.zeros_like(x)
    state = np.zeros((batch, BITS))
    for t in range(steps):
        state = np.where(pulses[:, t], signs[:, t], state)
        y[:, t] = state
    return x.astype(np.float32), y.astype(np.float32)


# --------------------------------------------------------------------------- training


def make_model(torch, cell, gain, seed):
    torch.manual_seed(seed)
    rnn_class = {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell]
    rnn = rnn_class(BITS, HIDDEN, batch_first=True)
    gates = {"gru": 3, "lstm": 4}[cell]
    with torch.no_grad():
        # each gate block gets i.i.d. N(0, gain^2 / N) entries: spectral radius ~ gain
        w = torch.randn(gates * HIDDEN, HIDDEN) * gain / np.sqrt(HIDDEN)
        rnn.weight_hh_l0.copy_(w)
    readout = torch.nn.Linear(HIDDEN, BITS)
    return rnn, readout


def loss_of(torch, rnn, readout, x, y):
    h, _ = rnn(x)
    return torch.mean((readout(h) - y) ** 2)


def save_checkpoint(rnn, cell, path, epoch, loss):
    state = {k: v.detach().numpy().astype(np.float64) for k, v in rnn.state_dict().items()}
    net = lenum.Network.from_state_dict(cell, state)
    io.save_network(net, f"{path}:/epoch_{epoch:03d}", overwrite=True,
                    attrs={"epoch": epoch, "loss": loss})


def train_run(torch, cell, gain, seed, path, x_val, y_val):
    """Train one network; return the validation loss at every checkpoint epoch."""
    rnn, readout = make_model(torch, cell, gain, seed)
    opt = torch.optim.Adam(list(rnn.parameters()) + list(readout.parameters()), lr=LR)
    rng = np.random.default_rng(1000 + seed)
    losses = {}
    tmp = path + ".part"
    if os.path.exists(tmp):
        os.unlink(tmp)

    def checkpoint(epoch):
        with torch.no_grad():
            loss = float(loss_of(torch, rnn, readout, x_val, y_val))
        # a NaN loss (a diverged run) is a result; the weights then hold NaN and are
        # not saved, so the sweep records that row as failed
        losses[epoch] = loss
        if all(bool(torch.isfinite(p).all()) for p in rnn.parameters()):
            save_checkpoint(rnn, cell, tmp, epoch, loss)

    checkpoint(0)
    for epoch in range(1, EPOCHS + 1):
        for _ in range(STEPS_PER_EPOCH):
            x, y = (torch.from_numpy(a) for a in flip_flop(rng, BATCH, TRAIN_T))
            loss = loss_of(torch, rnn, readout, x, y)
            opt.zero_grad()
            loss.backward()
            # no gradient clipping: how the initialisation lets training go is the point
            opt.step()
        if epoch % CHECKPOINT_EVERY == 0:
            checkpoint(epoch)
    # the finished collection appears under its name only when every checkpoint is in
    os.replace(tmp, path)
    return losses


def read_losses(path):
    import h5py

    with h5py.File(path, "r") as f:
        return {int(f[g].attrs["epoch"]): float(f[g].attrs["loss"]) for g in f}


# --------------------------------------------------------------------------- analysis


def spearman(a, b):
    from scipy.stats import spearmanr

    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    # a constant statistic (every KY dimension 0) has no rank order: undefined
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return float("nan"), float("nan")
    r = spearmanr(a[ok], b[ok])
    return float(r.statistic), float(r.pvalue)


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats = [("max_exponent", "largest exponent (nats/step)"),
             ("mean_exponent", "mean exponent (nats/step)"),
             ("kaplan_yorke_dimension", "Kaplan-Yorke dimension")]
    stages = [("init", "at initialisation (epoch 0)"),
              ("final", f"after training (epoch {EPOCHS})")]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5), constrained_layout=True)
    cmap = plt.get_cmap("viridis")
    colours = {g: cmap(i / (len(GAINS) - 1)) for i, g in enumerate(GAINS)}
    markers = {"gru": "o", "lstm": "s"}
    for i, (stage, stage_label) in enumerate(stages):
        for j, (key, label) in enumerate(stats):
            ax = axes[i, j]
            xs, ys = [], []
            for r in rows:
                value = r[stage].get(key) if r[stage] else None
                if value is None or not np.isfinite(value):
                    continue
                ax.scatter(value, r["final_loss"], color=colours[r["gain"]],
                           marker=markers[r["cell"]], s=55, edgecolor="black", linewidth=0.5)
                xs.append(value)
                ys.append(r["final_loss"])
            rho, p = spearman(xs, ys)
            ax.set_yscale("log")
            ax.set_xlabel(label)
            ax.set_ylabel("final validation loss (MSE)")
            if np.isfinite(rho):
                corr = f"Spearman rho = {rho:+.2f} (p = {p:.2g}, n = {len(xs)})"
            else:
                corr = f"Spearman rho undefined (all values equal, n = {len(xs)})"
            ax.set_title(f"{stage_label}\n{corr}", fontsize=10)
            ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], marker="o", color=colours[g], linestyle="", markersize=8,
                          markeredgecolor="black", label=f"gain {g:g}") for g in GAINS]
    handles += [plt.Line2D([], [], marker=m, color="grey", linestyle="", markersize=8,
                           label=c.upper()) for c, m in markers.items()]
    fig.legend(handles=handles, loc="outside right center", frameon=False)
    fig.suptitle("Lyapunov spectrum vs final loss: 3-bit flip-flop, N=32 GRUs and LSTMs, "
                 "weight_hh gain x seed", fontsize=12)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(HERE, "output"),
                        help="output folder (default: output/ beside this script)")
    parser.add_argument("--workers", type=int, default=None,
                        help="Dask workers for the sweep (default: the cores)")
    parser.add_argument("--no-dask", action="store_true", help="sweep in this process")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)  # small GEMMs: threads cost more than they give
    out = args.out
    os.makedirs(os.path.join(out, "runs"), exist_ok=True)
    t_start = time.perf_counter()

    # held-out data: validation set for the loss, and the spectrum's input sequences
    rng = np.random.default_rng(12345)
    x_val, y_val = (torch.from_numpy(a) for a in flip_flop(rng, 128, TRAIN_T * 2))
    inputs_path = os.path.join(out, "inputs.h5")
    if not os.path.exists(inputs_path):
        x_spec, _ = flip_flop(np.random.default_rng(54321), SPECTRUM_B, SPECTRUM_T)
        io.save_inputs(x_spec.astype(np.float64), inputs_path)

    # 1. training
    manifest_rows = []
    for cell in CELLS:
        for gain in GAINS:
            for seed in SEEDS:
                name = f"{cell}_gain{gain:g}_seed{seed}"
                path = os.path.join(out, "runs", name + ".h5")
                t0 = time.perf_counter()
                if os.path.exists(path):
                    losses = read_losses(path)
                else:
                    losses = train_run(torch, cell, gain, seed, path, x_val, y_val)
                final = losses[EPOCHS]
                print(f"trained {name:<22} loss {losses[0]:.4f} -> {final:.4f} "
                      f"({time.perf_counter() - t0:.1f} s)", flush=True)
                for epoch in sorted(losses):
                    manifest_rows.append([f"runs/{name}.h5:/epoch_{epoch:03d}", "inputs.h5",
                                          cell, gain, seed, epoch, repr(losses[epoch]),
                                          repr(final)])
    t_train = time.perf_counter() - t_start

    # 2. manifest: paths relative to its folder
    manifest = os.path.join(out, "manifest.csv")
    with open(manifest, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["weights", "inputs", "cell", "gain", "seed", "epoch", "loss",
                         "final_loss"])
        writer.writerows(manifest_rows)

    # 3. the sweep
    t0 = time.perf_counter()
    summary = sweep(manifest, os.path.join(out, "spectra"), warmup=WARMUP,
                    scheduler="serial" if args.no_dask else None, workers=args.workers,
                    progress=True)
    t_sweep = time.perf_counter() - t0
    print(f"\nswept {len(summary)} checkpoints in {t_sweep:.1f} s "
          f"({summary.computed} computed, {summary.skipped} already done, "
          f"{len(summary.failed)} failed)")
    for row in summary.failed:
        print(f"  failed: {row['weights']}: {row['error']}")

    # 4. readout: one row per training run, spectrum at initialisation and at the end
    runs = {}
    for row in summary:
        key = (row["cell"], float(row["gain"]), int(row["seed"]))
        run = runs.setdefault(key, {"cell": key[0], "gain": key[1], "seed": key[2],
                                    "final_loss": float(row["final_loss"]),
                                    "init": None, "final": None})
        stats = row if row["status"] == "ok" else None
        if int(row["epoch"]) == 0:
            run["init"] = stats
        elif int(row["epoch"]) == EPOCHS:
            run["final"] = stats
    rows = list(runs.values())

    def f(v, width=8, digits=3):
        return f"{'-':>{width}}" if v is None else f"{v:>{width}.{digits}f}"

    print(f"\n{'cell':<5} {'gain':>4} {'seed':>4} {'final loss':>10} | "
          f"{'init: max':>9} {'mean':>8} {'KY':>6} | {'final: max':>10} {'mean':>8} {'KY':>6}")
    for r in sorted(rows, key=lambda r: (r["cell"], r["gain"], r["seed"])):
        i, e = r["init"] or {}, r["final"] or {}
        print(f"{r['cell']:<5} {r['gain']:>4g} {r['seed']:>4} {r['final_loss']:>10.4f} | "
              f"{f(i.get('max_exponent'), 9)} {f(i.get('mean_exponent'))} "
              f"{f(i.get('kaplan_yorke_dimension'), 6, 2)} | "
              f"{f(e.get('max_exponent'), 10)} {f(e.get('mean_exponent'))} "
              f"{f(e.get('kaplan_yorke_dimension'), 6, 2)}")

    print("\nSpearman rank correlation with the final loss "
          f"(n = {len(rows)} runs; both cells pooled, then per cell):")
    for stage in ("init", "final"):
        for key in ("max_exponent", "mean_exponent", "kaplan_yorke_dimension"):
            parts = []
            for cells in (CELLS,) + tuple((c,) for c in CELLS):
                sel = [r for r in rows if r["cell"] in cells and r[stage]]
                rho, p = spearman([r[stage][key] for r in sel], [r["final_loss"] for r in sel])
                if np.isfinite(rho):
                    parts.append(f"{'+'.join(cells):<8} rho {rho:+.2f} (p {p:.2g})")
                else:
                    parts.append(f"{'+'.join(cells):<8} rho undefined (constant)")
            print(f"  {stage:<5} {key:<23} " + "   ".join(parts))
    rho, p = spearman([r["gain"] for r in rows], [r["final_loss"] for r in rows])
    print(f"  (for scale: the gain itself, rho {rho:+.2f} (p {p:.2g}))")

    figure = os.path.join(out, "readout.png")
    plot(rows, figure)
    print(f"\nfigure: {figure}")
    print(f"time: training {t_train:.0f} s, sweep {t_sweep:.0f} s, "
          f"total {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
