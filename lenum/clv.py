"""Covariant Lyapunov vectors by the method of Ginelli et al. (2007).

The covariant (Lyapunov) vectors ``v_j(t)`` are the directions of the tangent space
that the dynamics carries into each other, ``J_t v_j(t-1) ~ v_j(t)``, and that grow on
average at the rate of the j-th Lyapunov exponent.  Unlike the orthonormal
Gram-Schmidt vectors of the QR method they do not depend on the inner product and are
not orthogonal; their angles measure how close the dynamics is to tangencies.

The algorithm (Ginelli, Poggi, Turchi, Chate, Livi & Politi 2007, "Characterizing
dynamics with covariant Lyapunov vectors", Phys. Rev. Lett. 99, 130601):

1. Forward pass: the QR method, ``J_t Q_{t-1} = Q_t R_t`` with diag(R_t) > 0.  After a
   warm-up (``warmup`` steps) that aligns Q with the Gram-Schmidt vectors, store
   ``Q_t`` for the steps of the window (``warmup+1 .. T-tail``) and ``R_t`` for the
   window and the tail (``warmup+1 .. T``).
2. Backward pass: start from a random upper-triangular ``C_T`` with unit columns and
   iterate ``C_{t-1} = R_t^{-1} C_t`` with each column renormalised.  The tail
   (``tail`` steps) lets C forget its random start (the error decays like
   ``exp(-(lambda_j - lambda_{j+1}) tail)``); then ``V_t = Q_t C_t`` are the covariant
   vectors, and ``-log`` of the column norms of ``R_t^{-1} C_t`` are the local growth
   rates ``log |J_t v_j(t-1)|`` of the unit vectors ``v_j(t-1)``.

The time averages of the growth rates are the Lyapunov exponents: summed over a
window, they differ from the sum of ``log R_jj`` of the QR method only by the boundary
term ``log|C_jj|`` at the two ends of the window.

Memory: the forward pass stores ``S n k`` values of Q and ``(S + tail) k^2`` of R per
sequence (``S`` steps in the window).  When that exceeds ``memory_limit`` bytes for the
sequences processed together, Q and R go to a temporary HDF5 file, written and read
back in windows of time steps.  The returned vectors themselves take ``B S n k``
values: pick the window (``warmup``, ``tail``) accordingly.
"""

import math
import os
import tempfile

import numpy as np

from ._jit import jit
from .cpu import copy_block, num_threads, over_sequences
from .cells.stack import (FAMILY, gru_rb_stack_step, gru_stack_step, lstm_stack_step,
                          make_products, make_workspace, vanilla_stack_step)
from .engine import (
    _WINDOW,
    _basis,
    _blas_single_threaded,
    _int_arg,
    jacobians_arg,
    network_args,
    read_inputs,
)
from .errors import NonFiniteError, ParameterError
from .thin import thin_dot

__all__ = ["covariant_vectors", "covariant_vectors_from_jacobians", "CovariantVectors"]

DEFAULT_MEMORY_LIMIT = 2**30


# --------------------------------------------------------------------------- kernels


@jit
def _qr_full(Z, Q, R):
    """Q (n, k) and R (k, k, float64) of ``Z`` with diag(R) >= 0; False if Z is not finite."""
    if not np.all(np.isfinite(Z)):
        return False
    q, r = np.linalg.qr(Z)
    k = Z.shape[1]
    for j in range(k):
        # Z = (q D)(D r) with D = sign(diag r): flips column j of q and row j of r
        sgn = -1.0 if r[j, j] < 0 else 1.0
        for i in range(Q.shape[0]):
            Q[i, j] = sgn * q[i, j]
        for c in range(k):
            R[j, c] = sgn * r[j, c]
    return True


@jit
def _qr_store(Z, Q, R, Qout, Rout, bad, b, t, store, q_count):
    """QR of step t of sequence b; keeps R_t (and Q_t while t < q_count) when storing.

    Returns False, with ``bad[b] = t``, when the tangent dynamics is not finite.
    """
    if not _qr_full(Z, Q[b], R):
        bad[b] = t
        return False
    if store:
        copy_block(R, Rout[b, t])
        if t < q_count:
            copy_block(Q[b], Qout[b, t])
    return True


