"""One step of every cell: lenum.step and lenum.jacobian against the NumPy oracle.

* ``lenum.step`` must equal ``naive.step`` (plain NumPy, PyTorch's equations) to 1e-12:
  both evaluate the same float64 expressions, differing only in summation order.
* ``lenum.jacobian`` must equal central finite differences of ``naive.step``.  With
  eps = 1e-6 the truncation error is O(eps^2 |F'''|) ~ 1e-12 * O(scale^3) and the
  round-off error O(2^-52 |F| / eps) ~ 1e-10, so rtol = 1e-6, atol = 1e-7 leaves a
  margin of about 1000 while catching any wrong term (a wrong gate, a transposed
  block, a missing cross-layer chain: errors of order 0.01..1).
* It must also equal the hand-derived analytic Jacobian of ``naive.jacobian`` to 1e-10
  (that one is itself checked against finite differences in ``test_oracle_*``).
"""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import lenum

import naive

CELLS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]

FD_EPS = 1e-6
FD_RTOL, FD_ATOL = 1e-6, 1e-7
STEP_ATOL = 1e-12


def _setup(cell, N, d, L, bias, seed, scale=1.0, B=3):
    rng = np.random.default_rng(seed)
    w = naive.random_weights(cell, N, d, L, rng, bias=bias, scale=scale)
    n = naive.state_size(cell, w, L)
    s = rng.normal(size=(B, n))
    x = rng.normal(size=(B, d))
    return w, s, x


def _relu_margin(cell, w, L, S, X):
    """Smallest |pre-activation| of a relu network over the states (FD needs > eps)."""
    if cell != "rnn_relu":
        return np.inf
    m = np.inf
    for s, x in zip(np.atleast_2d(S), np.atleast_2d(X)):
        _, gates = naive.step_with_gates(cell, w, L, s, x)
        m = min(m, min(np.min(np.abs(g["a"])) for g in gates))
    return m


# --------------------------------------------------------------------------- the oracle


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_oracle_analytic_jacobian_matches_fd(cell, num_layers):
    """The hand-derived Jacobian in naive.py equals finite differences of naive.step."""
    w, S, X = _setup(cell, 4, 3, num_layers, True, seed=1, scale=1.5)
    for s, x in zip(S, X):
        J = naive.jacobian(cell, w, num_layers, s, x)
        Jfd = naive.jacobian_fd(cell, w, num_layers, s, x, FD_EPS)
        np.testing.assert_allclose(J, Jfd, rtol=FD_RTOL, atol=FD_ATOL)


def test_oracle_layer_input_is_new_hidden_state():
    """Layer 1 reads layer 0's *new* h: a 2-layer step equals two 1-layer steps chained."""
    rng = np.random.default_rng(2)
    w = naive.random_weights("gru", 3, 2, 2, rng)
    w0 = {k[:-1] + "0": v for k, v in w.items() if k.endswith("l0")}
    w1 = {k[:-1] + "0": v for k, v in w.items() if k.endswith("l1")}
    s, x = rng.normal(size=6), rng.normal(size=2)
    h0 = naive.step("gru", w0, 1, s[:3], x)
    h1 = naive.step("gru", w1, 1, s[3:], h0)
    np.testing.assert_allclose(naive.step("gru", w, 2, s, x), np.concatenate([h0, h1]))


