"""QR factorisation kernels for the Benettin / Shimada-Nagashima method.

``qr_logdiag(Z, Q, logs, work)`` overwrites ``Q`` with the orthonormal factor of ``Z``
(n x k, k <= n, destroyed) chosen so that diag(R) >= 0, and writes ``log|R_ii|`` into
``logs``.  Only the diagonal of R is needed, so R is never formed.  A zero column gives
``R_ii = 0``, ``log = -inf`` and an identity reflector, so Q stays orthonormal (unlike
Gram-Schmidt's); a NaN or Inf in ``Z`` gives NaN logs, which the engine reports.

Three implementations share that contract (measurements per size in
benchmarks/RESULTS.md, script benchmarks/bench_qr.py):

``householder_qr``
    Plain (unblocked) Householder in numba, no allocation.  Its loops run along rows,
    which are contiguous in the C-ordered blocks the engine uses.  Fastest below about
    20 rows, where LAPACK's per-call overhead (copies, allocations) dominates.
``lapack_qr``
    LAPACK's geqrf + orgqr through ``np.linalg.qr`` (blocked compact WY, BLAS-2/3
    kernels).  Fastest from about 20 rows up: 1.5-3x over the plain kernel at
    32-64 rows, up to 8x at 512.
``blocked_qr``
    Compact-WY blocked Householder in numba (Schreiber & Van Loan 1989): each panel of
    ``PANEL`` columns is factorised by the plain kernel, its reflectors are gathered
    into ``I - V T V^T`` (LAPACK's larft) and applied to the trailing columns, and Q is
    formed backwards block by block, all with matrix products (``np.dot`` = BLAS).
    It beats the plain kernel from about 48 columns but stays 1.1-1.5x behind LAPACK,
    whose panel kernels are faster; :func:`qr_logdiag` does not pick it.  It is kept,
    tested, as the starting point should the plain panel kernel get faster.
"""

import numpy as np

# numba's np.linalg.qr and np.dot bind SciPy's LAPACK/BLAS, an OpenBLAS separate from
# NumPy's, on first use.  Loading it with the kernels lets the engine's one-thread BLAS
# limit (threadpoolctl sees only loaded libraries) cover it; without this, the first
# limit missed it and two BLAS threads per kernel thread ran 2.6x slower at N = 256.
import scipy.linalg.cython_lapack  # noqa: F401

from ._jit import jit

# at and above this many rows LAPACK beats the plain kernel (k = n and k = 16, float32
# and float64; benchmarks/RESULTS.md)
LAPACK_MIN_ROWS = 20
# panel width of the blocked kernel
PANEL = 32


@jit
def _householder_columns(A, j0, j1, kend, logs, work):
    """Householder reflectors for columns ``j0:j1`` of ``A``, updating columns up to ``kend``.

    Column j gets the reflector ``H_j = I - tau_j v_j v_j^T`` with ``v_j`` stored in
    ``A[j:, j]`` (``A[j, j] = 1``), ``tau_j`` in ``work[0, j]`` and the sign of R_jj in
    ``work[1, j]``; ``logs[j] = log|R_jj|``.  ``H_j`` is applied to columns
    ``j+1:kend``.  ``work[1, j+1:kend]`` is scratch for the products ``v_j^T A``: the
    signs there are written only when their columns are reached.
    """
    n = A.shape[0]
    for j in range(j0, j1):
        # scaled norm so that tiny columns (1e-30 in float32) do not underflow to zero
        scale = 0.0
        bad = False
        for i in range(j, n):
            a = abs(A[i, j])
            if a > scale:
                scale = a
            elif not a <= scale:
                bad = True  # NaN: comparisons with it are all false
        work[1, j] = 1.0
        if bad or not np.isfinite(scale):
            work[0, j] = 0.0
            logs[j] = np.nan
            A[j, j] = 1.0
            for i in range(j + 1, n):
                A[i, j] = 0.0
            continue
        if scale == 0.0:
            # zero column: R_jj = 0 and the reflector is the identity (tau = 0)
            work[0, j] = 0.0
            logs[j] = -np.inf
            A[j, j] = 1.0
            continue
        ssq = 0.0
        for i in range(j, n):
            t = A[i, j] / scale
            ssq += t * t
        norm = scale * np.sqrt(ssq)
        alpha = A[j, j]
        beta = -norm if alpha >= 0 else norm  # R_jj; its sign is fixed when Q is formed
        tau = (beta - alpha) / beta
        inv = 1.0 / (alpha - beta)
        for i in range(j + 1, n):
            A[i, j] *= inv
        A[j, j] = 1.0
        work[0, j] = tau
        logs[j] = np.log(norm)
        # H_j on the trailing columns, row by row so that the inner loop is contiguous
        s = work[1]
        for c in range(j + 1, kend):
            s[c] = 0.0
        for i in range(j, n):
            v = A[i, j]
            for c in range(j + 1, kend):
                s[c] += v * A[i, c]
        for c in range(j + 1, kend):
            s[c] *= tau
        for i in range(j, n):
            v = A[i, j]
            for c in range(j + 1, kend):
                A[i, c] -= s[c] * v
        work[1, j] = -1.0 if beta < 0 else 1.0