@jit(inline="always")
def _forward_steps(step, X, S, Q, Qout, Rout, bad, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, store,
                   q_count):
    """QR method over inputs ``X`` (B, Tw, d); with ``store``, keep every R_t and the
    first ``q_count`` Q_t of the window.  ``bad[b]`` becomes the window step at which
    sequence b's tangent dynamics stopped being finite (it is -1 otherwise).  ``step``:
    the stack step of the cell's family (:mod:`lenum.cells.stack`)."""
    B, Tw = X.shape[0], X.shape[1]
    n, k = Q.shape[1], Q.shape[2]
    # scratch for every sequence (the GRU's and LSTM's weights packed into M once)
    M, Bin, diag, tmp, gates = make_workspace(code, w_ih0, w_hh, k, X)
    pre = make_products(w_hh, False, X)
    s_new = np.empty(n, dtype=X.dtype)
    Z = np.empty((n, k), dtype=X.dtype)
    R = np.empty((k, k))
    for b in range(B):
        for t in range(Tw):
            if bad[b] >= 0:
                break
            step(code, w_ih0, w_ihr, w_hh, b_ih, b_hh, X[b, t], S[b], s_new, Q[b], Z, M, Bin,
                 diag, tmp, gates, True, False, pre, -1)
            for i in range(n):  # not S[b, :] = s_new: see lenum.cpu.copy_block
                S[b, i] = s_new[i]
            if not _qr_store(Z, Q, R, Qout, Rout, bad, b, t, store, q_count):
                break


# one forward kernel per cell family, as in lenum.cpu: each compiles one cell
@jit
def _forward_vanilla(X, S, Q, Qout, Rout, bad, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, store,
                     q_count):
    _forward_steps(vanilla_stack_step, X, S, Q, Qout, Rout, bad, code, w_ih0, w_ihr, w_hh,
                   b_ih, b_hh, store, q_count)


@jit
def _forward_lstm(X, S, Q, Qout, Rout, bad, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, store,
                  q_count):
    _forward_steps(lstm_stack_step, X, S, Q, Qout, Rout, bad, code, w_ih0, w_ihr, w_hh, b_ih,
                   b_hh, store, q_count)


@jit
def _forward_gru(X, S, Q, Qout, Rout, bad, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, store,
                 q_count):
    _forward_steps(gru_stack_step, X, S, Q, Qout, Rout, bad, code, w_ih0, w_ihr, w_hh, b_ih,
                   b_hh, store, q_count)


@jit
def _forward_gru_rb(X, S, Q, Qout, Rout, bad, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, store,
                    q_count):
    _forward_steps(gru_rb_stack_step, X, S, Q, Qout, Rout, bad, code, w_ih0, w_ihr, w_hh,
                   b_ih, b_hh, store, q_count)


_FORWARD_KERNELS = (_forward_vanilla, _forward_lstm, _forward_gru, _forward_gru_rb)  # by FAMILY


@jit
def _forward_jacobians(J, Q, Qout, Rout, bad, store, q_count):
    """:func:`_forward_steps` for given Jacobians ``J`` (B, Tw, n, n)."""
    B, Tw = J.shape[0], J.shape[1]
    n, k = Q.shape[1], Q.shape[2]
    for b in range(B):
        Z = np.empty((n, k), dtype=J.dtype)
        R = np.empty((k, k))
        for t in range(Tw):
            if bad[b] >= 0:
                break
            thin_dot(J[b, t], Q[b], Z)
            if not _qr_store(Z, Q, R, Qout, Rout, bad, b, t, store, q_count):
                break


@jit
def _backward(Rw, Qw, C, V, G, bad, v_count):
    """Backward pass over one window of steps, latest first.

    ``Rw`` (B, Tw, k, k) holds R_t of the window's steps; the first ``v_count`` of them
    are in the output window and have ``Q_t`` in ``Qw``.  ``C`` (B, k, k) enters as
    C_t of the window's last step and leaves as C of the step before its first.  For
    output steps, ``V`` gets Q_t C_t and ``G`` the growth rates -log|R_t^{-1} C_t|_j.
    ``bad[b]`` becomes the window step of a zero or non-finite R_jj.
    """
    B, Tw, k = Rw.shape[0], Rw.shape[1], Rw.shape[2]
    for b in range(B):
        X = np.zeros((k, k))
        for i in range(Tw - 1, -1, -1):
            if bad[b] >= 0:
                break
            R = Rw[b, i]
            Cb = C[b]
            if i < v_count:
                np.dot(Qw[b, i], Cb.astype(Qw.dtype), V[b, i])
            # X = R^{-1} C by back substitution; both are upper triangular
            for j in range(k):
                for r in range(j, -1, -1):
                    s = Cb[r, j]
                    for c in range(r + 1, j + 1):
                        s -= R[r, c] * X[c, j]
                    X[r, j] = s / R[r, r]
            for j in range(k):
                nrm = 0.0
                for r in range(j + 1):
                    nrm += X[r, j] * X[r, j]
                nrm = math.sqrt(nrm)
                if not (nrm > 0.0 and np.isfinite(nrm)):
                    bad[b] = i
                    break
                for r in range(j + 1):
                    Cb[r, j] = X[r, j] / nrm
                if i < v_count:
                    G[b, i, j] = -math.log(nrm)


