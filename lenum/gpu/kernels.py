"""CUDA kernels: one thread block per sequence, a whole time window per launch.

The twins of :mod:`lenum.cpu`.  ``gpu_advance_network`` loops over the steps of a
window inside the kernel (time is sequential; sequences are the parallel axis, one
block each), so a window of 256 steps is one launch.  Per step and layer the block
computes the forward rows, then the layer's tangent rows, with a barrier between;
then the Householder QR of the n x k tangent (or a copy when the step takes no QR).

State, basis and tangent live in device memory (n x k can be large); the float64
scratch for reductions and log|R_jj| is per sequence.  Kernels are built per compute
dtype by :func:`build` (the tangent accumulators need the type at compile time).
"""

import functools

import numba
import numpy as np
from numba import cuda

from .._jit import CACHE
from .cells import make_tangent
from .qr import P, gpu_householder_qr

__all__ = ["build", "P"]


class Kernels:
    """The kernels and device functions compiled for one compute dtype."""


@cuda.jit(device=True)
def _qr_count(ZT, QT, logs, work, part, logsum, local, local_row0, tg, T, warmup, qr_every,
              keep_local):
    # Re-orthonormalise and count step tg (1-based), as lenum.cpu.counting: warm-up
    # steps take a QR every step and are not counted; counted steps take one every
    # qr_every steps from the end of the warm-up and at the last step.
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    k, n = QT.shape
    c = tg - warmup
    if tg <= warmup or c % qr_every == 0 or tg == T:
        gpu_householder_qr(ZT, QT, logs, work, part)
        if tg > warmup:
            block = (c - 1) // qr_every
            length = c - block * qr_every
            for j in range(tid, k, nt):
                logsum[j] += logs[j]
                if keep_local:
                    local[block - local_row0, j] = logs[j] / length
    else:
        for item in range(tid, k * n, nt):
            QT[item // n, item % n] = ZT[item // n, item % n]
    cuda.syncthreads()


@functools.lru_cache(maxsize=None)
def build(dtype):
    """Kernels for compute dtype ``dtype`` ("float32" or "float64"), built once.

    Returns
    -------
    Kernels
        With attributes ``gpu_advance_network``, ``gpu_step_batch``,
        ``gpu_qr_batch`` (kernels), ``gpu_stack_step``, ``gpu_layer_tangent``
        (device functions) and ``signatures`` (name -> argument types, for ahead of
        time compilation checks).
    """
    dtype = np.dtype(dtype)
    nbt = numba.from_dtype(dtype)
    gpu_layer_tangent, gpu_stack_step = make_tangent(nbt)

    def gpu_advance_network(code, w_ih0T, w_ihrT, w_hhT, b_ih, b_hh, X, S, S_new, QT, ZT,
                            coef, part, work, logs, logsum, local, local_row0, t0, T, warmup,
                            qr_every, keep_local):
        """Advance sequence ``blockIdx.x`` of the chunk through the window ``X``."""
        b = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        n = S.shape[1]
        for t in range(X.shape[1]):
            gpu_stack_step(code, w_ih0T, w_ihrT, w_hhT, b_ih, b_hh, X[b, t], S[b], S_new[b],
                           QT[b], ZT[b], coef[b])
            # nobody reads S until the next step's forward, after the QR's barriers
            for i in range(tid, n, nt):
                S[b, i] = S_new[b, i]
            _qr_count(ZT[b], QT[b], logs[b], work[b], part[b], logsum[b], local[b],
                      local_row0, t0 + t + 1, T, warmup, qr_every, keep_local)

    def gpu_step_batch(code, w_ih0T, w_ihrT, w_hhT, b_ih, b_hh, X, S, S_new, QT, ZT, coef):
        """One step of sequence ``blockIdx.x``: ``S_new[b]`` and ``ZT[b]`` = J QT[b]."""
        b = cuda.blockIdx.x
        gpu_stack_step(code, w_ih0T, w_ihrT, w_hhT, b_ih, b_hh, X[b], S[b], S_new[b], QT[b],
                       ZT[b], coef[b])

    def gpu_qr_batch(AT, QT, logs, work, part):
        """Householder QR of block ``blockIdx.x`` (stored by columns)."""
        b = cuda.blockIdx.x
        gpu_householder_qr(AT[b], QT[b], logs[b], work[b], part[b])

    a = lambda ndim: numba.types.Array(nbt, ndim, "C")  # noqa: E731
    f = lambda ndim: numba.types.Array(numba.float64, ndim, "C")  # noqa: E731
    i64 = numba.int64
    ks = Kernels()
    ks.dtype = dtype
    ks.signatures = {
        "gpu_advance_network": (i64, a(2), a(3), a(3), a(2), a(2), a(3), a(2), a(2), a(3),
                                a(3), a(3), f(3), f(3), f(2), f(2), f(3), i64, i64, i64,
                                i64, i64, numba.boolean),
        "gpu_step_batch": (i64, a(2), a(3), a(3), a(2), a(2), a(2), a(2), a(2), a(3), a(3),
                           a(3)),
        "gpu_qr_batch": (a(3), a(3), f(2), f(3), f(3)),
    }
    ks.py_funcs = {
        "gpu_advance_network": gpu_advance_network,
        "gpu_step_batch": gpu_step_batch,
        "gpu_qr_batch": gpu_qr_batch,
    }
    # cached on disk like the CPU kernels (numba-cuda keys a closure's entries on its
    # captured values, so the float32 and float64 builds keep separate entries): a new
    # process then loads the kernels instead of spending 10-20 s compiling them
    ks.gpu_advance_network = cuda.jit(gpu_advance_network, cache=CACHE)
    ks.gpu_step_batch = cuda.jit(gpu_step_batch, cache=CACHE)
    ks.gpu_qr_batch = cuda.jit(gpu_qr_batch, cache=CACHE)
    ks.gpu_stack_step = gpu_stack_step
    ks.gpu_layer_tangent = gpu_layer_tangent
    return ks
