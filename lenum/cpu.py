"""CPU kernels: advance a batch of sequences through a window of time steps.

Each kernel does one window of work for a slice of the sequences of a batch chunk; the
slices run in parallel on a pool of threads (the kernels release the GIL), never over
time, which is sequential.  The Python engine keeps the loop over windows, so that
inputs stream from disk, the progress bar moves and memory does not grow with T.

Threads rather than numba's ``prange``: the work per sequence is large (BLAS products
and a QR per step), so a thread per slice costs nothing measurable, and compiling
``parallel=True`` kernels took longer than compiling everything else together.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numba
import numpy as np

from ._jit import jit
from .cells.gru import gru_coefficients
from .cells.stack import (FAMILY, GRU, GRU_GATES, GRU_RB, grouped, gru_rb_stack_step,
                          gru_stack_step, lstm_group_step, lstm_stack_step,
                          make_group_workspace, make_products, make_workspace,
                          vanilla_group_step, vanilla_stack_step)
from .cholqr import interleaved_qr, make_chol
from .lanes import (LANES, apply_held, chunk_columns, form_held, gated_lanes, gather, lane_empty,
                    lanes_factor, make_held, make_lanes, pays, scatter, transpose_lanes)
from .qr import factor_step, form_q, qr_logdiag, work_rows
from .thin import thin_dot

_pool = None


def num_threads():
    """Threads used over sequences: numba's thread count (NUMBA_NUM_THREADS or
    ``numba.set_num_threads``), by default the number of CPUs."""
    return max(1, numba.get_num_threads())


def _threads(B):
    """Threads that :func:`over_sequences` runs B sequences on."""
    return min(B, num_threads())


def _forget_pool():
    # a child of fork() has none of its parent's threads, but the pool would count them
    global _pool
    _pool = None


os.register_at_fork(after_in_child=_forget_pool)


def split(B):
    """Boundaries of the slices of B sequences that run side by side, one per thread
    (sizes differing by one at most): ``bounds[0] == 0``, ``bounds[-1] == B``."""
    return np.linspace(0, B, _threads(B) + 1).astype(int)


def over_sequences(kernel, B, batched, shared):
    """Run ``kernel(*batched[b0:b1], *shared)`` on slices of the batch, in parallel."""
    global _pool
    parts = _threads(B)
    if parts <= 1:
        kernel(*batched, *shared)
        return
    if _pool is None or _pool._max_workers < parts:
        _pool = ThreadPoolExecutor(max_workers=parts, thread_name_prefix="lenum")
    bounds = split(B)
    futures = [
        _pool.submit(kernel, *(a[b0:b1] for a in batched), *shared)
        for b0, b1 in zip(bounds[:-1], bounds[1:])
    ]
    for f in futures:
        f.result()


@jit
def counting(tg, T, warmup, qr_every):
    """What step ``tg`` (1-based) of a sequence of ``T`` does: ``(qr, counted, block,
    length)``.

    Warm-up steps re-orthonormalise every step and are not counted.  Counted steps
    re-orthonormalise every ``qr_every`` steps (counting from the end of the warm-up)
    and at the last step, so the log-sum covers exactly steps warmup+1..T; ``block``
    is the index of the finite-time exponent the step closes, over ``length`` steps.
    """
    if tg <= warmup:
        return True, False, 0, 0
    c = tg - warmup
    if c % qr_every == 0 or tg == T:
        block = (c - 1) // qr_every
        return True, True, block, c - block * qr_every
    return False, False, 0, 0


@jit
def _record(logs, logsum, local, block, length, keep_local):
    for j in range(logs.shape[0]):
        logsum[j] += logs[j]
    if keep_local:
        for j in range(logs.shape[0]):
            local[block, j] = logs[j] / length


@jit(inline="always")
def _record_lanes(llogs, m, b0, logsum, local, block, length, keep_local):
    for ln in range(m):
        _record(llogs[:, ln], logsum[b0 + ln], local[b0 + ln], block, length, keep_local)


@jit
def copy_block(src, dst):
    """``dst[:, :] = src`` for 2-D arrays, as element loops.

    A slice assignment from an array makes numba compile its shape-mismatch message
    with string formatting: 2-4 s of cold compile per number of dimensions.
    """
    for i in range(src.shape[0]):
        for j in range(src.shape[1]):
            dst[i, j] = src[i, j]


@jit(inline="always")
def qr_group(Z, m, Q, b0, logsum, local, tg, T, warmup, qr_every, keep_local, lanes, logs,
             work, group_qr):
    """Re-orthonormalise and count step ``tg`` for the ``m`` sequences ``b0..b0+m-1``.

    ``Z[:m]`` holds their tangents J_t Q; ``Q[b0:b0+m]`` receives the new bases, from
    ``group_qr``: :func:`qr_interleaved` or :func:`qr_one_by_one`, chosen per kernel.
    Inlined into the window kernels: as a separate compiled level, numba optimised all
    the QR code once more (4 s of the cold compile).
    """
    qr, counted, block, length = counting(tg, T, warmup, qr_every)
    if not qr:
        for ln in range(m):
            copy_block(Z[ln], Q[b0 + ln])
        return
    group_qr(Z, m, Q, b0, logsum, local, counted, block, length, keep_local, lanes, logs, work)


@jit(inline="always")
def qr_interleaved(Z, m, Q, b0, logsum, local, counted, block, length, keep_local, lanes, logs,
                   work):
    """The group's QR interleaved (:mod:`lenum.lanes`), the lanes from ``m`` on padded
    with copies of sequence ``b0``.  The same as LAPACK's (:func:`qr_one_by_one`) up to
    round-off (1e-15 relative per step), so a sequence's last digits can depend on the
    batch it ran in."""
    A, llogs, tau, ss, wy, cw = lanes
    gather(Z, m, A)
    interleaved_qr(A, llogs, tau, ss, wy, cw)
    scatter(A, m, Q, b0)
    if counted:
        _record_lanes(llogs, m, b0, logsum, local, block, length, keep_local)


@jit(inline="always")
def qr_one_by_one(Z, m, Q, b0, logsum, local, counted, block, length, keep_local, lanes, logs,
                  work):
    """The group's QR one block at a time, by LAPACK (:func:`lenum.qr.qr_logdiag`)."""
    for ln in range(m):
        qr_logdiag(Z[ln], Q[b0 + ln], logs, work)
        if counted:
            _record(logs, logsum[b0 + ln], local[b0 + ln], block, length, keep_local)


