"""Host side of the GPU path: device arrays, launches and the window contract.

``network_advancer`` returns the ``advance(b0, b1, t0, t1, Q, logsum, local)`` callable
that :func:`lenum.engine.lyapunov_spectrum` drives, exactly like the CPU one: it moves
chunk ``b0:b1`` through steps ``t0:t1`` and leaves ``Q``, ``logsum`` and ``local`` (host
arrays) advanced.  State, basis and log-sums stay on the device between the windows of a
chunk; what comes back after each window is small next to a window's work (the basis,
the log-sums, the state for the overflow check, the local exponents of the window).
"""

import os

import numpy as np
from numba import cuda

from ..errors import NonFiniteError
from .kernels import P, build

__all__ = ["network_advancer", "householder_qr", "step_batch", "threads_per_block",
           "device_weights", "chunk_size"]


def _simulated():
    from numba import config

    return bool(config.ENABLE_CUDASIM)


def threads_per_block(rows=None):
    """Threads per block: ``LENUM_GPU_THREADS`` if set, else 32 under the simulator
    (about 1 ms per simulated thread and launch) and up to 256 on a GPU.

    A block much wider than its per-row work only waits at barriers, so small
    layers get a smaller block (a multiple of the warp size).
    """
    env = os.environ.get("LENUM_GPU_THREADS")
    if env:
        threads = int(env)
        if threads < 1 or threads > 1024:
            raise ValueError(f"LENUM_GPU_THREADS={env} is out of range [1, 1024]")
        return threads
    if _simulated():
        return 32
    if rows is None:
        return 256
    return int(min(256, max(64, -(-rows // 32) * 32)))


def device_weights(weights):
    """Transposed weights on the device: ``WT[m, g*N + i] = W[g*N + i, m]``.

    Reads by consecutive rows i then hit consecutive addresses.  ``w_ihr`` is padded
    to one layer so that a single-layer network passes a non-empty array.
    """
    w_ih0, w_ihr, w_hh, b_ih, b_hh = weights
    dtype = w_ih0.dtype
    if w_ihr.shape[0] == 0:
        w_ihr = np.zeros((1,) + w_ihr.shape[1:], dtype=dtype)
    host = (
        np.ascontiguousarray(w_ih0.T),
        np.ascontiguousarray(np.transpose(w_ihr, (0, 2, 1))),
        np.ascontiguousarray(np.transpose(w_hh, (0, 2, 1))),
        np.ascontiguousarray(b_ih),
        np.ascontiguousarray(b_hh),
    )
    return tuple(cuda.to_device(a) for a in host)


def chunk_size(B, n, k, itemsize):
    """Sequences per launch: the whole batch, unless its device arrays would need more
    than half of the free device memory.

    One thread block runs one sequence, so a launch needs many sequences to fill the
    GPU (an H100 has 132 multiprocessors); the CPU path's 256 MiB budget for the bases
    would cut a large-n batch into launches of a few blocks.
    """
    per_seq = (3 * n + 2 * n * k) * itemsize + 8 * (k * (P + 6))
    if _simulated():
        return max(1, B)
    try:
        free, _ = cuda.current_context().get_memory_info()
    except Exception:  # no context yet or a driver without the query: a safe budget
        free = 2 * 2**30
    return int(max(1, min(B, (free // 2) // max(1, per_seq))))


def _columns(Q):
    # (B, n, k) -> (B, k, n): the device stores bases by columns
    return np.ascontiguousarray(np.transpose(Q, (0, 2, 1)))


class _Chunk:
    """Device arrays of one batch chunk."""

    def __init__(self, bc, n, k, N, dtype):
        self.S = cuda.device_array((bc, n), dtype=dtype)
        self.S_new = cuda.device_array((bc, n), dtype=dtype)
        self.QT = cuda.device_array((bc, k, n), dtype=dtype)
        self.ZT = cuda.device_array((bc, k, n), dtype=dtype)
        self.coef = cuda.device_array((bc, 6, N), dtype=dtype)
        self.part = cuda.device_array((bc, k + 2, P), dtype=np.float64)
        self.work = cuda.device_array((bc, 3, k), dtype=np.float64)
        self.logs = cuda.device_array((bc, k), dtype=np.float64)
        self.logsum = cuda.device_array((bc, k), dtype=np.float64)


def network_advancer(code, weights, x, single, S0, T, warmup, qr_every, keep_local, dtype,
                     input_name, threads=None):
    """The GPU ``advance`` callable for :func:`lenum.engine.lyapunov_spectrum`.

    Parameters
    ----------
    code : int
        Cell code (0 rnn_tanh, 1 rnn_relu, 2 lstm, 3 gru).
    weights : tuple of ndarray
        ``Network.packed(dtype)``: (w_ih0, w_ihr, w_hh, b_ih, b_hh).
    x : array_like, (B, T, d) or (T, d)
        Inputs, read a window at a time through :func:`lenum.engine.read_inputs`.
    single : bool
        ``x`` is one (T, d) sequence.
    S0 : ndarray, (B, n)
        Initial states.
    T, warmup, qr_every, keep_local
        As in :func:`lenum.engine.lyapunov_spectrum`.
    dtype : numpy.dtype
    input_name : str
        How error messages name the inputs.
    threads : int, optional
        Threads per block (default :func:`threads_per_block`).

    Returns
    -------
    callable
        ``advance(b0, b1, t0, t1, Q, logsum, local)``.
    """
    from ..engine import read_inputs

    dtype = np.dtype(dtype)
    ks = build(dtype.name)
    N = weights[2].shape[2]
    n = S0.shape[1]
    threads = threads_per_block(n) if threads is None else int(threads)
    dweights = device_weights(weights)
    state = {"key": None, "t": None, "chunk": None}
    # a zero-row placeholder is not launchable everywhere; one row serves when no
    # local exponents are kept
    dummy_local = {}

    def advance(b0, b1, t0, t1, Q, logsum, local):
        bc, _, k = Q.shape
        key = (b0, b1)
        if state["key"] != key or state["t"] != t0:
            if t0 != 0:
                raise RuntimeError(
                    f"GPU advance: chunk {b0}..{b1 - 1} resumed at step {t0} without its "
                    "device state"
                )
            ch = state["chunk"]
            if ch is None or ch.QT.shape != (bc, k, n):
                ch = _Chunk(bc, n, k, N, dtype)
                state["chunk"] = ch
            ch.S.copy_to_device(np.ascontiguousarray(S0[b0:b1], dtype=dtype))
            ch.QT.copy_to_device(_columns(Q.astype(dtype, copy=False)))
            ch.logsum.copy_to_device(np.ascontiguousarray(logsum, dtype=np.float64))
            state["key"] = key
        ch = state["chunk"]
        X = cuda.to_device(read_inputs(x, single, b0, b1, t0, t1, dtype, input_name))
        rows = None
        c0, c1 = max(t0 + 1 - warmup, 1), t1 - warmup
        if keep_local and c1 >= c0:
            rows = ((c0 - 1) // qr_every, (c1 - 1) // qr_every + 1)
            # unwritten rows of the window keep their host values
            dlocal = cuda.to_device(np.ascontiguousarray(local[:, rows[0]:rows[1]]))
            row0 = rows[0]
        else:
            if bc not in dummy_local:
                dummy_local[bc] = cuda.device_array((bc, 1, k), dtype=np.float64)
            dlocal = dummy_local[bc]
            row0 = 0
        ks.gpu_advance_network[bc, threads](
            code, *dweights, X, ch.S, ch.S_new, ch.QT, ch.ZT, ch.coef, ch.part, ch.work,
            ch.logs, ch.logsum, dlocal, row0, t0, T, warmup, qr_every, bool(keep_local)
        )
        state["t"] = t1
        logsum[...] = ch.logsum.copy_to_host()
        Q[...] = np.transpose(ch.QT.copy_to_host(), (0, 2, 1))
        if rows is not None:
            local[:, rows[0]:rows[1]] = dlocal.copy_to_host()
        S = ch.S.copy_to_host()
        if not np.all(np.isfinite(S)):
            b = int(np.argwhere(~np.isfinite(S))[0][0])
            raise NonFiniteError(
                f"the state of sequence {b0 + b} overflowed to Inf or NaN between steps "
                f"{t0} and {t1} (an unbounded rnn_relu network?)"
            )

    # the engine may ask for the chunk size that suits a GPU (see chunk_size)
    advance.chunk_size = chunk_size
    return advance


def householder_qr(A, threads=None):
    """GPU Householder QR of a batch of blocks ``A`` (B, n, k), for tests and checks.

    Returns
    -------
    Q : ndarray, (B, n, k)
        Orthonormal factors with diag(R) >= 0.
    logs : ndarray, (B, k)
        log|R_jj| (-inf for a zero column).
    """
    A = np.asarray(A)
    dtype = np.dtype(np.float32) if A.dtype == np.float32 else np.dtype(np.float64)
    B, n, k = A.shape
    ks = build(dtype.name)
    dA = cuda.to_device(_columns(A.astype(dtype)))
    dQ = cuda.device_array((B, k, n), dtype=dtype)
    logs = cuda.device_array((B, k), dtype=np.float64)
    work = cuda.device_array((B, 3, k), dtype=np.float64)
    part = cuda.device_array((B, k + 2, P), dtype=np.float64)
    threads = threads_per_block(n) if threads is None else int(threads)
    ks.gpu_qr_batch[B, threads](dA, dQ, logs, work, part)
    return np.transpose(dQ.copy_to_host(), (0, 2, 1)), logs.copy_to_host()


def step_batch(code, weights, X, S, Q, threads=None):
    """One GPU step for each of B states with the tangent, for tests and checks.

    Parameters
    ----------
    code : int
    weights : tuple of ndarray
        ``Network.packed(dtype)``.
    X : ndarray, (B, d)
    S : ndarray, (B, n)
    Q : ndarray, (B, n, k)

    Returns
    -------
    S_new : ndarray, (B, n)
    Z : ndarray, (B, n, k)
        ``J_b @ Q[b]``.
    """
    dtype = weights[0].dtype
    ks = build(dtype.name)
    B, n = S.shape
    k = Q.shape[2]
    N = weights[2].shape[2]
    dw = device_weights(weights)
    dS_new = cuda.device_array((B, n), dtype=dtype)
    dZ = cuda.device_array((B, k, n), dtype=dtype)
    coef = cuda.device_array((B, 6, N), dtype=dtype)
    threads = threads_per_block(n) if threads is None else int(threads)
    ks.gpu_step_batch[B, threads](
        code, *dw, cuda.to_device(np.ascontiguousarray(X, dtype=dtype)),
        cuda.to_device(np.ascontiguousarray(S, dtype=dtype)), dS_new,
        cuda.to_device(_columns(np.asarray(Q, dtype=dtype))), dZ, coef,
    )
    return dS_new.copy_to_host(), np.transpose(dZ.copy_to_host(), (0, 2, 1))
