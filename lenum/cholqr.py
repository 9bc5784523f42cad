"""CholeskyQR2 of interleaved blocks, for few columns: two passes of Gram matrix,
Cholesky factor and triangular product, each a matrix product over the rows.

At k = 16 of n = 128-256 rows a Householder QR of a group (:func:`lenum.lanes.lanes_qr`)
runs at about 20 GFLOP/s in float64: within a panel each reflector passes over the
block once more, and the block (256 KiB at n = 256) lives in L2.  CholeskyQR computes
the Gram matrix ``C = A^T A``, its Cholesky factor ``C = R^T R`` and ``Q = A R^{-1}``:
the same flops (``2 n k^2`` a pass), all of them register-blocked products that read
the block twice.  Once is not accurate, as Q's loss of orthogonality grows with
``cond(A)^2``; a second pass on Q restores it to the level of Householder's when
``cond(A)`` stays below about ``u^{-1/2} / (8 sqrt(n k + k (k + 1)))`` (Yamamoto,
Nakatsukasa, Yanagisawa and Fukaya, ETNA 44, 2015).  That bound is checked, per lane,
before A is overwritten, with ``||R||_F ||R^{-1}||_F`` (at least ``cond(A)``); where it
fails, or a pivot of the Cholesky factor is not positive or lies where squares may have
under- or overflowed (a zero column, NaN, Inf, entries beyond about 1e+-140), the group
is left untouched and the caller runs the Householder QR instead.

R's diagonal is that of Householder's with diag(R) >= 0 (the QR is unique), so the
exponents agree to round-off.  float64 only: in float32 the bound allows condition
numbers below about 8, which a Lyapunov step leaves.  With float64 Gram matrices for
float32 blocks it was accurate and, alone, 1.3-1.6x faster from 256 rows, but whole
spectra gained at most 1.07x for 4.7 s more cold compile of every float32 kernel
(benchmarks/RESULTS.md, "CholeskyQR2 for float32 blocks").
"""

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from ._jit import jit
from .lanes import (_FL, _HUGE, _TINY, AVX512, LANES, _c_array, _dim, _lane_setup,
                    _vectors, _wy_dots_body, lane_empty, lanes_qr)

# columns blocked together in the register tiles: 4 sources by 4 targets, 16
# accumulators of whole lane-vectors.  k must be a multiple of it
TILE = 4
# the block's rows taken a chunk of this many bytes at a time, every tile of the
# chunk before the next: 64 KiB against 32 (0.9-1.0x), 16 (0.85-0.95x) and the whole
# block at once (0.8-1.0x), n = 128-256, k = 16-32
_CHUNK_BYTES = 65536
# where it was measured faster than the Householder QR (float64, AVX-512, one group,
# one thread): 2.6x at n = 256, k = 16, 1.9x at 128, 1.3x at 64, 1.2x at 48; k = 32
# 1.8x at 256, 1.1x at 96, 0.9x at 64; k = 64 0.6-0.8x at 128-256; below 48 rows
# 0.6-0.96x
CHOL_MAX_COLS = 32
CHOL_MIN_ROWS = 48


@jit(inline="always")
def chol_pays(n, k, dtype_like):
    """Whether :func:`cholesky_qr2` is tried for n x k blocks of this dtype."""
    return (AVX512 and dtype_like.itemsize == 8 and k % TILE == 0
            and 0 < k <= CHOL_MAX_COLS and n >= max(CHOL_MIN_ROWS, 3 * k))


def make_chol(n, k, dtype_like):
    """Workspace of :func:`cholesky_qr2`: ``(C, R, W, out, fails)``, empty where it does
    not pay; None for float32 and without AVX-512, where it is never tried.  ``fails``
    counts the groups handed back to Householder.  Compiled code only."""


def _chol_tried(dtype):
    # CholeskyQR2's code is compiled only where it may run, chosen when numba types
    # the calls (overloads, not inlined: inlined, the choice alone cost 1.5-2 s), as
    # the workspace and the code cost a kernel 2-4 s of cold compile.  Only the try is
    # chosen so: the Householder QR stays at the caller's level, where choosing it
    # too put it one compiled level lower, re-optimised there (2 s more)
    return dtype == types.float64 and AVX512


@overload(make_chol)
def _make_chol_code(n, k, dtype_like):
    if not _chol_tried(dtype_like.dtype):
        return lambda n, k, dtype_like: None

    def code(n, k, dtype_like):
        m = k if chol_pays(n, k, dtype_like) else 0
        dt = dtype_like.dtype
        return (lane_empty((m, m, LANES), dt), lane_empty((m, m, LANES), dt),
                lane_empty((m, m, LANES), dt), lane_empty((2, LANES), dt),
                np.zeros(1, dtype=np.int64))
    return code


