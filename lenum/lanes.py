"""Householder QR of several sequences' blocks at once, one sequence per SIMD lane,
and the product of one matrix with such interleaved blocks.

A step of a small network is too little work for LAPACK: at 32 rows its QR runs at
2-4 GFLOP/s, mostly call overhead and short vectors.  Here ``LANES`` blocks of the
same shape are interleaved, element ``(r, c)`` of block ``l`` at ``A[c, r, l]`` (the
"compact" layout of batched small-matrix LAPACK), so every operation of an unblocked
Householder QR is one vector operation across the blocks: no short loops, no
horizontal sums, no branches.  3-13x faster than LAPACK up to 32 rows, 1.9-3.2x up to
96 and 1.0-1.8x up to 256 (benchmarks/RESULTS.md).

numba leaves LLVM's SLP vectorizer off and fully unrolls a loop of 8 lanes before its
loop vectorizer sees it, so the inner kernels (reflectors applied to columns, singly,
two per pass, or from about 96 rows a panel of them as one block; a sum of squares;
the per-lane scalings; the 8 x 8 transposes that interleave blocks and write them
back) are written as LLVM vector code through numba intrinsics; the rest is plain
numba.

Sequences of one network share its matrices, so their tangents can be formed in the
same layout (:func:`shared_product`: each entry of W broadcast against a lane-vector,
at 30-43 GFLOP/s in float64 and 63-90 in float32 on one AVX2 core, 59-79 and 98-144
with AVX-512's register blocks; :func:`scale_add` for the per-unit coefficients of a
gated cell), and a group's states and bases then stay interleaved from step to step.

The QR's contract is that of :func:`lenum.qr.qr_logdiag`, per lane: Q with diag(R) >= 0,
``log|R_jj|``, ``-inf`` for a zero column (identity reflector), NaN for a block with a
NaN or Inf.
"""

import os

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils, config
from numba.core.codegen import get_host_cpu_features
from numba.extending import intrinsic

from ._jit import jit

# blocks per group: one AVX2 register of float32, two of float64 (one of AVX-512)
LANES = 8
# flags of the products' LLVM instructions: they may be fused into FMAs, which changes
# round-off only, as in any GEMM
_FL = ("contract",)


def _has_avx512():
    """Whether numba compiles for a CPU with AVX-512 (32 vector registers of 64 bytes):
    the features numba gives LLVM, the host's or NUMBA_CPU_FEATURES.  The register
    blocking below depends on it; numba's cache keys its machine code by the same
    features, so a cache moved to another CPU is not reused."""
    features = config.CPU_FEATURES
    if features is None:
        features = get_host_cpu_features()
    return "+avx512f" in features.split(",")


AVX512 = _has_avx512()
# up to this many columns the lanes win.  With AVX-512, and the columns in chunks that
# stay in L2 (COLUMN_CHUNK_BYTES), a group's QR per block against LAPACK's at
# k = n = 384, 512, 768 and 1024: 1.30, 1.19, 0.87 and 0.81x in float64, 2.26, 2.07,
# 1.59 and 1.83x in float32; whole spectra (group kernels, held bases) 1.46-2.34x
# faster at 384-512, 1.04-1.81x at 768-1024, float64 included (benchmarks/RESULTS.md,
# "Column chunks"); not measured beyond.  With AVX2 (an AMD EPYC, the code of
# 2026-11-26): k = n = 256 float64 1.0x, float32 1.36x, LAPACK's faster from 384
MAX_COLS = 1024 if AVX512 else 256


@jit
def min_fill(n):
    """Fewest sequences for which a group's interleaved QR beats LAPACK one by one.

    A group costs as much as LANES blocks however few are real, so it pays when
    ``m * t_lapack > LANES * t_lanes``.  Measured (benchmarks/RESULTS.md, k = n and
    k = 16, both dtypes): t_lapack / t_lanes is 3-7 up to 32 rows, 1.8-3 up to 64, and
    1.2-1.8 up to 256.
    """
    if n <= 32:
        return 3
    if n <= 64:
        return 5
    return LANES


@jit
def pays(m, n, k):
    """Whether m blocks of n x k are factorised together here rather than by LAPACK
    one by one: enough of them (:func:`min_fill`) and at most ``MAX_COLS`` columns."""
    return m >= min_fill(n) and k <= MAX_COLS


# squared column norms outside this range are recomputed with scaling (float64 only:
# float32 squares are summed in float64, which cannot under- or overflow)
_TINY, _HUGE = 1e-280, 1e280


def _c_array(ty, ndim):
    # the intrinsics compute addresses from shapes alone: C-contiguous float arrays only
    return (isinstance(ty, types.Array) and ty.layout == "C" and ty.ndim == ndim
            and ty.dtype in (types.float32, types.float64))


def _vectors(context, builder, arrty, arr, offset, vecty):
    """Pointer to ``arr``'s data at element ``offset``, read as vectors of ``vecty``."""
    data = context.make_array(arrty)(context, builder, arr).data
    return builder.bitcast(builder.gep(data, [offset]), vecty.as_pointer())


def _dim(context, builder, arrty, arr, axis):
    """Extent of ``arr`` along ``axis``, as LLVM code."""
    return builder.extract_value(context.make_array(arrty)(context, builder, arr).shape, axis)


def _splat(builder, vec, s):
    """The vector of type ``vec`` with the scalar ``s`` in every element."""
    i32 = ir.IntType(32)
    undef = ir.Constant(vec, None)
    zeros = ir.Constant(ir.VectorType(i32, vec.count), [0] * vec.count)
    return builder.shuffle_vector(builder.insert_element(undef, s, ir.Constant(i32, 0)),
                                  undef, zeros)


def _in_blocks(builder, n, size, body):
    """LLVM loops calling ``body(i, size)`` at each full block of ``size`` items of
    0 .. n - 1 (``n`` a run-time integer), then ``body(i, 1)`` at each item left: the
    register tiles of the product kernels and their remainders."""
    ity = n.type
    step = ir.Constant(ity, size)
    full = builder.mul(builder.sdiv(n, step), step)
    with cgutils.for_range_slice(builder, ir.Constant(ity, 0), full, step) as (i, _):
        body(i, size)
    if size > 1:
        with cgutils.for_range_slice(builder, full, n, ir.Constant(ity, 1)) as (i, _):
            body(i, 1)


def _lane_setup(context, builder, dtype, ints, flags):
    """For the product kernels: the lane-vector type of ``dtype``, one element's
    alignment, the integer arguments ``ints`` ((value, type) pairs) as intp and the
    flags ``flags`` as booleans (run-time values, see :func:`shared_product`)."""
    fp = context.get_value_type(dtype)
    return (ir.VectorType(fp, LANES), context.get_abi_sizeof(fp),
            [context.cast(builder, v, t, types.intp) for v, t in ints],
            [context.cast(builder, v, t, types.boolean) for v, t in flags])


# target columns updated together by _emit_reflect: independent accumulators hide
# the latency of the additions in the dot products, and v is loaded once for all
_WIDTH = 4
# the same for two reflectors at once in float64 (see _reflect_block), used in
# float64 from this many rows: below, the single reflectors' wider column groups were
# 3-8 % faster.  float32 keeps 4 columns for pairs and gains at every size.
_PAIR_WIDTH = 2
_PAIR_MIN_ROWS = 128


def _emit_reflect(context, builder, aty, a, pv, nr, first, stride, width, tau_v, vec,
                  align):
    """LLVM code applying the reflector at ``pv`` to ``width`` lane-columns of ``a``,
    the first at element ``first``, the others ``stride`` elements apart."""
    one = ir.Constant(nr.type, 1)
    pcs = [_vectors(context, builder, aty, a,
                    builder.add(first, builder.mul(ir.Constant(first.type, w), stride)), vec)
           for w in range(width)]
    c0s = [builder.load(pc, align=align) for pc in pcs]
    accs = [cgutils.alloca_once(builder, vec) for _ in range(width)]
    for acc, c0 in zip(accs, c0s):
        builder.store(c0, acc)
    with cgutils.for_range_slice(builder, one, nr, one) as (r, _):
        v = builder.load(builder.gep(pv, [r]), align=align)
        for acc, pc in zip(accs, pcs):
            c = builder.load(builder.gep(pc, [r]), align=align)
            builder.store(builder.fadd(builder.load(acc), builder.fmul(v, c)), acc)
    ws = [builder.fmul(builder.load(acc), tau_v) for acc in accs]
    for pc, c0, w in zip(pcs, c0s, ws):
        builder.store(builder.fsub(c0, w), pc, align=align)
    with cgutils.for_range_slice(builder, one, nr, one) as (r, _):
        v = builder.load(builder.gep(pv, [r]), align=align)
        for pc, w in zip(pcs, ws):
            pcr = builder.gep(pc, [r])
            c = builder.load(pcr, align=align)
            builder.store(builder.fsub(c, builder.fmul(w, v)), pcr, align=align)


def _emit_reflect_pair(context, builder, aty, a, pl, ph, nh, first, stride, width, tau_a,
                       tau_b, a_is_lo, vec, align):
    """LLVM code applying two adjacent reflectors, a then b, to ``width`` lane-columns.

    The reflectors start at rows lo and hi = lo + 1; ``pl`` points at the lo reflector's
    vector from row lo (its 1 there implicit), ``ph`` at the hi one's from row hi, and
    ``nh`` counts the rows from hi.  The targets' pointers are taken at row lo.  The
    second reflector's dot product is corrected for the first's update by v_lo . v_hi
    (computed once for all targets), so each target is read twice and written once for
    both reflectors instead of read four times and written twice: the loop was limited
    by its loads and stores, not by its arithmetic.
    """
    one = ir.Constant(nh.type, 1)
    pcs = [_vectors(context, builder, aty, a,
                    builder.add(first, builder.mul(ir.Constant(first.type, w), stride)), vec)
           for w in range(width)]
    vl1 = builder.load(builder.gep(pl, [one]), align=align)  # v_lo at row hi
    dot = cgutils.alloca_once(builder, vec)
    builder.store(vl1, dot)
    with cgutils.for_range_slice(builder, one, nh, one) as (r, _):
        vl = builder.load(builder.gep(pl, [builder.add(r, one)]), align=align)
        vh = builder.load(builder.gep(ph, [r]), align=align)
        builder.store(builder.fadd(builder.load(dot), builder.fmul(vl, vh)), dot)
    vlvh = builder.load(dot)
    c0s = [builder.load(pc, align=align) for pc in pcs]
    c1s = [builder.load(builder.gep(pc, [one]), align=align) for pc in pcs]
    accl = [cgutils.alloca_once(builder, vec) for _ in range(width)]
    acch = [cgutils.alloca_once(builder, vec) for _ in range(width)]
    for al, ah, c0, c1 in zip(accl, acch, c0s, c1s):
        builder.store(builder.fadd(c0, builder.fmul(vl1, c1)), al)
        builder.store(c1, ah)
    with cgutils.for_range_slice(builder, one, nh, one) as (r, _):
        r1 = builder.add(r, one)
        vl = builder.load(builder.gep(pl, [r1]), align=align)
        vh = builder.load(builder.gep(ph, [r]), align=align)
        for al, ah, pc in zip(accl, acch, pcs):
            c = builder.load(builder.gep(pc, [r1]), align=align)
            builder.store(builder.fadd(builder.load(al), builder.fmul(vl, c)), al)
            builder.store(builder.fadd(builder.load(ah), builder.fmul(vh, c)), ah)
    wls, whs = [], []
    for al, ah in zip(accl, acch):
        dl, dh = builder.load(al), builder.load(ah)
        da = builder.select(a_is_lo, dl, dh)
        db = builder.select(a_is_lo, dh, dl)
        wa = builder.fmul(da, tau_a)
        wb = builder.fmul(builder.fsub(db, builder.fmul(wa, vlvh)), tau_b)
        wls.append(builder.select(a_is_lo, wa, wb))
        whs.append(builder.select(a_is_lo, wb, wa))
    for pc, c0, c1, wl, wh in zip(pcs, c0s, c1s, wls, whs):
        builder.store(builder.fsub(c0, wl), pc, align=align)
        builder.store(builder.fsub(c1, builder.fadd(builder.fmul(wl, vl1), wh)),
                      builder.gep(pc, [one]), align=align)
    with cgutils.for_range_slice(builder, one, nh, one) as (r, _):
        r1 = builder.add(r, one)
        vl = builder.load(builder.gep(pl, [r1]), align=align)
        vh = builder.load(builder.gep(ph, [r]), align=align)
        for pc, wl, wh in zip(pcs, wls, whs):
            pcr = builder.gep(pc, [r1])
            c = builder.load(pcr, align=align)
            upd = builder.fadd(builder.fmul(wl, vl), builder.fmul(wh, vh))
            builder.store(builder.fsub(c, upd), pcr, align=align)