# --------------------------------------------------------------------------- result


class CovariantVectors:
    """Covariant Lyapunov vectors and their local growth rates over a window of steps.

    Attributes
    ----------
    vectors : ndarray (B, S, n, k)
        ``vectors[b, s, :, j]`` is the unit covariant vector j (in exponent order,
        largest first) of sequence b at step ``start + s`` (1-based, the state after
        that step).  Defined up to sign.
    growth_rates : ndarray (B, S, k)
        ``log |J_t v_j(t-1)|`` for t = ``start + s``: the local (one-step) growth rate
        of covariant vector j into step t, in nats per step.
    exponents : ndarray (k,)
        Mean of the growth rates over sequences and steps: the Lyapunov exponents
        (up to a boundary term of order ``log|C_jj| / S``, see the module notes).
    start : int
        1-based step of the first vector (``warmup + 1``).
    meta : dict
        k, warmup, tail, dtype, seed, ...
    """

    def __init__(self, vectors, growth_rates, start, **meta):
        self.vectors = vectors
        self.growth_rates = growth_rates
        self.exponents = np.asarray(growth_rates, dtype=np.float64).mean(axis=(0, 1))
        self.start = int(start)
        self.meta = dict(meta)

    @property
    def steps(self):
        """Steps per sequence in the window (S)."""
        return self.growth_rates.shape[1]

    def angles(self, i=0, j=1):
        """Angles (radians, in [0, pi/2]) between covariant vectors i and j, (B, S).

        Small angles mean near-tangencies of the stable and unstable directions.
        """
        v = np.asarray(self.vectors)
        c = np.abs(np.einsum("bsn,bsn->bs", v[..., i], v[..., j]))
        return np.arccos(np.clip(c, 0.0, 1.0))

    def __repr__(self):
        ex = np.array2string(self.exponents[:6], precision=4, separator=", ")
        B, S, n, k = self.vectors.shape
        return (f"CovariantVectors(sequences={B}, steps={S}, n={n}, k={k}, "
                f"exponents={ex})")


# --------------------------------------------------------------------------- driver


