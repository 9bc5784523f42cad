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
"""

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._jit import jit
from .lanes import AVX512, _c_array, _splat, _vectors

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
        fl = ("contract",)  # products fused into FMAs: round-off only, as in any GEMM
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
                                                   builder.fmul(s, xv, flags=fl), flags=fl),
                                      acc)
            for r, row_accs in zip(rows, accs):
                for c, acc in zip(cols, row_accs):
                    py = _vectors(context, builder, yty, y, builder.add(builder.mul(r, k), c),
                                  vec)
                    builder.store(builder.load(acc), py, align=align)

        def over_rows(c0, ncol):
            nrow = _ROWS[aty.dtype][ncol]
            size = ir.Constant(ity, nrow)
            full = builder.mul(builder.sdiv(m, size), size)
            with cgutils.for_range_slice(builder, zero, full, size) as (i0, _):
                tile(i0, nrow, c0, ncol)
            with cgutils.for_range_slice(builder, full, m, one) as (i0, _):
                tile(i0, 1, c0, ncol)

        nvec = builder.sdiv(k, ir.Constant(ity, _VEC))
        step = ir.Constant(ity, _COLS)
        full = builder.mul(builder.sdiv(nvec, step), step)
        with cgutils.for_range_slice(builder, zero, full, step) as (c0, _):
            over_rows(c0, _COLS)
        with cgutils.for_range_slice(builder, full, nvec, one) as (c0, _):
            over_rows(c0, 1)
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