# reflectors applied to a column while it stays in cache (see _reflect_block).  Within
# a panel each reflector passes once over the panel's later columns; those after it
# receive the panel's reflectors in pairs.  8 against 16, A/B on 8 blocks: 1.04-1.21x
# at k = 16 and 32 (n = 32-256), 0.97-1.05x at k = n; 4 gained less (0.98-1.18x)
PANEL = 8


@intrinsic
def _reflect_block(typingctx, A, i0, step, nref, j0, ncols, tau):
    """Apply the reflectors ``i0, i0 + step, ...`` (``nref`` of them, in that order) to
    lane-columns ``j0 .. j0 + ncols - 1`` of ``A`` (k, n, LANES).

    Reflector i is ``I - tau_i v_i v_i^T`` with ``v_i`` in column i from row i (its row
    i taken as 1) and ``tau_i = tau[i]``; it touches rows i.. of each target.  Each
    group of target columns receives all ``nref`` reflectors before the next group is
    read, so the targets stay in cache while the reflectors, few, are reused: the
    order of operations on any one column is that of applying the reflectors one by
    one, so the results are the same to the bit.
    """
    if not (_c_array(A, 3) and _c_array(tau, 2) and A.dtype == tau.dtype):
        return None
    sig = types.void(A, i0, step, nref, j0, ncols, tau)

    def codegen(context, builder, signature, args):
        a, i0_, st, nref_, j0_, nc, t = args
        aty, tty = signature.args[0], signature.args[6]
        fp = context.get_value_type(aty.dtype)
        vec = ir.VectorType(fp, LANES)
        align = context.get_abi_sizeof(fp)
        ity = nc.type
        zero, one = ir.Constant(ity, 0), ir.Constant(ity, 1)
        lanes = ir.Constant(ity, LANES)
        n = _dim(context, builder, aty, a, 1)
        colstride = builder.mul(n, lanes)
        two = ir.Constant(ity, 2)

        def vec_at(c, r):
            # lane-column c of A from row r
            return _vectors(context, builder, aty, a,
                            builder.mul(builder.add(builder.mul(c, n), r), lanes), vec)

        def tau_at(i):
            return builder.load(_vectors(context, builder, tty, t, builder.mul(i, lanes), vec),
                                align=align)

        def apply_one(i, j, width):
            first = builder.mul(builder.add(builder.mul(j, n), i), lanes)
            _emit_reflect(context, builder, aty, a, vec_at(i, i), builder.sub(n, i), first,
                          colstride, width, tau_at(i), vec, align)

        def apply_singly(j, width):
            with cgutils.for_range_slice(builder, zero, nref_, one) as (q, _):
                apply_one(builder.add(i0_, builder.mul(st, q)), j, width)

        def apply_paired(j, width):
            # reflectors two at a time (steps are +-1, so a pair is adjacent), then the
            # odd one out
            a_is_lo = builder.icmp_signed(">", st, zero)
            with cgutils.for_range_slice(builder, zero, builder.sdiv(nref_, two),
                                         one) as (p, _):
                ia = builder.add(i0_, builder.mul(st, builder.mul(p, two)))
                ib = builder.add(ia, st)
                lo = builder.select(a_is_lo, ia, ib)
                hi = builder.add(lo, one)
                first = builder.mul(builder.add(builder.mul(j, n), lo), lanes)
                _emit_reflect_pair(context, builder, aty, a, vec_at(lo, lo), vec_at(hi, hi),
                                   builder.sub(n, hi), first, colstride, width, tau_at(ia),
                                   tau_at(ib), a_is_lo, vec, align)
            odd = builder.icmp_signed("!=", builder.srem(nref_, two), zero)
            with builder.if_then(odd):
                apply_one(builder.add(i0_, builder.mul(st, builder.sub(nref_, one))), j, width)

        def by_groups(width, apply):
            wide = ir.Constant(ity, width)
            full = builder.sdiv(nc, wide)
            with cgutils.for_range_slice(builder, zero, full, one) as (b, _):
                apply(builder.add(j0_, builder.mul(b, wide)), width)
            with cgutils.for_range_slice(builder, builder.mul(full, wide), nc, one) as (c, _):
                apply(builder.add(j0_, c), 1)

        # two reflectors' accumulators for _PAIR_WIDTH columns fit the 16 vector
        # registers of AVX2 (a float64 lane-vector takes two)
        f64 = aty.dtype == types.float64
        pair_width = _PAIR_WIDTH if f64 else _WIDTH
        min_rows = ir.Constant(ity, _PAIR_MIN_ROWS if f64 else 0)
        pairs = builder.and_(builder.icmp_signed(">=", nref_, two),
                             builder.icmp_signed(">=", n, min_rows))
        with builder.if_else(pairs) as (paired, single):
            with paired:
                by_groups(pair_width, apply_paired)
            with single:
                by_groups(_WIDTH, apply_singly)
        return context.get_dummy_value()

    return sig, codegen


# A panel's reflectors as one block (compact WY), for panels with many columns after
# them.  Applied in pairs (_reflect_block), each reflector's vector and each target
# pass through the L1 cache once per pair, and from about 96 rows they no longer stay
# there between passes: all of a panel's reflectors are copied out, rows interleaved
# (their lane-columns sit n * LANES elements apart in A, a power of two at n = 128 or
# 256, so that ten of them at one row share an 8-way L1 set), their dot products with
# each target are taken a chunk of rows at a time, a small triangular solve per column
# turns those into the coefficients of the sequence of reflectors, and one more pass
# updates the targets.  Both passes are register-blocked, 4 reflectors by 2 targets on
# half a lane-vector (a 256-bit register): 6 loads per 8 multiply-adds instead of 8.
# A/B against the pairs, `lanes_qr` on one group: 1.35-1.85x (float64) and 1.0-1.5x
# (float32) at k = n from 96 rows; whole spectra at k = n 1.09-1.19x (float64) and
# 1.05-1.17x (float32) from 128 rows, one thread; at 64 rows 0.93-0.98x, so not used
# there (benchmarks/RESULTS.md, "A panel's reflectors as one block, kept").  With
# AVX-512 (whole registers, below) the block pays from 48 rows: lanes_qr 1.03-1.19x at
# n = 48-80, whole spectra at n = 64 0.98-1.16x ("AVX-512")
WY_MIN_ROWS = 48 if AVX512 else 96
WY_MIN_COLS = 16
# With AVX-512's 32 registers float64 takes the whole panel, 8 reflectors by 2 targets
# (25 registers; each target's load serves 8 multiply-adds, not 4): whole spectra at
# k = n 1.01-1.09x, median 1.04x, k = 32 0.98-1.04x, the same bits (benchmarks/
# RESULTS.md, "Eight reflectors to a register block")
_WY_REFLECTORS, _WY_TARGETS = (8 if AVX512 else 4), 2
# ... on registers of this many bytes: with AVX-512 a float64 lane-vector fills one, and
# its accumulators in 256-bit halves took twice the instructions (1.3-1.6x slower
# lanes_qr at k = n = 128-256; benchmarks/RESULTS.md, "AVX-512")
_WY_VECTOR_BYTES = 64 if AVX512 else 32
# float32 with AVX-512 holds two rows of a lane-vector per register (_wy_joined),
# blocked by the whole panel and 2 targets: 26 of the 32 registers.  Alone, n = 64-256,
# one thread, over half registers: lanes_factor 1.30-1.58x, apply_held 1.46-1.82x; of
# that 1.03-1.16x from 8 reflectors over 4 (3 or 4 targets: within 5 %; 8 x 1: 0.8-1.0x)
_WY_JOINED_REFLECTORS = PANEL


def cache_bytes(level, cache_dir="/sys/devices/system/cpu/cpu0/cache"):
    """Size in bytes of the first CPU's data (or unified) cache at ``level``, as Linux
    lists it under ``cache_dir`` (``index*/level``, ``type``, ``size`` such as ``48K``);
    None where it is not listed."""
    units = {"K": 1024, "M": 1024 ** 2}

    def field(entry, name):
        with open(os.path.join(cache_dir, entry, name)) as f:
            return f.read().strip()

    try:
        for entry in sorted(os.listdir(cache_dir)):
            if (entry.startswith("index") and field(entry, "level") == str(level)
                    and field(entry, "type") in ("Data", "Unified")):
                size = field(entry, "size")
                return int(size[:-1]) * units[size[-1]] if size[-1] in units else int(size)
    except (OSError, ValueError):
        pass
    return None


# the panel's reflectors over a chunk of rows take this much of the L1 cache: 16 KiB of
# a 32 KiB L1d (32 KiB chunks ran 0.74-0.99x there), 32 KiB of a 48 KiB one (lanes_qr
# 1.04-1.09x at n = 256; whole spectra at k = n = 256 0.99-1.16x, median 1.04x, in four
# A/B runs; benchmarks/RESULTS.md, "Where a step's time goes").  A cache moved to a CPU
# of the same features but another L1d keeps the chunks it was compiled with: slower,
# not wrong
_WY_CHUNK_BYTES = 32768 if (cache_bytes(1) or 0) >= 48 * 1024 else 16384
# the factorisation and apply_held take their columns in chunks of this many bytes,
# half the L2 cache, each chunk receiving every panel before the next: a whole float64
# group at n = 256 (4 MiB) left L2, and each panel streamed it from L3.  Where no L2
# is listed, all columns at once
COLUMN_CHUNK_BYTES = (cache_bytes(2) or 0) // 2