@jit(inline="always")
def _lanes(n, k, dtype_like):
    # a group's QR workspace: the Householder QR's (lenum.lanes), and CholeskyQR2's
    # where it pays (lenum.cholqr); the held bases use the former only
    A, logs, tau, ss, wy = make_lanes(n, k, dtype_like)
    return A, logs, tau, ss, wy, make_chol(n, k, dtype_like)


@jit(inline="always")
def _workspace(n, k, G, dtype_like):
    # G = LANES for the interleaved QR, 1 for LAPACK's.  Inlined, like make_lanes: as
    # compiled levels of their own, the allocations took 1-3 s of a kernel's cold compile
    Z = np.empty((G, n, k), dtype=dtype_like.dtype)
    lanes = _lanes(n if G > 1 else 0, k if G > 1 else 0, dtype_like)
    logs = np.empty(k if G == 1 else 0, dtype=np.float64)
    work = np.empty((work_rows(n) if G == 1 else 0, k), dtype=dtype_like.dtype)
    return Z, lanes, logs, work


@jit(inline="always")
def _lanes_of(V, b0, m, r0, D):
    """``D[r, ln] = V[b0 + ln, r0 + r]`` for the LANES lanes of a group of ``m``
    sequences from ``b0``; lanes from ``m`` on repeat sequence ``b0``."""
    for r in range(D.shape[0]):
        for ln in range(LANES):
            D[r, ln] = V[b0 + (ln if ln < m else 0), r0 + r]


@jit(inline="always")
def _states_of(D, b0, m, V):
    """``V[b0 + ln, r] = D[r, ln]`` for the ``m`` real lanes: :func:`_lanes_of` undone."""
    for ln in range(m):
        for r in range(V.shape[1]):
            V[b0 + ln, r] = D[r, ln]


@jit(inline="always")
def _group_window(step, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, X, S, Q, b0, m, logsum, local,
                  t0, T, warmup, qr_every, keep_local, QA, lanes, gw):
    """The window for the sequences ``b0 .. b0 + m - 1``, their states and bases
    interleaved throughout (``step``: a group step of :mod:`lenum.cells.stack`): the QR
    works in place, and states and bases are copied in and out once per window, not
    once per step.  Lanes from ``m`` on repeat sequence ``b0``: finite, harmless work."""
    A, llogs, tau, ss, wy, cw = lanes
    XA, HA, HN, P, GW, D = gw
    ZA = A
    gather(Q[b0:b0 + m], m, QA)
    _lanes_of(S, b0, m, 0, HA[0])
    for t in range(X.shape[1]):
        _lanes_of(X[:, t], b0, m, 0, XA[0])
        step(code, w_ih0, w_ihr, w_hh, b_ih, b_hh, XA, HA, HN, P, QA, ZA, GW, D)
        qr, counted, block, length = counting(t0 + t + 1, T, warmup, qr_every)
        if qr:
            interleaved_qr(ZA, llogs, tau, ss, wy, cw)
            if counted:
                _record_lanes(llogs, m, b0, logsum, local, block, length, keep_local)
        QA, ZA = ZA, QA
        HA, HN = HN, HA
    scatter(QA, m, Q, b0)
    _states_of(HA[0], b0, m, S)


@jit(inline="always")
def _advance_groups(step, X, S, Q, logsum, local, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, t0, T,
                    warmup, qr_every, keep_local):
    B, n, k = Q.shape
    lanes = _lanes(n, k, X)
    QA = lane_empty((k, n, LANES), X.dtype)
    gw = make_group_workspace(code, w_ih0, w_hh, k, X)
    for b0 in range(0, B, LANES):
        _group_window(step, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, X, S, Q, b0,
                      min(LANES, B - b0), logsum, local, t0, T, warmup, qr_every, keep_local,
                      QA, lanes, gw)


# one window kernel per cell family with a group step, apart from the per-sequence
# kernel: each compiles only when a spectrum of its cell needs it (every kernel holding
# every cell's group step cost all users 8-9 s more cold compile)
@jit
def _advance_vanilla_groups(X, S, Q, logsum, local, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, t0,
                            T, warmup, qr_every, keep_local):
    _advance_groups(vanilla_group_step, X, S, Q, logsum, local, code, w_ih0, w_ihr, w_hh, b_ih,
                    b_hh, t0, T, warmup, qr_every, keep_local)


@jit
def _advance_lstm_groups(X, S, Q, logsum, local, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, t0, T,
                         warmup, qr_every, keep_local):
    _advance_groups(lstm_group_step, X, S, Q, logsum, local, code, w_ih0, w_ihr, w_hh, b_ih,
                    b_hh, t0, T, warmup, qr_every, keep_local)


# by FAMILY; the GRUs have no group step (cells.stack.grouped)
_GROUP_KERNELS = (_advance_vanilla_groups, _advance_lstm_groups)


# groups hold their bases from this many rows (below, the shared product W Q is the
# cheaper: held / formed 0.81-0.99 at n = 16-40, 1.00-1.03 at 48)
HELD_GROUP_MIN_ROWS = 48