def _tiles(context, builder, signature, args, body):
    """Code looping ``body(vec, align, flag, own, pv, pc, pd, nr, row)`` over the TILE x
    TILE tiles of sources (pointers ``pv``) and targets (``pc``) at row r0 of A, with
    ``pd`` the tile's entries of the (k, k, LANES) matrix: targets from the last tile
    down, each with the tiles of sources from its own (``own`` true) down to the first.
    ``flag`` is the intrinsic's last argument; ``row`` steps a pointer one row."""
    a, r0, nr, c, flag = args
    aty, r0ty, nrty, cty, fty = signature.args
    vec, align, (r0, nr), (flag,) = _lane_setup(context, builder, aty.dtype,
                                                [(r0, r0ty), (nr, nrty)], [(flag, fty)])
    ity = r0.type
    n = _dim(context, builder, aty, a, 1)
    k = _dim(context, builder, aty, a, 0)

    def const(x):
        return ir.Constant(ity, x)

    def at(arty, arr, index):
        return _vectors(context, builder, arty, arr, builder.mul(index, const(LANES)), vec)

    tiles = builder.sdiv(k, const(TILE))
    with cgutils.for_range_slice(builder, const(0), tiles, const(1)) as (q, _):
        tc = builder.sub(builder.sub(tiles, const(1)), q)
        c0 = builder.mul(tc, const(TILE))
        with cgutils.for_range_slice(builder, const(0), builder.add(tc, const(1)),
                                     const(1)) as (p, _):
            ts = builder.sub(tc, p)
            s0 = builder.mul(ts, const(TILE))
            pv = [at(aty, a, builder.add(builder.mul(builder.add(s0, const(j)), n), r0))
                  for j in range(TILE)]
            pc = [at(aty, a, builder.add(builder.mul(builder.add(c0, const(w)), n), r0))
                  for w in range(TILE)]
            pd = [[at(cty, c, builder.add(builder.mul(builder.add(s0, const(j)), k),
                                          builder.add(c0, const(w))))
                   for w in range(TILE)] for j in range(TILE)]
            body(vec, align, flag, builder.icmp_signed("==", p, const(0)), pv, pc, pd, nr,
                 const(1))
    return context.get_dummy_value()


def _typing(A, r0, nr, C, flag):
    if not (_c_array(A, 3) and _c_array(C, 3) and A.dtype == C.dtype):
        return None
    return types.void(A, r0, nr, C, flag)


@intrinsic
def _gram(typingctx, A, r0, nr, C, first):
    """``C[i, j] = [C[i, j] +] sum_r A[i, r] A[j, r]`` per lane over rows r0 .. r0 + nr
    - 1 of A (k, n, LANES), for the tiles on and above C's diagonal (k a multiple of
    TILE; C's values not added if ``first``)."""
    sig = _typing(A, r0, nr, C, first)
    if sig is None:
        return None

    def codegen(context, builder, signature, args):
        def body(vec, align, first, _, pv, pc, pd, nr, row):
            _wy_dots_body(builder, vec, first, pv, pc, pd, nr, len(pc), row, row, align)
        return _tiles(context, builder, signature, args, body)

    return sig, codegen


@intrinsic
def _tri_mul(typingctx, A, r0, nr, W, unused):
    """``A[c, r] = sum_{i <= c} A[i, r] W[i, c]`` per lane, in place, over rows r0 ..
    r0 + nr - 1 of A (k, n, LANES), W upper triangular with zeros below its diagonal
    (k a multiple of TILE)."""
    sig = _typing(A, r0, nr, W, unused)
    if sig is None:
        return None

    def codegen(context, builder, signature, args):
        def body(vec, align, _, own, pv, pc, pd, nr, row):
            # targets from the last down, each first from its own tile (sources and
            # targets the same columns: a row's sources are all read before it is
            # written), then from the tiles below, not yet overwritten
            ws = [[builder.load(p, align=align) for p in r] for r in pd]
            zero = ir.Constant(vec, [0.0] * LANES)
            with cgutils.for_range_slice(builder, ir.Constant(nr.type, 0), nr,
                                         ir.Constant(nr.type, 1)) as (r, _):
                vs = [builder.load(builder.gep(p, [builder.mul(r, row)]), align=align)
                      for p in pv]
                for w, p in enumerate(pc):
                    pcr = builder.gep(p, [builder.mul(r, row)])
                    x = builder.select(own, zero, builder.load(pcr, align=align))
                    for j, v in enumerate(vs):
                        x = builder.fadd(x, builder.fmul(v, ws[j][w], flags=_FL), flags=_FL)
                    builder.store(x, pcr, align=align)
        return _tiles(context, builder, signature, args, body)

    return sig, codegen