@jit
def _fix_signs(Q, work):
    # Q D, R -> D R with D = sign(diag R) makes diag(R) >= 0
    n, k = Q.shape
    for i in range(n):
        for j in range(k):
            if work[1, j] < 0:
                Q[i, j] = -Q[i, j]


@jit
def householder_qr(A, Q, logs, work):
    """Plain Householder QR of ``A`` (n x k, destroyed) into Q (n x k), diag(R) >= 0.

    Parameters
    ----------
    A : ndarray (n, k), C-contiguous, float32 or float64
        The block to factorise; overwritten by the reflectors.
    Q : ndarray (n, k)
        Receives the orthonormal factor.
    logs : ndarray (k,), float64
        Receives ``log|R_jj|`` (-inf for a zero column, NaN for non-finite input).
    work : ndarray (2, k)
        Workspace (the reflectors' tau and the signs of R_jj).
    """
    n, k = A.shape
    _householder_columns(A, 0, k, k, logs, work)
    # Q = H_0 ... H_{k-1} [I_k; 0], formed backwards: H_j touches rows and columns >= j
    for i in range(n):
        for c in range(k):
            Q[i, c] = 0.0
    for c in range(k):
        Q[c, c] = 1.0
    s = work[0]
    for j in range(k - 1, -1, -1):
        # the taus of the columns after j are used up: work[0, j:] is scratch from here
        tau = work[0, j]
        if tau == 0.0:
            continue
        for c in range(j, k):
            s[c] = 0.0
        for i in range(j, n):
            v = A[i, j]
            for c in range(j, k):
                s[c] += v * Q[i, c]
        for c in range(j, k):
            s[c] *= tau
        for i in range(j, n):
            v = A[i, j]
            for c in range(j, k):
                Q[i, c] -= s[c] * v
    _fix_signs(Q, work)


@jit
def _panel_v(A, j0, jb, V):
    """Copy the reflectors of columns ``j0:j0+jb`` into V (unit lower trapezoidal)."""
    m = A.shape[0] - j0
    for i in range(m):
        for p in range(jb):
            if i > p:
                V[i, p] = A[j0 + i, j0 + p]
            elif i == p:
                V[i, p] = 1.0
            else:
                V[i, p] = 0.0


@jit
def _panel_t(V, taus, T):
    """Upper triangular T with ``H_0 ... H_{jb-1} = I - V T V^T`` (LAPACK's larft)."""
    m, jb = V.shape
    for p in range(jb):
        for q in range(jb):
            T[p, q] = 0.0
    for p in range(jb):
        tau = taus[p]
        T[p, p] = tau
        if tau == 0.0 or p == 0:
            continue
        # T[:p, p] = -tau T[:p, :p] (V[:, :p]^T v_p); v_p is zero above row p
        for q in range(p):
            s = 0.0
            for i in range(p, m):
                s += V[i, q] * V[i, p]
            T[q, p] = s
        for q in range(p):
            s = 0.0
            for r in range(q, p):
                s += T[q, r] * T[r, p]
            T[q, p] = -tau * s


@jit
def _apply_block(V, T, transpose, C, W, W2, VW):
    """C <- (I - V T V^T) C, or with T^T when ``transpose``, by three matrix products."""
    np.dot(V.T, C, W)
    if transpose:
        np.dot(T.T, W, W2)
    else:
        np.dot(T, W, W2)
    np.dot(V, W2, VW)
    C -= VW