def groups_held(code, L, n, k, qr_every):
    """Whether a group of vanilla sequences keeps its bases as the reflectors of its
    last interleaved QR (:func:`_advance_vanilla_groups_held`) rather than forming
    them: one layer (whose Jacobian is D W), k = n, a QR every step.

    Holding costs 3.3 n^3 flops a step (the QR 4/3 n^3, the reflectors applied to
    D W 2 n^3) against 4.7 n^3 (the QR and its Q 8/3 n^3, the shared product W Q
    2 n^3), but the reflectors run at the interleaved QR's rate, half the shared
    product's.  Whole spectra on 2 cores, A/B against forming Q
    (benchmarks/RESULTS.md): 1.06-1.16x at n = 64 and 1.02-1.23x in float32, within
    the noise (0.96-1.10x) in float64 from n = 128; below 48 rows slower (0.81-0.99x).
    """
    return (FAMILY[code] == 0 and L == 1 and k == n and qr_every == 1
            and n >= HELD_GROUP_MIN_ROWS)


@jit(inline="always")
def _scaled_rows(W, Dl, XT):
    # XT[c, r, l] = Dl[c, l] W[c, r]: the rows of D W as lane-columns, (D W)^T in the
    # lanes layout, for apply_held
    n = W.shape[0]
    for c in range(n):
        for r in range(n):
            w = W[c, r]
            for ln in range(LANES):
                XT[c, r, ln] = Dl[c, ln] * w


@jit(inline="always")
def _factor_held(lanes, hw, apply, m, b0, logsum, local, tg, T, warmup, keep_local):
    """The QR of a step whose group holds its bases as reflectors: with ``apply``, the
    last QR's reflectors applied to ``hw[0]`` (J_t^T in the lanes layout) and the
    result turned back into ``lanes[0]``, J_t Q = (Q^T J_t^T)^T; then ``lanes[0]``
    factorised without forming Q, and the logs recorded where step ``tg`` counts.

    Q here is the reflectors' product, without the signs that make R's diagonal
    positive: its columns may differ in sign from a formed basis, which moves no
    |R_ii| and so no exponent (form_held applies the last QR's signs only)."""
    A, llogs, tau, ss, wy, _ = lanes
    XT, signs, V, DS, G = hw
    if apply:
        apply_held(A, tau, wy[2], XT, V, DS, G, chunk_columns(A.shape[1], A.shape[1], XT))
        transpose_lanes(XT, A)
    lanes_factor(A, llogs, signs, tau, ss, wy)
    _, counted, block, length = counting(tg, T, warmup, 1)
    if counted:
        _record_lanes(llogs, m, b0, logsum, local, block, length, keep_local)


@jit(inline="always")
def _group_window_held(code, w_ih0, w_ihr, w_hh, b_ih, b_hh, X, S, Q, b0, m, logsum, local,
                       t0, T, warmup, keep_local, QA, none, lanes, gw, hw):
    """:func:`_group_window` for one vanilla layer with its bases held as reflectors
    (:func:`groups_held`): the window's first step multiplies by the basis given, the
    others apply the last QR's reflectors to D W, J_t Q = (Q^T (D W)^T)^T; the basis
    the next window starts from is formed at the end.  ``none`` (0, n, LANES): no
    basis columns, for the group step's states and slopes alone."""
    A, llogs, tau, ss, wy, _ = lanes
    XA, HA, HN, P, GW, D = gw
    XT, signs, V, DS, G = hw
    if X.shape[1] == 0:
        return
    gather(Q[b0:b0 + m], m, QA)
    _lanes_of(S, b0, m, 0, HA[0])
    for t in range(X.shape[1]):
        _lanes_of(X[:, t], b0, m, 0, XA[0])
        if t == 0:
            vanilla_group_step(code, w_ih0, w_ihr, w_hh, b_ih, b_hh, XA, HA, HN, P, QA, A, GW,
                               D)
        else:
            vanilla_group_step(code, w_ih0, w_ihr, w_hh, b_ih, b_hh, XA, HA, HN, P, none,
                               none, GW, D)
            _scaled_rows(w_hh[0], D[0, 0], XT)
        _factor_held(lanes, hw, t > 0, m, b0, logsum, local, t0 + t + 1, T, warmup, keep_local)
        HA, HN = HN, HA
    form_held(A, llogs, signs, tau, ss, wy)
    scatter(A, m, Q, b0)
    _states_of(HA[0], b0, m, S)


@jit
def _advance_vanilla_groups_held(X, S, Q, logsum, local, code, w_ih0, w_ihr, w_hh, b_ih, b_hh,
                                 t0, T, warmup, qr_every, keep_local):
    B, n, k = Q.shape
    lanes = _lanes(n, k, X)
    QA = lane_empty((k, n, LANES), X.dtype)
    gw = make_group_workspace(code, w_ih0, w_hh, k, X)
    none = lane_empty((0, n, LANES), X.dtype)
    hw = make_held(n, X)
    for b0 in range(0, B, LANES):
        _group_window_held(code, w_ih0, w_ihr, w_hh, b_ih, b_hh, X, S, Q, b0,
                           min(LANES, B - b0), logsum, local, t0, T, warmup, keep_local, QA,
                           none, lanes, gw, hw)


_GROUP_HELD_KERNELS = (_advance_vanilla_groups_held,)  # by FAMILY: vanilla only


@jit(inline="always")
def shared_products(w_ih0, w_hh, X, S, t, b0, m, pre, H, XG):
    """W_hh h of every layer and W_ih x of the first for the ``m`` sequences from ``b0``
    at step ``t``, into ``pre`` (:func:`lenum.cells.stack.make_products`), lane by lane.

    One product by LANES columns per matrix (:mod:`lenum.thin`) instead of a
    matrix-vector product per sequence, which reads the weights from L2 or L3 for two
    flops per entry.  Lanes from ``m`` on repeat sequence ``b0``.
    """
    L = w_hh.shape[0]
    S_layer = S.shape[1] // L
    for layer in range(L):
        _lanes_of(S, b0, m, layer * S_layer, H)
        thin_dot(w_hh[layer], H, pre[layer, 1])
    _lanes_of(X[:, t], b0, m, 0, XG)
    thin_dot(w_ih0, XG, pre[0, 0])


