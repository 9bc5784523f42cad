"""Lyapunov spectra: known answers, the NumPy QR-method oracle, result properties, errors.

Every expected value comes from outside lenum: closed forms (eigenvalues of W_hh, the
GRU's z gate, a period-3 product, the Henon map), the sum rule (log|det J_t| from the
oracle's Jacobians), or ``naive.lyapunov_spectrum`` (plain NumPy, LAPACK QR).
"""

import contextlib
import math
import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import lenum

import naive

CELLS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]
EPS32 = float(np.finfo(np.float32).eps)


def _weights(cell, N, d, L, rng, scale=1.0, bias=True):
    """Random weights.  relu networks get small weights and a bias of +5 so that every
    unit stays active (tests check it with ``_relu_margin``): where a relu unit dies,
    J_t is singular and the exponents below its rank are set by round-off (log 1e-16
    or exactly -inf, depending on the QR algorithm), which no oracle can reproduce."""
    w = naive.random_weights(cell, N, d, L, rng, bias=bias, scale=scale)
    if cell == "rnn_relu":
        for layer in range(L):
            w[f"weight_hh_l{layer}"] *= 0.2
            w[f"weight_ih_l{layer}"] *= 0.2
            w[f"bias_ih_l{layer}"] = np.abs(w.get(f"bias_ih_l{layer}", np.zeros(N))) + 5.0
            if f"bias_hh_l{layer}" in w:
                w[f"bias_hh_l{layer}"] = np.abs(w[f"bias_hh_l{layer}"])
    return w


def _relu_margin(w, L, x, s0):
    """Smallest pre-activation of a relu network along a trajectory."""
    s, m = np.array(s0, dtype=float), np.inf
    for xt in x:
        s, gates = naive.step_with_gates("rnn_relu", w, L, s, xt)
        m = min(m, min(g["a"].min() for g in gates))
    return m


def _no_nan(res):
    for arr in (res.exponents, res.std, res.per_sequence):
        assert not np.isnan(arr).any(), arr


def _matrix_with_eigenvalues(lam, rng):
    """W = V diag(lam) V^-1 with a random, reasonably conditioned V."""
    n = len(lam)
    while True:
        V = rng.normal(size=(n, n))
        if np.linalg.cond(V) < 50:
            return V @ np.diag(lam) @ np.linalg.inv(V)


# =========================================================================== known answers


def test_tanh_zero_input_gives_log_eigenvalues():
    """Zero input, zero bias, h0 = 0: the state stays 0, so J_t = W_hh for every t.

    The exponents are then log|eig(W_hh)|, sorted descending.  With a warm-up of W steps
    the basis is aligned with the Schur vectors up to r^W, r = max |lam_{i+1}/lam_i| =
    0.73, so the error is about 0.73^100 ~ 2e-14; 1e-9 leaves round-off room.
    """
    rng = np.random.default_rng(0)
    lam = np.array([1.5, -1.1, 0.8, 0.55, -0.35, 0.2])
    ratio = np.max(np.abs(lam[1:] / lam[:-1]))
    warmup, T = 100, 400
    assert ratio**warmup < 1e-12
    w = {"weight_ih_l0": rng.normal(size=(6, 2)), "weight_hh_l0": _matrix_with_eigenvalues(lam, rng)}
    net = lenum.Network.from_state_dict("rnn_tanh", w)
    expected = np.sort(np.log(np.abs(lam)))[::-1]
    res = lenum.lyapunov_spectrum(net, np.zeros((T, 2)), warmup=warmup)
    np.testing.assert_allclose(res.exponents, expected, rtol=0, atol=1e-9)
    res = lenum.lyapunov_spectrum(net, np.zeros((T, 2)), k=3, warmup=warmup)
    np.testing.assert_allclose(res.exponents, expected[:3], rtol=0, atol=1e-9)
    # the same in bits
    res = lenum.lyapunov_spectrum(net, np.zeros((T, 2)), warmup=warmup, units="bits")
    np.testing.assert_allclose(res.exponents, expected / math.log(2), rtol=0, atol=2e-9)


