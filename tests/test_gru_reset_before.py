"""The ``gru_reset_before`` cell (Keras ``reset_after=False``, ONNX ``linear_before_reset=0``).

Its oracle lives here, in plain NumPy, written from the equation of SPEC-style layout
(gate rows r, z, n):

    n = tanh(W_in x + b_in + W_hn (r h) + b_hn),   h' = (1 - z) n + z h

* step: ``lenum.step`` equals the oracle to 1e-13 (float64, same expressions).
* Jacobian: ``lenum.jacobian`` equals central finite differences of the oracle
  (step 1e-6, tolerance 1e-7 absolute; the truncation error is O(eps^2) ~ 1e-12 times
  third derivatives of order 1, the round-off ~ 1e-16 / 1e-6 = 1e-10), including the
  cross-layer chain of a 2-layer stack and saturated gates.
* sum rule: the full spectrum sums to the mean of log|det J_t| over the counted steps
  (relative 1e-9), for 1 and 2 layers.
* the cell is a different map from PyTorch's GRU with the same weights (guards
  against a registration that silently reuses the ``gru`` kernel).
"""

import numpy as np
import pytest

import lenum

N, D = 4, 3


def _sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def oracle_step(weights, num_layers, s, x):
    """One step of a reset-before GRU stack on one state vector (plain NumPy)."""
    out = np.empty_like(s)
    inp = x
    for layer in range(num_layers):
        w_ih = weights[f"weight_ih_l{layer}"]
        w_hh = weights[f"weight_hh_l{layer}"]
        b_ih = weights.get(f"bias_ih_l{layer}", np.zeros(3 * N))
        b_hh = weights.get(f"bias_hh_l{layer}", np.zeros(3 * N))
        h = s[layer * N:(layer + 1) * N]
        gi = w_ih @ inp + b_ih
        r = _sigmoid(gi[:N] + w_hh[:N] @ h + b_hh[:N])
        z = _sigmoid(gi[N:2 * N] + w_hh[N:2 * N] @ h + b_hh[N:2 * N])
        n = np.tanh(gi[2 * N:] + w_hh[2 * N:] @ (r * h) + b_hh[2 * N:])
        h_new = (1.0 - z) * n + z * h
        out[layer * N:(layer + 1) * N] = h_new
        inp = h_new
    return out


def oracle_jacobian_fd(weights, num_layers, s, x, eps=1e-6):
    n = s.shape[0]
    J = np.empty((n, n))
    for j in range(n):
        e = np.zeros(n)
        e[j] = eps
        J[:, j] = (oracle_step(weights, num_layers, s + e, x)
                   - oracle_step(weights, num_layers, s - e, x)) / (2 * eps)
    return J


def random_weights(num_layers, rng, bias=True, scale=1.0):
    w = {}
    for layer in range(num_layers):
        d = D if layer == 0 else N
        w[f"weight_ih_l{layer}"] = rng.normal(0, scale / np.sqrt(N), (3 * N, d))
        w[f"weight_hh_l{layer}"] = rng.normal(0, scale / np.sqrt(N), (3 * N, N))
        if bias:
            w[f"bias_ih_l{layer}"] = rng.normal(0, 0.5, 3 * N)
            w[f"bias_hh_l{layer}"] = rng.normal(0, 0.5, 3 * N)
    return w


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bias", [True, False])
def test_step_matches_oracle(num_layers, bias):
    rng = np.random.default_rng(10 * num_layers + bias)
    w = random_weights(num_layers, rng, bias=bias, scale=1.5)
    net = lenum.Network.from_state_dict("gru_reset_before", w)
    assert net.state_size == N * num_layers
    s = rng.normal(size=(5, N * num_layers))
    x = rng.normal(size=(5, D))
    got = lenum.step(net, s, x)
    want = np.stack([oracle_step(w, num_layers, s[b], x[b]) for b in range(5)])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-13)


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("scale", [1.0, 4.0])  # 4.0 saturates many gates
def test_jacobian_matches_finite_differences(num_layers, scale):
    rng = np.random.default_rng(3 + num_layers)
    w = random_weights(num_layers, rng, scale=scale)
    net = lenum.Network.from_state_dict("gru_reset_before", w)
    for _ in range(3):
        s = rng.uniform(-0.9, 0.9, size=N * num_layers)
        x = rng.normal(size=D)
        J = lenum.jacobian(net, s, x)
        np.testing.assert_allclose(J, oracle_jacobian_fd(w, num_layers, s, x), rtol=0, atol=1e-7)


def test_jacobian_float32_close_to_float64():
    rng = np.random.default_rng(8)
    w = random_weights(2, rng)
    net = lenum.Network.from_state_dict("gru_reset_before", w)
    s = rng.uniform(-0.9, 0.9, size=2 * N)
    x = rng.normal(size=D)
    J64 = lenum.jacobian(net, s, x)
    J32 = lenum.jacobian(net, s.astype(np.float32), x.astype(np.float32))
    assert J32.dtype == np.float32
    np.testing.assert_allclose(J32, J64, rtol=0, atol=1e-5)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_sum_rule(num_layers):
    rng = np.random.default_rng(20 + num_layers)
    w = random_weights(num_layers, rng, scale=2.0)
    net = lenum.Network.from_state_dict("gru_reset_before", w)
    T, warmup = 60, 10
    x = rng.normal(size=(T, D))
    res = lenum.lyapunov_spectrum(net, x, warmup=warmup)
    s = np.zeros(net.state_size)
    logdets = []
    for t in range(T):
        J = lenum.jacobian(net, s, x[t])
        if t >= warmup:
            logdets.append(np.linalg.slogdet(J)[1])
        s = oracle_step(w, num_layers, s, x[t])
    assert np.all(np.isfinite(res.exponents))
    np.testing.assert_allclose(res.exponents.sum(), np.mean(logdets), rtol=1e-9, atol=1e-12)


def test_differs_from_pytorch_gru():
    rng = np.random.default_rng(5)
    w = random_weights(1, rng, scale=2.0)
    s = rng.normal(size=N)
    x = rng.normal(size=D)
    a = lenum.step(lenum.Network.from_state_dict("gru_reset_before", w), s, x)
    b = lenum.step(lenum.Network.from_state_dict("gru", w), s, x)
    assert np.max(np.abs(a - b)) > 1e-3
