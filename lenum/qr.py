"""QR factorisation kernels for the Benettin / Shimada-Nagashima method.

``qr_logdiag(Z, Q, logs, work)`` overwrites ``Q`` with the orthonormal factor of ``Z``
(n x k, k <= n, destroyed) chosen so that diag(R) >= 0, and writes ``log|R_ii|`` into
``logs``.  Only the diagonal of R is needed, so R is never formed.  A zero column gives
``R_ii = 0``, ``log = -inf`` and an identity reflector, so Q stays orthonormal (unlike
Gram-Schmidt's); a NaN or Inf in ``Z`` gives NaN logs, which the engine reports.

These one-block implementations share that contract (measurements per size in
benchmarks/RESULTS.md, script benchmarks/bench_qr.py); the engine factorises groups
of sequences with :mod:`lenum.lanes`, and single blocks with :func:`qr_logdiag`:

``householder_qr``
    Plain (unblocked) Householder in numba, no allocation.  Its loops run along rows,
    which are contiguous in the C-ordered blocks the engine uses.  0-10 % faster than
    ``geqrf_qr`` below about 20 rows, where LAPACK's per-call overhead dominates; no
    longer dispatched (see :func:`qr_logdiag`), kept as the tested reference.
``lapack_qr``
    LAPACK's geqrf + orgqr through ``np.linalg.qr`` (blocked compact WY, BLAS-2/3
    kernels).  1.5-3x over the plain kernel at 32-64 rows, up to 8x at 512; the
    fallback of ``geqrf_qr`` when the caller's workspace is too small.
``geqrf_qr``
    LAPACK's geqrf + orgqr called directly from the compiled code (SciPy's LAPACK,
    bound by symbol name so the kernels stay cacheable) on a Fortran copy kept in the
    caller's workspace: no allocation per call.  What :func:`qr_logdiag` runs: up to
    1.6x faster than ``lapack_qr`` at k = 16, about even at k = n.
``lq_qr``
    The same without the copy: LAPACK's gelqf + orglq on the C-ordered block's own
    memory (its transpose, read in Fortran order).  Never faster than ``geqrf_qr``
    overall (the LQ routines stride across the short rows), not picked; kept tested.
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
from llvmlite import binding as _llvm
from numba import types
from numba.core import cgutils
from numba.extending import get_cython_function_address, intrinsic

from ._jit import jit

# panel width of the blocked kernel
PANEL = 32
# rows of the (rows, k) workspace ``qr_logdiag`` wants: tau, signs and 64 k values for
# LAPACK's work array (its optimum is k times the block size, 32 in OpenBLAS's LAPACK);
# a (2, k) workspace still works, through the slower ``lapack_qr``
WORK_ROWS = 66


# LAPACK's LQ routines are called directly from compiled code.  A ctypes pointer would
# bake this process's address into the machine code and stop numba from caching it;
# instead the compiled code calls a symbol by name, and every process binds that name
# to SciPy's LAPACK here, at import, before any cached kernel is loaded.
_LAPACK_ROUTINES = ("dgelqf", "dorglq", "sgelqf", "sorglq",
                    "dgeqrf", "dorgqr", "sgeqrf", "sorgqr", "dormqr", "sormqr")
for _name in _LAPACK_ROUTINES:
    _llvm.add_symbol("lenum_" + _name,
                     get_cython_function_address("scipy.linalg.cython_lapack", _name))


def _int_ptr(context, builder, val, ty):
    # a pointer to an int32 copy of ``val`` (LAPACK takes every argument by pointer)
    return cgutils.alloca_once_value(builder, context.cast(builder, val, ty, types.int32))


def _data_ptr(context, builder, val, ty, fp):
    # array ``val``'s data, as the float pointer type ``fp``
    return builder.bitcast(context.make_array(ty)(context, builder, val).data, fp)


def _make_lapack_intrinsic(kind):
    """Intrinsic ``f(m, n, k, A, tau, work, lwork) -> info`` for LAPACK's ``?<kind>``.

    ``kind`` is a factorisation (``gelqf``, ``geqrf``: arguments m, n, a, lda, tau,
    work, lwork, info) or the forming of its orthonormal factor (``orglq``, ``orgqr``:
    m, n, k, a, lda, ...).  ``A``'s memory is the Fortran m x n matrix with leading
    dimension m; ``k`` is used by the second kind only.  Every argument goes by
    pointer (Fortran convention).
    """

    @intrinsic
    def lq(typingctx, m, n, k, a, tau, work, lwork):
        if not (isinstance(a, types.Array) and a.dtype in (types.float32, types.float64)):
            return None
        sig = types.int32(m, n, k, a, tau, work, lwork)

        def codegen(context, builder, signature, args):
            m_, n_, k_, a_, tau_, work_, lwork_ = args
            aty, tauty, workty = signature.args[3], signature.args[4], signature.args[5]
            i32 = context.get_value_type(types.int32)
            i32p = i32.as_pointer()
            fp = context.get_value_type(aty.dtype).as_pointer()

            def int_ptr(val, ty):
                return _int_ptr(context, builder, val, ty)

            def data(val, ty):
                return _data_ptr(context, builder, val, ty, fp)

            prefix = "d" if aty.dtype == types.float64 else "s"
            pm = int_ptr(m_, signature.args[0])
            pn = int_ptr(n_, signature.args[1])
            plwork = int_ptr(lwork_, signature.args[6])
            pinfo = cgutils.alloca_once_value(builder, i32(0))
            if kind in ("gelqf", "geqrf"):
                # gelqf / geqrf(m, n, a, lda, tau, work, lwork, info)
                fnty = cgutils.ir.FunctionType(cgutils.ir.VoidType(),
                                               [i32p, i32p, fp, i32p, fp, fp, i32p, i32p])
                call_args = [pm, pn, data(a_, aty), pm, data(tau_, tauty),
                             data(work_, workty), plwork, pinfo]
            else:
                # orglq / orgqr(m, n, k, a, lda, tau, work, lwork, info)
                pk = int_ptr(k_, signature.args[2])
                fnty = cgutils.ir.FunctionType(cgutils.ir.VoidType(),
                                               [i32p, i32p, i32p, fp, i32p, fp, fp, i32p,
                                                i32p])
                call_args = [pm, pn, pk, data(a_, aty), pm, data(tau_, tauty),
                             data(work_, workty), plwork, pinfo]
            fn = cgutils.get_or_insert_function(builder.module, fnty,
                                                "lenum_" + prefix + kind)
            builder.call(fn, call_args)
            return builder.load(pinfo)

        return sig, codegen

    return lq


@intrinsic
def _ormqr_rn(typingctx, n, a, tau, c, work, lwork):
    """Intrinsic ``f(n, A, tau, C, work, lwork) -> info``: LAPACK's ``?ormqr`` with side
    'R' and trans 'N', C := C Q for the Fortran n x n matrices ``C`` and ``A``, whose n
    reflectors (as ?geqrf leaves them, with ``tau``) make Q."""
    if not (isinstance(a, types.Array) and a.dtype in (types.float32, types.float64)):
        return None
    sig = types.int32(n, a, tau, c, work, lwork)

    def codegen(context, builder, signature, args):
        i32 = context.get_value_type(types.int32)
        i32p = i32.as_pointer()
        i8 = cgutils.ir.IntType(8)
        fp = context.get_value_type(signature.args[1].dtype).as_pointer()

        def int_ptr(i):
            return _int_ptr(context, builder, args[i], signature.args[i])

        def data(i):
            return _data_ptr(context, builder, args[i], signature.args[i], fp)

        side = cgutils.alloca_once_value(builder, i8(ord("R")))
        trans = cgutils.alloca_once_value(builder, i8(ord("N")))
        pn = int_ptr(0)
        pinfo = cgutils.alloca_once_value(builder, i32(0))
        # ormqr(side, trans, m, n, k, a, lda, tau, c, ldc, work, lwork, info), m = n = k
        fnty = cgutils.ir.FunctionType(cgutils.ir.VoidType(),
                                       [i8.as_pointer(), i8.as_pointer(), i32p, i32p, i32p,
                                        fp, i32p, fp, fp, i32p, fp, i32p, i32p])
        prefix = "d" if signature.args[1].dtype == types.float64 else "s"
        fn = cgutils.get_or_insert_function(builder.module, fnty, "lenum_" + prefix + "ormqr")
        builder.call(fn, [side, trans, pn, pn, pn, data(1), pn, data(2), data(3), pn,
                          data(4), int_ptr(5), pinfo])
        return builder.load(pinfo)

    return sig, codegen


_gelqf = _make_lapack_intrinsic("gelqf")
_orglq = _make_lapack_intrinsic("orglq")
_geqrf = _make_lapack_intrinsic("geqrf")
_orgqr = _make_lapack_intrinsic("orgqr")


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
def _apply_block_at(V, T, transpose, X, r0, c0, cols, cbuf, wbuf, w2buf, vwbuf):
    """:func:`_apply_block` on ``X[r0:, c0:c0 + cols]``, through contiguous buffers."""
    m, jb = V.shape
    C = cbuf[:m * cols].reshape((m, cols))
    for i in range(m):
        for c in range(cols):
            C[i, c] = X[r0 + i, c0 + c]
    _apply_block(V, T, transpose, C, wbuf[:jb * cols].reshape((jb, cols)),
                 w2buf[:jb * cols].reshape((jb, cols)), vwbuf[:m * cols].reshape((m, cols)))
    for i in range(m):
        for c in range(cols):
            X[r0 + i, c0 + c] = C[i, c]


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
        _apply_block_at(V, T, True, A, j0, j1, rest, cbuf, wbuf, w2buf, vwbuf)
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
        _apply_block_at(V, T, False, Q, j0, j0, cols, cbuf, wbuf, w2buf, vwbuf)
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
def lq_qr(A, Q, logs, work):
    """QR through LAPACK's LQ routines on ``A``'s own memory; contract of :func:`householder_qr`.

    The C-ordered n x k block ``A`` is, read as a Fortran array, the k x n matrix
    ``A^T``.  Its LQ factorisation ``A^T = L P`` (``?gelqf``; P has orthonormal rows,
    formed in place by ``?orglq``) is ``A = P^T L^T``: so ``Q = P^T`` lies in C order
    in ``A``'s memory and ``R = L^T``, without the transposed copies, allocations and
    finiteness check that ``np.linalg.qr`` adds on every call.

    Parameters
    ----------
    A : ndarray (n, k), C-contiguous, float32 or float64
        The block to factorise; overwritten (it ends up holding Q before the sign fix).
    Q : ndarray (n, k)
        Receives the orthonormal factor, with diag(R) >= 0.
    logs : ndarray (k,), float64
        Receives ``log|R_jj|`` (-inf for a zero column, NaN for non-finite input).
    work : ndarray (WORK_ROWS, k), C-contiguous, A's dtype
        Workspace: ``work[0]`` holds LAPACK's tau, ``work[1]`` the signs of R_jj and
        ``work[2:]`` is LAPACK's work array (lwork = ``(rows - 2) k``).  With fewer
        than 3 rows, or a non-contiguous ``A`` or ``work``, :func:`lapack_qr` runs.
    """
    n, k = A.shape
    isz = A.itemsize
    if (work.shape[0] < 3 or A.strides[1] != isz or A.strides[0] != k * isz
            or work.strides[1] != isz or work.strides[0] != k * isz):
        lapack_qr(A, Q, logs, work)
        return
    # LAPACK does not check its input and NaN need not propagate through every BLAS
    # kernel (a max-based scaling can skip it): one pass, x * 0 is NaN for NaN and Inf
    s = 0.0
    for i in range(n):
        for j in range(k):
            s += A[i, j] * 0.0
    if s != 0.0:
        for j in range(k):
            logs[j] = np.nan
        return
    tau = work[0]
    lw = work[2:]
    lwork = (work.shape[0] - 2) * k
    info = _gelqf(k, n, k, A, tau, lw, lwork)
    if info != 0:
        for j in range(k):
            logs[j] = np.nan
        return
    for j in range(k):
        d = A[j, j]  # L_jj = R_jj
        logs[j] = np.log(abs(d))  # log(0) = -inf: a zero column (tau = 0, H_j = I)
        work[1, j] = -1.0 if d < 0 else 1.0
    info = _orglq(k, n, k, A, tau, lw, lwork)
    if info != 0:
        for j in range(k):
            logs[j] = np.nan
        return
    # Q D, D R with D = sign(diag R) makes diag(R) >= 0
    for i in range(n):
        for j in range(k):
            Q[i, j] = work[1, j] * A[i, j]


@jit
def work_rows(n):
    """Rows of the (rows, k) workspace that :func:`qr_logdiag` wants for n-row blocks.

    ``WORK_ROWS`` for tau, the signs and LAPACK's work array, plus two blocks of ``n``:
    the Fortran-ordered copy that :func:`geqrf_qr` factorises, and the second block
    that :func:`factor_step` alternates with it.
    """
    return WORK_ROWS + 2 * n


@jit(inline="always")
def _transposed_copy(A, F):
    # F (k x n, a Fortran n x k block) = A^T; the copy doubles as the finiteness check
    # (see lq_qr): x * 0 is NaN for NaN and Inf.  False for a non-finite A.
    s = 0.0
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            a = A[i, j]
            s += a * 0.0
            F[j, i] = a
    return s == 0.0


@jit
def _block(work, slot, n, k):
    # the Fortran n x k block number ``slot`` (0 or 1) in work's rows from WORK_ROWS
    r = WORK_ROWS + slot * n
    return work[r:r + n].reshape((k, n))


@jit
def factor_step(A, logs, work, slot, held, unblocked):
    """QR of a block into ``work``, as :func:`geqrf_qr` makes it, Q not formed.

    Without ``held``: the QR of ``A`` (n x k) itself, into block 0.  With ``held``
    (k = n): the next step of the QR method with the basis not formed, the QR of
    ``A Q``, ``A`` the next Jacobian and Q (diag(R) >= 0) the factor already in block
    ``slot``; ``A Q`` is made in the other block by LAPACK's ormqr, which applies Q's
    reflectors to ``A`` from the right, 2 n^3 flops where forming Q (orgqr) and
    multiplying cost 4/3 n^3 + 2 n^3 (benchmarks/bench_implicit_q.py).  ormqr and
    geqrf take their blocked code (compact-WY blocks through the level-3 BLAS) where
    their work array and block sizes allow (ormqr from 68 rows, geqrf above 128),
    unless ``unblocked``: then they apply one reflector at a time (the level-2 BLAS).

    Returns the block that now holds the factorisation: the reflectors in LAPACK's
    geqrf layout (the Fortran n x k matrix in ``work``'s rows from ``WORK_ROWS + block
    n``), their tau in ``work[0]``, the signs of R's diagonal in ``work[1]``; for
    :func:`form_q` or the next held step.  ``logs`` receives ``log|R_jj|``, all NaN
    for a block that holds a NaN or Inf.  ``work[2:WORK_ROWS]`` is LAPACK's work array.
    """
    n, k = A.shape
    if (work.shape[0] < WORK_ROWS + 2 * n or work.shape[1] != k
            or work.strides[1] != work.itemsize or work.strides[0] != k * work.itemsize):
        # a caller's bug, not a user's input: no silent fallback, whose np.linalg.qr
        # would also double the kernels' compile time
        raise ValueError("factor_step: work must be C-contiguous with work_rows(n) rows")
    out = 1 - slot if held else 0
    C = _block(work, out, n, k)
    info = 0 if _transposed_copy(A, C) else 1
    lw = work[2:WORK_ROWS]
    lwork = (WORK_ROWS - 2) * k
    if held and info == 0:
        # a work array of n values is the least ormqr takes, too little for its blocks
        info = _ormqr_rn(n, _block(work, slot, n, k), work[0], C, lw,
                         n if unblocked else lwork)
        # Q's signs: column j of the Fortran C is row j here
        for j in range(k):
            sg = work[1, j]
            for i in range(n):
                C[j, i] *= sg
    if info == 0:
        # likewise k values for geqrf
        info = _geqrf(n, k, k, C, work[0], lw, k if unblocked else lwork)
    for j in range(k):
        d = C[j, j]
        logs[j] = np.log(abs(d)) if info == 0 else np.nan
        work[1, j] = -1.0 if d < 0 else 1.0
    return out


@jit
def form_q(Q, work, slot):
    """Q (n x k) with diag(R) >= 0 from the factorisation that :func:`factor_step` left
    in block ``slot`` of ``work``; NaN, and False returned, where LAPACK fails."""
    n, k = Q.shape
    F = _block(work, slot, n, k)
    info = _orgqr(n, k, k, F, work[0], work[2:WORK_ROWS], (WORK_ROWS - 2) * k)
    for j in range(k):
        sg = work[1, j] if info == 0 else np.nan
        for i in range(n):
            Q[i, j] = sg * F[j, i]
    return info == 0


@jit
def geqrf_qr(A, Q, logs, work):
    """QR through LAPACK's geqrf + orgqr on a Fortran copy held in ``work``.

    Same contract as :func:`householder_qr`.  The block is copied, transposed, into
    ``work[WORK_ROWS:WORK_ROWS + n]`` (read as the Fortran n x k matrix), so LAPACK's
    column operations run on contiguous memory; tau, the signs and LAPACK's work array
    are ``work[0]``, ``work[1]`` and ``work[2:WORK_ROWS]``.  No allocation per call.

    Parameters
    ----------
    A : ndarray (n, k), float32 or float64
        The block to factorise (left unchanged).
    Q : ndarray (n, k)
        Receives the orthonormal factor, with diag(R) >= 0.
    logs : ndarray (k,), float64
        Receives ``log|R_jj|`` (-inf for a zero column, NaN for non-finite input).
    work : ndarray (work_rows(n), k), C-contiguous, A's dtype
        Workspace (a smaller or non-contiguous one raises ValueError).
    """
    factor_step(A, logs, work, 0, False, False)
    # NaN logs: the input held a NaN or Inf or geqrf failed, and Q is left as it was
    if logs[0] == logs[0] and not form_q(Q, work, 0):
        for j in range(A.shape[1]):
            logs[j] = np.nan


# The QR of one sequence's block in the engine: LAPACK's geqrf + orgqr called directly
# (``work`` must have work_rows(n) rows) at every size.  The plain kernel was 0-10 %
# faster below 20 rows, but batches of small blocks now go through lenum.lanes (4-10x
# faster there), and dropping it from here cut the cold compile of a spectrum by about
# 7 s.  A name, not a forwarding function: a separate compiled level costs compile time.
qr_logdiag = geqrf_qr
