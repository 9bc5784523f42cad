"""CPU kernels: advance a batch of sequences through a window of time steps.

Each kernel does one window of work for a slice of the sequences of a batch chunk; the
slices run in parallel on a pool of threads (the kernels release the GIL), never over
time, which is sequential.  The Python engine keeps the loop over windows, so that
inputs stream from disk, the progress bar moves and memory does not grow with T.

Threads rather than numba's ``prange``: the work per sequence is large (BLAS products
and a QR per step), so a thread per slice costs nothing measurable, and compiling
``parallel=True`` kernels took longer than compiling everything else together.
"""

from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from ._jit import jit
from .cells.stack import make_workspace, stack_step
from .qr import qr_logdiag, work_rows

_pool = None


def num_threads():
    """Threads used over sequences: numba's thread count (NUMBA_NUM_THREADS or
    ``numba.set_num_threads``), by default the number of CPUs."""
    return max(1, numba.get_num_threads())


def over_sequences(kernel, B, batched, shared):
    """Run ``kernel(*batched[b0:b1], *shared)`` on slices of the batch, in parallel."""
    global _pool
    parts = min(B, num_threads())
    if parts <= 1:
        kernel(*batched, *shared)
        return
    if _pool is None or _pool._max_workers < parts:
        _pool = ThreadPoolExecutor(max_workers=parts, thread_name_prefix="lenum")
    bounds = np.linspace(0, B, parts + 1).astype(int)
    futures = [
        _pool.submit(kernel, *(a[b0:b1] for a in batched), *shared)
        for b0, b1 in zip(bounds[:-1], bounds[1:])
    ]
    for f in futures:
        f.result()


@jit
def qr_count(Z, Q, logs, work, logsum, local, tg, T, warmup, qr_every, keep_local):
    """Re-orthonormalise and count step ``tg`` (1-based) of a sequence of ``T``.

    Warm-up steps re-orthonormalise every step and are not counted.  Counted steps
    re-orthonormalise every ``qr_every`` steps (counting from the end of the warm-up)
    and at the last step, so the log-sum covers exactly steps warmup+1..T.
    """
    if tg <= warmup:
        qr_logdiag(Z, Q, logs, work)
        return
    c = tg - warmup
    if c % qr_every == 0 or tg == T:
        qr_logdiag(Z, Q, logs, work)
        block = (c - 1) // qr_every
        for j in range(logs.shape[0]):
            logsum[j] += logs[j]
        if keep_local:
            length = c - block * qr_every
            for j in range(logs.shape[0]):
                local[block, j] = logs[j] / length
    else:
        Q[:, :] = Z


@jit
def _advance_network(X, S, Q, logsum, local, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, t0, T,
                     warmup, qr_every, keep_local):
    n, k = Q.shape[1], Q.shape[2]
    M, Bin, diag, tmp = make_workspace(code, w_ih0, w_hh, k, X)
    s_new = np.empty(n, dtype=X.dtype)
    Z = np.empty((n, k), dtype=X.dtype)
    logs = np.empty(k, dtype=np.float64)
    work = np.empty((work_rows(n), k), dtype=X.dtype)
    for b in range(X.shape[0]):
        for t in range(X.shape[1]):
            stack_step(code, w_ih0, w_ihr, w_hh, b_ih, b_hh, X[b, t], S[b], s_new, Q[b], Z,
                       M, Bin, diag, tmp, True)
            S[b, :] = s_new
            qr_count(Z, Q[b], logs, work, logsum[b], local[b], t0 + t + 1, T, warmup,
                     qr_every, keep_local)


def advance_network(code, w_ih0, w_ihr, w_hh, b_ih, b_hh, X, S, Q, logsum, local, t0, T,
                    warmup, qr_every, keep_local):
    """Advance states ``S`` (B, n) and bases ``Q`` (B, n, k) over inputs ``X`` (B, Tw, d).

    ``logsum`` (B, k) accumulates the counted log|R_ii|; ``local`` (B, S, k) receives
    the finite-time exponents when ``keep_local``.
    """
    over_sequences(_advance_network, X.shape[0], (X, S, Q, logsum, local),
                    (code, w_ih0, w_ihr, w_hh, b_ih, b_hh, t0, T, warmup, qr_every,
                     keep_local))


@jit
def _advance_jacobians(J, Q, logsum, local, t0, T, warmup, qr_every, keep_local):
    n, k = Q.shape[1], Q.shape[2]
    Z = np.empty((n, k), dtype=J.dtype)
    logs = np.empty(k, dtype=np.float64)
    work = np.empty((work_rows(n), k), dtype=J.dtype)
    for b in range(J.shape[0]):
        for t in range(J.shape[1]):
            np.dot(J[b, t], Q[b], Z)
            qr_count(Z, Q[b], logs, work, logsum[b], local[b], t0 + t + 1, T, warmup,
                     qr_every, keep_local)


def advance_jacobians(J, Q, logsum, local, t0, T, warmup, qr_every, keep_local):
    """Advance bases ``Q`` (B, n, k) through given Jacobians ``J`` (B, Tw, n, n)."""
    over_sequences(_advance_jacobians, J.shape[0], (J, Q, logsum, local),
                    (t0, T, warmup, qr_every, keep_local))


@jit
def step_batch(code, w_ih0, w_ihr, w_hh, b_ih, b_hh, X, S, S_new, Q, Z, tangent):
    """One step for each of B states; with ``tangent``, Z[b] = J_b @ Q."""
    k = Q.shape[1]
    M, Bin, diag, tmp = make_workspace(code, w_ih0, w_hh, k, X)
    for b in range(X.shape[0]):
        stack_step(code, w_ih0, w_ihr, w_hh, b_ih, b_hh, X[b], S[b], S_new[b], Q, Z[b],
                   M, Bin, diag, tmp, tangent)