# --------------------------------------------------------------------------- fixed cases


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_step_and_jacobian(cell, num_layers, bias):
    N, d, B = 3, 2, 4
    w, S, X = _setup(cell, N, d, num_layers, bias, seed=10 + num_layers, scale=1.2, B=B)
    assert _relu_margin(cell, w, num_layers, S, X) > 1e-3
    net = lenum.Network.from_state_dict(cell, w)
    n = net.state_size
    assert n == naive.state_size(cell, w, num_layers)

    # single state vector (n,), input (d,)
    out = lenum.step(net, S[0], X[0])
    assert out.shape == (n,)
    np.testing.assert_allclose(out, naive.step(cell, w, num_layers, S[0], X[0]), rtol=0, atol=STEP_ATOL)
    J = lenum.jacobian(net, S[0], X[0])
    assert J.shape == (n, n)
    np.testing.assert_allclose(
        J, naive.jacobian_fd(cell, w, num_layers, S[0], X[0], FD_EPS), rtol=FD_RTOL, atol=FD_ATOL
    )
    np.testing.assert_allclose(J, naive.jacobian(cell, w, num_layers, S[0], X[0]), rtol=1e-10, atol=1e-12)

    # batched (B, n), (B, d)
    out = lenum.step(net, S, X)
    assert out.shape == (B, n)
    np.testing.assert_allclose(out, naive.step(cell, w, num_layers, S, X), rtol=0, atol=STEP_ATOL)
    J = lenum.jacobian(net, S, X)
    assert J.shape == (B, n, n)
    np.testing.assert_allclose(
        J, naive.jacobian_fd(cell, w, num_layers, S, X, FD_EPS), rtol=FD_RTOL, atol=FD_ATOL
    )

    # batched states, one input (d,) shared by all of them (NumPy broadcasting)
    out = lenum.step(net, S, X[1])
    assert out.shape == (B, n)
    np.testing.assert_allclose(out, naive.step(cell, w, num_layers, S, X[1]), rtol=0, atol=STEP_ATOL)
    J = lenum.jacobian(net, S, X[1])
    np.testing.assert_allclose(J, naive.jacobian(cell, w, num_layers, S, X[1]), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_step_does_not_modify_arguments(cell):
    w, S, X = _setup(cell, 3, 2, 2, True, seed=3)
    net = lenum.Network.from_state_dict(cell, w)
    S0, X0 = S.copy(), X.copy()
    lenum.step(net, S, X)
    lenum.jacobian(net, S, X)
    np.testing.assert_array_equal(S, S0)
    np.testing.assert_array_equal(X, X0)


@pytest.mark.parametrize("cell", CELLS)
def test_jacobian_saturated_units_do_not_underflow(cell):
    """Pre-activations of +-30: derivatives like sech^2(30) ~ 3.5e-26 must stay non-zero.

    SPEC: ``1 - tanh(a)^2`` is exactly 0 in float64 for |a| > 19; lenum must compute the
    derivative without that underflow.  The oracle uses exp(-|a|) forms; the relative
    agreement of the tiny entries shows lenum does too.
    """
    rng = np.random.default_rng(4)
    N, d, L = 3, 2, 1
    w = naive.random_weights(cell, N, d, L, rng, bias=True, scale=0.1)
    G = naive.GATES[cell]
    w["bias_ih_l0"] = np.where(np.arange(G * N) % 2 == 0, 30.0, -30.0)
    net = lenum.Network.from_state_dict(cell, w)
    s = rng.normal(scale=0.1, size=net.state_size)
    if cell == "lstm":
        s[N:] = 30.0 * np.sign(rng.normal(size=N))  # tanh(c') saturated too
    x = rng.normal(size=d)
    J = lenum.jacobian(net, s, x)
    Jref = naive.jacobian(cell, w, L, s, x)
    if cell == "rnn_tanh":
        tiny = np.abs(Jref) < 1e-20
        assert tiny.any() and np.all(Jref[tiny] != 0.0)  # the test exercises the case
    np.testing.assert_allclose(J, Jref, rtol=1e-9, atol=0.0)


@pytest.mark.parametrize("cell", CELLS)
def test_step_float32(cell):
    """float32 states and inputs compute in float32: within float32 round-off of the oracle."""
    w, S, X = _setup(cell, 4, 3, 2, True, seed=5)
    net = lenum.Network.from_state_dict(cell, w)
    out = lenum.step(net, S.astype(np.float32), X.astype(np.float32))
    assert out.dtype == np.float32
    ref = naive.step(cell, w, 2, S.astype(np.float32), X.astype(np.float32))
    # a few ulps (6e-8) per operation, O(10) operations per output, O(1) values
    np.testing.assert_allclose(out, ref, rtol=0, atol=2e-5)
    J = lenum.jacobian(net, S.astype(np.float32), X.astype(np.float32))
    np.testing.assert_allclose(J, naive.jacobian(cell, w, 2, S.astype(np.float32), X.astype(np.float32)), rtol=0, atol=2e-5)


# --------------------------------------------------------------------------- hypothesis


@settings(max_examples=30)
@given(
    cell=st.sampled_from(CELLS),
    N=st.integers(1, 6),
    d=st.integers(1, 4),
    L=st.integers(1, 2),
    bias=st.booleans(),
    B=st.integers(1, 3),
    scale=st.floats(0.2, 3.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_step_and_jacobian_random(cell, N, d, L, bias, B, scale, seed):
    """Random sizes and weights ~ N(0, scale^2/N); states and inputs ~ N(0, 1)."""
    w, S, X = _setup(cell, N, d, L, bias, seed, scale=scale, B=B)
    assume(_relu_margin(cell, w, L, S, X) > 1e-4)  # FD across a relu kink is meaningless
    net = lenum.Network.from_state_dict(cell, w)
    np.testing.assert_allclose(lenum.step(net, S, X), naive.step(cell, w, L, S, X), rtol=0, atol=STEP_ATOL)
    np.testing.assert_allclose(lenum.step(net, S[0], X[0]), naive.step(cell, w, L, S[0], X[0]), rtol=0, atol=STEP_ATOL)
    J = lenum.jacobian(net, S, X)
    assert J.shape == (B, net.state_size, net.state_size)
    np.testing.assert_allclose(J, naive.jacobian_fd(cell, w, L, S, X, FD_EPS), rtol=FD_RTOL, atol=FD_ATOL)
    np.testing.assert_allclose(J, naive.jacobian(cell, w, L, S, X), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(lenum.jacobian(net, S[-1], X[-1]), J[-1], rtol=0, atol=1e-14)


_SPECIAL = [0.0, -0.0, 1e-300, -1e-300, 0.5, -0.5, 19.0, -19.0, 40.0, -40.0, 745.0, -745.0,
            800.0, -800.0, np.inf, -np.inf, np.nan]


@settings(max_examples=200)
@given(a=st.one_of(st.sampled_from(_SPECIAL), st.floats(-1e3, 1e3), st.floats()),
       dtype=st.sampled_from([np.float64, np.float32]))
def test_sigmoid_and_slope_is_sigmoid_and_dsigmoid_bit_for_bit(a, dtype):
    """The cells' fused sigmoid (one exp) must not move a single bit of the results."""
    from lenum.cells.activations import dsigmoid, sigmoid, sigmoid_and_slope

    with np.errstate(over="ignore"):
        x = dtype(a)
    s, ds = sigmoid_and_slope(x)
    for got, want in ((s, sigmoid(x)), (ds, dsigmoid(x))):
        if np.isnan(want):  # a NaN's sign bit carries nothing
            assert np.isnan(got), (x, got)
        else:
            assert np.float64(got).tobytes() == np.float64(want).tobytes(), (x, got, want)


@settings(max_examples=300)
@given(a=st.one_of(st.sampled_from(_SPECIAL + [1e-4, -1e-4, 0.55, -0.55, 1e-5, 0.54999]),
                   st.floats(-20, 20), st.floats(-1e-3, 1e-3), st.floats()),
       dtype=st.sampled_from([np.float64, np.float32]))
def test_tanh_and_slope(a, dtype):
    """The cells' tanh (one exp for tanh and slope): the slope is dtanh bit for bit,
    tanh within 2 ulp of a long-double tanh in float64 and correctly rounded in
    float32, odd, NaN for NaN."""
    from lenum.cells.activations import dtanh, tanh_and_slope

    with np.errstate(over="ignore"):
        x = dtype(a)
    t, s = tanh_and_slope(x)
    if np.isnan(x):
        assert np.isnan(t) and np.isnan(s)
        return
    assert np.float64(s).tobytes() == np.float64(dtanh(x)).tobytes(), (x, s)
    t = dtype(t)
    assert t == -dtype(tanh_and_slope(-x)[0])
    ref = np.tanh(np.longdouble(x))
    # where long double is double, the oracle is itself within 1 ulp
    slack = 0 if np.finfo(np.longdouble).eps < 1e-17 else 1
    ulp = np.longdouble(np.spacing(dtype(abs(ref))))
    err = abs(np.longdouble(t) - ref) / ulp
    assert err <= (2 + slack if dtype == np.float64 else 0.5 + 1e-3 + slack), (x, t, err)