def test_tanh_stack_zero_input_gives_union_of_layers():
    """Two layers: J is block lower-triangular with W_hh^0, W_hh^1 on the diagonal
    (the block below is W_ih^1 W_hh^0, the cross-layer chain), so the spectrum is the
    union of both layers' log|eig|.  Sorted moduli 1.4, 1.0, 0.6, 0.4, 0.25, 0.15:
    ratio <= 0.71, error ~ 0.71^120 ~ 1e-18."""
    rng = np.random.default_rng(1)
    lam0 = np.array([1.4, 0.6, -0.25])
    lam1 = np.array([-1.0, 0.4, 0.15])
    w = {
        "weight_ih_l0": rng.normal(size=(3, 2)),
        "weight_hh_l0": _matrix_with_eigenvalues(lam0, rng),
        "weight_ih_l1": rng.normal(size=(3, 3)),
        "weight_hh_l1": _matrix_with_eigenvalues(lam1, rng),
    }
    net = lenum.Network.from_state_dict("rnn_tanh", w)
    expected = np.sort(np.log(np.abs(np.concatenate([lam0, lam1]))))[::-1]
    res = lenum.lyapunov_spectrum(net, np.zeros((2, 300, 2)), warmup=120)
    np.testing.assert_allclose(res.exponents, expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(res.per_sequence[0], res.per_sequence[1], rtol=0, atol=1e-14)


def test_gru_without_recurrent_weights_gives_mean_log_z():
    """W_hh = 0: r, z, n do not depend on h, so h' = (1-z) n + z h has J_t = diag(z_t).

    The exponents are the time means of log z_t,i over the counted steps, sorted.  The
    z-gate biases put the means ~0.4 apart; after a warm-up of 60 steps the basis is
    aligned to exp(-0.4 * 60) ~ 4e-11, hence 1e-8.
    """
    rng = np.random.default_rng(2)
    N, d, T, warmup = 5, 3, 300, 60
    w = naive.random_weights("gru", N, d, 1, rng, scale=0.3)
    w["weight_hh_l0"] = np.zeros((3 * N, N))
    z_target = np.array([0.9, 0.6, 0.35, 0.15, 0.05])
    w["bias_ih_l0"][N : 2 * N] = np.log(z_target / (1 - z_target))
    w["bias_hh_l0"][N : 2 * N] = 0.0
    net = lenum.Network.from_state_dict("gru", w)
    x = rng.normal(size=(2, T, d))
    res = lenum.lyapunov_spectrum(net, x, warmup=warmup)
    for b in range(2):
        s = np.zeros(N)
        logz = []
        for xt in x[b]:
            s, gates = naive.step_with_gates("gru", w, 1, s, xt)
            logz.append(np.log(gates[0]["z"]))
        expected = np.sort(np.mean(logz[warmup:], axis=0))[::-1]
        assert np.min(-np.diff(expected)) > 0.3
        np.testing.assert_allclose(res.per_sequence[b], expected, rtol=0, atol=1e-8)


@pytest.mark.parametrize("qr_every", [1, 3])
@pytest.mark.parametrize("cell", CELLS)
def test_sum_rule(cell, qr_every):
    """k = n: sum(lambda) = mean over the counted steps of log|det J_t| (Liouville).

    Holds step by step for any QR (prod R_ii = |det J_t| when Q is square), so only
    round-off separates the two sides: 1e-9.
    """
    rng = np.random.default_rng(3)
    N, d, L, T, B, warmup = 3, 2, 2, 60, 2, 5
    w = _weights(cell, N, d, L, rng)
    net = lenum.Network.from_state_dict(cell, w)
    x = rng.normal(size=(B, T, d))
    h0 = rng.normal(scale=0.5, size=(L, B, N))
    c0 = rng.normal(scale=0.5, size=(L, B, N)) if cell == "lstm" else None
    res = lenum.lyapunov_spectrum(net, x, warmup=warmup, h0=h0, c0=c0, qr_every=qr_every)
    assert res.per_sequence.shape == (B, net.state_size)
    s0 = naive.state_from_h0(cell, h0, c0)
    for b in range(B):
        _, jac = naive.trajectory(cell, w, L, x[b], s0[b])
        logdet = np.linalg.slogdet(jac[warmup:])[1]
        assert np.all(np.isfinite(logdet))
        np.testing.assert_allclose(res.per_sequence[b].sum(), logdet.mean(), rtol=1e-10, atol=1e-9)


def test_period_three_cycle_uses_J_times_Q_not_transpose():
    """Jacobians cycling A, B, C: the product over a period is C B A, so the exponents
    are (1/3) log|eig(C B A)|.  The transposed recursion Z = J^T Q would give the
    exponents of A B C, which differ (0.4835 vs 0.3208).  Warm-up and counted steps are
    whole periods, so the answer is exact up to the basis alignment, (0.53/1.9)^20."""
    A = np.array([[1.0, 1.0], [0.0, 1.0]])
    Bm = np.array([[1.0, 0.0], [1.0, 1.0]])
    C = np.diag([2.0, 0.5])

    def expected(P):
        return np.sort(np.log(np.abs(np.linalg.eigvals(P))))[::-1] / 3

    right, wrong = expected(C @ Bm @ A), expected(A @ Bm @ C)
    assert abs(right[0] - wrong[0]) > 0.1

    J = np.array([A, Bm, C] * 100)
    res = lenum.spectrum_from_jacobians(J, warmup=60)
    assert res.steps == 240
    np.testing.assert_allclose(res.exponents, right, rtol=0, atol=1e-10)

    # batched (B, T, n, n): a cyclic shift of the same cycle has the same exponents;
    # the reversed cycle (C, B, A) has the product A B C.
    Jb = np.stack([J, np.array([Bm, C, A] * 100), np.array([C, Bm, A] * 100)])
    res = lenum.spectrum_from_jacobians(Jb, warmup=60)
    assert res.per_sequence.shape == (3, 2)
    np.testing.assert_allclose(res.per_sequence[0], right, rtol=0, atol=1e-10)
    np.testing.assert_allclose(res.per_sequence[1], right, rtol=0, atol=1e-10)
    np.testing.assert_allclose(res.per_sequence[2], wrong, rtol=0, atol=1e-10)


def _henon_jacobians(T, a=1.4, b=0.3, transient=1000):
    x, y = 0.1, 0.1
    for _ in range(transient):
        x, y = 1.0 - a * x * x + y, b * x
    J = np.empty((T, 2, 2))
    for t in range(T):
        J[t] = [[-2.0 * a * x, 1.0], [b, 0.0]]
        x, y = 1.0 - a * x * x + y, b * x
    return J


def test_henon_map():
    """Henon map (a = 1.4, b = 0.3): published exponents 0.4192, -1.6233 nats per
    iteration; finite-time fluctuations over 20000 steps are a few 1e-3, hence 0.02.
    det J = -b at every step, so the sum is log 0.3 to round-off."""
    J = _henon_jacobians(20000)
    res = lenum.spectrum_from_jacobians(J, warmup=100)
    np.testing.assert_allclose(res.exponents, [0.41922, -1.62319], rtol=0, atol=0.02)
    assert res.exponents.sum() == pytest.approx(math.log(0.3), abs=1e-10)
    top = lenum.spectrum_from_jacobians(J, k=1, warmup=100)
    assert top.exponents[0] == pytest.approx(res.exponents[0], abs=1e-12)
    # bits: the same divided by ln 2
    bits = lenum.spectrum_from_jacobians(J, warmup=100, units="bits")
    np.testing.assert_allclose(bits.exponents, res.exponents / math.log(2), rtol=1e-13)


def test_spectrum_from_jacobians_matches_oracle():
    """Random Jacobians, qr_every 1 and 3, warm-up, explicit q0, k < n and local."""
    rng = np.random.default_rng(4)
    B, T, n = 2, 50, 5
    J = rng.normal(size=(B, T, n, n))
    for k in (2, n):
        q0 = naive.random_orthonormal(n, k, rng)
        for qr_every in (1, 3):
            res = lenum.spectrum_from_jacobians(J, k=k, warmup=4, qr_every=qr_every, q0=q0,
                                                keep_local=True)
            for b in range(B):
                exps, local = naive.lyapunov_spectrum(J[b], q0, 4, qr_every, return_local=True)
                np.testing.assert_allclose(res.per_sequence[b], exps, rtol=0, atol=1e-10)
                np.testing.assert_allclose(res.local[b], local, rtol=0, atol=1e-8)


def test_warmup_is_not_counted_whatever_qr_every():
    """Steps 1..warmup grow by a factor 10, later steps are isometries: the counted
    exponents are exactly 0 for every qr_every, also when warmup is not a multiple of
    it.  (Counting the QR that first follows the warm-up would smuggle log 10 in.)"""
    T, warmup = 30, 4
    J = np.array([10.0 * np.eye(2)] * warmup + [np.array([[0.0, -1.0], [1.0, 0.0]])] * (T - warmup))
    for qr_every in (1, 3, 5, 7):
        res = lenum.spectrum_from_jacobians(J, warmup=warmup, qr_every=qr_every)
        assert res.steps == T - warmup
        np.testing.assert_allclose(res.exponents, 0.0, atol=1e-14)


# =========================================================================== -inf, never NaN


def test_singular_jacobian_gives_minus_inf_not_nan():
    """One Jacobian with a zero row (rank 1) makes R_22 = 0: the second exponent is
    -inf, the first stays finite, nothing is NaN; sequences without it are unaffected."""
    T = 40
    J = np.array([[[2.0, 1.0], [0.0, 0.5]]] * T)
    Jsing = J.copy()
    Jsing[5] = [[1.0, 1.0], [0.0, 0.0]]
    res = lenum.spectrum_from_jacobians(Jsing)
    assert np.isfinite(res.exponents[0]) and res.exponents[0] > 0
    assert res.exponents[1] == -np.inf
    _no_nan(res)

    res = lenum.spectrum_from_jacobians(np.stack([Jsing, J]))
    assert res.per_sequence[0, 1] == -np.inf and np.isfinite(res.per_sequence[1]).all()
    assert res.exponents[1] == -np.inf
    _no_nan(res)

    # a zero Jacobian kills every direction
    Jzero = J.copy()
    Jzero[7] = 0.0
    res = lenum.spectrum_from_jacobians(Jzero)
    assert np.all(res.exponents == -np.inf)
    _no_nan(res)


def test_relu_at_zero_gives_minus_inf_not_nan():
    """relu'(0) = 0: zero input, zero bias, h0 = 0 keeps every pre-activation at 0, so
    J_t = 0 and every exponent is -inf (SPEC: derivative at 0 is 0)."""
    rng = np.random.default_rng(5)
    w = naive.random_weights("rnn_relu", 3, 2, 2, rng, bias=False)
    net = lenum.Network.from_state_dict("rnn_relu", w)
    res = lenum.lyapunov_spectrum(net, np.zeros((20, 2)))
    assert np.all(res.exponents == -np.inf)
    _no_nan(res)


def test_saturated_tanh_is_finite():
    """A tanh unit driven to a = 25.5: sech^2(a) ~ 3.3e-22 (1 - tanh^2 would be exactly
    0 and give -inf).  With J = sech^2(a) * 0.5 the exponent is about -49.7, finite."""
    w = {
        "weight_ih_l0": np.zeros((1, 1)),
        "weight_hh_l0": np.array([[0.5]]),
        "bias_ih_l0": np.array([25.0]),
    }
    net = lenum.Network.from_state_dict("rnn_tanh", w)
    res = lenum.lyapunov_spectrum(net, np.zeros((30, 1)), warmup=5)
    s = np.zeros(1)
    logs = []
    for _ in range(30):
        a = 25.0 + 0.5 * s[0]
        logs.append(math.log(0.5 * float(naive.dtanh(a))))
        s = naive.step("rnn_tanh", w, 1, s, np.zeros(1))
    expected = np.mean(logs[5:])
    assert -52 < expected < -48
    assert res.exponents[0] == pytest.approx(expected, rel=1e-10)


# =========================================================================== the oracle


def _oracle_tolerance(jac, q0, warmup, qr_every):
    """Tolerances for lenum vs the oracle on one sequence: (exponents, local exponents).

    Both are float64 QR methods on the same Jacobians and differ only by round-off
    (~1e-16 relative per step).  How far round-off can move the answer is a property
    of the problem, measured here: perturb every J_t by 1e-14 ||J_t|| (about 45 ulps)
    and see how far the oracle's exponents move (``naive.sensitivity``).  Allowed: 10
    times that, plus 1e-10 (1e-9 for local exponents).  For well-separated exponents
    this is ~1e-10; near-degenerate pairs whose finite-time values cross amplify
    round-off and get a wider (measured) band.  A wrong formula moves exponents by
    1e-3 or more.
    """
    sens, sens_local = naive.sensitivity(jac, q0, warmup, qr_every, rel=1e-14, return_local=True)
    return 1e-10 + 10 * sens.max(), 1e-9 + 10 * sens_local.max()


def _float32_tolerance(jac, q0, warmup):
    """How far float32 exponents may lie from float64 ones on one sequence: 1e-3 +
    eps32 * max_t cond(J_t), plus ten times the measured effect of eps32-sized
    perturbations of every J_t.  A backward-stable QR in float32 makes relative errors
    of about eps32 * cond in each R_ii, and near-degenerate exponents amplify them as
    measured."""
    sens32 = naive.sensitivity(jac, q0, warmup, 1, rel=EPS32).max()
    return 1e-3 + EPS32 * np.linalg.cond(jac[warmup:]).max() + 10 * sens32


def _oracle_problem(cell, rng, N, d, L, B, T):
    """Weights, network, inputs (B, T, d) and initial h0/c0 for an oracle comparison
    (relu networks start with h0 >= 0, inside the region where every unit is active)."""
    w = _weights(cell, N, d, L, rng)
    net = lenum.Network.from_state_dict(cell, w)
    x = rng.normal(size=(B, T, d))
    h0 = rng.normal(scale=0.5, size=(L, B, N))
    if cell == "rnn_relu":
        h0 = np.abs(h0)
    c0 = rng.normal(scale=0.5, size=(L, B, N)) if cell == "lstm" else None
    return w, net, x, h0, c0


@pytest.mark.parametrize("qr_every", [1, 3])
@pytest.mark.parametrize("k", ["few", "all"])
@pytest.mark.parametrize("cell", CELLS)
def test_network_matches_oracle(cell, k, qr_every):
    """lenum.lyapunov_spectrum against naive.spectrum_of_network, step for step.

    2 layers, biases, random h0/c0, q0 given, warm-up 7, T = 266 (more than one time
    window of the engine, and a last QR block shorter than qr_every).  Tolerance: see
    ``_oracle_tolerance``.
    """
    rng = np.random.default_rng(6)
    N, d, L, B, T, warmup = 3, 2, 2, 2, 266, 7
    w, net, x, h0, c0 = _oracle_problem(cell, rng, N, d, L, B, T)
    n = net.state_size
    kk = 3 if k == "few" else n
    q0 = naive.random_orthonormal(n, kk, rng)
    res = lenum.lyapunov_spectrum(net, x, k=kk, warmup=warmup, h0=h0, c0=c0, q0=q0,
                                  qr_every=qr_every, keep_local=True)
    assert res.per_sequence.shape == (B, kk)
    assert res.steps == T - warmup
    S = -(-(T - warmup) // qr_every)
    assert res.local.shape == (B, S, kk)
    s0 = naive.state_from_h0(cell, h0, c0)
    jacs = []
    for b in range(B):
        if cell == "rnn_relu":
            assert _relu_margin(w, L, x[b], s0[b]) > 0.1  # no unit crosses the kink
        _, jac = naive.trajectory(cell, w, L, x[b], s0[b])
        jacs.append(jac)
        exps, local = naive.lyapunov_spectrum(jac, q0, warmup, qr_every, return_local=True)
        if b == 0:
            np.testing.assert_array_equal(
                exps, naive.spectrum_of_network(cell, w, L, x[b], s0[b], q0, warmup, qr_every)
            )
        tol, tol_local = _oracle_tolerance(jac, q0, warmup, qr_every)
        assert tol < 1e-4
        np.testing.assert_allclose(res.per_sequence[b], exps, rtol=0, atol=tol)
        np.testing.assert_allclose(res.local[b], local, rtol=0, atol=tol_local)
    # q0 per sequence (B, n, k): each sequence uses its own basis
    q0b = np.stack([naive.random_orthonormal(n, kk, rng) for _ in range(B)])
    res_b = lenum.lyapunov_spectrum(net, x, k=kk, warmup=warmup, h0=h0, c0=c0, q0=q0b,
                                    qr_every=qr_every)
    for b in range(B):
        exps = naive.lyapunov_spectrum(jacs[b], q0b[b], warmup, qr_every)
        tol, _ = _oracle_tolerance(jacs[b], q0b[b], warmup, qr_every)
        np.testing.assert_allclose(res_b.per_sequence[b], exps, rtol=0, atol=tol)


@contextlib.contextmanager
def _numba_threads(threads):
    """Run the engine on ``threads`` threads (at most numba's pool), then restore."""
    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(before)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("qr_every", [1, 3])
@pytest.mark.parametrize("k", ["one", "few", "all"])
@pytest.mark.parametrize("cell", CELLS)
def test_grouped_sequences_match_oracle(cell, k, qr_every, threads):
    """Batches large enough for the interleaved QR (lenum.lanes) against the oracle.

    B = 10 sequences.  Cells with a group step (lenum.cells.stack.grouped: vanilla, and
    LSTM up to 256 units, 512 at k <= N / 2): on one thread a group of 8 and a padded
    group of 2, on two threads slices of 5, each one padded group, states and tangents
    interleaved.  The other cells: on one thread a group of 8 (interleaved QR) and 2
    sequences one by one, on two threads one padded group each.  Every sequence must match its own
    oracle run, the finite-time exponents too.
    """
    rng = np.random.default_rng(11)
    N, d, L, B, T, warmup = 3, 2, 2, 10, 40, 4
    w, net, x, h0, c0 = _oracle_problem(cell, rng, N, d, L, B, T)
    n = net.state_size
    q0 = naive.random_orthonormal(n, {"one": 1, "few": 3, "all": n}[k], rng)
    with _numba_threads(threads):
        res = lenum.lyapunov_spectrum(net, x, warmup=warmup, h0=h0, c0=c0, q0=q0,
                                      qr_every=qr_every, keep_local=True)
    s0 = naive.state_from_h0(cell, h0, c0)
    for b in range(B):
        if cell == "rnn_relu":
            assert _relu_margin(w, L, x[b], s0[b]) > 0.1
        _, jac = naive.trajectory(cell, w, L, x[b], s0[b])
        exps, local = naive.lyapunov_spectrum(jac, q0, warmup, qr_every, return_local=True)
        tol, tol_local = _oracle_tolerance(jac, q0, warmup, qr_every)
        np.testing.assert_allclose(res.per_sequence[b], exps, rtol=0, atol=tol)
        np.testing.assert_allclose(res.local[b], local, rtol=0, atol=tol_local)


@pytest.mark.parametrize("N,L,k", [(13, 1, 26), (13, 2, 9), (13, 2, 52), (128, 1, 12)])
def test_lstm_groups_match_oracle(N, L, k):
    """LSTM groups (lenum.cells.stack.lstm_group_step, dc'/dh formed in the lanes and
    multiplied lane by lane) at N = 13 units, whole 4 x 4 tiles of
    lenum.lanes.lanes_product and their remainders, one layer or two (the chain through
    the shared input products), k below and at n; and N = 128, where dc'/dh is formed
    and multiplied a block of rows at a time (4 blocks in float64, 2 in float32).
    B = 10 on one thread: a group of 8 and a padded group of 2.  float64 against each
    sequence's oracle run, float32 against float64."""
    from lenum import cpu
    from lenum.cells.stack import LSTM, formed_rows

    rng = np.random.default_rng(29 + k)
    d, B, T, warmup = 3, 10, 30, 3
    w, net, x, h0, c0 = _oracle_problem("lstm", rng, N, d, L, B, T)
    n = net.state_size
    assert cpu._in_groups(LSTM, N, n, k, B) == B
    if N == 128:
        assert formed_rows(N, 8) == 32 and formed_rows(N, 4) == 64
    q0 = naive.random_orthonormal(n, k, rng)
    with _numba_threads(1):
        r64 = lenum.lyapunov_spectrum(net, x, warmup=warmup, h0=h0, c0=c0, q0=q0)
        r32 = lenum.lyapunov_spectrum(net, x, warmup=warmup, h0=h0, c0=c0, q0=q0,
                                      dtype="float32")
    s0 = naive.state_from_h0("lstm", h0, c0)
    for b in range(B):
        _, jac = naive.trajectory("lstm", w, L, x[b], s0[b])
        exps = naive.lyapunov_spectrum(jac, q0, warmup, 1)
        tol, _ = _oracle_tolerance(jac, q0, warmup, 1)
        np.testing.assert_allclose(r64.per_sequence[b], exps, rtol=0, atol=tol)
        np.testing.assert_allclose(r32.per_sequence[b], r64.per_sequence[b], rtol=0,
                                   atol=_float32_tolerance(jac, q0, warmup))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("N", [52, 100])
def test_groups_holding_their_bases_match_oracle(monkeypatch, N, threads):
    """One vanilla layer, k = n, a QR every step, from HELD_GROUP_MIN_ROWS rows: the
    groups keep their bases as the reflectors of the interleaved QR and apply them to
    D W (lenum.cpu.groups_held).  B = 16, warm-up 4, T = 40 (several engine windows,
    each starting from a formed basis and forming the next); n = 52 and 100 end in a
    partial panel, 100 applies the others as compact-WY blocks.  Every sequence
    matches its oracle run, the finite-time exponents too; the held kernel ran."""
    from lenum import cpu

    ran = []
    kernels = cpu._GROUP_HELD_KERNELS

    def spy(*args):
        ran.append(args[2].shape[0])
        return kernels[0](*args)

    monkeypatch.setattr(cpu, "_GROUP_HELD_KERNELS", (spy,))
    rng = np.random.default_rng(N)
    B, T, warmup = 16, 40, 4
    w, net, x, h0, c0 = _oracle_problem("rnn_tanh", rng, N, 2, 1, B, T)
    q0 = naive.random_orthonormal(N, N, rng)
    with _numba_threads(threads):
        res = lenum.lyapunov_spectrum(net, x, warmup=warmup, h0=h0, q0=q0, keep_local=True)
    assert ran and sum(ran) % B == 0
    s0 = naive.state_from_h0("rnn_tanh", h0, None)
    for b in range(B):
        _, jac = naive.trajectory("rnn_tanh", w, 1, x[b], s0[b])
        exps, local = naive.lyapunov_spectrum(jac, q0, warmup, 1, return_local=True)
        tol, tol_local = _oracle_tolerance(jac, q0, warmup, 1)
        np.testing.assert_allclose(res.per_sequence[b], exps, rtol=0, atol=tol)
        np.testing.assert_allclose(res.local[b], local, rtol=0, atol=tol_local)


def test_which_groups_hold_their_bases():
    from lenum import cpu
    from lenum.cells.stack import GRU, LSTM, RNN_RELU, RNN_TANH

    n = cpu.HELD_GROUP_MIN_ROWS
    assert cpu.groups_held(RNN_TANH, 1, n, n, 1) and cpu.groups_held(RNN_RELU, 1, 256, 256, 1)
    assert not cpu.groups_held(RNN_TANH, 1, n - 1, n - 1, 1)  # the shared product wins
    assert not cpu.groups_held(RNN_TANH, 2, n, n, 1)  # two layers: J is not D W
    assert not cpu.groups_held(RNN_TANH, 1, n, n - 1, 1)  # k < n: no Q from the reflectors
    assert not cpu.groups_held(RNN_TANH, 1, n, n, 2)  # no QR to hold between
    assert not cpu.groups_held(LSTM, 1, n, n, 1) and not cpu.groups_held(GRU, 1, n, n, 1)


def _gru_problem(cell, rng, N, L, B, T):
    """A GRU stack of either reset order, inputs, h0, and each sequence's Jacobians
    (B, T, n, n).  The reset-before cell has no oracle in naive.py: its trajectory and
    Jacobians come from lenum.step and lenum.jacobian, both checked against plain NumPy
    and finite differences in test_gru_reset_before.py; what is under test here is the
    QR path, which only sees the Jacobians."""
    w = naive.random_weights("gru", N, 2, L, rng, bias=True)
    net = lenum.Network.from_state_dict(cell, w)
    x = rng.normal(size=(B, T, 2))
    h0 = rng.normal(scale=0.5, size=(L, B, N))
    s0 = naive.state_from_h0("gru", h0, None)
    if cell == "gru":
        jacs = np.stack([naive.trajectory("gru", w, L, x[b], s0[b])[1] for b in range(B)])
        return net, x, h0, jacs
    jacs = np.empty((B, T, L * N, L * N))
    for b in range(B):
        s = s0[b]
        for t in range(T):
            jacs[b, t] = lenum.jacobian(net, s, x[b, t])
            s = lenum.step(net, s, x[b, t])
    return net, x, h0, jacs


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("cell,N,L", [("gru", 52, 1), ("gru", 100, 1), ("gru", 26, 2),
                                      ("gru_reset_before", 52, 1)])
def test_gru_groups_holding_their_bases_match_oracle(monkeypatch, cell, N, L, threads):
    """GRU stacks, k = n, a QR every step, from HELD_SEQUENCES_MIN_ROWS rows: each
    group of 8 sequences keeps its bases as the reflectors of the interleaved QR and
    applies them to J_t^T (lenum.cpu.sequences_held).  Warm-up 4, T = 40 (several
    engine windows, each starting from a formed basis and forming the next); n = 52
    ends in a partial panel (one layer, or two of 26: J_t with its cross-layer block),
    with B = 13: a full group and a padded one of 5 on one thread, padded groups of 6
    and 7 on two; n = 100 applies whole compact-WY blocks, B = 16.  Every
    sequence matches its own oracle run (LAPACK QR on its Jacobians), the finite-time
    exponents too; the held kernel ran, for every sequence."""
    from lenum import cpu

    ran = []
    kernels = cpu._INTERLEAVED_HELD_KERNELS

    def spy(*args):
        ran.append(args[2].shape[0])
        return kernels[cpu.FAMILY[args[5]]](*args)

    monkeypatch.setattr(cpu, "_INTERLEAVED_HELD_KERNELS", (None, None, spy, spy))
    rng = np.random.default_rng(N + len(cell))
    B, T, warmup = (13 if L * N == 52 else 16), 40, 4
    net, x, h0, jacs = _gru_problem(cell, rng, N, L, B, T)
    q0 = naive.random_orthonormal(L * N, L * N, rng)
    with _numba_threads(threads):
        res = lenum.lyapunov_spectrum(net, x, warmup=warmup, h0=h0, q0=q0, keep_local=True)
    assert ran and sum(ran) % B == 0
    for b in range(B):
        exps, local = naive.lyapunov_spectrum(jacs[b], q0, warmup, 1, return_local=True)
        tol, tol_local = _oracle_tolerance(jacs[b], q0, warmup, 1)
        np.testing.assert_allclose(res.per_sequence[b], exps, rtol=0, atol=tol)
        np.testing.assert_allclose(res.local[b], local, rtol=0, atol=tol_local)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("cell,k", [("gru", 8), ("gru", 16), ("lstm", 16), ("lstm", 24)])
def test_gated_products_match_oracle(monkeypatch, cell, k, threads):
    """GRU and LSTM layers whose tangent is a gated product (lenum.thin.gated_dot,
    lstm_gated_dot: the Jacobian block never formed): N = 16 units (whole tiles in both
    dtypes), 2 layers (the second through the chain from the first), k of 8-24.  The
    LSTM steps sequence by sequence here as it does above 512 units, or above 256 for
    k > N / 2 (its group step taken away).  B = 10: a group of 8 with the interleaved
    QR and 2 one by one (one thread), or one padded group per thread.  float64 against
    the oracle per sequence; float32 against float64."""
    from lenum import cpu
    from lenum.cells.stack import GRU, LSTM, grouped, make_workspace

    assert grouped(LSTM, 16, k) and not grouped(LSTM, 513, k)
    assert not grouped(LSTM, 257, 129)  # over 256 units, k > N / 2
    monkeypatch.setattr(cpu, "grouped", lambda code, N, k: code != LSTM and grouped(code, N, k))
    rng = np.random.default_rng(17)
    N, d, L, B, T, warmup = 16, 3, 2, 10, 30, 3
    w, net, x, h0, c0 = _oracle_problem(cell, rng, N, d, L, B, T)
    n = net.state_size
    code, G, S = (GRU, 3, N) if cell == "gru" else (LSTM, 4, 2 * N)
    assert not cpu.grouped(code, N, k)
    for dt in (np.float64, np.float32):  # the path under test is the one taken
        M = make_workspace(code, np.zeros((G * N, d), dt), np.zeros((L, G * N, N), dt), k,
                           np.empty(1, dt))[0]
        assert M.shape == (S + G * N * L, N)
    q0 = naive.random_orthonormal(n, k, rng)
    with _numba_threads(threads):
        r64 = lenum.lyapunov_spectrum(net, x, warmup=warmup, h0=h0, c0=c0, q0=q0)
        r32 = lenum.lyapunov_spectrum(net, x, warmup=warmup, h0=h0, c0=c0, q0=q0,
                                      dtype="float32")
    s0 = naive.state_from_h0(cell, h0, c0)
    for b in range(B):
        _, jac = naive.trajectory(cell, w, L, x[b], s0[b])
        exps = naive.lyapunov_spectrum(jac, q0, warmup, 1)
        tol, _ = _oracle_tolerance(jac, q0, warmup, 1)
        np.testing.assert_allclose(r64.per_sequence[b], exps, rtol=0, atol=tol)
        np.testing.assert_allclose(r32.per_sequence[b], r64.per_sequence[b], rtol=0,
                                   atol=_float32_tolerance(jac, q0, warmup))


def test_which_gru_groups_hold_their_bases():
    from lenum import cpu
    from lenum.cells.stack import GRU, GRU_RB, LSTM, RNN_TANH

    n = cpu.HELD_SEQUENCES_MIN_ROWS
    assert cpu.sequences_held(GRU, n, n, 1) and cpu.sequences_held(GRU_RB, 256, 256, 1)
    assert not cpu.sequences_held(GRU, n - 1, n - 1, 1)  # forming Q and the BLAS win
    assert not cpu.sequences_held(GRU, n, n - 1, 1)  # k < n: no Q from the reflectors
    assert not cpu.sequences_held(GRU_RB, n, n, 2)  # no QR to hold between
    assert not cpu.sequences_held(LSTM, n, n, 1)  # half its Jacobian is diagonal
    assert not cpu.sequences_held(RNN_TANH, n, n, 1)  # groups_held's business


@pytest.mark.parametrize("cell", ["rnn_tanh", "gru"])
def test_groups_holding_their_bases_in_float32(monkeypatch, cell):
    """The held kernels in float32 (a vanilla layer: lenum.cpu.groups_held; a GRU:
    sequences_held), one group of 8 at n = 52, warm-up 4, T = 40: every sequence
    within the float32 band of its float64 oracle run (_float32_tolerance); the held
    kernel ran.  A reflector applied wrong, or a lane's Jacobian mixed up with another's,
    moves exponents by 0.1 or more."""
    from lenum import cpu

    ran = []
    name = "_GROUP_HELD_KERNELS" if cell == "rnn_tanh" else "_INTERLEAVED_HELD_KERNELS"
    kernels = getattr(cpu, name)

    def spy(*args):
        ran.append(args[2].dtype)
        return kernels[cpu.FAMILY[args[5]]](*args)

    monkeypatch.setattr(cpu, name, (spy,) * len(kernels))
    rng = np.random.default_rng(32)
    N, B, T, warmup = 52, 8, 40, 4
    if cell == "rnn_tanh":
        w, net, x, h0, _ = _oracle_problem(cell, rng, N, 2, 1, B, T)
        s0 = naive.state_from_h0(cell, h0, None)
        jacs = np.stack([naive.trajectory(cell, w, 1, x[b], s0[b])[1] for b in range(B)])
    else:
        net, x, h0, jacs = _gru_problem(cell, rng, N, 1, B, T)
    q0 = naive.random_orthonormal(N, N, rng)
    with _numba_threads(1):
        res = lenum.lyapunov_spectrum(net, x, warmup=warmup, h0=h0, q0=q0, dtype="float32")
    assert ran and all(dt == np.float32 for dt in ran)
    _no_nan(res)
    for b in range(B):
        exps = naive.lyapunov_spectrum(jacs[b], q0, warmup)
        np.testing.assert_allclose(res.per_sequence[b], exps, rtol=0,
                                   atol=_float32_tolerance(jacs[b], q0, warmup))


def test_interleaved_and_lapack_qr_agree_at_512_columns():
    """k = n = 512, or MAX_COLS if smaller (256 without AVX-512): a group of 8 takes the
    interleaved QR, a sequence alone LAPACK's, its basis kept as reflectors between
    steps (lenum.qr.factor_step; checked against the oracle elsewhere); same exponents
    up to round-off.  (Not at MAX_COLS = 1024 itself, where one group holds several
    64 MiB arrays.)

    Over T = 4 steps the smallest of n exponents are logs of R_ii far below ||J||, so
    their round-off is eps * ||J|| / R_ii per step: observed 2e-11 in float64 (and 7e-3
    in float32, not tested here); a wrong reflector moves exponents by O(1).
    """
    dtype = "float64"
    from lenum.lanes import LANES, MAX_COLS

    rng = np.random.default_rng(13)
    N, d, T = min(MAX_COLS, 512), 2, 4
    w = {"weight_ih_l0": rng.normal(size=(N, d)),
         "weight_hh_l0": rng.normal(scale=0.5 / np.sqrt(N), size=(N, N))}
    net = lenum.Network.from_state_dict("rnn_tanh", w)
    x = rng.normal(size=(LANES, T, d))
    with _numba_threads(1):  # one slice of 8 sequences: one full group
        group = lenum.lyapunov_spectrum(net, x, dtype=dtype)
    for b in (0, LANES - 1):
        alone = lenum.lyapunov_spectrum(net, x[b], dtype=dtype)
        np.testing.assert_allclose(group.per_sequence[b], alone.per_sequence[0], rtol=0,
                                   atol=1e-9)


@pytest.mark.parametrize("cell", CELLS)
def test_single_sequence_and_batch_agree(cell):
    """x of shape (T, d) is one sequence: the same as a batch of one, and the same as
    that sequence's row of a larger batch (sequences are independent; the batch of 13
    takes the interleaved QR, the single sequence LAPACK's: round-off apart).  Round-off
    in log R_ii grows with the spread of the spectrum, so the bound is relative as well:
    the LSTM's last exponent, -8.4, differs by 2.4e-13 (3e-14 relative)."""
    rng = np.random.default_rng(7)
    w = _weights(cell, 3, 2, 1, rng)
    net = lenum.Network.from_state_dict(cell, w)
    x = rng.normal(size=(13, 40, 2))
    one = lenum.lyapunov_spectrum(net, x[1], warmup=3)
    many = lenum.lyapunov_spectrum(net, x, warmup=3)
    assert one.per_sequence.shape == (1, net.state_size)
    np.testing.assert_allclose(one.per_sequence[0], many.per_sequence[1], rtol=1e-13,
                               atol=1e-13)
    np.testing.assert_allclose(one.exponents, one.per_sequence[0], rtol=0, atol=0)
    np.testing.assert_array_equal(one.std, 0.0)


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
def test_float32_close_to_float64(cell):
    """float32 compute, float64 log-sums: within 1e-3 of float64.

    Householder QR is backward stable: each R_ii carries a relative error of about
    eps32 * cond(J_t) = 6e-8 * cond.  For these modest weights (N(0, 0.25/N)) cond(J_t)
    stays below ~1e4, so per-step errors are below ~1e-3 and averaging over T = 200 does
    not increase them; the observed differences are 1e-8..1e-4.  Exponents closer than
    0.1 to a neighbour are compared as the sum of their cluster: over a finite T such a
    pair trades value by more than the round-off that tips it (observed 1.2e-3 for a
    pair 0.044 apart in an LSTM, the pair's sum exact to 1e-6).
    """
    rng = np.random.default_rng(8)
    N, d, B, T = 4, 3, 2, 200
    for L in (1, 2):
        w = naive.random_weights(cell, N, d, L, rng, scale=0.5)
        net = lenum.Network.from_state_dict(cell, w)
        x = rng.normal(size=(B, T, d))
        r64 = lenum.lyapunov_spectrum(net, x, warmup=10)
        r32 = lenum.lyapunov_spectrum(net, x, warmup=10, dtype="float32")
        assert r32.per_sequence.dtype == np.float64
        for e32, e64 in zip(r32.per_sequence, r64.per_sequence):
            # clusters of exponents within 0.1 of their neighbour (e64 is descending)
            cuts = np.flatnonzero(np.diff(e64) < -0.1) + 1
            for c32, c64 in zip(np.split(e32, cuts), np.split(e64, cuts)):
                assert abs(c32.sum() - c64.sum()) <= 1e-3 * len(c64), (c32, c64)
                if len(c64) == 1:
                    assert abs(c32[0] - c64[0]) <= 1e-3


# =========================================================================== the result


def test_result_properties():
    rng = np.random.default_rng(9)
    N, d, L, B, T, warmup = 3, 2, 2, 3, 61, 4
    w = _weights("lstm", N, d, L, rng)
    net = lenum.Network.from_state_dict("lstm", w)
    n = net.state_size
    x = rng.normal(size=(B, T, d))
    res = lenum.lyapunov_spectrum(net, x, k=5, warmup=warmup, keep_local=True)
    assert res.exponents.shape == (5,) and res.std.shape == (5,)
    assert res.per_sequence.shape == (B, 5)
    assert res.steps == T - warmup
    np.testing.assert_allclose(res.exponents, res.per_sequence.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(res.std, res.per_sequence.std(axis=0, ddof=1), rtol=1e-12)
    assert res.max_exponent == pytest.approx(res.exponents.max())
    # qr_every = 1: one local row per counted step, and their mean is the exponent
    assert res.local.shape == (B, T - warmup, 5)
    np.testing.assert_allclose(res.local.mean(axis=1), res.per_sequence, rtol=0, atol=1e-12)
    # qr_every = 3 with 57 counted steps: 19 blocks of 3; local = log R_ii / 3
    res3 = lenum.lyapunov_spectrum(net, x, k=5, warmup=warmup, qr_every=3, keep_local=True)
    assert res3.local.shape == (B, 19, 5)
    np.testing.assert_allclose(res3.local.mean(axis=1), res3.per_sequence, rtol=0, atol=1e-12)
    # without keep_local
    assert lenum.lyapunov_spectrum(net, x[:, :10], k=2).local is None
    # full spectrum
    assert lenum.lyapunov_spectrum(net, x[:, :10]).exponents.shape == (n,)
    # bits = nats / ln 2, local included
    bits = lenum.lyapunov_spectrum(net, x, k=5, warmup=warmup, units="bits", keep_local=True)
    np.testing.assert_allclose(bits.per_sequence, res.per_sequence / math.log(2), rtol=1e-13)
    np.testing.assert_allclose(bits.local, res.local / math.log(2), rtol=1e-13)


def test_kaplan_yorke_and_ks_entropy_by_hand():
    """J_t = diag(e^0.5, e^0.1, e^-0.3, e^-1.0) gives exactly those exponents.
    Partial sums 0.5, 0.6, 0.3, -0.7: j = 3, D_KY = 3 + 0.3 / |-1.0| = 3.3;
    KS entropy (sum of positive exponents) = 0.6."""
    lam = np.array([0.5, 0.1, -0.3, -1.0])
    J = np.array([np.diag(np.exp(lam))] * 200)
    res = lenum.spectrum_from_jacobians(J, warmup=100)  # aligned to exp(-0.4 * 100)
    np.testing.assert_allclose(np.sort(res.exponents)[::-1], lam, rtol=0, atol=1e-9)
    assert res.max_exponent == pytest.approx(0.5, abs=1e-9)
    assert res.kaplan_yorke_dimension() == pytest.approx(3.3, abs=1e-8)
    assert res.ks_entropy() == pytest.approx(0.6, abs=1e-9)
    # a hand-made result: same numbers; and a contracting spectrum has D = 0, h = 0
    made = lenum.SpectrumResult([[0.5, 0.1, -0.3, -1.0]], steps=1)
    assert made.kaplan_yorke_dimension() == pytest.approx(3.3)
    assert made.ks_entropy() == pytest.approx(0.6)
    neg = lenum.SpectrumResult([[-0.1, -0.5]], steps=1)
    assert neg.kaplan_yorke_dimension() == 0.0 and neg.ks_entropy() == 0.0
    # D = 1 + 0.2 / 0.4 = 1.5
    assert lenum.SpectrumResult([[0.2, -0.4, -1.0]], steps=1).kaplan_yorke_dimension() == pytest.approx(1.5)


def test_default_basis_is_deterministic_and_not_identity():
    """The default q0 is fixed (two calls agree bit for bit) and random, not the identity:
    an LSTM with W_hh = 0 annihilates the h block (dF/dh = 0), so an identity basis with
    k <= N would give -inf.  The top N exponents are the c block's, finite; they must
    match the oracle started from another random basis (the result forgets q0 at rate
    exp(-gap * warmup))."""
    rng = np.random.default_rng(10)
    N, d, T, warmup = 3, 2, 200, 60
    w = naive.random_weights("lstm", N, d, 1, rng, scale=0.3)
    w["weight_hh_l0"] = np.zeros((4 * N, N))
    f_target = np.array([0.9, 0.5, 0.2])  # forget gates: exponents ~ log f, well apart
    w["bias_ih_l0"][N : 2 * N] = np.log(f_target / (1 - f_target))
    w["bias_hh_l0"][N : 2 * N] = 0.0
    net = lenum.Network.from_state_dict("lstm", w)
    x = rng.normal(size=(T, d))
    r1 = lenum.lyapunov_spectrum(net, x, k=N, warmup=warmup)
    r2 = lenum.lyapunov_spectrum(net, x, k=N, warmup=warmup)
    np.testing.assert_array_equal(r1.per_sequence, r2.per_sequence)
    assert np.all(np.isfinite(r1.exponents))
    _, jac = naive.trajectory("lstm", w, 1, x, np.zeros(2 * N))
    # the identity basis fails here, which is why the default must not be it
    assert np.all(naive.lyapunov_spectrum(jac, np.eye(2 * N)[:, :N], warmup) == -np.inf)
    ref = naive.lyapunov_spectrum(jac, naive.random_orthonormal(2 * N, N, rng), warmup)
    np.testing.assert_allclose(r1.exponents, ref, rtol=0, atol=1e-8)
    # the same holds for spectrum_from_jacobians' default basis
    r3 = lenum.spectrum_from_jacobians(jac, k=N, warmup=warmup)
    np.testing.assert_allclose(r3.exponents, ref, rtol=0, atol=1e-8)


# =========================================================================== errors


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(11)
    w = naive.random_weights("lstm", 3, 2, 2, rng)
    return lenum.Network.from_state_dict("lstm", w), w, rng.normal(size=(2, 20, 2))


def test_error_classes():
    for cls in (lenum.FormatError, lenum.ShapeError, lenum.NonFiniteError):
        assert issubclass(cls, lenum.LenumError) and issubclass(cls, ValueError)
    assert issubclass(lenum.DeviceError, lenum.LenumError)


def test_k_larger_than_state(small):
    net, _, x = small
    with pytest.raises(lenum.LenumError) as e:
        lenum.lyapunov_spectrum(net, x, k=net.state_size + 1)
    assert isinstance(e.value, ValueError)
    with pytest.raises(lenum.LenumError):
        lenum.lyapunov_spectrum(net, x, k=0)
    with pytest.raises(lenum.LenumError):
        lenum.spectrum_from_jacobians(np.zeros((5, 2, 2)), k=3)


def test_wrong_input_size(small):
    net, _, x = small
    bad = np.zeros((2, 20, 5))
    with pytest.raises(lenum.ShapeError) as e:
        lenum.lyapunov_spectrum(net, bad)
    msg = str(e.value)
    assert "2" in msg and "5" in msg  # expected d = 2, found 5
    with pytest.raises(lenum.ShapeError):
        lenum.lyapunov_spectrum(net, np.zeros(20))
    with pytest.raises(lenum.ShapeError):
        lenum.step(net, np.zeros(net.state_size), np.zeros(5))
    with pytest.raises(lenum.ShapeError):
        lenum.jacobian(net, np.zeros(net.state_size + 1), np.zeros(2))
    with pytest.raises(lenum.ShapeError):
        lenum.spectrum_from_jacobians(np.zeros((5, 2, 3)))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_inputs(small, bad):
    net, _, x = small
    x = x.copy()
    x[1, 13, 0] = bad
    with pytest.raises(lenum.NonFiniteError):
        lenum.lyapunov_spectrum(net, x)
    with pytest.raises(lenum.NonFiniteError):
        lenum.step(net, np.zeros(net.state_size), x[1, 13])
    J = np.ones((5, 2, 2))
    J[2, 0, 1] = bad
    with pytest.raises(lenum.NonFiniteError):
        lenum.spectrum_from_jacobians(J)


def test_non_finite_weights(small):
    _, w, _ = small
    w = {k: v.copy() for k, v in w.items()}
    w["weight_hh_l1"][2, 1] = np.nan
    with pytest.raises(lenum.NonFiniteError) as e:
        lenum.Network.from_state_dict("lstm", w)
    assert "weight_hh_l1" in str(e.value)


def test_non_finite_initial_state(small):
    net, _, x = small
    h0 = np.zeros((2, 2, 3))
    h0[1, 0, 2] = np.nan
    with pytest.raises(lenum.NonFiniteError):
        lenum.lyapunov_spectrum(net, x, h0=h0)
    c0 = np.zeros((2, 2, 3))
    c0[0, 1, 0] = np.inf
    with pytest.raises(lenum.NonFiniteError):
        lenum.lyapunov_spectrum(net, x, c0=c0)


def test_warmup_must_leave_steps(small):
    net, _, x = small
    for warmup in (20, 25):
        with pytest.raises(lenum.LenumError) as e:
            lenum.lyapunov_spectrum(net, x, warmup=warmup)
        assert isinstance(e.value, ValueError)
    with pytest.raises(lenum.LenumError):
        lenum.spectrum_from_jacobians(np.ones((5, 2, 2)), warmup=5)
    with pytest.raises(lenum.LenumError):
        lenum.lyapunov_spectrum(net, x, warmup=-1)


def test_q0_must_be_orthonormal(small):
    net, _, x = small
    n = net.state_size
    q0 = np.eye(n)[:, :3] * 1.5
    with pytest.raises(lenum.LenumError) as e:
        lenum.lyapunov_spectrum(net, x, q0=q0)
    assert isinstance(e.value, ValueError)
    q0 = np.eye(n)[:, :3].copy()
    q0[0, 1] = 1.0  # columns 0 and 1 not orthogonal
    with pytest.raises(lenum.LenumError):
        lenum.lyapunov_spectrum(net, x, q0=q0)
    with pytest.raises(lenum.ShapeError):
        lenum.lyapunov_spectrum(net, x, q0=np.eye(n + 1)[:, :3])
    with pytest.raises(lenum.ShapeError):  # (B, n, k) with the wrong B
        lenum.lyapunov_spectrum(net, x, q0=np.stack([np.eye(n)[:, :3]] * 3))


def test_h0_wrong_shape(small):
    net, _, x = small
    for shape in [(2, 3, 3), (1, 2, 3), (2, 2, 4), (6,)]:
        with pytest.raises(lenum.ShapeError):
            lenum.lyapunov_spectrum(net, x, h0=np.zeros(shape))


def test_relu_overflow_is_an_error_not_nan():
    """An unbounded relu network (W_hh = 1000 I, positive bias) overflows the state to
    Inf after ~100 steps: lenum must raise a LenumError or return exponents without NaN
    (SPEC section 5: never NaN exponents silently)."""
    w = {
        "weight_ih_l0": np.ones((2, 1)),
        "weight_hh_l0": 1000.0 * np.eye(2),
        "bias_ih_l0": np.ones(2),
    }
    net = lenum.Network.from_state_dict("rnn_relu", w)
    # the overflowed state turns into NaN through 0 * inf in W_hh h; relu(NaN) must not
    # read as a dead unit (a silent -inf) but be reported
    with pytest.raises(lenum.NonFiniteError, match="overflow"):
        lenum.lyapunov_spectrum(net, np.ones((150, 1)))


_GPU_CHECK = textwrap.dedent(
    """
    import numpy as np
    from numba import cuda
    import lenum
    if cuda.is_available():
        print("HAS-GPU")
        raise SystemExit(0)
    w = {"weight_ih_l0": np.ones((2, 1)), "weight_hh_l0": 0.5 * np.eye(2)}
    net = lenum.Network.from_state_dict("rnn_tanh", w)
    x = np.ones((10, 1))
    try:
        lenum.lyapunov_spectrum(net, x, device="gpu")
    except lenum.DeviceError as e:
        assert str(e), "DeviceError must say why"
        print("DEVICE-ERROR")
    cpu = lenum.lyapunov_spectrum(net, x, device="cpu").exponents
    auto = lenum.lyapunov_spectrum(net, x, device="auto").exponents
    assert np.array_equal(cpu, auto), (cpu, auto)
    print("AUTO-OK")
    """
)


def test_gpu_without_gpu_is_a_device_error():
    """device="gpu" without a usable GPU raises DeviceError; "auto" falls back to the
    CPU.  Run in a fresh interpreter without the CUDA simulator (this pytest run
    may have it switched on); skipped on a machine with a real GPU."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    out = subprocess.run([sys.executable, "-c", _GPU_CHECK], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    if "HAS-GPU" in out.stdout:
        pytest.skip("a CUDA GPU is present")
    assert "DEVICE-ERROR" in out.stdout and "AUTO-OK" in out.stdout, out.stdout


# =========================================================================== properties


@settings(max_examples=25)
@given(
    cell=st.sampled_from(CELLS),
    N=st.integers(1, 4),
    d=st.integers(1, 3),
    L=st.integers(1, 2),
    bias=st.booleans(),
    scale=st.floats(0.1, 4.0),
    k_frac=st.floats(0.0, 1.0),
    qr_every=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_networks_never_nan(cell, N, d, L, bias, scale, k_frac, qr_every, seed):
    """Any small network, weights up to 4/sqrt(N) (saturating, relu units dying):
    exponents are finite or -inf, never NaN, never +inf (a bounded or finite step)."""
    rng = np.random.default_rng(seed)
    w = naive.random_weights(cell, N, d, L, rng, bias=bias, scale=scale)
    net = lenum.Network.from_state_dict(cell, w)
    n = net.state_size
    k = 1 + int(k_frac * (n - 1))
    x = rng.normal(size=(2, 40, d))
    for dtype in ("float64", "float32"):
        try:
            res = lenum.lyapunov_spectrum(net, x, k=k, warmup=3, qr_every=qr_every, dtype=dtype)
        except lenum.NonFiniteError:
            assert cell == "rnn_relu"  # only an unbounded relu state may overflow
            continue
        _no_nan(res)
        assert not np.any(res.per_sequence == np.inf)


@settings(max_examples=25)
@given(
    cell=st.sampled_from(CELLS),
    N=st.integers(1, 4),
    d=st.integers(1, 3),
    L=st.integers(1, 2),
    bias=st.booleans(),
    scale=st.floats(0.2, 1.0),
    k_frac=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_networks_match_oracle_and_float32(cell, N, d, L, bias, scale, k_frac, seed):
    """Random small networks (relu kept away from the kink):

    * float64 equals the oracle within ``_oracle_tolerance`` (1e-10 plus ten times the
      measured effect of 1e-14 relative perturbations of every J_t);
    * float32 is within ``_float32_tolerance`` of float64 (1e-3 + eps32 * max_t
      cond(J_t), plus ten times the measured effect of eps32-sized perturbations of
      every J_t).
    """
    rng = np.random.default_rng(seed)
    w = _weights(cell, N, d, L, rng, scale=scale, bias=bias)
    net = lenum.Network.from_state_dict(cell, w)
    n = net.state_size
    k = 1 + int(k_frac * (n - 1))
    B, T, warmup = 2, 60, 5
    x = rng.normal(size=(B, T, d))
    q0 = naive.random_orthonormal(n, k, rng)
    refs, tols, tols32 = [], [], []
    for b in range(B):
        if cell == "rnn_relu":
            assume(_relu_margin(w, L, x[b], np.zeros(n)) > 1e-3)
        _, jac = naive.trajectory(cell, w, L, x[b], np.zeros(n))
        refs.append(naive.lyapunov_spectrum(jac, q0, warmup))
        tols.append(_oracle_tolerance(jac, q0, warmup, 1)[0])
        tols32.append(_float32_tolerance(jac, q0, warmup))
    r64 = lenum.lyapunov_spectrum(net, x, k=k, warmup=warmup, q0=q0)
    r32 = lenum.lyapunov_spectrum(net, x, k=k, warmup=warmup, q0=q0, dtype="float32")
    _no_nan(r32)
    for b in range(B):
        np.testing.assert_allclose(r64.per_sequence[b], refs[b], rtol=0, atol=tols[b])
        np.testing.assert_allclose(r32.per_sequence[b], r64.per_sequence[b], rtol=0, atol=tols32[b])


def test_group_kernel_routing():
    """Which window kernel a thread's sequences take (lenum.cpu._in_groups): all to the
    group kernel once they fill a group, a lone partial group where it pays, never a
    split; cells or shapes without a group step never."""
    from lenum import cpu
    from lenum.cells.stack import GRU, LSTM, RNN_TANH
    from lenum.lanes import MAX_COLS

    assert cpu._in_groups(RNN_TANH, 128, 128, 128, 9) == 9  # one full group, one padded
    assert cpu._in_groups(RNN_TANH, 128, 128, 128, 7) == 0  # 7 < 8 = min_fill(128)
    assert cpu._in_groups(RNN_TANH, 32, 32, 32, 3) == 3  # min_fill(32) = 3
    top, over = MAX_COLS, MAX_COLS + 8  # 1024 with AVX-512, else 256
    assert cpu._in_groups(RNN_TANH, top, top, top, 16) == 16
    assert cpu._in_groups(RNN_TANH, over, over, over, 16) == 0  # over MAX_COLS: LAPACK
    assert cpu._in_groups(LSTM, 64, 128, 32, 16) == 16
    assert cpu._in_groups(LSTM, 64, 128, 128, 16) == 16  # a full spectrum too
    assert cpu._in_groups(LSTM, 128, 256, 256, 9) == 9
    assert cpu._in_groups(LSTM, 256, 512, 16, 16) == 16
    assert cpu._in_groups(LSTM, 512, 1024, 256, 16) == 16
    assert cpu._in_groups(LSTM, 512, 1024, 257, 16) == 0  # N > 256: k <= N / 2 only
    assert cpu._in_groups(LSTM, 513, 1026, 16, 16) == 0  # N > 512: not measured
    assert cpu._in_groups(GRU, 32, 32, 8, 16) == 0
    # the others hold their bases as reflectors at k = n with a QR every step, unless
    # they fill an interleaved group or other threads run beside theirs
    # (lenum.cpu.held_basis)
    # (the last argument: how many threads run side by side)
    assert cpu.held_basis(7, 130, 130, 1, 1) and cpu.held_basis(16, over, over, 1, 1)
    assert not cpu.held_basis(16, top, top, 1, 1)  # a full group: the interleaved QR
    assert not cpu.held_basis(7, 130, 130, 1, 2)  # threads beside: LAPACK's blocks
    assert cpu.held_basis(4, 64, 64, 1, 2)  # one reflector at a time beside threads
    assert cpu.held_basis(4, 128, 128, 1, 7) and not cpu.held_basis(4, 129, 129, 1, 7)
    # from HELD_MANY_THREADS side by side, up to HELD_MANY_MAX_ROWS (measured to 256)
    assert cpu.held_basis(4, 129, 129, 1, 8) and cpu.held_basis(1, 256, 256, 1, 16)
    assert not cpu.held_basis(1, 257, 257, 1, 16)
    assert not cpu.held_basis(8, 128, 128, 1, 1)  # a full group: the interleaved QR
    assert not cpu.held_basis(1, 128, 127, 1, 1)  # k < n: the reflectors would not make Q
    assert not cpu.held_basis(1, 128, 128, 2, 1)  # no QR to hold between
    # the per-sequence kernels take one QR path each, by the same rule (lenum.cpu._interleaved)
    assert cpu._interleaved(9, 128, 128) and cpu._interleaved(3, 32, 16)
    assert not cpu._interleaved(7, 128, 64) and not cpu._interleaved(2, 32, 16)
    assert cpu._interleaved(16, top, top) and not cpu._interleaved(16, over, over)


_ONE_QR_PATH = textwrap.dedent(
    """
    import numpy as np
    import lenum
    from lenum import cpu
    from lenum.lanes import LANES
    w = {"weight_ih_l0": np.ones((12, 2)), "weight_hh_l0": 0.3 * np.ones((12, 4)),
         "bias_ih_l0": np.zeros(12), "bias_hh_l0": np.zeros(12)}
    net = lenum.Network.from_state_dict("gru", w)
    lenum.lyapunov_spectrum(net, np.ones((LANES + 3, 5, 2)), k=3)
    print(len(cpu._advance_gru_interleaved.signatures), len(cpu._advance_gru.signatures))
    """
)


def test_a_spectrum_compiles_one_qr_path():
    """A thread's sequences take the interleaved QR for all of its groups, the last
    padded, or LAPACK's for all (lenum.cpu._interleaved): each per-sequence kernel
    holds one of the two paths, and a spectrum compiles only the kernel it runs (a
    fresh process, one thread).  The padded group's sequences give what they give
    alone, round-off apart."""
    from lenum.lanes import LANES

    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", _ONE_QR_PATH], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "0"], out.stdout
    rng = np.random.default_rng(11)
    net = lenum.Network.from_state_dict("gru", _weights("gru", 4, 2, 1, rng))
    x = rng.normal(size=(LANES + 3, 12, 2))  # one full group and a padded one of 3
    with _numba_threads(1):
        many = lenum.lyapunov_spectrum(net, x, k=3)
    for b in (0, LANES, LANES + 2):
        alone = lenum.lyapunov_spectrum(net, x[b], k=3)
        np.testing.assert_allclose(many.per_sequence[b], alone.per_sequence[0], rtol=1e-13,
                                   atol=1e-13)


def test_bases_held_beside_other_threads_only_reflector_by_reflector(monkeypatch):
    """k = n, a QR every step: one thread holds its sequences' bases as reflectors at
    any size, which ormqr applies in compact-WY blocks (lenum.cpu.held_basis).  Threads
    side by side hold them up to HELD_BESIDE_MAX_ROWS rows, applied one reflector at a
    time, and form Q above: ormqr's blocks ran no faster on 16 threads than on one with
    SciPy 1.18's OpenBLAS on a Xeon.  The spectra are the same every way, to round-off."""
    from lenum import cpu

    calls = []

    def spying(name, kernels):
        def wrap(kernel):
            def call(*args):
                # a held kernel's last argument: other threads beside, one at a time
                calls.append((name, args[-1]) if name == "held" else name)
                return kernel(*args)
            return call
        return tuple(wrap(k) for k in kernels)

    monkeypatch.setattr(cpu, "_HELD_KERNELS", spying("held", cpu._HELD_KERNELS))
    monkeypatch.setattr(cpu, "_SEQUENCE_KERNELS", spying("formed", cpu._SEQUENCE_KERNELS))
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 12, 2))
    # an LSTM's n = 2 N rows: at HELD_BESIDE_MAX_ROWS and just above
    for N, beside in [(cpu.HELD_BESIDE_MAX_ROWS // 2, ("held", True)),
                      (cpu.HELD_BESIDE_MAX_ROWS // 2 + 1, "formed")]:
        net = lenum.Network.from_state_dict("lstm", _weights("lstm", N, 2, 1, rng, scale=1.5))
        calls.clear()
        with _numba_threads(1):
            one = lenum.lyapunov_spectrum(net, x, k=2 * N)
        assert calls and set(calls) == {("held", False)}
        if numba.config.NUMBA_NUM_THREADS < 2:
            continue
        calls.clear()
        with _numba_threads(2):
            two = lenum.lyapunov_spectrum(net, x, k=2 * N)
        assert calls and set(calls) == {beside}
        # the most negative exponents carry the most round-off (their R_ii are far
        # below ||J_t||): at n = 128 the last one differed by 2e-11 (relative 2.7e-12)
        # between ormqr's blocks and one reflector at a time with the OpenBLAS of
        # SciPy 1.17 on an AVX-512 Xeon
        np.testing.assert_allclose(two.per_sequence, one.per_sequence, rtol=1e-10,
                                   atol=1e-12)
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one thread only: nothing runs side by side")


def test_given_jacobians_held_beside_other_threads_reflector_by_reflector(monkeypatch):
    """spectrum_from_jacobians follows the same rule as the networks (test above)."""
    from lenum import cpu

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one thread only: nothing runs side by side")
    calls = []
    kernel = cpu._advance_jacobians_held

    def spy(*args):
        calls.append(args[-1])
        return kernel(*args)

    monkeypatch.setattr(cpu, "_advance_jacobians_held", spy)
    rng = np.random.default_rng(8)
    n = cpu.HELD_BESIDE_MAX_ROWS
    J = rng.normal(size=(2, 6, n, n)) / np.sqrt(n)
    with _numba_threads(1):
        one = lenum.spectrum_from_jacobians(J)
    assert calls == [False]
    calls.clear()
    with _numba_threads(2):
        two = lenum.spectrum_from_jacobians(J)
    assert calls == [True, True]
    np.testing.assert_allclose(two.per_sequence, one.per_sequence, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell,N", [("rnn_tanh", 48), ("gru", 48), ("lstm", 24)])
def test_cholesky_qr_groups_match_oracle(cell, N):
    """n = 48 rows and k = 16, where the groups' QR is CholeskyQR2 (lenum.cholqr):
    B = 10 (a group of 8 and a padded group of 2, or 2 sequences one by one), a QR
    every step and every third, against the oracle per sequence."""
    from lenum.cholqr import chol_pays

    rng = np.random.default_rng(23)
    d, L, B, T, warmup, k = 3, 1, 10, 24, 3, 16
    w, net, x, h0, c0 = _oracle_problem(cell, rng, N, d, L, B, T)
    n = net.state_size
    assert chol_pays(n, k, np.empty(0)) == lenum.lanes.AVX512
    q0 = naive.random_orthonormal(n, k, rng)
    s0 = naive.state_from_h0(cell, h0, c0)
    with _numba_threads(1):
        for qr_every in (1, 3):
            res = lenum.lyapunov_spectrum(net, x, warmup=warmup, h0=h0, c0=c0, q0=q0,
                                          qr_every=qr_every)
            for b in range(B):
                _, jac = naive.trajectory(cell, w, L, x[b], s0[b])
                exps = naive.lyapunov_spectrum(jac, q0, warmup, qr_every)
                tol, _ = _oracle_tolerance(jac, q0, warmup, qr_every)
                np.testing.assert_allclose(res.per_sequence[b], exps, rtol=0, atol=tol)


@pytest.mark.parametrize("qr_every", [1, 12])
def test_known_spectrum_whether_or_not_cholesky_qr_answers(qr_every):
    """Zero input, h0 = 0, 48 units, k = 16: J_t = W_hh, the exponents are the 16
    largest log|eig(W_hh)| (magnitudes 10^0.5 .. 10^-1.5, signs alternating).  A QR
    every step leaves the groups' blocks well conditioned, and CholeskyQR2 answers; every
    12 steps their condition number passes 1e7, beyond its bound at 48 x 16, and the
    Householder QR takes the groups over.  Both must give the closed form."""
    rng = np.random.default_rng(5)
    n, k, warmup, T, B = 48, 16, 240, 480, 8
    lam = np.logspace(0.5, -1.5, n) * np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    U, _ = np.linalg.qr(rng.normal(size=(n, n)))
    V = U * rng.uniform(1.0, 2.0, n)  # cond(V) <= 2
    w = {"weight_ih_l0": rng.normal(size=(n, 2)),
         "weight_hh_l0": V @ np.diag(lam) @ np.linalg.inv(V)}
    net = lenum.Network.from_state_dict("rnn_tanh", w)
    # the subspace converges like |lam_17 / lam_16|^t = 10^(-2t/47): 1e-20 by the warm-up
    expected = np.log(np.abs(lam[:k]))
    with _numba_threads(1):
        res = lenum.lyapunov_spectrum(net, np.zeros((B, T, 2)), k=k, warmup=warmup,
                                      qr_every=qr_every)
    np.testing.assert_allclose(res.per_sequence, np.broadcast_to(expected, (B, k)), rtol=0,
                               atol=1e-9)