def _wy_update_body(builder, pv, pc, pd, nr, width, vrow, arow, align):
    # targets -= reflectors x coefficients, the coefficients held in registers
    ity = nr.type
    ws = [[builder.load(p, align=align) for p in row] for row in pd]
    with cgutils.for_range_slice(builder, ir.Constant(ity, 0), nr,
                                 ir.Constant(ity, 1)) as (r, _):
        vs = [builder.load(builder.gep(p, [builder.mul(r, vrow)]), align=align) for p in pv]
        for w in range(width):
            pcr = builder.gep(pc[w], [builder.mul(r, arow)])
            x = builder.load(pcr, align=align)
            for j in range(len(pv)):
                x = builder.fsub(x, builder.fmul(vs[j], ws[j][w], flags=_FL), flags=_FL)
            builder.store(x, pcr, align=align)


def _wy_dots_body(builder, hv, first, pv, pc, pd, nr, width, vrow, arow, align):
    # dot products of reflectors and targets, accumulated in registers
    ity = nr.type
    accs = [[cgutils.alloca_once(builder, hv) for _ in range(width)] for _ in pv]
    for arow_, prow in zip(accs, pd):
        for acc, p in zip(arow_, prow):
            builder.store(builder.select(first, ir.Constant(hv, [0.0] * hv.count),
                                         builder.load(p, align=align)), acc)
    with cgutils.for_range_slice(builder, ir.Constant(ity, 0), nr,
                                 ir.Constant(ity, 1)) as (r, _):
        vs = [builder.load(builder.gep(p, [builder.mul(r, vrow)]), align=align) for p in pv]
        for w in range(width):
            x = builder.load(builder.gep(pc[w], [builder.mul(r, arow)]), align=align)
            for j in range(len(pv)):
                acc = accs[j][w]
                builder.store(builder.fadd(builder.load(acc), builder.fmul(vs[j], x, flags=_FL),
                                           flags=_FL), acc)
    for arow_, prow in zip(accs, pd):
        for acc, p in zip(arow_, prow):
            builder.store(builder.load(acc), p, align=align)


