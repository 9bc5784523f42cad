"""QR factorisation kernels for the Benettin / Shimada-Nagashima method.

``qr_logdiag(Z, Q, logs)`` overwrites ``Q`` with the orthonormal factor of ``Z`` (n x k,
k <= n) chosen so that diag(R) >= 0, and writes ``log|R_ii|`` into ``logs``.  Only the
diagonal of R is needed, so R is never formed.  A zero R_ii gives ``-inf`` (and the
Householder Q stays orthonormal, unlike Gram-Schmidt's), never NaN.

Two implementations are kept and chosen by size (see benchmarks/RESULTS.md):
``householder_qr`` is a plain Householder kernel in numba (no allocation, fastest on
small blocks); ``lapack_qr`` calls LAPACK's geqrf/orgqr through ``np.linalg.qr``
(blocked, compact-WY, fastest on large blocks).
"""

import numpy as np

from ._jit import jit

# at and above this many rows LAPACK's blocked QR beats the plain kernel
LAPACK_MIN_ROWS = 48


@jit
def householder_qr(A, Q, logs, work):
    """Householder QR of ``A`` (n x k, destroyed); Q (n x k) with diag(R) >= 0.

    ``work`` (2, k) is workspace: the reflectors' tau and the signs of R_jj.
    """
    n, k = A.shape
    for j in range(k):
        # scaled norm so that tiny columns (float32) do not underflow to a false zero
        scale = 0.0
        for i in range(j, n):
            scale = max(scale, abs(A[i, j]))
        work[1, j] = 1.0
        if not scale > 0.0 or not np.isfinite(scale):
            # zero column: R_jj = 0 and the reflector is the identity (tau = 0)
            work[0, j] = 0.0
            logs[j] = -np.inf if scale == 0.0 else np.nan
            A[j, j] = 1.0
            for i in range(j + 1, n):
                A[i, j] = 0.0
            continue
        ssq = 0.0
        for i in range(j, n):
            t = A[i, j] / scale
            ssq += t * t
        norm = scale * np.sqrt(ssq)
        alpha = A[j, j]
        beta = -norm if alpha >= 0 else norm  # R_jj; its sign is fixed at the end
        tau = (beta - alpha) / beta
        inv = 1.0 / (alpha - beta)
        for i in range(j + 1, n):
            A[i, j] *= inv
        A[j, j] = 1.0
        work[0, j] = tau
        work[1, j] = -1.0 if beta < 0 else 1.0
        logs[j] = np.log(norm)
        # apply H_j = I - tau u u^T to the trailing columns
        for c in range(j + 1, k):
            s = 0.0
            for i in range(j, n):
                s += A[i, j] * A[i, c]
            s *= tau
            for i in range(j, n):
                A[i, c] -= s * A[i, j]
    # form Q = H_0 ... H_{k-1} [I_k; 0] backwards
    for i in range(n):
        for c in range(k):
            Q[i, c] = 0.0
    for c in range(k):
        Q[c, c] = 1.0
    for j in range(k - 1, -1, -1):
        tau = work[0, j]
        if tau == 0.0:
            continue
        for c in range(j, k):
            s = 0.0
            for i in range(j, n):
                s += A[i, j] * Q[i, c]
            s *= tau
            for i in range(j, n):
                Q[i, c] -= s * A[i, j]
    # Q D, R -> D R with D = sign(diag R) makes diag(R) >= 0
    for j in range(k):
        if work[1, j] < 0:
            for i in range(n):
                Q[i, j] = -Q[i, j]


@jit
def qr_logdiag(A, Q, logs, work):
    """Orthonormal factor of ``A`` into ``Q`` and log|diag R| into ``logs``, by size."""
    if A.shape[0] >= LAPACK_MIN_ROWS:
        lapack_qr(A, Q, logs)
    else:
        householder_qr(A, Q, logs, work)


@jit
def lapack_qr(A, Q, logs):
    """QR through LAPACK (geqrf + orgqr); same contract as :func:`householder_qr`."""
    k = A.shape[1]
    if not np.all(np.isfinite(A)):
        # LAPACK through numba raises on NaN/Inf; report NaN and let the engine say why
        for j in range(k):
            logs[j] = np.nan
        return
    q, r = np.linalg.qr(A)
    for j in range(k):
        d = r[j, j]
        logs[j] = np.log(abs(d))
        sgn = -1.0 if d < 0 else 1.0
        for i in range(A.shape[0]):
            Q[i, j] = sgn * q[i, j]