def _plan(B, S, tail, n, k, itemsize, memory_limit):
    """Sequences per chunk, steps per window and whether Q/R go to a temporary file."""
    per_seq = S * n * k * itemsize + (S + tail) * k * k * 8
    spill = per_seq > memory_limit
    bc = min(B, num_threads()) if spill else max(1, min(B, memory_limit // per_seq))
    # the window buffers (Q, R forward; V, G backward) get at most a quarter of the limit
    per_step = bc * (2 * n * k * itemsize + k * k * 8 + k * 8)
    window = max(1, min(_WINDOW, S + tail, (memory_limit // 4) // max(1, per_step)))
    return bc, window, spill


def _storage(spill, bc, S, tail, n, k, dtype, tmpdir):
    if not spill:
        return None, np.empty((bc, S, n, k), dtype=dtype), np.empty((bc, S + tail, k, k))
    import h5py

    fd, name = tempfile.mkstemp(suffix=".h5", prefix="lenum-clv-", dir=tmpdir)
    os.close(fd)
    f = h5py.File(name, "w")
    # chunks of whole (n, k) and (k, k) matrices along time: the passes read windows
    qs = f.create_dataset("Q", shape=(bc, S, n, k), dtype=dtype,
                          chunks=(1, min(S, 64), n, k))
    rs = f.create_dataset("R", shape=(bc, S + tail, k, k), dtype=np.float64,
                          chunks=(1, min(S + tail, 256), k, k))
    return (f, name), qs, rs


def _run(B, T, n, k, warmup, tail, dtype, q0, seed, memory_limit, tmpdir, forward):
    """The forward and backward passes, chunk by chunk; ``forward(b0, b1, t0, t1, Q,
    store, q_count, Qbuf, Rbuf, bad)`` advances the QR method over steps t0:t1."""
    S = T - warmup - tail
    itemsize = np.dtype(dtype).itemsize
    bc, W, spill = _plan(B, S, tail, n, k, itemsize, memory_limit)
    vectors = np.empty((B, S, n, k), dtype=dtype)
    growth = np.empty((B, S, k))
    rng = np.random.default_rng(seed)
    with _blas_single_threaded(bc > 1):
        _chunks(B, bc, S, tail, n, k, W, warmup, T, dtype, spill, tmpdir, q0, rng, forward,
                vectors, growth)
    return vectors, growth, bc, spill


def _chunks(B, bc, S, tail, n, k, W, warmup, T, dtype, spill, tmpdir, q0, rng, forward,
            vectors, growth):
    """Forward and backward passes of each batch chunk, filling vectors and growth."""
    for b0 in range(0, B, bc):
        b1 = min(B, b0 + bc)
        m = b1 - b0
        handle, Qst, Rst = _storage(spill, m, S, tail, n, k, dtype, tmpdir)
        try:
            Q = np.ascontiguousarray(np.broadcast_to(q0 if q0.ndim == 2 else q0[b0:b1],
                                                     (m, n, k)), dtype=dtype).copy()
            Qbuf = np.empty((m, W, n, k), dtype=dtype)
            Rbuf = np.empty((m, W, k, k))
            bad = np.full(m, -1, dtype=np.int64)
            for t0 in range(0, warmup, W):
                t1 = min(warmup, t0 + W)
                forward(b0, b1, t0, t1, Q, False, 0, Qbuf, Rbuf, bad)
                _check_bad(bad, b0, t0, "the tangent dynamics is not finite")
            for a in range(0, S + tail, W):
                t0 = warmup + a
                t1 = min(T, t0 + W)
                cnt = t1 - t0
                q_count = max(0, min(S - a, cnt))
                forward(b0, b1, t0, t1, Q, True, q_count, Qbuf, Rbuf, bad)
                _check_bad(bad, b0, t0, "the tangent dynamics is not finite")
                Rst[:, a:a + cnt] = Rbuf[:, :cnt]
                if q_count:
                    Qst[:, a:a + q_count] = Qbuf[:, :q_count]
            # random upper-triangular start of the backward pass, unit columns
            C = np.triu(rng.standard_normal((m, k, k)))
            idx = np.arange(k)
            C[:, idx, idx] = np.abs(C[:, idx, idx]) + 0.5
            C /= np.linalg.norm(C, axis=1, keepdims=True)
            Vbuf = np.empty((m, W, n, k), dtype=dtype)
            Gbuf = np.empty((m, W, k))
            starts = list(range(0, S + tail, W))
            for a in reversed(starts):
                cnt = min(W, S + tail - a)
                v_count = max(0, min(S - a, cnt))
                Rw = np.ascontiguousarray(Rst[:, a:a + cnt])
                Qw = (np.ascontiguousarray(Qst[:, a:a + v_count]) if v_count
                      else np.empty((m, 0, n, k), dtype=dtype))
                over_sequences(_backward, m, (Rw, Qw, C, Vbuf, Gbuf, bad), (v_count,))
                _check_bad(bad, b0, warmup + a,
                           "R has a zero diagonal entry (an exponent of -inf: the "
                           "covariant vectors exist only for k up to the rank of the "
                           "Jacobians' product; reduce k)")
                if v_count:
                    vectors[b0:b1, a:a + v_count] = Vbuf[:, :v_count]
                    growth[b0:b1, a:a + v_count] = Gbuf[:, :v_count]
        finally:
            if handle is not None:
                handle[0].close()
                os.unlink(handle[1])


def _check_bad(bad, b0, t0, what):
    if (bad >= 0).any():
        b = int(np.argmax(bad >= 0))
        raise NonFiniteError(f"covariant vectors of sequence {b0 + b}, near step "
                             f"{t0 + int(bad[b]) + 1}: {what}")


def _window_args(T, warmup, tail, memory_limit):
    warmup = _int_arg("warmup", warmup, 0)
    tail = _int_arg("tail", tail, 0)
    if warmup + tail >= T:
        raise ParameterError(
            f"warmup={warmup} + tail={tail} leaves no steps for the vectors: T={T}")
    memory_limit = _int_arg("memory_limit", memory_limit, 1)
    return warmup, tail, memory_limit


def covariant_vectors(net, x, k=None, warmup=100, tail=100, h0=None, c0=None, q0=None,
                      dtype="float64", memory_limit=DEFAULT_MEMORY_LIMIT, seed=0,
                      tmpdir=None, *, input_name="inputs"):
    """Covariant Lyapunov vectors of a network driven by inputs (Ginelli et al. 2007).

    Parameters
    ----------
    net : Network
    x : array_like, (B, T, d) or (T, d)
        Input sequences (an h5py Dataset is read in windows).
    k : int, optional
        Number of vectors (those of the k largest exponents); default the whole state.
    warmup : int
        Leading steps that align the QR basis with the Gram-Schmidt vectors.
    tail : int
        Trailing steps that the backward pass uses to converge; the vectors cover
        steps ``warmup + 1 .. T - tail``.
    h0, c0, q0, dtype
        As in :func:`lenum.lyapunov_spectrum` (the same default basis, so the forward
        pass reproduces its exponents).
    memory_limit : int
        Bytes of Q and R kept in memory for the sequences processed together; beyond
        it they go to a temporary HDF5 file in ``tmpdir``.  The returned vectors
        (``B S n k`` values) are not part of this budget.
    seed : int
        Seed of the random upper-triangular start of the backward pass.
    tmpdir : str, optional
        Folder of the temporary file (default: the system's).
    input_name : str
        How error messages name the inputs.

    Returns
    -------
    CovariantVectors

    Raises
    ------
    ShapeError, NonFiniteError, ParameterError
        ``NonFiniteError`` also when an R_jj is zero: a direction with exponent -inf
        has no covariant vector; reduce k.

    Notes
    -----
    Forward step and tangent ``J_t Q`` use lenum's cell kernels in a numba loop over
    steps, parallel over sequences; the QR is LAPACK's (``np.linalg.qr``), since the
    whole R is needed.  Cost: about that of :func:`lenum.lyapunov_spectrum` for the
    forward pass plus ``O(k^3)`` per step backwards.
    """
    B, T, single, k, dt, S0, Q0 = network_args(net, x, k, h0, c0, q0, dtype, input_name)
    n = net.state_size
    warmup, tail, memory_limit = _window_args(T, warmup, tail, memory_limit)
    weights = net.packed(dt)
    state = {}

    def forward(b0, b1, t0, t1, Q, store, q_count, Qbuf, Rbuf, bad):
        if t0 == 0:
            state["S"] = S0[b0:b1].copy()
        X = read_inputs(x, single, b0, b1, t0, t1, dt, input_name)
        S = state["S"]
        over_sequences(_FORWARD_KERNELS[FAMILY[net.cell_code]], X.shape[0],
                       (X, S, Q, Qbuf, Rbuf, bad),
                       (net.cell_code, *weights, store, q_count))
        if not np.all(np.isfinite(S)):
            b = int(np.argwhere(~np.isfinite(S))[0][0])
            raise NonFiniteError(f"the state of sequence {b0 + b} overflowed to Inf or NaN "
                                 f"between steps {t0} and {t1}")

    vectors, growth, bc, spill = _run(B, T, n, k, warmup, tail, dt, Q0, seed, memory_limit,
                                      tmpdir, forward)
    return CovariantVectors(vectors, growth, warmup + 1, cell=net.cell, k=k, warmup=warmup,
                            tail=tail, dtype=dt.name, seed=seed, spilled=spill,
                            batch_chunk=bc)


def covariant_vectors_from_jacobians(J, k=None, warmup=100, tail=100, q0=None,
                                     memory_limit=DEFAULT_MEMORY_LIMIT, seed=0, tmpdir=None):
    """Covariant Lyapunov vectors of a given sequence of Jacobians (Ginelli et al. 2007).

    Parameters
    ----------
    J : array_like, (T, n, n) or (B, T, n, n)
        Jacobians J_1 .. J_T in time order.  float32 input is computed in float32,
        anything else in float64.
    k, warmup, tail, q0, memory_limit, seed, tmpdir
        As in :func:`covariant_vectors`.

    Returns
    -------
    CovariantVectors
        ``vectors[b, s]`` belongs to step ``warmup + 1 + s``: the image under
        ``J_{warmup+1+s}`` of the vectors one step earlier, normalised.
    """
    J, k = jacobians_arg(J, k, q0)
    dt = J.dtype
    B, T, n, _ = J.shape
    warmup, tail, memory_limit = _window_args(T, warmup, tail, memory_limit)
    Q0 = _basis(q0, n, k, B, dt)

    def forward(b0, b1, t0, t1, Q, store, q_count, Qbuf, Rbuf, bad):
        over_sequences(_forward_jacobians, b1 - b0,
                       (np.ascontiguousarray(J[b0:b1, t0:t1]), Q, Qbuf, Rbuf, bad),
                       (store, q_count))

    vectors, growth, bc, spill = _run(B, T, n, k, warmup, tail, dt, Q0, seed, memory_limit,
                                      tmpdir, forward)
    return CovariantVectors(vectors, growth, warmup + 1, k=k, warmup=warmup, tail=tail,
                            dtype=dt.name, seed=seed, spilled=spill, batch_chunk=bc)