def _wy_codegen(update):
    """Code of :func:`_wy_dots` (``update`` False) or :func:`_wy_update` (True)."""

    def codegen(context, builder, signature, args):
        v, vr0, a, r0, nr, c0, nc, d, first = args
        vty, vr0ty, aty, r0ty, nrty, c0ty, ncty, dty, fty = signature.args
        vec, align, (vr0, r0, nr, c0, nc), (first,) = _lane_setup(
            context, builder, aty.dtype,
            [(vr0, vr0ty), (r0, r0ty), (nr, nrty), (c0, c0ty), (nc, ncty)], [(first, fty)])
        ity = r0.type
        hc = min(LANES, _WY_VECTOR_BYTES // align)  # elements of one vector register
        hv = ir.VectorType(vec.element, hc)
        n = _dim(context, builder, aty, a, 1)
        kd = _dim(context, builder, dty, d, 1)

        def const(x):
            return ir.Constant(ity, x)

        def at(arty, arr, outer, inner, h):
            # lane-vector outer + inner of the array, from lane h * hc
            off = builder.add(builder.mul(builder.add(outer, inner), const(LANES)),
                              builder.mul(h, const(hc)))
            return _vectors(context, builder, arty, arr, off, hv)

        vrow = const(PANEL * LANES // hc)  # registers from one row of V to the next
        arow = const(LANES // hc)
        zero, one = const(0), const(1)
        halves = LANES // hc

        def halves_group(c, width):
            # blocks of reflectors and halves of the lane-vectors in a run-time loop:
            # unrolled, they were 2-4 copies of the code for LLVM to optimise in every
            # kernel that calls the QR (seconds of cold compile)
            with cgutils.for_range_slice(builder, zero, const(PANEL // _WY_REFLECTORS * halves),
                                         one) as (q, _):
                jb = builder.mul(builder.sdiv(q, const(halves)), const(_WY_REFLECTORS))
                h = builder.srem(q, const(halves))
                pv = [at(vty, v, builder.mul(vr0, const(PANEL)), builder.add(jb, const(j)), h)
                      for j in range(_WY_REFLECTORS)]
                pc = [at(aty, a, builder.mul(builder.add(c, const(w)), n), r0, h)
                      for w in range(width)]
                pd = [[at(dty, d, builder.mul(builder.add(jb, const(j)), kd),
                          builder.add(c, const(w)), h) for w in range(width)]
                      for j in range(_WY_REFLECTORS)]
                if update:
                    _wy_update_body(builder, pv, pc, pd, nr, width, vrow, arow, align)
                else:
                    _wy_dots_body(builder, hv, first, pv, pc, pd, nr, width, vrow, arow,
                                  align)

        if _wy_joined(align):
            group = _wy_joined_group(context, builder, update, vec, align, const, args,
                                     signature.args, vr0, r0, nr, first, n, kd)
        else:
            group = halves_group
        wide = const(_WY_TARGETS)
        full = builder.sdiv(nc, wide)
        with cgutils.for_range_slice(builder, zero, full, one) as (b, _):
            group(builder.add(c0, builder.mul(b, wide)), _WY_TARGETS)
        with cgutils.for_range_slice(builder, builder.mul(full, wide), nc, one) as (q, _):
            group(builder.add(c0, q), 1)
        return context.get_dummy_value()

    return codegen


def _wy_joined(align):
    """Whether the compact-WY passes hold two rows of a lane-vector in one register:
    float32 with AVX-512, where one lane-vector fills half of it.  ``V`` then keeps
    rows 2i and 2i + 1 of each reflector side by side (:func:`_v_index`)."""
    return _WY_VECTOR_BYTES // align == 2 * LANES


def _v_index(builder, i, j, joined):
    """Lane-vector index, in ``V``, of row ``i`` of the panel's reflector ``j``."""
    ity = i.type
    panel = ir.Constant(ity, PANEL)
    if not joined:
        return builder.add(builder.mul(i, panel), j)
    one = ir.Constant(ity, 1)
    pair = builder.add(builder.mul(builder.ashr(i, one), panel), j)
    return builder.add(builder.shl(pair, one), builder.and_(i, one))


def _wy_joined_group(context, builder, update, vec, align, const, args, argtys,
                     vr0, r0, nr, first, n, kd):
    """``group(c, width)`` of :func:`_wy_codegen`, the code for the target columns c ..
    c + width - 1, on registers of two rows of a lane-vector.  ``vr0`` and the rows of
    every chunk the callers pass are even (PANEL is), so a pair of A's rows is one load
    and meets one pair of ``V``; an odd last row goes on its own.  The dot products sum
    the even and the odd rows apart and add the halves at the end."""
    v, _, a, _, _, _, _, d, _ = args
    vty, aty, dty = argtys[0], argtys[2], argtys[7]
    i32 = ir.IntType(32)
    wide = ir.VectorType(vec.element, 2 * LANES)
    both = ir.Constant(ir.VectorType(i32, 2 * LANES), list(range(LANES)) * 2)
    joined = ir.Constant(ir.VectorType(i32, 2 * LANES), list(range(2 * LANES)))
    low = ir.Constant(ir.VectorType(i32, LANES), list(range(LANES)))
    high = ir.Constant(ir.VectorType(i32, LANES), list(range(LANES, 2 * LANES)))
    lanes = const(LANES)
    zero, one = const(0), const(1)
    pairs = builder.ashr(nr, one)
    odd = builder.icmp_signed("!=", builder.and_(nr, one), zero)
    zeros = ir.Constant(vec, [0.0] * LANES)

    def load(p):
        return builder.load(p, align=align)

    def at(p, m, first_row):
        # pair m of p (rows of A or of V), or only its first row's lane-vector
        q = builder.gep(p, [m])
        return builder.bitcast(q, vec.as_pointer()) if first_row else q

    def group(c, width):
        with cgutils.for_range_slice(builder, zero, const(PANEL // _WY_JOINED_REFLECTORS),
                                     one) as (q, _):
            jb = builder.mul(q, const(_WY_JOINED_REFLECTORS))
            pv = [_vectors(context, builder, vty, v, builder.mul(
                _v_index(builder, vr0, builder.add(jb, const(j)), True), lanes), wide)
                for j in range(_WY_JOINED_REFLECTORS)]
            pc = [_vectors(context, builder, aty, a, builder.mul(
                builder.add(builder.mul(builder.add(c, const(w)), n), r0), lanes), wide)
                for w in range(width)]
            pd = [[_vectors(context, builder, dty, d, builder.mul(builder.add(
                builder.mul(builder.add(jb, const(j)), kd), builder.add(c, const(w))), lanes),
                vec) for w in range(width)] for j in range(_WY_JOINED_REFLECTORS)]
            vstep = const(PANEL)  # registers from one pair of V's rows to the next

            def rows(m, first_row, coefs, sums):
                # pair m of rows (or its first row alone, the odd last one): the targets
                # less the reflectors times ``coefs`` (update), or the reflectors' dot
                # products with the targets added to ``sums`` (the dots)
                vs = [load(at(p, builder.mul(m, vstep), first_row)) for p in pv]
                for w in range(width):
                    pcm = at(pc[w], m, first_row)
                    x = load(pcm)
                    for j in range(_WY_JOINED_REFLECTORS):
                        if update:
                            x = builder.fsub(x, builder.fmul(vs[j], coefs[j][w], flags=_FL),
                                             flags=_FL)
                        else:
                            acc = sums[j][w]
                            builder.store(builder.fadd(load(acc),
                                                       builder.fmul(vs[j], x, flags=_FL),
                                                       flags=_FL), acc, align=align)
                    if update:
                        builder.store(x, pcm, align=align)

            if update:
                ws = [[load(p) for p in row] for row in pd]
                both_halves = [[builder.shuffle_vector(x, x, both) for x in row] for row in ws]
                with cgutils.for_range_slice(builder, zero, pairs, one) as (m, _):
                    rows(m, False, both_halves, None)
                with builder.if_then(odd):
                    rows(pairs, True, ws, None)
                return
            accs = [[cgutils.alloca_once(builder, wide) for _ in range(width)] for _ in pv]
            for arow_, prow in zip(accs, pd):
                for acc, p in zip(arow_, prow):
                    # the sum so far in the low half, the odd rows' from zero
                    start = builder.select(first, zeros, load(p))
                    builder.store(builder.shuffle_vector(start, zeros, joined), acc)
            with cgutils.for_range_slice(builder, zero, pairs, one) as (m, _):
                rows(m, False, None, accs)
            for arow_, prow in zip(accs, pd):
                for acc, p in zip(arow_, prow):
                    s = builder.load(acc)
                    s = builder.fadd(builder.shuffle_vector(s, s, low),
                                     builder.shuffle_vector(s, s, high))
                    builder.store(s, p, align=align)
            with builder.if_then(odd):
                rows(pairs, True, None, pd)

    return group


def _wy_typing(V, vr0, A, r0, nr, c0, nc, D, first):
    if not (_c_array(V, 3) and _c_array(A, 3) and _c_array(D, 3)
            and V.dtype == A.dtype == D.dtype):
        return None
    return types.void(V, vr0, A, r0, nr, c0, nc, D, first)


@intrinsic
def _wy_dots(typingctx, V, vr0, A, r0, nr, c0, nc, D, first):
    """``D[j, c] = [D[j, c] +] sum_i V[vr0 + i, j] A[c, r0 + i]`` per lane, for i < nr,
    j < PANEL and the lane-columns c0 .. c0 + nc - 1 of A (D's values not added if
    ``first``).  V (rows, PANEL, LANES) holds reflectors with their rows interleaved,
    D is (PANEL, A's columns, LANES)."""
    sig = _wy_typing(V, vr0, A, r0, nr, c0, nc, D, first)
    return (sig, _wy_codegen(False)) if sig is not None else None


@intrinsic
def _wy_update(typingctx, V, vr0, A, r0, nr, c0, nc, D, first):
    """``A[c, r0 + i] -= sum_j V[vr0 + i, j] D[j, c]`` per lane, over the ranges of
    :func:`_wy_dots` (``first`` unused)."""
    sig = _wy_typing(V, vr0, A, r0, nr, c0, nc, D, first)
    return (sig, _wy_codegen(True)) if sig is not None else None


@intrinsic
def _wy_solve(typingctx, D, c0, nc, G, tau, p0, backwards):
    """Turn ``D[:, c]``, the dot products of the PANEL reflectors from ``p0`` with the
    columns c0 .. c0 + nc - 1 as they were, into the coefficients of the reflectors
    applied one after the other, in increasing order of j (or decreasing, ``backwards``):
    ``w_j = tau_j (d_j - sum_l G_jl w_l)`` over the reflectors l applied before j, with
    ``G_jl = v_j . v_l``; per lane."""
    if not (_c_array(D, 3) and _c_array(G, 3) and _c_array(tau, 2)
            and D.dtype == G.dtype == tau.dtype):
        return None
    sig = types.void(D, c0, nc, G, tau, p0, backwards)

    def codegen(context, builder, signature, args):
        d, c0_, nc_, g, t, p0_, back = args
        dty, c0ty, ncty, gty, tty, p0ty, bty = signature.args
        vec, align, (c0_, nc_, p0_), (back,) = _lane_setup(
            context, builder, dty.dtype, [(c0_, c0ty), (nc_, ncty), (p0_, p0ty)], [(back, bty)])
        ity = c0_.type
        lanes = ir.Constant(ity, LANES)
        kd = _dim(context, builder, dty, d, 1)

        def load(arty, arr, off):
            return builder.load(_vectors(context, builder, arty, arr, off, vec), align=align)

        taus = [load(tty, t, builder.mul(builder.add(p0_, ir.Constant(ity, j)), lanes))
                for j in range(PANEL)]
        gram = [[load(gty, g, ir.Constant(ity, (j * PANEL + m) * LANES)) for m in range(PANEL)]
                for j in range(PANEL)]

        def solve(order):
            with cgutils.for_range_slice(builder, ir.Constant(ity, 0), nc_,
                                         ir.Constant(ity, 1)) as (q, _):
                c = builder.add(c0_, q)
                ps = [_vectors(context, builder, dty, d,
                               builder.mul(builder.add(builder.mul(ir.Constant(ity, j), kd),
                                                       c), lanes), vec) for j in range(PANEL)]
                ws = {}
                for j in order:
                    x = builder.load(ps[j], align=align)
                    for m, wm in ws.items():
                        x = builder.fsub(x, builder.fmul(gram[j][m], wm, flags=_FL), flags=_FL)
                    ws[j] = builder.fmul(taus[j], x)
                    builder.store(ws[j], ps[j], align=align)

        with builder.if_else(back) as (backward, forward):
            with backward:
                solve(range(PANEL - 1, -1, -1))
            with forward:
                solve(range(PANEL))
        return context.get_dummy_value()

    return sig, codegen


@jit(inline="always")
def _wy_rows(A):
    # rows per chunk: the PANEL reflectors' lane-vectors over them fill _WY_CHUNK_BYTES
    return max(_WY_CHUNK_BYTES // (PANEL * LANES * A.itemsize), 8)


@intrinsic
def _wy_copy(typingctx, A, p0, V):
    """``V[i, j] = v_j[p0 + i]`` for the PANEL reflectors from ``p0`` and every row from
    p0: A's column p0 + j under row p0 + j, 1 on it, 0 above."""
    if not (_c_array(A, 3) and _c_array(V, 3) and A.dtype == V.dtype):
        return None
    sig = types.void(A, p0, V)

    def codegen(context, builder, signature, args):
        a, p0_, v = args
        aty, p0ty, vty = signature.args
        vec, align, (p0_,), _ = _lane_setup(context, builder, aty.dtype, [(p0_, p0ty)], [])
        ity = p0_.type
        joined = _wy_joined(align)
        n = _dim(context, builder, aty, a, 1)
        lanes = ir.Constant(ity, LANES)
        zeros, ones = ir.Constant(vec, [0.0] * LANES), ir.Constant(vec, [1.0] * LANES)
        with cgutils.for_range_slice(builder, ir.Constant(ity, 0), builder.sub(n, p0_),
                                     ir.Constant(ity, 1)) as (i, _):
            for j in range(PANEL):
                jj = ir.Constant(ity, j)
                src = builder.add(builder.mul(builder.add(p0_, jj), n), builder.add(p0_, i))
                x = builder.load(_vectors(context, builder, aty, a, builder.mul(src, lanes),
                                          vec), align=align)
                x = builder.select(builder.icmp_signed(">", i, jj), x,
                                   builder.select(builder.icmp_signed("==", i, jj), ones,
                                                  zeros))
                dst = _v_index(builder, i, jj, joined)
                builder.store(x, _vectors(context, builder, vty, v, builder.mul(dst, lanes),
                                          vec), align=align)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _wy_gram(typingctx, V, D, p0, below, G):
    """``G[j, m] = v_j . v_m`` per lane: the sum over the panel's first PANEL rows
    (from ``V``) added to the rest, ``D[j, p0 + m]`` (if ``below``)."""
    if not (_c_array(V, 3) and _c_array(D, 3) and _c_array(G, 3)
            and V.dtype == D.dtype == G.dtype):
        return None
    sig = types.void(V, D, p0, below, G)

    def codegen(context, builder, signature, args):
        v, d, p0_, below_, g = args
        vty, dty, p0ty, bty, gty = signature.args
        vec, align, (p0_,), (below_,) = _lane_setup(context, builder, vty.dtype,
                                                    [(p0_, p0ty)], [(below_, bty)])
        ity = p0_.type
        joined = _wy_joined(align)
        kd = _dim(context, builder, dty, d, 1)
        lanes, panel = ir.Constant(ity, LANES), ir.Constant(ity, PANEL)
        one = ir.Constant(ity, 1)

        def at(arty, arr, off):
            return _vectors(context, builder, arty, arr, builder.mul(off, lanes), vec)

        # run-time loops: straight-line code for 64 entries cost more compile than
        # the few hundred multiply-adds cost to run
        with cgutils.for_range_slice(builder, ir.Constant(ity, 0),
                                     ir.Constant(ity, PANEL * PANEL), one) as (q, _):
            j, m = builder.sdiv(q, panel), builder.srem(q, panel)
            rest = builder.load(at(dty, d, builder.add(builder.mul(j, kd),
                                                       builder.add(p0_, m))), align=align)
            acc = cgutils.alloca_once(builder, vec)
            builder.store(builder.select(below_, rest, ir.Constant(vec, [0.0] * LANES)), acc)
            top = builder.select(builder.icmp_signed(">", j, m), j, m)
            with cgutils.for_range_slice(builder, top, panel, one) as (i, _):
                x = builder.load(at(vty, v, _v_index(builder, i, j, joined)), align=align)
                y = builder.load(at(vty, v, _v_index(builder, i, m, joined)), align=align)
                builder.store(builder.fadd(builder.load(acc), builder.fmul(x, y)), acc)
            builder.store(builder.load(acc), at(gty, g, q), align=align)
        return context.get_dummy_value()

    return sig, codegen


@jit(inline="always")
def _load_panel(A, p0, V, G, D, gram):
    """Copy the PANEL reflectors from ``p0`` into ``V`` (rows from p0, PANEL, LANES;
    pairs of rows side by side in float32 with AVX-512, :func:`_v_index`) whole, with
    their zeros above their own row and the 1 on it; with ``gram``, also
    ``G[j, l] = v_j . v_l`` per lane (D's columns p0 .. p0 + PANEL - 1 as scratch)."""
    n = A.shape[1]
    _wy_copy(A, p0, V)
    if not gram:
        return
    # under the panel's first PANEL rows the reflectors are A's columns as they stand
    rows = _wy_rows(A)
    for r0 in range(p0 + PANEL, n, rows):
        _wy_dots(V, r0 - p0, A, r0, min(rows, n - r0), p0, PANEL, D, r0 == p0 + PANEL)
    _wy_gram(V, D, p0, p0 + PANEL < n, G)


@jit(inline="always")
def _apply_panel(A, p0, c0, nc, tau, V, G, D, backwards):
    """Apply the PANEL reflectors from ``p0`` (``V``, ``G`` from :func:`_load_panel`)
    to lane-columns ``c0 .. c0 + nc - 1`` of ``A``, in increasing order of their index
    or, if ``backwards``, decreasing; the same as :func:`_reflect_block` up to
    round-off.  ``D`` (PANEL, k, LANES) is scratch."""
    n = A.shape[1]
    rows = _wy_rows(A)
    for r0 in range(p0, n, rows):
        _wy_dots(V, r0 - p0, A, r0, min(rows, n - r0), c0, nc, D, r0 == p0)
    _wy_solve(D, c0, nc, G, tau, p0, backwards)
    for r0 in range(p0, n, rows):
        _wy_update(V, r0 - p0, A, r0, min(rows, n - r0), c0, nc, D, False)


@intrinsic
def _sum_squares(typingctx, A, off, nrows, out):
    """``out[:LANES]`` (float64) = the sums over ``nrows`` rows of the squares of the
    lane-column at element ``off`` of ``A``, accumulated in float64."""
    if not (_c_array(A, 3) and _c_array(out, 1) and out.dtype == types.float64):
        return None
    width = LANES
    sig = types.void(A, off, nrows, out)

    def codegen(context, builder, signature, args):
        a, o, nr, out = args
        aty, oty = signature.args[0], signature.args[3]
        fp = context.get_value_type(aty.dtype)
        f64 = ir.DoubleType()
        vec = ir.VectorType(fp, width)
        vec64 = ir.VectorType(f64, width)
        pv = _vectors(context, builder, aty, a, o, vec)
        po = _vectors(context, builder, oty, out, ir.Constant(o.type, 0), vec64)
        acc = cgutils.alloca_once(builder, vec64)
        builder.store(ir.Constant(vec64, None), acc)
        zero = ir.Constant(nr.type, 0)
        with cgutils.for_range_slice(builder, zero, nr, ir.Constant(nr.type, 1)) as (r, _):
            v = builder.load(builder.gep(pv, [r]), align=context.get_abi_sizeof(fp))
            if fp != f64:
                v = builder.fpext(v, vec64)
            builder.store(builder.fadd(builder.load(acc), builder.fmul(v, v)), acc)
        builder.store(builder.load(acc), po, align=8)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _scale_lanes(typingctx, A, off, nrows, S, soff, sgn):
    """Multiply ``nrows`` lane-vectors of ``A`` from element ``off`` by ``sgn`` times the
    lane-vector of ``S`` at element ``soff`` (one factor per lane).

    The per-lane scalings of :func:`lanes_qr` (a reflector's scale, -tau, the signs of
    R) in vector code: as plain numba loops over 8 lanes they stayed scalar and took a
    third to a half of the QR at k = 16.  Each product is the scalar one, to the bit.
    """
    if not (_c_array(A, 3) and isinstance(S, types.Array) and S.layout == "C"
            and S.dtype == A.dtype):
        return None
    sig = types.void(A, off, nrows, S, soff, sgn)

    def codegen(context, builder, signature, args):
        a, o, nr, sarr, so, sg = args
        aty, sty, gty = signature.args[0], signature.args[3], signature.args[5]
        fp = context.get_value_type(aty.dtype)
        vec = ir.VectorType(fp, LANES)
        align = context.get_abi_sizeof(fp)
        factor = builder.load(_vectors(context, builder, sty, sarr, so, vec), align=align)
        g = context.cast(builder, sg, gty, aty.dtype)
        splat = ir.Constant(vec, None)
        for ln in range(LANES):
            splat = builder.insert_element(splat, g, ir.Constant(ir.IntType(32), ln))
        factor = builder.fmul(factor, splat)
        pa = _vectors(context, builder, aty, a, o, vec)
        zero = ir.Constant(nr.type, 0)
        with cgutils.for_range_slice(builder, zero, nr, ir.Constant(nr.type, 1)) as (r, _):
            pr = builder.gep(pa, [r])
            builder.store(builder.fmul(builder.load(pr, align=align), factor), pr,
                          align=align)
        return context.get_dummy_value()

    return sig, codegen


# rows x lane-columns of the output accumulated at once by _shared_product: each X
# vector loaded is used for ROWS products and each W entry for COLS; on AVX2, 4 x 1
# (float64, 8 vector registers of accumulators) and 4 x 2 (float32) were the fastest of
# the shapes measured (2 x 1 to 8 x 1 and 2 x 2 to 4 x 4; benchmarks/RESULTS.md).  With
# AVX-512 a float64 lane-vector fills one register, and 4 x 1 left the multiply-adds
# waiting on each other (44 GFLOP/s on one core of a Xeon); 8 x 2, 16 of its 32
# registers, ran 1.3-1.8x faster there.  A float32 lane-vector fills half of one: there
# lane-columns are joined in pairs, 8 x 4 tiles in 16 registers, 98-144 GFLOP/s against
# 76-80 for 4 x 2 half-filled ("AVX-512")
_PRODUCT_TILE = {types.float64: (8, 2) if AVX512 else (4, 1),
                 types.float32: (8, 4) if AVX512 else (4, 2)}


@intrinsic
def _shared_product(typingctx, W, X, xr0, Y, yr0, D, accumulate, scale):
    """``Y[c, yr0 + i] = [D[i] *] ([Y[c, yr0 + i] +] sum_r W[i, r] X[c, xr0 + r])`` for
    every lane-column c of X (k, ., LANES), i < W.shape[0], r < W.shape[1].

    One matrix ``W`` shared by all lanes, times LANES interleaved blocks: each W entry
    is broadcast and multiplied into a lane-vector of X.  ``D`` (W.shape[0], LANES)
    scales row i lane by lane when ``scale``.  Shapes are the caller's to check.
    """
    if not (_c_array(W, 2) and _c_array(X, 3) and _c_array(Y, 3) and _c_array(D, 2)
            and W.dtype == X.dtype == Y.dtype == D.dtype):
        return None
    sig = types.void(W, X, xr0, Y, yr0, D, accumulate, scale)

    def codegen(context, builder, signature, args):
        w, x, xr, y, yr, d, acc_flag, sc_flag = args
        wty, xty, xrty, yty, yrty, dty, accty, scty = signature.args
        vec, align, (xr, yr), (acc_flag, sc_flag) = _lane_setup(
            context, builder, wty.dtype, [(xr, xrty), (yr, yrty)],
            [(acc_flag, accty), (sc_flag, scty)])
        wa = context.make_array(wty)(context, builder, w)
        rows = builder.extract_value(wa.shape, 0)
        cols = builder.extract_value(wa.shape, 1)
        k = _dim(context, builder, xty, x, 0)
        nx = _dim(context, builder, xty, x, 1)
        ny = _dim(context, builder, yty, y, 1)
        ity = rows.type
        zero, one = ir.Constant(ity, 0), ir.Constant(ity, 1)
        lanes = ir.Constant(ity, LANES)

        def lane_col(arty, arr, n, c, r):
            return _vectors(context, builder, arty, arr,
                            builder.mul(builder.add(builder.mul(c, n), r), lanes), vec)

        i32 = ir.IntType(32)

        def halves(v):
            # the two lane-vectors of a joined pair
            return [builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(i32, LANES),
                                                             list(range(h, h + LANES))))
                    for h in (0, LANES)]

        def tile(c0, ncol, i0, nrow):
            cs = [builder.add(c0, ir.Constant(ity, j)) for j in range(ncol)]
            px = [lane_col(xty, x, nx, c, xr) for c in cs]
            py = [lane_col(yty, y, ny, c, builder.add(yr, i0)) for c in cs]
            pw = [builder.gep(wa.data, [builder.mul(builder.add(i0, ir.Constant(ity, q)), cols)])
                  for q in range(nrow)]
            # lane-columns joined in pairs into one vector register of twice the lanes
            joined = join and ncol % 2 == 0
            groups = ([(j, j + 1) for j in range(0, ncol, 2)] if joined
                      else [(j,) for j in range(ncol)])
            gvec = ir.VectorType(vec.element, LANES * len(groups[0]))
            pair = ir.Constant(ir.VectorType(i32, 2 * LANES), list(range(2 * LANES)))
            accs = [[cgutils.alloca_once_value(builder, ir.Constant(gvec, None))
                     for _ in range(nrow)] for _ in groups]
            with cgutils.for_range_slice(builder, zero, cols, one) as (r, _):
                xs = []
                for g in groups:
                    parts = [builder.load(builder.gep(px[j], [r]), align=align) for j in g]
                    xs.append(builder.shuffle_vector(parts[0], parts[1], pair) if joined
                              else parts[0])
                for q in range(nrow):
                    s = _splat(builder, gvec, builder.load(builder.gep(pw[q], [r])))
                    for xv, acc in zip(xs, accs):
                        builder.store(builder.fadd(builder.load(acc[q]),
                                                   builder.fmul(s, xv, flags=_FL), flags=_FL),
                                      acc[q])
            pd = _vectors(context, builder, dty, d, builder.mul(i0, lanes), vec)
            for g, gacc in zip(groups, accs):
                for q in range(nrow):
                    sums = halves(builder.load(gacc[q])) if joined else [builder.load(gacc[q])]
                    for j, total in zip(g, sums):
                        acc = cgutils.alloca_once_value(builder, total)
                        pq = builder.gep(py[j], [ir.Constant(ity, q)])
                        with builder.if_then(acc_flag):
                            builder.store(builder.fadd(builder.load(pq, align=align),
                                                       builder.load(acc)), acc)
                        with builder.if_then(sc_flag):
                            dq = builder.load(builder.gep(pd, [ir.Constant(ity, q)]),
                                              align=align)
                            builder.store(builder.fmul(builder.load(acc), dq), acc)
                        builder.store(builder.load(acc), pq, align=align)

        def over_rows(c0, ncol):
            _in_blocks(builder, rows, tile_rows, lambda i0, nrow: tile(c0, ncol, i0, nrow))

        tile_rows, width = _PRODUCT_TILE[wty.dtype]
        # float32 lane-columns two to a register where registers hold 16 of them
        join = AVX512 and wty.dtype == types.float32
        _in_blocks(builder, k, width, over_rows)
        return context.get_dummy_value()

    return sig, codegen


@jit
def shared_product(W, X, xr0, Y, yr0, D, accumulate, scale):
    """One matrix times LANES interleaved blocks, into rows of interleaved blocks.

    ``Y[c, yr0 + i, l] = D[i, l] * (Y[c, yr0 + i, l] + sum_r W[i, r] X[c, xr0 + r, l])``
    for each lane-column c, where the ``D`` factor applies only with ``scale`` and the
    ``Y`` term only with ``accumulate``.  A vanilla layer's tangent D (W Q) for a
    group of sequences, which share W: 1.5-5x faster than one BLAS product per
    sequence plus the copies into and out of the interleaved layout
    (benchmarks/RESULTS.md).  ``X`` and ``Y`` (k, ., LANES) are C-contiguous; ``Y``
    must not share the rows read from ``X``.
    """
    m, p = W.shape
    if (X.shape[2] != LANES or Y.shape[2] != LANES or X.shape[0] != Y.shape[0]
            or xr0 < 0 or yr0 < 0 or xr0 + p > X.shape[1] or yr0 + m > Y.shape[1]
            or (scale and D.shape[0] < m) or D.shape[1] != LANES):
        # the vector code computes addresses from these shapes (a caller's bug)
        raise ValueError("shared_product: shapes do not match")
    _shared_product(W, X, xr0, Y, yr0, D, accumulate, scale)


@intrinsic
def _scale_add(typingctx, Y, yr0, X, xr0, C, accumulate):
    """``Y[c, yr0 + i] = [Y[c, yr0 + i] +] C[i] * X[c, xr0 + i]`` for every lane-column
    c and i < C.shape[0], lane by lane.  Shapes are the caller's to check."""
    if not (_c_array(Y, 3) and _c_array(X, 3) and _c_array(C, 2)
            and Y.dtype == X.dtype == C.dtype):
        return None
    sig = types.void(Y, yr0, X, xr0, C, accumulate)

    def codegen(context, builder, signature, args):
        y, yr, x, xr, cf, acc_flag = args
        yty, yrty, xty, xrty, cty, accty = signature.args
        vec, align, (yr, xr), (acc_flag,) = _lane_setup(
            context, builder, yty.dtype, [(yr, yrty), (xr, xrty)], [(acc_flag, accty)])
        rows = _dim(context, builder, cty, cf, 0)
        k = _dim(context, builder, yty, y, 0)
        ny = _dim(context, builder, yty, y, 1)
        nx = _dim(context, builder, xty, x, 1)
        ity = rows.type
        zero, one = ir.Constant(ity, 0), ir.Constant(ity, 1)
        lanes = ir.Constant(ity, LANES)
        pc = _vectors(context, builder, cty, cf, zero, vec)

        def column(acc):
            with cgutils.for_range_slice(builder, zero, k, one) as (c, _):
                py = _vectors(context, builder, yty, y,
                              builder.mul(builder.add(builder.mul(c, ny), yr), lanes), vec)
                px = _vectors(context, builder, xty, x,
                              builder.mul(builder.add(builder.mul(c, nx), xr), lanes), vec)
                with cgutils.for_range_slice(builder, zero, rows, one) as (i, _):
                    v = builder.fmul(builder.load(builder.gep(pc, [i]), align=align),
                                     builder.load(builder.gep(px, [i]), align=align),
                                     flags=_FL)
                    pyi = builder.gep(py, [i])
                    if acc:
                        v = builder.fadd(builder.load(pyi, align=align), v, flags=_FL)
                    builder.store(v, pyi, align=align)

        with builder.if_else(acc_flag) as (add, overwrite):
            with add:
                column(True)
            with overwrite:
                column(False)
        return context.get_dummy_value()

    return sig, codegen


@jit
def scale_add(Y, yr0, X, xr0, C, accumulate):
    """Rows of interleaved blocks scaled lane by lane, into (or added to) other rows:
    ``Y[c, yr0 + i, l] = [Y[c, yr0 + i, l] +] C[i, l] X[c, xr0 + i, l]``.

    The diagonal terms of a gated cell's tangent (coefficients per unit and sequence
    times rows of ``W Q``), in vector code.  ``Y`` and ``X`` (k, ., LANES) may be the
    same array if the rows written are not the rows read.
    """
    m = C.shape[0]
    if (X.shape[2] != LANES or Y.shape[2] != LANES or C.shape[1] != LANES
            or X.shape[0] != Y.shape[0] or xr0 < 0 or yr0 < 0
            or xr0 + m > X.shape[1] or yr0 + m > Y.shape[1]):
        raise ValueError("scale_add: shapes do not match")
    _scale_add(Y, yr0, X, xr0, C, accumulate)


# rows of M by lane-columns of X in a tile of lanes_product: the tile's accumulators,
# a row of each of M's rows and one of X in registers (21 of AVX-512's 32; AVX2 has 16).
# The tile's lane-columns of X stay in L1 while M streams past them from L2, which at
# k = 2N is the smaller operand.  Alone, one thread, 64-byte aligned, N = 64-128:
# float64 4 x 4 72-81 GFLOP/s (6 x 4 63-72; rows outer, X streaming, 35-41 at N = 128,
# k = 256), float32 85-95 (benchmarks/RESULTS.md, "LSTM groups at many columns")
_LANES_TILE = (4, 4) if AVX512 else (3, 3)


@intrinsic
def _lanes_product(typingctx, M, X, xr0, Y, yr0, accumulate):
    """``Y[c, yr0 + i] = [Y[c, yr0 + i] +] sum_j M[i, j] X[c, xr0 + j]`` lane by lane, for
    every lane-column c of X (k, ., LANES), i < M.shape[0], j < M.shape[1].  Shapes are
    the caller's to check."""
    if not (_c_array(M, 3) and _c_array(X, 3) and _c_array(Y, 3)
            and M.dtype == X.dtype == Y.dtype):
        return None
    sig = types.void(M, X, xr0, Y, yr0, accumulate)

    def codegen(context, builder, signature, args):
        m, x, xr, y, yr, acc_flag = args
        mty, xty, xrty, yty, yrty, accty = signature.args
        vec, align, (xr, yr), (acc_flag,) = _lane_setup(
            context, builder, mty.dtype, [(xr, xrty), (yr, yrty)], [(acc_flag, accty)])
        rows = _dim(context, builder, mty, m, 0)
        p = _dim(context, builder, mty, m, 1)
        k = _dim(context, builder, xty, x, 0)
        nx = _dim(context, builder, xty, x, 1)
        ny = _dim(context, builder, yty, y, 1)
        ity = rows.type
        zero, one = ir.Constant(ity, 0), ir.Constant(ity, 1)
        first = builder.not_(acc_flag)

        def at(arty, arr, outer, n, inner):
            return _vectors(context, builder, arty, arr, builder.mul(
                builder.add(builder.mul(outer, n), inner), ir.Constant(ity, LANES)), vec)

        def tile(i0, nrow, c0, ncol):
            iq = [builder.add(i0, ir.Constant(ity, q)) for q in range(nrow)]
            cw = [builder.add(c0, ir.Constant(ity, w)) for w in range(ncol)]
            pm = [at(mty, m, i, p, zero) for i in iq]
            px = [at(xty, x, c, nx, xr) for c in cw]
            py = [[at(yty, y, c, ny, builder.add(yr, i)) for c in cw] for i in iq]
            _wy_dots_body(builder, vec, first, pm, px, py, p, ncol, one, one, align)

        def over_rows(c0, ncol):
            _in_blocks(builder, rows, trows, lambda i0, nrow: tile(i0, nrow, c0, ncol))

        trows, tcols = _LANES_TILE
        _in_blocks(builder, k, tcols, over_rows)
        return context.get_dummy_value()

    return sig, codegen


@jit
def lanes_product(M, X, xr0, Y, yr0, accumulate):
    """LANES matrices times LANES interleaved blocks, lane by lane, into rows of
    interleaved blocks: ``Y[c, yr0 + i, l] = [Y[c, yr0 + i, l] +] sum_j M[i, j, l]
    X[c, xr0 + j, l]`` for each lane-column c.

    :func:`shared_product` where each sequence of the group has a matrix of its own, a
    Jacobian block formed in the lanes layout (:func:`gated_lanes`): each operation is
    one vector across the group; a tile of Y stays in registers and the tile's
    lane-columns of X in L1 while the rows of M stream past.  ``M`` (m, p, LANES),
    ``X`` and ``Y`` (k, ., LANES) are C-contiguous; ``Y`` must not share the rows read
    from ``X``.
    """
    m, p = M.shape[0], M.shape[1]
    if (M.shape[2] != LANES or X.shape[2] != LANES or Y.shape[2] != LANES
            or X.shape[0] != Y.shape[0] or xr0 < 0 or yr0 < 0 or xr0 + p > X.shape[1]
            or yr0 + m > Y.shape[1]):
        raise ValueError("lanes_product: shapes do not match")
    _lanes_product(M, X, xr0, Y, yr0, accumulate)


@intrinsic
def _gated_lanes(typingctx, W, order, C, D, XT, i0):
    """``XT[i - i0, j] = sum_g C[g, i] W[order[g] N + i, j] (+ D[i] if i = j)`` for the
    rows i = i0 .. i0 + XT.shape[0] - 1, lane by lane, W (G N, N) broadcast.  Shapes
    are the caller's to check."""
    if not (_c_array(W, 2) and _c_array(C, 3) and _c_array(D, 2) and _c_array(XT, 3)
            and W.dtype == C.dtype == D.dtype == XT.dtype
            and isinstance(order, types.UniTuple) and isinstance(order.dtype, types.Integer)):
        return None
    sig = types.void(W, order, C, D, XT, i0)
    ng = order.count

    def codegen(context, builder, signature, args):
        w, order_, cf, dg, xt, first = args
        wty, oty, cty, dty, xty, fty = signature.args
        vec, align, (first,), _ = _lane_setup(context, builder, wty.dtype, [(first, fty)], [])
        N = _dim(context, builder, wty, w, 1)
        ity = N.type
        zero, one = ir.Constant(ity, 0), ir.Constant(ity, 1)
        lanes = ir.Constant(ity, LANES)
        wdata = context.make_array(wty)(context, builder, w).data
        blocks = [context.cast(builder, builder.extract_value(order_, g), oty.dtype, types.intp)
                  for g in range(ng)]
        with cgutils.for_range_slice(builder, zero, _dim(context, builder, xty, xt, 0),
                                     one) as (q, _):
            i = builder.add(first, q)
            coefs = [builder.load(_vectors(context, builder, cty, cf, builder.mul(
                builder.add(builder.mul(ir.Constant(ity, g), N), i), lanes), vec), align=align)
                for g in range(ng)]
            rows = [builder.gep(wdata, [builder.mul(builder.add(builder.mul(b, N), i), N)])
                    for b in blocks]
            px = _vectors(context, builder, xty, xt, builder.mul(builder.mul(q, N), lanes), vec)
            with cgutils.for_range_slice(builder, zero, N, one) as (j, _):
                v = None
                for c, row in zip(coefs, rows):
                    # not fused, in the cells' order: the entries of their formed blocks
                    t = builder.fmul(c, _splat(builder, vec, builder.load(builder.gep(row, [j]))))
                    v = t if v is None else builder.fadd(v, t)
                builder.store(v, builder.gep(px, [j]), align=align)
            pii = builder.gep(px, [i])
            d = builder.load(_vectors(context, builder, dty, dg, builder.mul(i, lanes), vec),
                             align=align)
            builder.store(builder.fadd(builder.load(pii, align=align), d), pii, align=align)
        return context.get_dummy_value()

    return sig, codegen


@jit
def gated_lanes(W, order, C, D, XT, i0):
    """A gated cell's Jacobian block for a group's sequences, straight into the lanes
    layout: ``XT[i - i0, j, l] = sum_g C[g, i, l] W_g[i, j] + [i = j] D[i, l]`` with
    ``W_g = W[order[g] N : (order[g] + 1) N]`` (a tuple of G block indices), each entry
    rounded as the cell's formed block's (products, then sums in the order of
    ``order``), for the block's rows i0 .. i0 + XT.shape[0] - 1.  XT (N, N, LANES)
    with i0 = 0 holds J^T of each lane as a block, as :func:`apply_held` takes it.

    Formed sequence by sequence and then interleaved, the blocks cost 6-9 % of a GRU
    group's step at k = n = 128; here the weights are read once for the group and each
    entry is one vector operation across its sequences.
    """
    N = W.shape[1]
    G = len(order)
    blocks = True
    for g in order:
        blocks = blocks and 0 <= g and (g + 1) * N <= W.shape[0]
    if (not blocks or C.shape != (G, N, LANES) or D.shape != (N, LANES)
            or XT.shape[1:] != (N, LANES) or i0 < 0 or i0 + XT.shape[0] > N):
        raise ValueError("gated_lanes: shapes do not match")
    _gated_lanes(W, order, C, D, XT, i0)


# one step of the perfect shuffle: applied three times to 8 vectors (i, i + 4 paired),
# it transposes them
_SHUFFLE_LO = [0, 8, 1, 9, 2, 10, 3, 11]
_SHUFFLE_HI = [4, 12, 5, 13, 6, 14, 7, 15]


@intrinsic
def _transpose8(typingctx, S, i0, i1, i2, D, j0, j1, j2):
    """``D[j0 + w, j1, j2 + v] = S[i0 + v, i1, i2 + w]`` for v, w < 8: an 8 x 8 block
    transposed in vector registers (S and D C-contiguous and 3-d, the same dtype).

    Interleaving blocks into lanes, and back, is such a transpose; element by element
    it moved one value per 1.5-2 cycles and took 70 % of the QR's own time at n = 128,
    k = 16 (float32).  Shapes are the caller's to check.
    """
    if not (_c_array(S, 3) and _c_array(D, 3) and S.dtype == D.dtype and LANES == 8):
        return None
    sig = types.void(S, i0, i1, i2, D, j0, j1, j2)

    def codegen(context, builder, signature, args):
        sarr, a0, a1, a2, darr, b0, b1, b2 = args
        sty, dty = signature.args[0], signature.args[4]
        tys = signature.args
        vec, align, (a0, a1, a2, b0, b1, b2), _ = _lane_setup(
            context, builder, sty.dtype,
            [(a0, tys[1]), (a1, tys[2]), (a2, tys[3]), (b0, tys[5]), (b1, tys[6]),
             (b2, tys[7])], [])
        ity = a0.type

        def at(arty, arr, x0, x1, x2):
            d1 = _dim(context, builder, arty, arr, 1)
            d2 = _dim(context, builder, arty, arr, 2)
            off = builder.add(builder.mul(builder.add(builder.mul(x0, d1), x1), d2), x2)
            return _vectors(context, builder, arty, arr, off, vec)

        rows = [builder.load(at(sty, sarr, builder.add(a0, ir.Constant(ity, v)), a1, a2),
                             align=align) for v in range(8)]
        i32 = ir.IntType(32)
        lo = ir.Constant(ir.VectorType(i32, 8), _SHUFFLE_LO)
        hi = ir.Constant(ir.VectorType(i32, 8), _SHUFFLE_HI)
        for _ in range(3):
            rows = [x for i in range(4)
                    for x in (builder.shuffle_vector(rows[i], rows[i + 4], lo),
                              builder.shuffle_vector(rows[i], rows[i + 4], hi))]
        for w in range(8):
            builder.store(rows[w], at(dty, darr, builder.add(b0, ir.Constant(ity, w)), b1, b2),
                          align=align)
        return context.get_dummy_value()

    return sig, codegen


@jit
def _wy_panel(A, p0, tau, V, G, D, gram, backwards, X, c0, nc):
    # the PANEL reflectors of A from p0 applied to lane-columns c0 .. c0 + nc - 1 of X
    # (A itself in the QR, the columns after the panel).  The one compiled function of
    # the compact-WY path, its parts inlined: numba compiles every compiled callee
    # again into each caller's machine code, and as three functions, called with
    # literal flags (a compile per literal), the path added 8 s to the cold compile of
    # lanes_qr and 10 s to a GRU spectrum's
    _load_panel(A, p0, V, G, D, gram)
    _apply_panel(X, p0, c0, nc, tau, V, G, D, backwards)


# lane-layout arrays start at a multiple of this many bytes: a cache line, and the width
# of an AVX-512 register.  numba aligns its arrays to 32 bytes, so a 64-byte lane-vector
# of float64 straddled two cache lines or not by chance, and a group's QR ran 1.3-1.6x
# slower at n = 64-128 when it did (benchmarks/RESULTS.md, "AVX-512")
ALIGN_BYTES = 64


@jit(inline="always")
def lane_empty(shape, dtype):
    """``np.empty(shape, dtype)``, C-contiguous, its first element on an
    ``ALIGN_BYTES`` boundary."""
    size = 1
    for s in shape:
        size *= s
    # room to skip up to ALIGN_BYTES - 1 bytes of the smallest item used (float32)
    buf = np.empty(size + ALIGN_BYTES // 4, dtype=dtype)
    skip = (-buf.ctypes.data % ALIGN_BYTES) // buf.itemsize
    return buf[skip:skip + size].reshape(shape)


@jit(inline="always")
def make_lanes(n, k, dtype_like):
    """Workspace of :func:`lanes_qr` for n x k blocks: ``(A, logs, tau, ss, wy)``."""
    # inlined into its callers: a compiled level of its own cost more cold compile than
    # its few allocations (lenum.cpu._workspace)
    dt = dtype_like.dtype
    A = lane_empty((k, n, LANES), dt)
    logs = lane_empty((k, LANES), np.float64)
    tau = lane_empty((k, LANES), dt)
    ss = lane_empty((2, LANES), np.float64)  # squared norms; the non-finite flags
    # the compact-WY path's: reflectors copied out, dot products, Gram matrices (kept
    # per panel from the factorisation for the forming of Q), empty where it is not
    # taken; made here, once per window, not in every QR (at n = 8 four allocations
    # were 3.5 % of a group's QR)
    wy = _wy_pays(n, k)
    V = lane_empty((wy_rows(n) if wy else 0, PANEL, LANES), dt)
    D = lane_empty((PANEL, k if wy else 0, LANES), dt)
    Gs = lane_empty((k // PANEL if wy else 0, PANEL, PANEL, LANES), dt)
    G = lane_empty((PANEL, PANEL, LANES), dt)
    return A, logs, tau, ss, (V, D, Gs, G)


@jit(inline="always")
def make_held(n, dtype_like):
    """Workspace of a group that holds n x n bases as reflectors: ``(XT, signs, V, D,
    G)``, the block :func:`apply_held` works on (n, n, LANES), the signs of R's
    diagonal for :func:`lanes_factor` and :func:`form_held` (n, LANES), and
    :func:`apply_held`'s scratch ``V``, ``D``, ``G``."""
    dt = dtype_like.dtype
    return (lane_empty((n, n, LANES), dt), lane_empty((n, LANES), dt),
            lane_empty((wy_rows(n), PANEL, LANES), dt), lane_empty((PANEL, n, LANES), dt),
            lane_empty((PANEL, PANEL, LANES), dt))


@jit(inline="always")
def wy_rows(n):
    """Rows of the compact-WY path's copy ``V`` of a panel's reflectors for blocks of n
    rows: n rounded up to even, for the float32 layout of row pairs (:func:`_v_index`)."""
    return n + (n & 1)


@jit(inline="always")
def _wy_pays(n, k):
    return n >= WY_MIN_ROWS and k - PANEL >= WY_MIN_COLS


@jit(inline="always")
def _as_block(use_wy, p0, p1, k):
    # whether the panel p0 .. p1 - 1 is applied as one block: one rule for the
    # factorisation and the forming of Q, which reuses the former's Gram matrices
    return use_wy and p1 - p0 == PANEL and k - p1 >= WY_MIN_COLS


@jit
def _scaled_norm(A, i, ln):
    """(norm of rows i.. of lane-column (i, l), largest |entry| below row i), from the
    largest entry so that nothing under- or overflows; NaN for a NaN or Inf."""
    n = A.shape[1]
    m = abs(A[i, i, ln])
    below = 0.0
    check = 0.0
    for r in range(i + 1, n):
        a = abs(A[i, r, ln])
        check += a * 0.0  # NaN for NaN and Inf
        if a > below:
            below = a
    if check != 0.0 or not np.isfinite(m):
        return np.nan, 0.0
    m = max(m, below)
    if m == 0.0:
        return 0.0, 0.0
    s = 0.0
    for r in range(i, n):
        t = A[i, r, ln] / m
        s += t * t
    return m * np.sqrt(s), below


@jit
def _qr_parts(A, logs, tau, ss, wy, signs, factor, form, cols):
    """:func:`lanes_qr` (``factor`` and ``form``; ``signs`` is ``tau``),
    :func:`lanes_factor` (``factor``) or :func:`form_held` (``form``).

    Both take A's lane-columns in chunks of ``cols`` (a multiple of PANEL;
    :func:`chunk_columns`), left-looking, so that a chunk stays in cache while it
    receives every panel: the factorisation applies the panels before a chunk to it,
    then factorises the chunk's own; Q is formed from the last chunk, its own panels
    first, then those before it.  Every column receives the same panels in the same
    order whatever ``cols`` is: the same bits.

    One compiled function, its parts written out rather than inlined helpers: a
    kernel links the QR's code once whether it holds bases or forms them, and numba's
    inlining of the parts cost 1.7 s of cold compile."""
    k, n = A.shape[0], A.shape[1]
    V, D, Gs, G = wy
    use_wy = _wy_pays(n, k)
    if (A.shape[2] != LANES or logs.shape != (k, LANES) or tau.shape != (k, LANES)
            or signs.shape != (k, LANES) or ss.shape != (2, LANES) or k > n
            or G.shape != (PANEL, PANEL, LANES) or cols < PANEL or cols % PANEL != 0
            or (use_wy and (V.shape != (wy_rows(n), PANEL, LANES)
                            or D.shape != (PANEL, k, LANES) or Gs.shape[0] != k // PANEL))):
        # the vector code reads LANES values per row: a wrong shape would read past
        # the arrays, so it is refused here (a caller's bug, not a user's input)
        raise ValueError("lanes_qr: arrays must be shaped as make_lanes(n, k) makes them")
    # flags as values, not literals: numba compiles a callee once per literal
    no, yes = np.bool_(False), np.bool_(True)
    bad = ss[1]
    if factor:
        # Householder QR in place, LAPACK's geqrf layout: reflector i in lane-column i
        # below the diagonal (its scale on the diagonal), tau, R's diagonal in logs as
        # values; the panels' Gram matrices kept in Gs where they are applied as blocks
        for ln in range(LANES):
            bad[ln] = 0.0
        for c0 in range(0, k, cols):
            c1 = min(c0 + cols, k)
            for p0 in range(0, c1, PANEL):
                p1 = min(p0 + PANEL, k)
                # the chunk's own panels are factorised; those before it were, with
                # an earlier chunk, and are only applied to this one below
                own = p0 >= c0
                for i in range(p0 if own else p1, p1):
                    _sum_squares(A, (i * n + i + 1) * LANES, n - i - 1, ss[0])
                    for ln in range(LANES):
                        # float32 squares would underflow at 1e-23
                        alpha = np.float64(A[i, i, ln])
                        below = ss[0, ln]
                        s = below + alpha * alpha
                        if _TINY <= s <= _HUGE:
                            norm = np.sqrt(s)
                        else:
                            norm, below = _scaled_norm(A, i, ln)
                            if not np.isfinite(norm):
                                bad[ln] = 1.0
                                below = 0.0
                        if below == 0.0:
                            # nothing below the diagonal: the identity reflector, R_ii = alpha
                            tau[i, ln] = 0.0
                            logs[i, ln] = alpha
                            A[i, i, ln] = 0.0  # the reflector's scale, applied below
                            continue
                        beta = -norm if alpha >= 0 else norm
                        tau[i, ln] = (beta - alpha) / beta
                        logs[i, ln] = beta
                        A[i, i, ln] = 1.0 / (alpha - beta)
                    _scale_lanes(A, (i * n + i + 1) * LANES, n - i - 1, A, (i * n + i) * LANES,
                                 1.0)
                    # within the panel, column by column
                    _reflect_block(A, i, 1, 1, i + 1, p1 - i - 1, tau)
                # the panel's reflectors on the chunk's columns after it, each column
                # once (none after the chunk's last panel: its Gram matrix is still
                # made, for the chunks after, which reuse it)
                j0 = p1 if own else c0
                if _as_block(use_wy, p0, p1, k):
                    _wy_panel(A, p0, tau, V, Gs[p0 // PANEL], D, own, no, A, j0, c1 - j0)
                else:
                    _reflect_block(A, p0, 1, p1 - p0, j0, c1 - j0, tau)
    if form:
        # Q = H_0 ... H_{k-1} [I; 0], formed in place backwards (LAPACK's org2r), panel
        # by panel: the panel's reflectors go to the columns after it before the
        # panel's own columns, which hold them, are overwritten.  In chunks of columns
        # from the last: the chunk's own panels, then those before it (not yet formed)
        for c1 in range(k, 0, -cols):
            c0 = max(c1 - cols, 0)
            for p1 in range(c1, 0, -PANEL):
                p0 = max(p1 - PANEL, 0)
                own = p1 > c0
                j0 = p1 if own else c0
                if c1 > j0:
                    if _as_block(use_wy, p0, p1, k):
                        # these are the factorisation's panels, Gram matrices and all,
                        # when PANEL divides k
                        g = Gs[p0 // PANEL] if k % PANEL == 0 else G
                        _wy_panel(A, p0, tau, V, g, D, k % PANEL != 0, yes, A, j0, c1 - j0)
                    else:
                        _reflect_block(A, p1 - 1, -1, p1 - p0, j0, c1 - j0, tau)
                for i in range(p1 - 1 if own else p0 - 1, p0 - 1, -1):
                    _reflect_block(A, i, 1, 1, i + 1, p1 - i - 1, tau)
                    _scale_lanes(A, (i * n + i + 1) * LANES, n - i - 1, tau, i * LANES, -1.0)
                    for ln in range(LANES):
                        A[i, i, ln] = 1.0 - tau[i, ln]
                    for r in range(i):
                        for ln in range(LANES):
                            A[i, r, ln] = 0.0
    if factor:
        # R's diagonal -> its signs, and log|R_ii| (NaN throughout a lane that held a
        # NaN or Inf); into tau when Q is formed, which has spent it
        for i in range(k):
            for ln in range(LANES):
                d = logs[i, ln]
                signs[i, ln] = -1.0 if d < 0 else 1.0
                logs[i, ln] = np.nan if bad[ln] != 0.0 else np.log(abs(d))
    if form:
        # column i times the sign of R_ii: diag(R) >= 0, which makes Q unique
        for i in range(k):
            _scale_lanes(A, i * n * LANES, n, signs, i * LANES, 1.0)


@jit(inline="always")
def lanes_qr(A, logs, tau, ss, wy):
    """QR of LANES interleaved blocks: ``A`` (k, n, LANES) in, their Q factors out.

    Parameters
    ----------
    A : ndarray (k, n, LANES), C-contiguous, float32 or float64
        ``A[c, r, l]`` is element (r, c) of block l; overwritten by the Q factors, in
        the same layout, with diag(R) >= 0.
    logs : ndarray (k, LANES), float64
        Receives ``log|R_cc|`` of each block (-inf for a zero column, NaN for a block
        that holds a NaN or Inf).
    tau, ss, wy : ndarray (k, LANES) of A's dtype, ndarray (2, LANES) float64, tuple
        Workspace (:func:`make_lanes`).
    """
    _qr_parts(A, logs, tau, ss, wy, tau, np.bool_(True), np.bool_(True),
              chunk_columns(A.shape[1], A.shape[0], A))


@jit(inline="always")
def lanes_factor(A, logs, signs, tau, ss, wy):
    """:func:`lanes_qr` without forming Q: the bases stay held as reflectors in ``A``
    (with ``tau`` and ``wy``'s Gram matrices), for :func:`apply_held` and
    :func:`form_held`; ``signs`` (k, LANES) receives the signs of R's diagonal."""
    _qr_parts(A, logs, tau, ss, wy, signs, np.bool_(True), np.bool_(False),
              chunk_columns(A.shape[1], A.shape[0], A))


@jit(inline="always")
def form_held(A, logs, signs, tau, ss, wy):
    """The Q factors, diag(R) >= 0, of the reflectors :func:`lanes_factor` left in ``A``
    (with ``signs``, ``tau`` and ``wy``), in place: what :func:`lanes_qr` would have
    returned.  ``logs`` and ``ss`` are not touched."""
    _qr_parts(A, logs, tau, ss, wy, signs, np.bool_(False), np.bool_(True),
              chunk_columns(A.shape[1], A.shape[0], A))


@jit(inline="always")
def chunk_columns(n, k, dtype_like):
    """How many lane-columns of a (k, n, LANES) array the factorisation
    (:func:`lanes_qr`, :func:`lanes_factor`) and :func:`apply_held` take at a time: a
    multiple of PANEL that fills :data:`COLUMN_CHUNK_BYTES`, at least PANEL, or all k
    (rounded up to a multiple of PANEL)."""
    whole = max(PANEL, k + (-k) % PANEL)
    if COLUMN_CHUNK_BYTES == 0:
        return whole
    c = COLUMN_CHUNK_BYTES // (max(n, 1) * LANES * dtype_like.itemsize)
    return min(whole, max(PANEL, c - c % PANEL))


@jit(inline="always")
def apply_held(H, tau, Gs, X, V, D, G, cols):
    """``X <- Q^T X`` for the Q factors held in ``H`` by :func:`lanes_factor` (n x n
    blocks), lane by lane, ``X`` (n, n, LANES) in the same layout.

    For a product ``M Q`` hold ``M^T`` in ``X``, that is ``M``'s rows as its
    lane-columns (:func:`transpose_lanes` turns the result back).  Panels are applied
    as blocks, with the factorisation's Gram matrices ``Gs`` where it made them, else
    with ``G`` computed here; ``V`` (wy_rows(n), PANEL, LANES), ``D`` (PANEL, n,
    LANES) and ``G`` (PANEL, PANEL, LANES) are scratch (:func:`make_held`).  A last
    partial panel (fewer than PANEL reflectors, on as many rows) goes one reflector at
    a time.  X's lane-columns are taken ``cols`` at a time (:func:`chunk_columns`),
    each chunk receiving every panel while it stays in cache; each column receives
    the same operations whatever ``cols`` is, so the result does not depend on it.
    """
    k, n = H.shape[0], H.shape[1]
    use_wy = _wy_pays(n, k)
    if (k != n or H.shape[2] != LANES or X.shape != H.shape or tau.shape != (k, LANES)
            or V.shape != (wy_rows(n), PANEL, LANES) or D.shape != (PANEL, n, LANES)
            or G.shape != (PANEL, PANEL, LANES) or (use_wy and Gs.shape[0] != k // PANEL)
            or cols < 1):
        raise ValueError("apply_held: shapes do not match")
    no, yes = np.bool_(False), np.bool_(True)
    full = k - k % PANEL
    for c0 in range(0, n, cols):
        nc = min(cols, n - c0)
        for p0 in range(0, full, PANEL):
            if _as_block(use_wy, p0, p0 + PANEL, k):
                _wy_panel(H, p0, tau, V, Gs[p0 // PANEL], D, no, no, X, c0, nc)
            else:
                _wy_panel(H, p0, tau, V, G, D, yes, no, X, c0, nc)
    s = np.empty(LANES, dtype=X.dtype)
    for i in range(full, k):
        # reflector i is (1, H[i, i + 1:]) on rows i..: X <- (I - tau v v^T) X
        for c in range(n):
            for ln in range(LANES):
                s[ln] = X[c, i, ln]
            for r in range(i + 1, n):
                for ln in range(LANES):
                    s[ln] += H[i, r, ln] * X[c, r, ln]
            for ln in range(LANES):
                s[ln] *= tau[i, ln]
                X[c, i, ln] -= s[ln]
            for r in range(i + 1, n):
                for ln in range(LANES):
                    X[c, r, ln] -= s[ln] * H[i, r, ln]


@jit
def transpose_lanes(X, Y):
    """``Y[c, r, l] = X[r, c, l]``: each lane's n x n block transposed, in tiles of 8 x 8
    lane-vectors so that both sides stay in cache."""
    n = X.shape[0]
    if X.shape != (n, n, LANES) or Y.shape != X.shape:
        raise ValueError("transpose_lanes: shapes do not match")
    for c0 in range(0, n, 8):
        for r0 in range(0, n, 8):
            for c in range(c0, min(c0 + 8, n)):
                for r in range(r0, min(r0 + 8, n)):
                    for ln in range(LANES):
                        Y[c, r, ln] = X[r, c, ln]


@jit(inline="always")
def _transposes_pay(X, k):
    # A/B against element-by-element copies (gather and scatter of 8 blocks):
    # float32 1.5-2.9x at every size measured (n = 32-256, k = 16-256); float64
    # 1.1-1.4x up to 32 columns, 0.97-1.16x at 64-128, 0.5x at 256 (8 x 8 float64
    # blocks are 8 cache lines at large strides on both sides)
    return X.itemsize == 4 or k <= 32


@jit
def gather(Z, m, A):
    """Interleave blocks ``Z[:m]`` (m, n, k) into ``A`` (k, n, LANES); the lanes past ``m``
    get copies of block 0, so that they hold finite, harmless work."""
    n, k = Z.shape[1], Z.shape[2]
    if m == LANES and _transposes_pay(Z, k):  # columns 8 at a time, in registers
        k8 = k - k % 8
        for c0 in range(0, k8, 8):
            for r in range(n):  # 16 streams, each read or written in order
                _transpose8(Z, 0, r, c0, A, c0, r, 0)
        for r in range(n):
            for c in range(k8, k):
                for ln in range(LANES):
                    A[c, r, ln] = Z[ln, r, c]
        return
    for r in range(n):
        for c in range(k):
            for ln in range(LANES):
                A[c, r, ln] = Z[ln if ln < m else 0, r, c]


@jit
def scatter(A, m, Q, b0):
    """Write lanes ``0..m-1`` of ``A`` (k, n, LANES) into ``Q[b0 + l]`` (n, k)."""
    k, n = A.shape[0], A.shape[1]
    # lanes innermost: each cache line of A (one element of all lanes) is read once; a
    # loop per lane outside re-read every line LANES times (scatter cost 2-4x gather's)
    if m == LANES and _transposes_pay(A, k):  # 8 columns at a time (see gather)
        k8 = k - k % 8
        for c0 in range(0, k8, 8):
            for r in range(n):
                _transpose8(A, c0, r, 0, Q, b0, r, c0)
        for r in range(n):
            for c in range(k8, k):
                for ln in range(LANES):
                    Q[b0 + ln, r, c] = A[c, r, ln]
        return
    # kept apart from the branch above: the same loop from a run-time first column
    # (k8 = 0) ran 0.84x at n = 100, k = 37 in float64
    if m == LANES:  # a constant trip count, which the compiler unrolls
        for r in range(n):
            for c in range(k):
                for ln in range(LANES):
                    Q[b0 + ln, r, c] = A[c, r, ln]
        return
    for r in range(n):
        for c in range(k):
            for ln in range(m):
                Q[b0 + ln, r, c] = A[c, r, ln]
