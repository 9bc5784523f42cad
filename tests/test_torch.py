"""lenum against PyTorch's own nn.RNN / nn.LSTM / nn.GRU (float64, 2 layers, biases).

* Forward: iterating ``lenum.step`` over a sequence reproduces torch's per-step output
  of the top layer and the final (h_n, c_n), to 1e-12 (same float64 expressions,
  different summation order; errors do not grow for these contracting networks).
* Jacobian: ``torch.autograd.functional.jacobian`` of one step of the nn module, as a
  map of the flat state [h_l0, (c_l0), h_l1, (c_l1)] to the new flat state, equals
  ``lenum.jacobian`` to 1e-12 (autograd is exact up to round-off, unlike finite
  differences).
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lenum  # noqa: E402

N, D, L, B, T = 4, 3, 2, 3, 25

MODULES = {
    "rnn_tanh": lambda: torch.nn.RNN(D, N, num_layers=L, nonlinearity="tanh", bias=True, dtype=torch.float64),
    "rnn_relu": lambda: torch.nn.RNN(D, N, num_layers=L, nonlinearity="relu", bias=True, dtype=torch.float64),
    "lstm": lambda: torch.nn.LSTM(D, N, num_layers=L, bias=True, dtype=torch.float64),
    "gru": lambda: torch.nn.GRU(D, N, num_layers=L, bias=True, dtype=torch.float64),
}


def _module(cell, seed):
    torch.manual_seed(seed)
    m = MODULES[cell]()
    m.eval()
    return m


def _network(cell, module):
    sd = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    return lenum.Network.from_state_dict(cell, sd)


def _flat(cell, h, c=None):
    """(L, B, N) torch-style states -> lenum state vectors (B, n)."""
    parts = []
    for layer in range(L):
        parts.append(h[layer])
        if cell == "lstm":
            parts.append(c[layer])
    return np.concatenate(parts, axis=-1)


def _unflat(cell, s):
    """Flat state tensor (n,) -> torch-style (h, c) of shape (L, 1, N)."""
    P = 2 if cell == "lstm" else 1
    blocks = s.reshape(L, P, N)
    h = blocks[:, 0, :].reshape(L, 1, N)
    c = blocks[:, 1, :].reshape(L, 1, N) if cell == "lstm" else None
    return h, c


@pytest.mark.parametrize("cell", list(MODULES))
def test_forward_matches_torch(cell):
    m = _module(cell, 0)
    net = _network(cell, m)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(T, B, D))
    h0 = rng.normal(scale=0.5, size=(L, B, N))
    c0 = rng.normal(scale=0.5, size=(L, B, N))
    with torch.no_grad():
        if cell == "lstm":
            out, (hn, cn) = m(torch.from_numpy(x), (torch.from_numpy(h0), torch.from_numpy(c0)))
        else:
            out, hn = m(torch.from_numpy(x), torch.from_numpy(h0))
    out, hn = out.numpy(), hn.numpy()
    s = _flat(cell, h0, c0 if cell == "lstm" else None)  # (B, n)
    P = 2 if cell == "lstm" else 1
    top = slice((L - 1) * P * N, (L - 1) * P * N + N)
    for t in range(T):
        s = lenum.step(net, s, x[t])
        np.testing.assert_allclose(s[:, top], out[t], rtol=0, atol=1e-12)
    expected = _flat(cell, hn, cn.numpy() if cell == "lstm" else None)
    np.testing.assert_allclose(s, expected, rtol=0, atol=1e-12)
    # a single sequence, state vector by state vector
    s1 = _flat(cell, h0, c0 if cell == "lstm" else None)[0]
    for t in range(T):
        s1 = lenum.step(net, s1, x[t, 0])
    np.testing.assert_allclose(s1, expected[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell", list(MODULES))
def test_jacobian_matches_autograd(cell):
    m = _module(cell, 2)
    net = _network(cell, m)
    rng = np.random.default_rng(3)
    n = net.state_size

    def one_step(x):
        xt = torch.from_numpy(x).reshape(1, 1, D)

        def f(s):
            h, c = _unflat(cell, s)
            if cell == "lstm":
                _, (hn, cn) = m(xt, (h, c))
                return torch.stack([hn[:, 0, :], cn[:, 0, :]], dim=1).reshape(-1)
            _, hn = m(xt, h)
            return hn.reshape(-1)

        return f

    for _ in range(3):
        s = rng.normal(size=n)
        x = rng.normal(size=D)
        f = one_step(x)
        J_torch = torch.autograd.functional.jacobian(f, torch.from_numpy(s)).numpy()
        new_torch = f(torch.from_numpy(s)).detach().numpy()
        np.testing.assert_allclose(lenum.step(net, s, x), new_torch, rtol=0, atol=1e-12)
        np.testing.assert_allclose(lenum.jacobian(net, s, x), J_torch, rtol=0, atol=1e-12)


def test_torch_tensors_accepted_as_weights():
    """A state_dict of torch tensors (requires_grad parameters included) works as is."""
    m = _module("gru", 4)
    net = lenum.Network.from_state_dict("gru", dict(m.named_parameters()))
    ref = _network("gru", m)
    assert net == ref
