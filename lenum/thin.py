"""Products of a matrix by a thin basis, ``Y = A @ X`` with X of 8-32 columns.

The tangent of a step with k << n is such a product: a cell's dense Jacobian block
(GRU, LSTM, N x N or 2N x N) times its rows of the basis.  A BLAS GEMM packs A into its
own layout before multiplying, and with 16 columns every entry it packs is used for 16
products only: OpenBLAS's dgemm ran at 16-27 GFLOP/s on 32-256 rows, k = 16 (sgemm
24-64), against 30-37 for a large one-thread dgemm; this kernel at 28-41 (float32:
70-89; benchmarks/bench_thin.py).  Here A is read as it lies, row by row: each entry is
broadcast against the row of X it multiplies (a few vector registers, from L1), and a
tile of rows of Y stays in registers for the whole row of A.  Each output sums over A's
row in order, one running sum per entry (products fused into FMAs), as a plain loop
would.

A gated cell's block need not be formed at all: :func:`gated_dot` (GRU) and
:func:`lstm_gated_dot` build each column of a tile of its rows in vector registers
from the weights, packed once per window, and the per-unit coefficients, and multiply
it by the basis row straight away.  Forming the block in memory streamed three or four
N x N weight blocks and the block itself through the caches for every sequence and
step, as slow as the product that followed.
"""

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._jit import jit
from .lanes import _FL, AVX512, _c_array, _dim, _in_blocks, _splat, _vectors

# columns per vector of the kernel (two AVX2 registers of float64, one of float32; one
# AVX-512 register of float64, half of one of float32)
_VEC = 8
# columns of Y held at once, in vectors, and rows with them by the number of vectors:
# accumulators for rows x columns vectors plus a row of X fit the 16 AVX2 registers.
# With AVX-512's 32 registers, a float64 vector in one, AVX2's 2 x 2 tiles left the
# multiply-adds waiting on each other (44-49 GFLOP/s on one core of a Xeon, below its
# BLAS); 6 x 2 ran 71-81 at 64-256 rows, 48-62 at 32 (benchmarks/RESULTS.md,
# "AVX-512")
_COLS = 2
_ROWS = ({types.float64: {2: 6, 1: 12}, types.float32: {2: 8, 1: 16}} if AVX512 else
         {types.float64: {2: 2, 1: 4}, types.float32: {2: 4, 1: 12}})
# widest X for which this beats the BLAS (see thin_pays)
MAX_COLS = 32


@intrinsic
def _thin_product(typingctx, A, X, Y):
    """``Y = A @ X`` for C-contiguous A (m, p), X (p, k), Y (m, k), k a multiple of 8.
    Shapes are the caller's to check."""
    if not (_c_array(A, 2) and _c_array(X, 2) and _c_array(Y, 2)
            and A.dtype == X.dtype == Y.dtype):
        return None
    sig = types.void(A, X, Y)

    def codegen(context, builder, signature, args):
        a, x, y = args
        aty, xty, yty = signature.args
        fp = context.get_value_type(aty.dtype)
        vec = ir.VectorType(fp, _VEC)
        align = context.get_abi_sizeof(fp)
        aa = context.make_array(aty)(context, builder, a)
        m = builder.extract_value(aa.shape, 0)
        p = builder.extract_value(aa.shape, 1)
        k = builder.extract_value(context.make_array(xty)(context, builder, x).shape, 1)
        ity = m.type
        zero, one = ir.Constant(ity, 0), ir.Constant(ity, 1)
        zeros = ir.Constant(vec, [ir.Constant(fp, 0.0)] * _VEC)

        def tile(i0, nrow, c0, ncol):
            # rows i0 .. i0 + nrow of Y, vector-columns c0 .. c0 + ncol (of _VEC each)
            cols = [builder.mul(builder.add(c0, ir.Constant(ity, c)), ir.Constant(ity, _VEC))
                    for c in range(ncol)]
            rows = [builder.add(i0, ir.Constant(ity, q)) for q in range(nrow)]
            pa = [builder.gep(aa.data, [builder.mul(r, p)]) for r in rows]
            accs = [[cgutils.alloca_once_value(builder, zeros) for _ in cols] for _ in rows]
            with cgutils.for_range_slice(builder, zero, p, one) as (j, _):
                xrow = builder.mul(j, k)
                xs = [builder.load(_vectors(context, builder, xty, x, builder.add(xrow, c),
                                            vec), align=align) for c in cols]
                for q in range(nrow):
                    s = _splat(builder, vec, builder.load(builder.gep(pa[q], [j])))
                    for xv, acc in zip(xs, accs[q]):
                        builder.store(builder.fadd(builder.load(acc),
                                                   builder.fmul(s, xv, flags=_FL), flags=_FL),
                                      acc)
            for r, row_accs in zip(rows, accs):
                for c, acc in zip(cols, row_accs):
                    py = _vectors(context, builder, yty, y, builder.add(builder.mul(r, k), c),
                                  vec)
                    builder.store(builder.load(acc), py, align=align)

        def over_rows(c0, ncol):
            _in_blocks(builder, m, _ROWS[aty.dtype][ncol],
                       lambda i0, nrow: tile(i0, nrow, c0, ncol))

        _in_blocks(builder, builder.sdiv(k, ir.Constant(ity, _VEC)), _COLS, over_rows)
        return context.get_dummy_value()

    return sig, codegen