@jit(inline="always")
def _sequences_workspace(code, w_ih0, w_hh, n, k, X, G):
    """Scratch of :func:`_step_sequences` for groups of ``G``: the stack step's
    (:func:`lenum.cells.stack.make_workspace`), the next state, and the forward products
    that a group of LANES shares (:func:`shared_products`; the reset-before GRU
    computes its own)."""
    share = G == LANES and code != GRU_RB
    return (make_workspace(code, w_ih0, w_hh, k, X), np.empty(n, dtype=X.dtype), share,
            make_products(w_hh, share, X),
            lane_empty((w_hh.shape[2] if share else 0, LANES), X.dtype),
            lane_empty((X.shape[2] if share else 0, LANES), X.dtype))


@jit(inline="always")
def _step_sequences(step, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, X, S, Q, Z, b0, m, t, jacobian,
                    sw, keep, into, kept):
    """Step ``t`` of the ``m`` sequences from ``b0`` by the stack step ``step``: their
    states in ``S`` advanced, ``Z[ln]`` = J_t Q[b0 + ln], or J_t itself with
    ``jacobian``; ``sw`` from :func:`_sequences_workspace`.  With ``kept``, no
    tangent: ``keep(gates, ln, into)`` runs after each sequence's step instead, to
    keep the per-unit coefficients the cell left in ``gates``."""
    (M, Bin, diag, tmp, gates), s_new, share, pre, H, XG = sw
    # a group at most half full pays more for the padded lanes than it saves
    shared = share and 2 * m > LANES
    if shared:
        shared_products(w_ih0, w_hh, X, S, t, b0, m, pre, H, XG)
    for ln in range(m):
        b = b0 + ln
        step(code, w_ih0, w_ihr, w_hh, b_ih, b_hh, X[b, t], S[b], s_new, Q[b], Z[ln], M, Bin,
             diag, tmp, gates, not kept, jacobian, pre, ln if shared else -1)
        if kept:
            keep(gates, ln, into)
        for i in range(s_new.shape[0]):  # not S[b, :] = s_new: see copy_block
            S[b, i] = s_new[i]


@jit(inline="always")
def _advance_sequences(step, group_qr, G, X, S, Q, logsum, local, code, w_ih0, w_ihr, w_hh, b_ih,
                       b_hh, t0, T, warmup, qr_every, keep_local):
    B, n, k = Q.shape
    sw = _sequences_workspace(code, w_ih0, w_hh, n, k, X, G)
    Z, lanes, logs, work = _workspace(n, k, G, X)
    # groups of sequences advance together through the window, so that their QRs can
    # run interleaved; one call site of the step keeps the compiled code small
    for b0 in range(0, B, G):
        m = min(G, B - b0)
        for t in range(X.shape[1]):
            _step_sequences(step, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, X, S, Q, Z, b0, m, t,
                            False, sw, _keep_nothing, None, False)
            qr_group(Z, m, Q, b0, logsum, local, t0 + t + 1, T, warmup, qr_every,
                     keep_local, lanes, logs, work, group_qr)


# the per-sequence window kernels, one per cell family like the group kernels: a
# spectrum compiles the cell it runs, not all five (19-20 s of cold compile, where the
# kernel holding every cell took 26-28 s side by side); and one per QR path,
# interleaved or LAPACK's, for the same reason: a kernel holding both compiled 2-3 s
# longer than the interleaved one alone and 9-13 s longer than LAPACK's (see
# _interleaved)
@jit
def _advance_vanilla(X, S, Q, logsum, local, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, t0, T, warmup,
                     qr_every, keep_local):
    _advance_sequences(vanilla_stack_step, qr_one_by_one, 1, X, S, Q, logsum, local, code,
                       w_ih0, w_ihr, w_hh, b_ih, b_hh, t0, T, warmup, qr_every, keep_local)


@jit
def _advance_lstm(X, S, Q, logsum, local, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, t0, T, warmup,
                  qr_every, keep_local):
    _advance_sequences(lstm_stack_step, qr_one_by_one, 1, X, S, Q, logsum, local, code,
                       w_ih0, w_ihr, w_hh, b_ih, b_hh, t0, T, warmup, qr_every, keep_local)


@jit
def _advance_gru(X, S, Q, logsum, local, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, t0, T, warmup,
                 qr_every, keep_local):
    _advance_sequences(gru_stack_step, qr_one_by_one, 1, X, S, Q, logsum, local, code,
                       w_ih0, w_ihr, w_hh, b_ih, b_hh, t0, T, warmup, qr_every, keep_local)


@jit
def _advance_gru_rb(X, S, Q, logsum, local, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, t0, T, warmup,
                    qr_every, keep_local):
    _advance_sequences(gru_rb_stack_step, qr_one_by_one, 1, X, S, Q, logsum, local, code,
                       w_ih0, w_ihr, w_hh, b_ih, b_hh, t0, T, warmup, qr_every, keep_local)


@jit
def _advance_vanilla_interleaved(X, S, Q, logsum, local, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, t0,
                                 T, warmup, qr_every, keep_local):
    _advance_sequences(vanilla_stack_step, qr_interleaved, LANES, X, S, Q, logsum, local, code,
                       w_ih0, w_ihr, w_hh, b_ih, b_hh, t0, T, warmup, qr_every, keep_local)


@jit
def _advance_lstm_interleaved(X, S, Q, logsum, local, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, t0, T,
                              warmup, qr_every, keep_local):
    _advance_sequences(lstm_stack_step, qr_interleaved, LANES, X, S, Q, logsum, local, code,
                       w_ih0, w_ihr, w_hh, b_ih, b_hh, t0, T, warmup, qr_every, keep_local)