@jit(inline="always")
def _chunk_rows(k, itemsize):
    return max(TILE, _CHUNK_BYTES // (k * LANES * itemsize))


@intrinsic
def _factor(typingctx, C, R, W, out):
    """Per lane: R upper triangular with ``R^T R = C`` (C's upper triangle read, then
    overwritten; R may be C), W = R^{-1} with zeros below its diagonal; ``out[0]`` 1
    where every pivot lay in [_TINY, _HUGE] (not NaN), else 0, and ``out[1] = ||R||_F^2
    ||R^{-1}||_F^2``.  Written as vector code: numba compiles a loop over the lanes to
    scalar code, which made the factor cost more than the block's passes up to n = 128."""
    if not (_c_array(C, 3) and _c_array(R, 3) and _c_array(W, 3) and _c_array(out, 2)
            and C.dtype == R.dtype == W.dtype == out.dtype):
        return None
    sig = types.void(C, R, W, out)

    def codegen(context, builder, signature, args):
        c, r, w, o = args
        cty, rty, wty, oty = signature.args
        vec, align, _, _ = _lane_setup(context, builder, cty.dtype, [], [])
        k = _dim(context, builder, cty, c, 0)
        ity = k.type

        def const(x):
            return ir.Constant(ity, x)

        def at(arty, arr, i, j):
            return _vectors(context, builder, arty, arr,
                            builder.mul(builder.add(builder.mul(i, k), j), const(LANES)), vec)

        def load(p):
            return builder.load(p, align=align)

        def store(x, p):
            builder.store(x, p, align=align)

        zero, one = const(0), const(1)
        vzero = ir.Constant(vec, [0.0] * LANES)
        vone = ir.Constant(vec, [1.0] * LANES)
        name = "llvm.sqrt.v%d%s" % (LANES, "f64" if align == 8 else "f32")
        sqrt = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec]), name)
        ok = cgutils.alloca_once_value(builder, ir.Constant(ir.VectorType(ir.IntType(1), LANES),
                                                            [1] * LANES))
        big = cgutils.alloca_once_value(builder, vzero)
        inv = cgutils.alloca_once_value(builder, vzero)

        def axpy(dst, i, x, j0, src):
            # dst(i, j) -= x * src(j) for j0 <= j < k: independent updates, where a
            # dot product per entry was one chain of dependent additions
            with cgutils.for_range_slice(builder, j0, k, one) as (j, _):
                p = dst(i, j)
                store(builder.fsub(load(p), builder.fmul(x, load(src(j)), flags=_FL),
                                   flags=_FL), p)

        def add_square(acc, x):
            builder.store(builder.fadd(builder.load(acc), builder.fmul(x, x)), acc)

        with cgutils.for_range_slice(builder, zero, k, one) as (i, _):
            # row i of R from C's row i as updated by the rows above, then the trailing
            # rows updated by it (right-looking; C is overwritten)
            d = load(at(cty, c, i, i))
            # pivots out of this range: squares that may have under- or overflowed
            good = builder.and_(builder.fcmp_ordered(">=", d, ir.Constant(vec, [_TINY] * LANES)),
                                builder.fcmp_ordered("<=", d, ir.Constant(vec, [_HUGE] * LANES)))
            builder.store(builder.and_(builder.load(ok), good), ok)
            x = builder.call(sqrt, [d])
            store(x, at(rty, r, i, i))
            add_square(big, x)
            rinv = builder.fdiv(vone, x)
            store(rinv, at(wty, w, i, i))
            with cgutils.for_range_slice(builder, zero, i, one) as (j, _):
                store(vzero, at(rty, r, i, j))
            i1 = builder.add(i, one)
            with cgutils.for_range_slice(builder, i1, k, one) as (j, _):
                y = builder.fmul(load(at(cty, c, i, j)), rinv)
                store(y, at(rty, r, i, j))
                add_square(big, y)
            with cgutils.for_range_slice(builder, i1, k, one) as (m, _):
                axpy(lambda m_, j: at(cty, c, m_, j), m, load(at(rty, r, i, m)), m,
                     lambda j: at(rty, r, i, j))
        with cgutils.for_range_slice(builder, zero, k, one) as (q, _):
            # W's rows from the last up: W[i, j] = -(sum_{i < p <= j} R[i, p] W[p, j]) / R_ii
            i = builder.sub(builder.sub(k, one), q)
            i1 = builder.add(i, one)
            with cgutils.for_range_slice(builder, zero, i, one) as (j, _):
                store(vzero, at(wty, w, i, j))
            with cgutils.for_range_slice(builder, i1, k, one) as (j, _):
                store(vzero, at(wty, w, i, j))
            with cgutils.for_range_slice(builder, i1, k, one) as (p, _):
                axpy(lambda i_, j: at(wty, w, i_, j), i, load(at(rty, r, i, p)), p,
                     lambda j: at(wty, w, p, j))
            wii = load(at(wty, w, i, i))
            add_square(inv, wii)
            with cgutils.for_range_slice(builder, i1, k, one) as (j, _):
                pw = at(wty, w, i, j)
                y = builder.fmul(load(pw), wii)
                store(y, pw)
                add_square(inv, y)
        store(builder.select(builder.load(ok), vone, vzero),
              _vectors(context, builder, oty, o, zero, vec))
        store(builder.fmul(builder.load(big), builder.load(inv)),
              _vectors(context, builder, oty, o, const(LANES), vec))
        return context.get_dummy_value()

    return sig, codegen


