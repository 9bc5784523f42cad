"""Householder QR of one n x k block by one CUDA thread block.

The twin of :func:`lenum.qr.householder_qr`: Q with diag(R) >= 0, ``log|R_jj|`` in
``logs``, a zero column gives ``-inf`` (the reflector is then the identity, so Q stays
orthonormal) and a column holding NaN or Inf gives NaN, which the engine reports.

Layout: the block is stored by columns, ``A[c, i]`` is entry (i, c), so that the
threads of a warp, which take consecutive rows, touch consecutive addresses.

Reductions (column norms and the dot products of a reflector with the trailing
columns) are done in two passes through a small float64 scratch ``part`` (rows, P):
the threads first write P strided partial sums per column, then one thread per column
adds them.  Two barriers per reduction, and every column's dot products of a reflector
are reduced at once, so a column costs a fixed number of barriers whatever k is.
"""

import math

from numba import cuda

# partial sums per reduction: one warp's worth of strided slots
P = 32


@cuda.jit(device=True)
def _reflector_dots(V, j, B, c0, k, n, part):
    # part[c, p] = sum over rows i = j + p (mod P) of v_i B[c, i], v_j = 1 implicitly
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    ncols = k - c0
    for item in range(tid, ncols * P, nt):
        c = c0 + item // P
        p = item % P
        s = 0.0
        if p == 0:
            s = B[c, j] * 1.0
        for i in range(j + 1 + p, n, P):
            s += V[j, i] * B[c, i]
        part[c, p] = s


@cuda.jit(device=True)
def _apply_reflector(V, j, B, c0, k, n, part, work):
    # B[c, j:] -= tau (v . B[c, j:]) v for c in c0..k-1 (tau already folded in work[2])
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    tau = work[0, j]
    _reflector_dots(V, j, B, c0, k, n, part)
    cuda.syncthreads()
    for c in range(c0 + tid, k, nt):
        s = 0.0
        for p in range(P):
            s += part[c, p]
        work[2, c] = tau * s
    cuda.syncthreads()
    m = n - j
    ncols = k - c0
    for item in range(tid, ncols * m, nt):
        c = c0 + item // m
        i = j + item % m
        if i == j:
            B[c, i] -= work[2, c]
        else:
            B[c, i] -= work[2, c] * V[j, i]
    cuda.syncthreads()


@cuda.jit(device=True)
def gpu_householder_qr(A, Q, logs, work, part):
    """Orthonormal factor of ``A`` into ``Q`` and log|diag R| into ``logs``.

    Parameters
    ----------
    A : (k, n) array, destroyed
        The block by columns (``A[c, i]`` is entry (i, c)), k <= n.
    Q : (k, n) array
        Output, by columns, with diag(R) >= 0.
    logs : (k,) float64
        Output ``log|R_jj|``; -inf for a zero column, NaN for a non-finite one.
    work : (3, k) float64
        Scratch: the reflectors' tau, the signs of R_jj, scaled dot products.
    part : (k + 2, P) float64
        Scratch for the partial sums.

    Notes
    -----
    Every thread of the block must call this (it synchronises the block).  The
    reflector of column j is stored below the diagonal of A with v_j = 1 implicit, so
    A[j, j] is never overwritten while other threads may still read it.
    """
    k, n = A.shape
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    for j in range(k):
        # partial scaled sums of squares (LAPACK's dnrm2 update), one pair per slot,
        # so that tiny float32 columns do not underflow to a false zero
        for p in range(tid, P, nt):
            s = 0.0
            q = 0.0
            for i in range(j + p, n, P):
                v = abs(A[j, i]) * 1.0
                if math.isinf(v) or math.isnan(v):
                    s = math.inf
                    q = 1.0
                    break
                if v > s:
                    q = 1.0 + q * (s / v) * (s / v)
                    s = v
                elif v > 0.0:
                    q += (v / s) * (v / s)
            part[k, p] = s
            part[k + 1, p] = q
        cuda.syncthreads()
        # every thread combines the P pairs itself (same data, same result), which
        # saves a barrier before the column is scaled
        scale = 0.0
        for p in range(P):
            scale = max(scale, part[k, p])
        alpha = A[j, j] * 1.0
        if scale == 0.0 or math.isinf(scale):
            tau = 0.0
            inv = 0.0
            if tid == 0:
                logs[j] = -math.inf if scale == 0.0 else math.nan
                work[0, j] = 0.0
                work[1, j] = 1.0
        else:
            ssq = 0.0
            for p in range(P):
                r = part[k, p] / scale
                ssq += part[k + 1, p] * r * r
            norm = scale * math.sqrt(ssq)
            beta = -norm if alpha >= 0 else norm  # R_jj up to the final sign
            tau = (beta - alpha) / beta
            inv = 1.0 / (alpha - beta)
            if tid == 0:
                logs[j] = math.log(norm)
                work[0, j] = tau
                work[1, j] = -1.0 if beta < 0 else 1.0
        for i in range(j + 1 + tid, n, nt):
            A[j, i] *= inv
        cuda.syncthreads()
        if tau != 0.0 and j + 1 < k:
            _apply_reflector(A, j, A, j + 1, k, n, part, work)
    # Q = H_0 ... H_{k-1} [I_k; 0], applied backwards
    for item in range(tid, k * n, nt):
        c = item // n
        i = item % n
        Q[c, i] = 1.0 if i == c else 0.0
    cuda.syncthreads()
    for j in range(k - 1, -1, -1):
        if work[0, j] != 0.0:
            _apply_reflector(A, j, Q, j, k, n, part, work)
    # Q D, R -> D R with D = sign(diag R) makes diag(R) >= 0
    for item in range(tid, k * n, nt):
        c = item // n
        if work[1, c] < 0:
            i = item % n
            Q[c, i] = -Q[c, i]
    cuda.syncthreads()