@jit
def _advance_gru_interleaved(X, S, Q, logsum, local, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, t0, T,
                             warmup, qr_every, keep_local):
    _advance_sequences(gru_stack_step, qr_interleaved, LANES, X, S, Q, logsum, local, code,
                       w_ih0, w_ihr, w_hh, b_ih, b_hh, t0, T, warmup, qr_every, keep_local)


@jit
def _advance_gru_rb_interleaved(X, S, Q, logsum, local, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, t0, T,
                                warmup, qr_every, keep_local):
    _advance_sequences(gru_rb_stack_step, qr_interleaved, LANES, X, S, Q, logsum, local, code,
                       w_ih0, w_ihr, w_hh, b_ih, b_hh, t0, T, warmup, qr_every, keep_local)


_SEQUENCE_KERNELS = (_advance_vanilla, _advance_lstm, _advance_gru, _advance_gru_rb)  # by FAMILY
_INTERLEAVED_KERNELS = (_advance_vanilla_interleaved, _advance_lstm_interleaved,
                        _advance_gru_interleaved, _advance_gru_rb_interleaved)


# groups of GRU sequences hold their bases from this many rows (see sequences_held)
HELD_SEQUENCES_MIN_ROWS = 48


def sequences_held(code, n, k, qr_every):
    """Whether an interleaved group of GRU sequences (either reset order) keeps its
    bases as the reflectors of its last QR (:func:`_advance_gru_interleaved_held`)
    rather than forming them: k = n, a QR every step, from HELD_SEQUENCES_MIN_ROWS rows.

    The stack step then writes J_t itself, and the reflectors are applied to J_t^T
    (:func:`lenum.lanes.apply_held`, 2 n^3 flops at the interleaved QR's rate) in place
    of forming Q (4/3 n^3) and the product J_t Q (2 n^3 through the BLAS).  The
    vanilla and LSTM cells keep Q: their tangent products cost less than a dense
    J_t Q (the vanilla cell's W Q shared by a group or D (W Q); the LSTM's Jacobian is
    half diagonal), so the reflectors would cost more than they save.  Whole GRU
    spectra 1.03-1.15x faster from 48 rows in both dtypes; under 40 forming Q wins
    (0.76-0.98 at 24-32 rows; benchmarks/RESULTS.md, "GRU groups holding their bases").
    """
    return FAMILY[code] >= 2 and k == n and qr_every == 1 and n >= HELD_SEQUENCES_MIN_ROWS


@jit(inline="always")
def _jacobians_as_lanes(Z, m, XT):
    # XT[c, r, ln] = J[c, r] of lane ln's Jacobian in Z[ln]: J^T in the lanes layout,
    # for apply_held; lanes from m on repeat sequence 0, as gather pads them
    n = Z.shape[1]
    for c in range(n):
        for r in range(n):
            for ln in range(LANES):
                XT[c, r, ln] = Z[ln if ln < m else 0, c, r]


@jit(inline="always")
def _lanes_coefficients(n, dtype_like):
    # the per-unit coefficients of a group's GRU Jacobians, by lane (gated_lanes)
    return (lane_empty((3, n, LANES), dtype_like.dtype),
            lane_empty((n, LANES), dtype_like.dtype))


@jit(inline="always")
def _keep_nothing(gates, ln, into):
    pass


@jit(inline="always")
def _keep_gru_coefficients(gates, ln, into):
    # lane ln of gated_lanes' coefficients
    C, D = into
    N = D.shape[0]
    Cs, Ds = gru_coefficients(gates, N)
    for g in range(3):
        for i in range(N):
            C[g, i, ln] = Cs[g, i]
    for i in range(N):
        D[i, ln] = Ds[i]


@jit(inline="always")
def _gru_jacobians_as_lanes(w_hh, into, m, XT):
    # J^T of each lane's GRU step in the lanes layout, as _jacobians_as_lanes leaves it
    # from the Jacobians formed one by one (to the bit); lanes from m on repeat lane 0
    C, D = into
    for ln in range(m, LANES):
        for g in range(3):
            for i in range(D.shape[0]):
                C[g, i, ln] = C[g, i, 0]
        for i in range(D.shape[0]):
            D[i, ln] = D[i, 0]
    gated_lanes(w_hh, GRU_GATES, C, D, XT, np.intp(0))


@jit(inline="always")
def _advance_sequences_held(step, X, S, Q, logsum, local, code, w_ih0, w_ihr, w_hh, b_ih, b_hh,
                            t0, T, warmup, keep_local):
    """:func:`_advance_sequences` with the interleaved QR, each group's bases held as
    reflectors (:func:`sequences_held`): the window's first step multiplies by the basis
    given, the others have the stack step write J_t and apply the last QR's reflectors
    to it, J_t Q = (Q^T J_t^T)^T; the basis the next window starts from is formed at
    the end.  For one GRU layer the group's J_t are formed at once, straight into the
    lanes layout (:func:`lenum.lanes.gated_lanes`; 1.02-1.24x whole spectra against
    writing them one by one and interleaving them, benchmarks/RESULTS.md, "Gated
    products")."""
    B, n, k = Q.shape
    sw = _sequences_workspace(code, w_ih0, w_hh, n, k, X, LANES)
    Z, lanes, _, _ = _workspace(n, k, LANES, X)
    hw = make_held(n, X)
    # one GRU layer: its Jacobians formed for the group at once, in the lanes layout
    direct = code == GRU and w_hh.shape[0] == 1
    into = _lanes_coefficients(n if direct else 0, X)
    for b0 in range(0, B, LANES):
        m = min(LANES, B - b0)
        for t in range(X.shape[1]):
            kept = direct and t > 0
            _step_sequences(step, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, X, S, Q, Z, b0, m, t,
                            t > 0, sw, _keep_gru_coefficients, into, kept)
            if kept:
                _gru_jacobians_as_lanes(w_hh[0], into, m, hw[0])
            elif t == 0:
                gather(Z, m, lanes[0])
            else:
                _jacobians_as_lanes(Z, m, hw[0])
            _factor_held(lanes, hw, t > 0, m, b0, logsum, local, t0 + t + 1, T, warmup,
                         keep_local)
        if X.shape[1] > 0:
            A, llogs, tau, ss, wy, _ = lanes
            form_held(A, llogs, hw[1], tau, ss, wy)
            scatter(A, m, Q, b0)


