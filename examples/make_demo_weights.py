"""Train the small networks bundled with lenum for ``lenum demo``.

Trains a one-layer LSTM and a two-layer GRU (N=32 units, d=3 inputs) with PyTorch on
the 3-bit flip-flop task (Sussillo & Barak, 2013): each input channel carries rare +1
or -1 pulses, and the matching output must hold the sign of the channel's latest
pulse.  Solving it needs stable memory, so the trained networks are instructive
subjects for a Lyapunov spectrum.  Writes, in lenum's formats:

    lenum/data/demo_lstm.h5     weights
    lenum/data/demo_gru.h5      weights
    lenum/data/demo_inputs.h5   8 held-out sequences of 500 steps

Runs on the CPU in well under a minute::

    pip install torch==2.13.0
    python examples/make_demo_weights.py [--out lenum/data] [--steps 400]

Only the recurrent weights are saved (the linear read-out is not part of the
dynamics).  The demo itself does not need PyTorch.
"""

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

import lenum  # noqa: E402
from lenum import io  # noqa: E402

SEED = 0
BITS = 3
HIDDEN = 32
PULSE_PROB = 0.05


def flip_flop(batch, steps, rng):
    """Inputs (batch, steps, 3) of sparse +-1 pulses and targets holding the last sign."""
    pulses = rng.random((batch, steps, BITS)) < PULSE_PROB
    signs = rng.choice([-1.0, 1.0], size=(batch, steps, BITS))
    x = np.where(pulses, signs, 0.0)
    y = np.zeros_like(x)
    state = np.zeros((batch, BITS))
    for t in range(steps):
        state = np.where(pulses[:, t], signs[:, t], state)
        y[:, t] = state
    return x.astype(np.float32), y.astype(np.float32)


class Model(torch.nn.Module):
    def __init__(self, kind, layers):
        super().__init__()
        rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
        self.rnn = rnn(BITS, HIDDEN, num_layers=layers, batch_first=True)
        self.readout = torch.nn.Linear(HIDDEN, BITS)

    def forward(self, x):
        return self.readout(self.rnn(x)[0])


def train(kind, layers, steps, rng):
    torch.manual_seed(SEED)
    model = Model(kind, layers)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    t0 = time.time()
    for _ in range(steps):
        x, y = flip_flop(32, 60, rng)
        loss = torch.nn.functional.mse_loss(model(torch.from_numpy(x)), torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    x, y = flip_flop(256, 200, np.random.default_rng(SEED + 1))
    with torch.no_grad():
        mse = float(torch.nn.functional.mse_loss(model(torch.from_numpy(x)), torch.from_numpy(y)))
    print(f"{kind}: {layers} layer(s), {steps} Adam steps, {time.time() - t0:.1f} s, "
          f"held-out MSE {mse:.4f}")
    return model, mse


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(here, os.pardir, "lenum", "data"))
    parser.add_argument("--steps", type=int, default=300, help="Adam steps per network")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # tiny matrices: threads cost more than they give
    rng = np.random.default_rng(SEED)

    made = (
        f"trained by examples/make_demo_weights.py (PyTorch {torch.__version__}, seed {SEED}, "
        f"{args.steps} Adam steps, lr 1e-2, batch 32 x 60 steps) on the 3-bit flip-flop "
        f"task: inputs are +-1 pulses with probability {PULSE_PROB} per step and channel; "
        f"targets hold each channel's latest pulse (Sussillo & Barak 2013)"
    )
    for kind, layers in (("lstm", 1), ("gru", 2)):
        model, mse = train(kind, layers, args.steps, rng)
        net = lenum.Network.from_state_dict(kind, model.rnn.state_dict())
        path = os.path.join(args.out, f"demo_{kind}.h5")
        io.save_network(net, path, overwrite=True,
                        attrs={"description": f"{kind.upper()} {made}",
                               "heldout_mse": mse, "task": "3-bit flip-flop"})
        print(f"wrote {os.path.relpath(path)} ({os.path.getsize(path)} bytes)")

    x, _ = flip_flop(8, 500, np.random.default_rng(SEED + 2))
    path = os.path.join(args.out, "demo_inputs.h5")
    io.save_inputs(x, path, overwrite=True, attrs={
        "description": f"8 sequences of 500 steps of the 3-bit flip-flop task (pulse "
                       f"probability {PULSE_PROB}, seed {SEED + 2}), made by "
                       f"examples/make_demo_weights.py",
        "task": "3-bit flip-flop"})
    print(f"wrote {os.path.relpath(path)} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