@jit
def _cholesky(C, R, W, out, logs, add, limit):
    """:func:`_factor`, then ``logs[i] (+)= log R_ii``; False, with ``logs`` untouched,
    where a lane's C is not numerically positive definite or
    ``||R||_F^2 ||R^{-1}||_F^2 > limit``."""
    _factor(C, R, W, out)
    for ln in range(LANES):
        if not (out[0, ln] == 1.0 and out[1, ln] <= limit):
            return False
    for j in range(C.shape[0]):
        for ln in range(LANES):
            lg = np.log(R[j, j, ln])
            logs[j, ln] = logs[j, ln] + lg if add else lg
    return True


@jit(inline="always")
def _pass(A, C, rows):
    n = A.shape[1]
    for r0 in range(0, n, rows):
        _gram(A, r0, min(rows, n - r0), C, r0 == 0)


@jit(inline="always")
def _multiply(A, W, rows):
    n = A.shape[1]
    for r0 in range(0, n, rows):
        _tri_mul(A, r0, min(rows, n - r0), W, False)


@jit
def cholesky_qr2(A, logs, cw):
    """CholeskyQR2 of the LANES blocks of ``A`` (k, n, LANES) in place, with the
    contract of :func:`lenum.lanes.lanes_qr` (Q with diag(R) >= 0, ``log|R_jj|`` in
    ``logs`` (k, LANES)).

    Returns False where a lane's condition number may exceed the bound of the second
    pass, or a pivot is not positive and finite or lies outside [_TINY, _HUGE]: A is
    then as it was (to round-off where the second pass's factor fails, which the bound
    rules out), and the caller factors the group by Householder.  ``cw`` is :func:`make_chol`'s
    workspace; its ``fails`` counts these."""
    C, R, W, out, fails = cw
    k, n = A.shape[0], A.shape[1]
    if C.shape != (k, k, LANES) or A.shape[2] != LANES or logs.shape != (k, LANES):
        raise ValueError("cholesky_qr2: arrays must be shaped as make_chol(n, k) makes them")
    rows = _chunk_rows(k, A.itemsize)
    u = 2.0 ** -53 if A.itemsize == 8 else 2.0 ** -24  # unit round-off
    limit = 1.0 / (64.0 * u * (n * k + k * (k + 1)))
    _pass(A, C, rows)
    if not _cholesky(C, R, W, out, logs, False, limit):
        fails[0] += 1
        return False
    _multiply(A, W, rows)
    _pass(A, C, rows)
    # R stays for the undoing below; the second factor's in C's place
    if not _cholesky(C, C, W, out, logs, True, limit):
        # not seen within the bound; should it happen, A = Q1 R is restored (to
        # round-off) for the Householder QR
        _multiply(A, R, rows)
        fails[0] += 1
        return False
    _multiply(A, W, rows)
    return True


# groups handed back to Householder in one window before it stops trying: a network
# whose steps stretch the bases too unevenly fails every time, at the cost of a Gram
# matrix and its factor each
MAX_FAILS = 2


def _try_chol(A, logs, cw):
    pass


@overload(_try_chol)
def _try_chol_code(A, logs, cw):
    if not _chol_tried(A.dtype):
        return lambda A, logs, cw: False

    def code(A, logs, cw):
        if cw[0].shape[0] == 0 or cw[4][0] >= MAX_FAILS:
            return False
        return cholesky_qr2(A, logs, cw)
    return code


@jit(inline="always")
def interleaved_qr(A, logs, tau, ss, wy, cw):
    """:func:`lenum.lanes.lanes_qr`, by :func:`cholesky_qr2` where it pays and its
    bound holds (``cw`` from :func:`make_chol`)."""
    if not _try_chol(A, logs, cw):
        lanes_qr(A, logs, tau, ss, wy)