@jit
def _advance_gru_interleaved_held(X, S, Q, logsum, local, code, w_ih0, w_ihr, w_hh, b_ih, b_hh,
                                  t0, T, warmup, qr_every, keep_local):
    _advance_sequences_held(gru_stack_step, X, S, Q, logsum, local, code, w_ih0, w_ihr, w_hh,
                            b_ih, b_hh, t0, T, warmup, keep_local)


@jit
def _advance_gru_rb_interleaved_held(X, S, Q, logsum, local, code, w_ih0, w_ihr, w_hh, b_ih,
                                     b_hh, t0, T, warmup, qr_every, keep_local):
    _advance_sequences_held(gru_rb_stack_step, X, S, Q, logsum, local, code, w_ih0, w_ihr,
                            w_hh, b_ih, b_hh, t0, T, warmup, keep_local)


# by FAMILY: the GRU cells only (sequences_held)
_INTERLEAVED_HELD_KERNELS = (None, None, _advance_gru_interleaved_held,
                             _advance_gru_rb_interleaved_held)

# beside other threads, bases are held as reflectors up to this many rows, applied one
# reflector at a time (held_basis)
HELD_BESIDE_MAX_ROWS = 128
# ... and up to this many rows from this many threads side by side, their QR one
# reflector at a time too (measured to 256 rows)
HELD_MANY_THREADS = 8
HELD_MANY_MAX_ROWS = 256


def held_basis(m, n, k, qr_every, threads):
    """Whether a thread's ``m`` sequences keep their bases as the reflectors of their
    last QR and apply them to the next Jacobian (:func:`lenum.qr.factor_step`), never
    forming them: at k = n, with a QR every step, for sequences that do not fill an
    interleaved group (:func:`lenum.lanes.pays`); above ``HELD_BESIDE_MAX_ROWS`` rows
    only when the thread runs alone (``threads`` = 1, the threads of the spectrum) or,
    up to ``HELD_MANY_MAX_ROWS``, beside ``HELD_MANY_THREADS`` - 1 or more others.

    Whole spectra, A/B against forming Q (benchmarks/RESULTS.md): one sequence on one
    thread median 1.12x (1.00-1.38x) over rnn_tanh, GRU and LSTM at n = 32-256.
    Interleaved groups stay faster (this in their place: 0.67-1.01x).  LAPACK's ormqr,
    which applies the reflectors, takes compact-WY blocks from 68 rows, whose small
    level-3 BLAS calls did not run on several threads at once on a 16-core Xeon with
    SciPy 1.18's OpenBLAS: 16 sequences on 16 threads ran 0.12-0.23x as fast held as
    with Q formed at n = 80-128.  Beside other threads the kernels therefore have
    ormqr apply one reflector at a time (:func:`lenum.qr.factor_step`), which ran
    1.04-1.22x faster than forming Q at n = 64-128 there (16 threads) and 1.05-1.14x
    at n = 96-128 on 2 cores.  Above 128 rows holding gained nothing beside other
    threads (at n = 160 on the 16: one reflector at a time 1.01-1.03x as fast as
    forming Q, in blocks 0.49x), and one at a time is the slower on one thread (ormqr
    0.45-0.8x of the blocks at n = 192-256).  A thread alone keeps the blocks: on one
    thread at n = 96-128 ormqr ran 1.3-1.8x faster in blocks on the Xeon, 0.9-1.2x on
    an AMD EPYC core.  From 8 threads side by side LAPACK's QR in blocks (geqrf, orgqr,
    above 128 rows) stopped gaining threads on two 16-core machines, where one
    reflector at a time gave 1.3-2.2x its calls at n = 160-256: there bases are held
    up to 256 rows, the QR of each step one reflector at a time too (16 sequences on 16
    threads: 1.18-1.27x as fast as forming Q at n = 256, 1.01x at n = 160).
    """
    return (k == n and qr_every == 1 and not pays(m, n, k)
            and (threads == 1 or n <= HELD_BESIDE_MAX_ROWS
                 or (threads >= HELD_MANY_THREADS and n <= HELD_MANY_MAX_ROWS)))


@jit(inline="always")
def _held_qr(Zt, held, slot, logs, work, logsum, local, tg, T, warmup, keep_local, beside):
    # step tg's QR, of J_t Q when the basis Q is held as reflectors in work (Zt = J_t),
    # else of Zt itself (a window's first step, Zt = J_t Q); returns the block of work
    # that holds the new reflectors.  Beside other threads, one reflector at a time
    # (held_basis).
    slot = factor_step(Zt, logs, work, slot, held, beside)
    _, counted, block, length = counting(tg, T, warmup, 1)
    if counted:
        _record(logs, logsum, local, block, length, keep_local)
    return slot


@jit(inline="always")
def _advance_held(step, X, S, Q, logsum, local, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, t0, T,
                  warmup, keep_local, beside):
    """The window for sequences whose bases are held as reflectors (:func:`held_basis`),
    one at a time: the first step multiplies J_t by the basis given, the others have
    the stack step write J_t itself for the reflectors to multiply, and the last forms
    the basis the next window starts from."""
    B, n, k = Q.shape
    M, Bin, diag, tmp, gates = make_workspace(code, w_ih0, w_hh, k, X)
    pre = make_products(w_hh, False, X)
    s_new = np.empty(n, dtype=X.dtype)
    Z = np.empty((n, k), dtype=X.dtype)
    logs = np.empty(k, dtype=np.float64)
    work = np.empty((work_rows(n), k), dtype=X.dtype)
    for b in range(B):
        slot = 0
        for t in range(X.shape[1]):
            step(code, w_ih0, w_ihr, w_hh, b_ih, b_hh, X[b, t], S[b], s_new, Q[b], Z, M, Bin,
                 diag, tmp, gates, True, t > 0, pre, -1)
            for i in range(n):  # not S[b, :] = s_new: see copy_block
                S[b, i] = s_new[i]
            slot = _held_qr(Z, t > 0, slot, logs, work, logsum[b], local[b], t0 + t + 1, T,
                            warmup, keep_local, beside)
        if X.shape[1] > 0:
            form_q(Q[b], work, slot)