@jit
def thin_pays(k):
    """Whether :func:`thin_dot` runs its own kernel for X of ``k`` columns (else BLAS)."""
    return k % _VEC == 0 and 0 < k <= MAX_COLS


@jit
def thin_dot(A, X, Y):
    """``np.dot(A, X, Y)`` (C-contiguous 2-D arrays of one float dtype), through the
    kernel above when X is thin enough (:func:`thin_pays`), else through the BLAS.

    The two differ in round-off only.
    """
    if thin_pays(X.shape[1]):
        _thin_product(A, X, Y)
    else:
        np.dot(A, X, Y)


# rows of a gated product's tile: one vector register of them (AVX-512's 64 bytes or
# AVX2's 32), and its column chunks, widest first: with AVX-512 16 accumulators and a
# row of A take 17 of 32 registers, with AVX2 8 of 16.  The LSTM's tiles hold two
# blocks of rows (h and c), so half the columns.
_GATED_BYTES = 64 if AVX512 else 32
_GATED_COLS = {"gru": (16, 8) if AVX512 else (8,), "lstm": (8,) if AVX512 else (4,)}


def _gated_intrinsic(cell):
    """The kernel of :func:`gated_dot` (``cell`` "gru") or :func:`lstm_gated_dot`
    ("lstm"): a tile's rows of the Jacobian block formed a column at a time in vector
    registers from the packed W (:func:`gated_pack`) and multiplied by X's row, its
    entries broadcast.  Arrays C-contiguous, k a multiple of 8, n of the tile rows:
    the caller checks."""
    lstm = cell == "lstm"
    ng = 4 if lstm else 3

    @intrinsic
    def kernel(typingctx, P, C, D, X, Y):
        if not (_c_array(P, 4) and _c_array(C, 2) and _c_array(D, 1) and _c_array(X, 2)
                and _c_array(Y, 2) and P.dtype == C.dtype == D.dtype == X.dtype == Y.dtype):
            return None
        return types.void(P, C, D, X, Y), codegen

    def codegen(context, builder, signature, args):
        p, c, d, x, y = args
        pty, cty, dty, xty, yty = signature.args
        fp = context.get_value_type(pty.dtype)
        size = context.get_abi_sizeof(fp)
        V = _GATED_BYTES // size
        vec = ir.VectorType(fp, V)
        n = _dim(context, builder, pty, p, 1)
        k = _dim(context, builder, xty, x, 1)
        xa = context.make_array(xty)(context, builder, x)
        ya = context.make_array(yty)(context, builder, y)
        da = context.make_array(dty)(context, builder, d)
        ity = n.type
        zero, one = ir.Constant(ity, 0), ir.Constant(ity, 1)
        zeros = ir.Constant(vec, [ir.Constant(fp, 0.0)] * V)
        i32 = ir.IntType(32)

        def const(v):
            return ir.Constant(ity, v)

        def vload(aty, arr, offset):
            return builder.load(_vectors(context, builder, aty, arr, offset, vec), align=size)

        def tile(i0, c0, kc):
            # rows i0 .. i0 + V of Y (one vector; the LSTM's also rows n + i0 ..), columns
            # c0 .. c0 + kc, one accumulator each
            coefs = [vload(cty, c, builder.add(builder.mul(const(g), n), i0))
                     for g in range(ng)]
            dv = vload(dty, d, i0) if lstm else None
            blocks = 2 if lstm else 1
            accs = [[cgutils.alloca_once_value(builder, zeros) for _ in range(kc)]
                    for _ in range(blocks)]
            base = builder.mul(builder.mul(i0, n), const(ng))  # the tile's packed block

            def column(j, on_diagonal):
                row = builder.add(base, builder.mul(j, const(ng * V)))
                w = [vload(pty, p, builder.add(row, const(g * V))) for g in range(ng)]
                # not fused: the entries round as the cells' formed blocks do
                # (lenum.cells.gru, lenum.cells.lstm); x * y + u * v = u * v + x * y
                a = builder.fadd(builder.fadd(builder.fmul(coefs[0], w[0]),
                                              builder.fmul(coefs[1], w[1])),
                                 builder.fmul(coefs[2], w[2]))
                if lstm:  # a = dc'/dh's column; dh'/dh's = C[3] W_o + D dc'/dh
                    cols = [builder.fadd(builder.fmul(coefs[3], w[3]), builder.fmul(dv, a)), a]
                else:
                    if on_diagonal:  # D[j] in row j, the tile's lane j - i0
                        lane = builder.trunc(builder.sub(j, i0), i32)
                        dj = builder.load(builder.gep(da.data, [j]))
                        a = builder.insert_element(
                            a, builder.fadd(builder.extract_element(a, lane), dj), lane)
                    cols = [a]
                xrow = builder.gep(xa.data, [builder.add(builder.mul(j, k), c0)])
                for q in range(kc):
                    s = _splat(builder, vec, builder.load(builder.gep(xrow, [const(q)])))
                    for col, block in zip(cols, accs):
                        acc = block[q]
                        builder.store(builder.fadd(builder.load(acc),
                                                   builder.fmul(col, s, flags=_FL), flags=_FL),
                                      acc)

            if lstm:
                with cgutils.for_range_slice(builder, zero, n, one) as (j, _):
                    column(j, False)
            else:
                end = builder.add(i0, const(V))
                for lo, hi, on in ((zero, i0, False), (i0, end, True), (end, n, False)):
                    with cgutils.for_range_slice(builder, lo, hi, one) as (j, _):
                        column(j, on)
            for b, block in enumerate(accs):
                r0 = builder.add(i0, n) if b else i0
                for q in range(kc):
                    v = builder.load(block[q])
                    col = builder.add(c0, const(q))
                    for r in range(V):
                        py = builder.gep(ya.data, [
                            builder.add(builder.mul(builder.add(r0, const(r)), k), col)])
                        builder.store(builder.extract_element(v, ir.Constant(i32, r)), py)

        with cgutils.for_range_slice(builder, zero, n, const(V)) as (i0, _):
            done = zero
            for kc in _GATED_COLS[cell]:
                full = builder.add(done, builder.mul(
                    builder.sdiv(builder.sub(k, done), const(kc)), const(kc)))
                with cgutils.for_range_slice(builder, done, full, const(kc)) as (c0, _):
                    tile(i0, c0, kc)
                done = full
        return context.get_dummy_value()

    return kernel