@jit
def blocked_qr(A, Q, logs, work):
    """Blocked (compact WY) Householder QR; same contract as :func:`householder_qr`.

    Panels of ``PANEL`` columns are factorised by the plain kernel; each panel's
    ``I - V T V^T`` is applied to the trailing columns and, backwards, to Q by three
    matrix products.  Workspace beyond ``work`` is allocated here (about
    ``3 n k + 2 PANEL k`` values); the blocks are copied into contiguous buffers
    because numba copies non-contiguous operands of ``np.dot`` anyway.
    """
    n, k = A.shape
    nb = min(PANEL, k)
    nblocks = (k + nb - 1) // nb
    dt = A.dtype
    vbuf = np.empty(n * nb, dtype=dt)
    tbuf = np.empty(nblocks * nb * nb, dtype=dt)
    cbuf = np.empty(n * k, dtype=dt)
    vwbuf = np.empty(n * k, dtype=dt)
    wbuf = np.empty(nb * k, dtype=dt)
    w2buf = np.empty(nb * k, dtype=dt)
    for blk in range(nblocks):
        j0 = blk * nb
        jb = min(nb, k - j0)
        j1 = j0 + jb
        m = n - j0
        _householder_columns(A, j0, j1, j1, logs, work)
        V = vbuf[:m * jb].reshape((m, jb))
        T = tbuf[blk * nb * nb:blk * nb * nb + jb * jb].reshape((jb, jb))
        _panel_v(A, j0, jb, V)
        _panel_t(V, work[0, j0:j1], T)
        rest = k - j1
        if rest == 0:
            continue
        # trailing columns: Q^T = H_last ... H_0, so the panel applies I - V T^T V^T
        C = cbuf[:m * rest].reshape((m, rest))
        for i in range(m):
            for c in range(rest):
                C[i, c] = A[j0 + i, j1 + c]
        _apply_block(V, T, True, C, wbuf[:jb * rest].reshape((jb, rest)),
                     w2buf[:jb * rest].reshape((jb, rest)), vwbuf[:m * rest].reshape((m, rest)))
        for i in range(m):
            for c in range(rest):
                A[j0 + i, j1 + c] = C[i, c]
    # Q = (I - V_0 T_0 V_0^T) ... (I - V_last T_last V_last^T) [I_k; 0], backwards; block
    # b touches rows and columns >= its first column only
    for i in range(n):
        for c in range(k):
            Q[i, c] = 0.0
    for c in range(k):
        Q[c, c] = 1.0
    for blk in range(nblocks - 1, -1, -1):
        j0 = blk * nb
        jb = min(nb, k - j0)
        m = n - j0
        cols = k - j0
        V = vbuf[:m * jb].reshape((m, jb))
        T = tbuf[blk * nb * nb:blk * nb * nb + jb * jb].reshape((jb, jb))
        _panel_v(A, j0, jb, V)
        C = cbuf[:m * cols].reshape((m, cols))
        for i in range(m):
            for c in range(cols):
                C[i, c] = Q[j0 + i, j0 + c]
        _apply_block(V, T, False, C, wbuf[:jb * cols].reshape((jb, cols)),
                     w2buf[:jb * cols].reshape((jb, cols)), vwbuf[:m * cols].reshape((m, cols)))
        for i in range(m):
            for c in range(cols):
                Q[j0 + i, j0 + c] = C[i, c]
    _fix_signs(Q, work)


@jit
def lapack_qr(A, Q, logs, work):
    """QR through LAPACK (geqrf + orgqr); same contract as :func:`householder_qr`.

    ``work`` is unused (kept for a uniform signature); LAPACK allocates its own.
    """
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


@jit
def qr_logdiag(A, Q, logs, work):
    """Orthonormal factor of ``A`` into ``Q`` and log|diag R| into ``logs``, by size.

    The plain kernel below ``LAPACK_MIN_ROWS`` rows (LAPACK's call overhead dominates
    there), LAPACK from there on; see the module docstring.
    """
    if A.shape[0] >= LAPACK_MIN_ROWS:
        lapack_qr(A, Q, logs, work)
    else:
        householder_qr(A, Q, logs, work)