# and the window kernels for held bases, per family again: a spectrum compiles either
# these or the ones above, whose interleaved QR these do not need
@jit
def _advance_vanilla_held(X, S, Q, logsum, local, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, t0, T,
                          warmup, qr_every, keep_local, beside):
    _advance_held(vanilla_stack_step, X, S, Q, logsum, local, code, w_ih0, w_ihr, w_hh, b_ih,
                  b_hh, t0, T, warmup, keep_local, beside)


@jit
def _advance_lstm_held(X, S, Q, logsum, local, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, t0, T,
                       warmup, qr_every, keep_local, beside):
    _advance_held(lstm_stack_step, X, S, Q, logsum, local, code, w_ih0, w_ihr, w_hh, b_ih,
                  b_hh, t0, T, warmup, keep_local, beside)


@jit
def _advance_gru_held(X, S, Q, logsum, local, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, t0, T,
                      warmup, qr_every, keep_local, beside):
    _advance_held(gru_stack_step, X, S, Q, logsum, local, code, w_ih0, w_ihr, w_hh, b_ih,
                  b_hh, t0, T, warmup, keep_local, beside)


@jit
def _advance_gru_rb_held(X, S, Q, logsum, local, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, t0, T,
                         warmup, qr_every, keep_local, beside):
    _advance_held(gru_rb_stack_step, X, S, Q, logsum, local, code, w_ih0, w_ihr, w_hh, b_ih,
                  b_hh, t0, T, warmup, keep_local, beside)


_HELD_KERNELS = (_advance_vanilla_held, _advance_lstm_held, _advance_gru_held,
                 _advance_gru_rb_held)  # by FAMILY


def _interleaved(B, n, k):
    """Whether a thread's B sequences take their QR interleaved, in groups of LANES
    (:mod:`lenum.lanes`), the last group padded: once there is a full group, or for a
    lone partial group where it pays; else one by one, by LAPACK.  That is
    :func:`lenum.lanes.pays` for all B of them at once, since a full group always
    pays (``min_fill(n) <= LANES``).

    Never both for one thread: a spectrum then compiles the window kernel of one QR
    path, not one holding both (2-3 s longer to compile than the interleaved path's,
    on 26-30 s; 9-13 s longer than LAPACK's, on 19-20 s).  The padding costs at most
    one group's QR per thread.
    """
    return pays(B, n, k)


def _in_groups(code, N, n, k, B):
    """How many of a thread's B sequences go to the group kernel of their cell: all of
    them where their QR is interleaved (:func:`_interleaved`) and the cell and shape
    have a group step (:func:`lenum.cells.stack.grouped`), else none.

    Never a split between the two kernels: a spectrum then compiles one window kernel,
    not two (both: 34-36 s of cold compile, against 14-16 s for a group kernel and
    28 s for the per-sequence one, when it still held every cell).
    """
    return B if grouped(code, N, k) and _interleaved(B, n, k) else 0


def _advance_slice(threads, X, S, Q, logsum, local, code, *shared):
    B, n, k = Q.shape
    if _in_groups(code, shared[2].shape[2], n, k, B):
        kernels = _GROUP_KERNELS
        if groups_held(code, shared[2].shape[0], n, k, shared[8]):
            kernels = _GROUP_HELD_KERNELS
    elif held_basis(B, n, k, shared[8], threads):
        # one argument more: whether other threads run beside this one
        kernels, shared = _HELD_KERNELS, shared + (threads > 1,)
    elif _interleaved(B, n, k):
        kernels = _INTERLEAVED_KERNELS
        if sequences_held(code, n, k, shared[8]):
            kernels = _INTERLEAVED_HELD_KERNELS
    else:
        kernels = _SEQUENCE_KERNELS
    kernels[FAMILY[code]](X, S, Q, logsum, local, code, *shared)


def advance_network(code, w_ih0, w_ihr, w_hh, b_ih, b_hh, X, S, Q, logsum, local, t0, T,
                    warmup, qr_every, keep_local, beside=None):
    """Advance states ``S`` (B, n) and bases ``Q`` (B, n, k) over inputs ``X`` (B, Tw, d).

    ``logsum`` (B, k) accumulates the counted log|R_ii|; ``local`` (B, S, k) receives
    the finite-time exponents when ``keep_local``.  Each thread's sequences go to the
    group kernel of their cell where it has one and they fill a group
    (:func:`_in_groups`; for one vanilla layer at k = n, the one that holds the
    group's bases as reflectors, :func:`groups_held`), else to the kernel that holds
    their bases as reflectors where that applies (:func:`held_basis`), else to the
    per-sequence kernel: with the QR interleaved in groups of 8 (:func:`_interleaved`),
    for the GRUs at k = n the one that holds each group's bases as reflectors
    (:func:`sequences_held`).

    With ``beside`` a number, the sequences are one of that many slices of a chunk
    (:func:`split`) running side by side (:mod:`lenum.pipeline`): they run on the
    calling thread, by the kernels chosen for that many threads.
    """
    shared = (code, w_ih0, w_ihr, w_hh, b_ih, b_hh, t0, T, warmup, qr_every, keep_local)
    if beside is not None:
        _advance_slice(beside, X, S, Q, logsum, local, *shared)
        return
    over_sequences(partial(_advance_slice, _threads(X.shape[0])), X.shape[0],
                   (X, S, Q, logsum, local), shared)