_gated_product = _gated_intrinsic("gru")
_lstm_product = _gated_intrinsic("lstm")


@jit
def gated_rows(dtype_like):
    """Rows of a gated product's tile for arrays of ``dtype_like``'s dtype: the
    multiple of which n must be (:func:`gated_pays`)."""
    return _GATED_BYTES // dtype_like.itemsize


@jit
def gated_pays(n, k, dtype_like):
    """Whether :func:`gated_dot` runs for n rows and X of ``k`` columns."""
    return k % _VEC == 0 and 0 < k <= MAX_COLS and n % gated_rows(dtype_like) == 0


@jit
def gated_pack(W, order, P):
    """Pack the n x n blocks ``W[order[g] n : (order[g] + 1) n]`` of W (G n, n) into P
    (n / V, n, G, V) for :func:`gated_dot` and :func:`lstm_gated_dot`:
    ``P[t, j, g, v] = W_g[t V + v, j]``, so that a tile of V rows reads its blocks as
    one stream."""
    nt, n, G, V = P.shape
    for t in range(nt):
        for j in range(n):
            for g in range(G):
                r0 = order[g] * n + t * V
                for v in range(V):
                    P[t, j, g, v] = W[r0 + v, j]


@jit
def gated_dot(P, C, D, X, Y):
    """``Y = (sum_g diag(C[g]) W_g + diag(D)) @ X``, the W_g packed in P by
    :func:`gated_pack`: a gated cell's Jacobian block formed in registers, one column
    of a tile of its rows at a time, and multiplied by a thin X (:func:`gated_pays`;
    3 gates).

    The dense block of a GRU's Jacobian is such a sum: formed in memory, its N x N
    entries cost more than its product with 16 columns at N >= 128, the three blocks of
    W read from L2 or beyond for every sequence and step (benchmarks/RESULTS.md,
    "Gated products").  Each entry of A is rounded as the formed matrix's would be
    (``C[0] W_0 + C[1] W_1 + C[2] W_2``, then ``+ D`` on the diagonal), and each output
    sums over its row in order, as :func:`thin_dot` does: the result is
    ``thin_dot`` of the formed matrix to the bit.
    """
    _gated_product(P, C, D, X, Y)


@jit
def lstm_gated_dot(P, C, D, X, Y):
    """The LSTM's :func:`gated_dot`: ``Y[:n] = (C[3] W_3 + D A) @ X`` and
    ``Y[n:] = A @ X`` with ``A = sum_{g < 3} diag(C[g]) W_g``, the W_g packed in P
    (4 gates), Y (2 n, k): the h and c rows of an LSTM layer's Jacobian times the basis
    rows of its h (:mod:`lenum.cells.lstm`; the entries round as its formed block's)."""
    _lstm_product(P, C, D, X, Y)