@jit(inline="always")
def _advance_given(group_qr, G, J, Q, logsum, local, t0, T, warmup, qr_every, keep_local):
    B, n, k = Q.shape
    Z, lanes, logs, work = _workspace(n, k, G, J)
    for b0 in range(0, B, G):
        m = min(G, B - b0)
        for t in range(J.shape[1]):
            for ln in range(m):
                thin_dot(J[b0 + ln, t], Q[b0 + ln], Z[ln])
            qr_group(Z, m, Q, b0, logsum, local, t0 + t + 1, T, warmup, qr_every,
                     keep_local, lanes, logs, work, group_qr)


@jit
def _advance_jacobians(J, Q, logsum, local, t0, T, warmup, qr_every, keep_local):
    _advance_given(qr_one_by_one, 1, J, Q, logsum, local, t0, T, warmup, qr_every, keep_local)


@jit
def _advance_jacobians_interleaved(J, Q, logsum, local, t0, T, warmup, qr_every, keep_local):
    _advance_given(qr_interleaved, LANES, J, Q, logsum, local, t0, T, warmup, qr_every,
                   keep_local)


@jit
def _advance_jacobians_held(J, Q, logsum, local, t0, T, warmup, qr_every, keep_local,
                            beside):
    # _advance_held for given Jacobians: after a window's first step, J_t is multiplied
    # by the reflectors as it is
    B, n, k = Q.shape
    Z = np.empty((n, k), dtype=J.dtype)
    logs = np.empty(k, dtype=np.float64)
    work = np.empty((work_rows(n), k), dtype=J.dtype)
    if J.shape[1] == 0:
        return
    for b in range(B):
        thin_dot(J[b, 0], Q[b], Z)
        slot = _held_qr(Z, False, 0, logs, work, logsum[b], local[b], t0 + 1, T, warmup,
                        keep_local, beside)
        for t in range(1, J.shape[1]):
            slot = _held_qr(J[b, t], True, slot, logs, work, logsum[b], local[b], t0 + t + 1,
                            T, warmup, keep_local, beside)
        form_q(Q[b], work, slot)


def _advance_jacobians_slice(threads, J, Q, logsum, local, t0, T, warmup, qr_every,
                             keep_local):
    B, n, k = Q.shape
    if held_basis(B, n, k, qr_every, threads):
        _advance_jacobians_held(J, Q, logsum, local, t0, T, warmup, qr_every, keep_local,
                                threads > 1)
    elif _interleaved(B, n, k):
        _advance_jacobians_interleaved(J, Q, logsum, local, t0, T, warmup, qr_every,
                                       keep_local)
    else:
        _advance_jacobians(J, Q, logsum, local, t0, T, warmup, qr_every, keep_local)


def advance_jacobians(J, Q, logsum, local, t0, T, warmup, qr_every, keep_local, beside=None):
    """Advance bases ``Q`` (B, n, k) through given Jacobians ``J`` (B, Tw, n, n);
    ``beside`` as in :func:`advance_network`."""
    if beside is not None:
        _advance_jacobians_slice(beside, J, Q, logsum, local, t0, T, warmup, qr_every,
                                 keep_local)
        return
    over_sequences(partial(_advance_jacobians_slice, _threads(J.shape[0])), J.shape[0],
                   (J, Q, logsum, local),
                   (t0, T, warmup, qr_every, keep_local))


@jit(inline="always")
def _step_batch(step, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, X, S, S_new, Q, Z, tangent,
                identity):
    k = Q.shape[1]
    M, Bin, diag, tmp, gates = make_workspace(code, w_ih0, w_hh, k, X)
    pre = make_products(w_hh, False, X)
    for b in range(X.shape[0]):
        step(code, w_ih0, w_ihr, w_hh, b_ih, b_hh, X[b], S[b], S_new[b], Q, Z[b], M, Bin, diag,
             tmp, gates, tangent, identity, pre, -1)


# per cell family, like the window kernels: lenum.jacobian on one cell compiled all
# five (27 s cold)
@jit
def _step_vanilla(code, w_ih0, w_ihr, w_hh, b_ih, b_hh, X, S, S_new, Q, Z, tangent, identity):
    _step_batch(vanilla_stack_step, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, X, S, S_new, Q, Z,
                tangent, identity)


@jit
def _step_lstm(code, w_ih0, w_ihr, w_hh, b_ih, b_hh, X, S, S_new, Q, Z, tangent, identity):
    _step_batch(lstm_stack_step, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, X, S, S_new, Q, Z,
                tangent, identity)


@jit
def _step_gru(code, w_ih0, w_ihr, w_hh, b_ih, b_hh, X, S, S_new, Q, Z, tangent, identity):
    _step_batch(gru_stack_step, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, X, S, S_new, Q, Z,
                tangent, identity)


@jit
def _step_gru_rb(code, w_ih0, w_ihr, w_hh, b_ih, b_hh, X, S, S_new, Q, Z, tangent, identity):
    _step_batch(gru_rb_stack_step, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, X, S, S_new, Q, Z,
                tangent, identity)


_STEP_KERNELS = (_step_vanilla, _step_lstm, _step_gru, _step_gru_rb)  # by FAMILY


def step_batch(code, w_ih0, w_ihr, w_hh, b_ih, b_hh, X, S, S_new, Q, Z, tangent,
               identity=False):
    """One step for each of B states ``S`` into ``S_new``; with ``tangent``,
    ``Z[b] = J_b @ Q``, or with ``identity`` too (Q = I, n x n), ``Z[b] = J_b`` written
    out without the products by Q."""
    _STEP_KERNELS[FAMILY[code]](code, w_ih0, w_ihr, w_hh, b_ih, b_hh, X, S, S_new, Q, Z, tangent,
                                identity)
