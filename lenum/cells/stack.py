"""One step of a stack of layers: the new state and the tangent J_t @ Q.

The state vector holds layer 0 first and, within an LSTM layer, h before c.  Layer
l > 0 reads the *new* h of layer l-1, so the Jacobian is block lower-triangular and the
tangent of layer l is  Z_l = A_l Q_l + B_l Z_{l-1}[h],  computed layer by layer (the
cross-layer chain of SPEC section 1).

With ``identity`` the steps put J_t itself in Z (Q is not read), writing each
layer's own rows of J where the tangent would multiply them by Q = I: that is
``lenum.jacobian``, and the engine applies a basis it keeps as reflectors to that J_t
(:func:`lenum.qr.factor_step`, k = n).
"""

import numpy as np

from .._jit import jit
from ..lanes import LANES, gated_lanes, lane_empty, lanes_product, scale_add, shared_product
from ..thin import gated_dot, gated_pack, gated_pays, gated_rows, lstm_gated_dot, thin_dot
from .activations import sigmoid_and_slope, tanh_and_slope
from .gru import gru_coefficients, gru_layer
from .gru_reset_before import gru_reset_before_layer
from .lstm import lstm_coefficients, lstm_layer
from .rnn import rnn_layer

RNN_TANH, RNN_RELU, LSTM, GRU, GRU_RB = 0, 1, 2, 3, 4


@jit
def make_workspace(code, w_ih0, w_hh, k, dtype_like):
    """Per-sequence scratch arrays for the stack steps (:func:`vanilla_stack_step`...)."""
    L, N = w_hh.shape[0], w_hh.shape[2]
    S = 2 * N if code == LSTM else N
    # the vanilla cells never form J's blocks (their tangent is D (W Q)): no M, Bin
    rows = 0 if code == RNN_TANH or code == RNN_RELU else S
    if (code == GRU or code == LSTM) and gated_pays(N, k, dtype_like):
        # below the block, each layer's W_hh packed for the gated products (_gru_layer,
        # _lstm_layer)
        G = w_hh.shape[1] // N
        M = lane_empty((S + G * N * L, N), dtype_like.dtype)
        for layer in range(L):
            gated_pack(w_hh[layer], _GRU_PACK if code == GRU else _LSTM_PACK,
                       _packed(M, layer, S, G))
    else:
        M = np.empty((rows, N), dtype=dtype_like.dtype)
    Bin = np.empty((rows, N), dtype=dtype_like.dtype)  # only layers > 0 (input N) use it
    diag = np.empty((2, N), dtype=dtype_like.dtype)
    tmp = np.empty((S, k), dtype=dtype_like.dtype)
    # the affine parts (cells.affine) and, for the gated cells, per-unit coefficients
    gates = np.empty((4, w_hh.shape[1]), dtype=dtype_like.dtype)
    return M, Bin, diag, tmp, gates


# the W_hh blocks in the order of the gated products' sums and of the cells'
# coefficients (gru_coefficients: z, r, n; lstm_coefficients: i, f, g, then o)
GRU_GATES = (1, 0, 2)
LSTM_GATES = (0, 1, 2, 3)
_IFG = LSTM_GATES[:3]  # dc'/dh's gates, as lstm_group_step's ci, cf, cg (D[l, :3])
_GRU_PACK, _LSTM_PACK = np.array(GRU_GATES), np.array(LSTM_GATES)


@jit(inline="always")
def _packed(M, layer, S, G):
    # layer's packed W_hh (G gates) below the first S rows of M (make_workspace)
    N = M.shape[1]
    V = gated_rows(M)
    r0 = S + G * N * layer
    return M[r0:r0 + G * N].reshape((N // V, N, G, V))


@jit
def make_products(w_hh, shared, dtype_like):
    """The stack steps' ``pre``: room for the products of a group of LANES sequences
    (:func:`lenum.cpu.shared_products`), (L, 2, G N, LANES), or none (G N = 0) for
    kernels that step one sequence at a time (``ln = -1``)."""
    rows = w_hh.shape[1] if shared else 0
    return lane_empty((w_hh.shape[0], 2, rows, LANES), dtype_like.dtype)


@jit(inline="always")
def _rows_of_j(E, Z, r0, S):
    # rows r0 .. r0 + S of Z: the layer's own block E of J in its columns (from r0),
    # zeros elsewhere (identity steps: E times the identity, without the product)
    Zl = Z[r0:r0 + S]
    for i in range(S):
        for j in range(Z.shape[1]):
            Zl[i, j] = 0.0
        for j in range(E.shape[1]):
            Zl[i, r0 + j] = E[i, j]
    return Zl


@jit(inline="always")
def _vanilla_layer(code, layer, w_ih, w_hh, b_ih, b_hh, inp, s, s_new, r0, Q, Z, M, Bin, diag,
                   tmp, gates, tangent, identity, pre, ln_in, ln_h):
    N = w_hh.shape[1]
    rnn_layer(code == RNN_RELU, w_ih, w_hh, b_ih, b_hh, inp, s[r0:r0 + N], s_new[r0:r0 + N],
              diag[0], tangent, gates, pre, ln_in, ln_h)
    if not tangent:
        return
    # Z = D (W_hh Q + W_ih Z_below): the same flops as forming D W and multiplying,
    # without the N x N pass; 10-27 % faster for k << N
    Zl = Z[r0:r0 + N]
    if identity:
        _rows_of_j(w_hh, Z, r0, N)
    else:
        thin_dot(w_hh, Q[r0:r0 + N], Zl)
    if layer > 0:
        thin_dot(w_ih, Z[r0 - N:r0], tmp)
        Zl += tmp
    for i in range(N):
        d = diag[0, i]
        for j in range(Q.shape[1]):
            Zl[i, j] *= d


@jit(inline="always")
def _chain_below(layer, Bin, Z, r0, S, N, tmp):
    # the cross-layer chain: a layer's input is the new h of the layer below
    if layer > 0:
        thin_dot(Bin, Z[r0 - S:r0 - S + N], tmp)
        Zl = Z[r0:r0 + S]  # not Z[...] += tmp: see lenum.cpu.copy_block
        Zl += tmp


@jit(inline="always")
def _dense_tangent(tangent, identity, layer, M, Bin, Q, Z, r0, N, tmp):
    # a GRU layer's tangent: its dense Jacobian block M times its rows of Q
    if tangent:
        if identity:
            _rows_of_j(M, Z, r0, N)
        else:
            thin_dot(M[:N], Q[r0:r0 + N], Z[r0:r0 + N])
        _chain_below(layer, Bin, Z, r0, N, N, tmp)


@jit(inline="always")
def _lstm_layer(code, layer, w_ih, w_hh, b_ih, b_hh, inp, s, s_new, r0, Q, Z, M, Bin, diag,
                tmp, gates, tangent, identity, pre, ln_in, ln_h):
    N = w_hh.shape[1]
    S = 2 * N
    # the tangent without forming J's block, where make_workspace packed W_hh for it
    gated = tangent and not identity and M.shape[0] > S
    lstm_layer(w_ih, w_hh, b_ih, b_hh, inp, s[r0:r0 + N], s[r0 + N:r0 + S], s_new[r0:r0 + N],
               s_new[r0 + N:r0 + S], M, diag, Bin, tangent and not gated, tangent and layer > 0,
               gates, pre, ln_in, ln_h)
    if not tangent:
        return
    if identity:
        # the c columns of the layer's rows of J are diagonal
        Zl = _rows_of_j(M, Z, r0, S)
        for i in range(N):
            Zl[i, r0 + N + i] = diag[0, i]
            Zl[N + i, r0 + N + i] = diag[1, i]
    else:
        Zl = Z[r0:r0 + S]
        if gated:
            C, D = lstm_coefficients(gates, N)
            lstm_gated_dot(_packed(M, layer, S, 4), C, D, Q[r0:r0 + N], Zl)
        else:
            thin_dot(M[:S], Q[r0:r0 + N], Zl)
        Qc = Q[r0 + N:r0 + S]
        for i in range(N):
            dh, dc = diag[0, i], diag[1, i]
            for j in range(Q.shape[1]):
                Zl[i, j] += dh * Qc[i, j]
                Zl[N + i, j] += dc * Qc[i, j]
    _chain_below(layer, Bin, Z, r0, S, N, tmp)


@jit(inline="always")
def _gru_layer(code, layer, w_ih, w_hh, b_ih, b_hh, inp, s, s_new, r0, Q, Z, M, Bin, diag,
               tmp, gates, tangent, identity, pre, ln_in, ln_h):
    N = w_hh.shape[1]
    # the tangent without forming J's block, where make_workspace packed W_hh for it
    gated = tangent and not identity and M.shape[0] > N
    gru_layer(w_ih, w_hh, b_ih, b_hh, inp, s[r0:r0 + N], s_new[r0:r0 + N], M, Bin,
              tangent and not gated, tangent and layer > 0, gates, pre, ln_in, ln_h)
    if gated:
        C, D = gru_coefficients(gates, N)
        gated_dot(_packed(M, layer, N, 3), C, D, Q[r0:r0 + N], Z[r0:r0 + N])
        _chain_below(layer, Bin, Z, r0, N, N, tmp)
    else:
        _dense_tangent(tangent, identity, layer, M, Bin, Q, Z, r0, N, tmp)


@jit(inline="always")
def _gru_rb_layer(code, layer, w_ih, w_hh, b_ih, b_hh, inp, s, s_new, r0, Q, Z, M, Bin, diag,
                  tmp, gates, tangent, identity, pre, ln_in, ln_h):
    N = w_hh.shape[1]
    gru_reset_before_layer(w_ih, w_hh, b_ih, b_hh, inp, s[r0:r0 + N], s_new[r0:r0 + N], M,
                           Bin, tangent, tangent and layer > 0)
    _dense_tangent(tangent, identity, layer, M, Bin, Q, Z, r0, N, tmp)


@jit(inline="always")
def _layers(layer_step, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, x, s, s_new, Q, Z, M, Bin, diag,
            tmp, gates, tangent, identity, pre, ln):
    L = w_hh.shape[0]
    N = w_hh.shape[2]
    S = s.shape[0] // L
    for layer in range(L):
        r0 = layer * S
        if layer == 0:
            inp = x
            w_ih = w_ih0
        else:
            inp = s_new[r0 - S:r0 - S + N]
            w_ih = w_ihr[layer - 1]
        # products for a group (pre, lane ln): W_hh h for every layer, W_ih x for the
        # first only (the others' inputs are this step's new states)
        layer_step(code, layer, w_ih, w_hh[layer], b_ih[layer], b_hh[layer], inp, s, s_new, r0,
                   Q, Z, M, Bin, diag, tmp, gates, tangent, identity, pre[layer],
                   ln if layer == 0 else -1, ln)


@jit
def vanilla_stack_step(code, w_ih0, w_ihr, w_hh, b_ih, b_hh, x, s, s_new, Q, Z, M, Bin, diag,
                       tmp, gates, tangent, identity, pre, ln):
    """Advance state ``s`` by one step into ``s_new``; with ``tangent``, Z = J_t @ Q:
    vanilla layers (rnn_tanh, rnn_relu).  With ``identity`` (k = n), Z = J_t.

    One function per cell family (:func:`lstm_stack_step`, :func:`gru_stack_step`,
    :func:`gru_rb_stack_step`), each the loop over layers of :func:`_layers` around its
    layer step, so that a kernel compiles the cell it runs, not all five (with every
    cell behind a run-time code, each kernel's cold compile took 5-17 s longer).  The
    layer steps are inlined: as compiled levels of their own they cost about 2 s of
    cold compile per family.  The stack steps are not, so that the window, step and
    CLV kernels of one family share one compiled step.

    ``pre`` (:func:`make_products`) and ``ln``: with ``ln >= 0``, the products W_hh h of
    every layer and W_ih x of the first are taken from lane ``ln`` of ``pre``, computed
    for a group of sequences at once; ``ln = -1`` computes them here.  The reset-before
    GRU computes its own always.
    """
    _layers(_vanilla_layer, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, x, s, s_new, Q, Z, M, Bin,
            diag, tmp, gates, tangent, identity, pre, ln)


@jit
def lstm_stack_step(code, w_ih0, w_ihr, w_hh, b_ih, b_hh, x, s, s_new, Q, Z, M, Bin, diag, tmp,
                    gates, tangent, identity, pre, ln):
    """:func:`vanilla_stack_step` for LSTM layers."""
    _layers(_lstm_layer, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, x, s, s_new, Q, Z, M, Bin, diag,
            tmp, gates, tangent, identity, pre, ln)


@jit
def gru_stack_step(code, w_ih0, w_ihr, w_hh, b_ih, b_hh, x, s, s_new, Q, Z, M, Bin, diag, tmp,
                   gates, tangent, identity, pre, ln):
    """:func:`vanilla_stack_step` for GRU layers (PyTorch's, reset after the product)."""
    _layers(_gru_layer, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, x, s, s_new, Q, Z, M, Bin, diag,
            tmp, gates, tangent, identity, pre, ln)


@jit
def gru_rb_stack_step(code, w_ih0, w_ihr, w_hh, b_ih, b_hh, x, s, s_new, Q, Z, M, Bin, diag,
                      tmp, gates, tangent, identity, pre, ln):
    """:func:`vanilla_stack_step` for reset-before GRU layers."""
    _layers(_gru_rb_layer, code, w_ih0, w_ihr, w_hh, b_ih, b_hh, x, s, s_new, Q, Z, M, Bin,
            diag, tmp, gates, tangent, identity, pre, ln)


#: each cell code's family, an index into every per-family tuple of kernels (in the
#: order of the stack steps above: vanilla, LSTM, GRU, reset-before GRU)
FAMILY = {RNN_TANH: 0, RNN_RELU: 0, LSTM: 1, GRU: 2, GRU_RB: 3}


@jit(inline="always")
def _flat(A):
    # a C-contiguous array as one vector, without a copy.  The group steps' elementwise
    # work runs over rows x lanes in one flat loop: a loop over the 8 lanes alone was
    # too short for LLVM's vector loop (it ran its scalar remainder), and a constant
    # count of 8 was unrolled before the vectoriser saw it
    return A.reshape(A.size)


@jit(inline="always")
def _add_biases(P, bi, bh, rows):
    # P[0, r, :] += b_ih[r] + b_hh[r], in the order of lenum.cells.affine
    for r in range(rows):
        for ln in range(P.shape[2]):
            P[0, r, ln] = P[0, r, ln] + bi[r] + bh[r]


@jit
def vanilla_group_step(code, w_ih0, w_ihr, w_hh, b_ih, b_hh, XA, HA, HN, P, QA, ZA, GW, D):
    """One step of a group of vanilla sequences, everything interleaved
    (:mod:`lenum.lanes` layout, sequence l in lane l): states ``HA`` -> ``HN`` and
    tangents ``ZA = J_t QA``.

    The sequences share W, so each product is one matrix times all lanes at once
    (:func:`lenum.lanes.shared_product`): the affine part W_ih x + W_hh h + b_ih + b_hh,
    in the order of :func:`lenum.cells.affine.affine`, and each layer's tangent
    Z_l = D_l (W_hh Q_l + W_ih Z_{l-1}).  ``XA`` (1, d, LANES) holds the inputs,
    ``HA``, ``HN`` (1, n, LANES) the states, ``QA``, ``ZA`` (k, n, LANES) the bases;
    ``D`` (L, 1, N, LANES) receives the slopes, ``P`` (1, N, LANES) is scratch; ``GW``
    is not used (the signature is that of every group step).
    """
    L = w_hh.shape[0]
    N = w_hh.shape[2]
    relu = code == RNN_RELU
    # offsets and flags as run-time values: constants would be typed as literals, and
    # each combination would compile its own copy of the product's vector code
    no, yes = np.bool_(False), np.bool_(True)
    top = np.intp(0)
    nl = HA.shape[2]
    HNf = _flat(HN)
    for layer in range(L):
        r0 = layer * N
        Dl = D[layer, 0]
        if layer == 0:
            shared_product(w_ih0, XA, top, P, top, Dl, no, no)
        else:
            shared_product(w_ihr[layer - 1], HN, r0 - N, P, top, Dl, no, no)
        shared_product(w_hh[layer], HA, r0, P, top, Dl, yes, no)
        _add_biases(P, b_ih[layer], b_hh[layer], N)
        # the activations over all units and lanes in one flat loop (see _flat)
        a = _flat(P)
        Dlf = _flat(Dl)
        h0 = r0 * nl
        if relu:
            for j in range(N * nl):
                # NaN (an overflowed state) must propagate, as in rnn_layer
                on = a[j] > 0 or a[j] != a[j]
                HNf[h0 + j] = a[j] if on else 0.0
                Dlf[j] = 1.0 if on else 0.0
        else:
            for j in range(N * nl):
                HNf[h0 + j], Dlf[j] = tanh_and_slope(a[j])
    for layer in range(L):
        r0 = layer * N
        if layer > 0:
            shared_product(w_ihr[layer - 1], ZA, r0 - N, ZA, r0, D[layer, 0], no, no)
        shared_product(w_hh[layer], QA, r0, ZA, r0, D[layer, 0], layer > 0, yes)


@jit
def lstm_group_step(code, w_ih0, w_ihr, w_hh, b_ih, b_hh, XA, HA, HN, P, QA, ZA, GW, D):
    """:func:`vanilla_group_step` for LSTM layers, the tangent through the gates.

    Per layer, with the coefficients of :mod:`lenum.cells.lstm` per unit and lane and
    G = W_ih Z_{l-1}[h] (4N rows; zero for layer 0),
        Z_c = M_c Q_h + cf G_f + ci G_i + cg G_g + f Q_c,
        Z_h = co (W_o Q_h + G_o) + oc Z_c,
    where M_c = ci W_i + cf W_f + cg W_g, the block dc'/dh, is formed for each lane in
    the lanes layout (:func:`lenum.lanes.gated_lanes`) a block of rows at a time
    (:data:`FORMED_BYTES`), each multiplied lane by lane while it stays in L2
    (:func:`lenum.lanes.lanes_product`), and W_o Q_h and G are products with weights
    all lanes share (:func:`lenum.lanes.shared_product`).  The flops of the
    per-sequence Jacobian, where taking all four gates through the shared product
    spent twice as many (benchmarks/RESULTS.md, "LSTM groups at many columns").
    ``P`` (1, 4N, LANES) is scratch, ``GW`` = (G (k, 4N, LANES), a block of M_c's rows
    (:func:`formed_rows`, N, LANES), zeros (N, LANES)); ``D`` (L, 6, N, LANES) receives
    ci, cf, cg, f, co, oc.
    """
    L = w_hh.shape[0]
    N = w_hh.shape[2]
    S = 2 * N
    no, yes = np.bool_(False), np.bool_(True)
    top = np.intp(0)
    nl = HA.shape[2]
    HAf, HNf = _flat(HA), _flat(HN)
    U = N * nl  # one gate's (or coefficient's) rows of all lanes, flat
    for layer in range(L):
        r0 = layer * S
        Dl = D[layer]
        if layer == 0:
            shared_product(w_ih0, XA, top, P, top, Dl[0], no, no)
        else:
            shared_product(w_ihr[layer - 1], HN, r0 - S, P, top, Dl[0], no, no)
        shared_product(w_hh[layer], HA, r0, P, top, Dl[0], yes, no)
        _add_biases(P, b_ih[layer], b_hh[layer], 4 * N)
        # the cell's arithmetic over all units and lanes in one flat loop (see _flat).
        # The new states go to P's first rows and are copied after: stored straight
        # into HN, next to the loads from HA, they kept LLVM from vectorising the loop
        # (2.5x slower)
        a = _flat(P)
        Dlf = _flat(Dl)
        h0, c0 = r0 * nl, (r0 + N) * nl
        for j in range(U):
            gi, si = sigmoid_and_slope(a[j])
            gf, sf = sigmoid_and_slope(a[U + j])
            gg, sg = tanh_and_slope(a[2 * U + j])
            go, so = sigmoid_and_slope(a[3 * U + j])
            c = HAf[c0 + j]
            cn = gf * c + gi * gg
            tc, stc = tanh_and_slope(cn)
            a[j] = cn
            a[U + j] = go * tc
            Dlf[j] = gg * si
            Dlf[U + j] = c * sf
            Dlf[2 * U + j] = gi * sg
            Dlf[3 * U + j] = gf
            Dlf[4 * U + j] = tc * so
            Dlf[5 * U + j] = go * stc
        for j in range(U):
            HNf[c0 + j] = a[j]
            HNf[h0 + j] = a[U + j]
    GA, MC, Z0 = GW
    for layer in range(L):
        r0 = layer * S
        Dl = D[layer]
        w = w_hh[layer]
        if layer > 0:
            shared_product(w_ihr[layer - 1], ZA, r0 - S, GA, top, Dl[0], no, no)
        shared_product(w[3 * N:], QA, r0, GA, 3 * N, Dl[0], layer > 0, no)
        rb = MC.shape[0]
        for i0 in range(0, N, rb):
            Mi = MC[:min(rb, N - i0)]
            gated_lanes(w, _IFG, Dl[:3], Z0, Mi, i0)
            lanes_product(Mi, QA, r0, ZA, r0 + N + i0, no)
        scale_add(ZA, r0 + N, QA, r0 + N, Dl[3], yes)
        if layer > 0:
            scale_add(ZA, r0 + N, GA, N, Dl[1], yes)
            scale_add(ZA, r0 + N, GA, top, Dl[0], yes)
            scale_add(ZA, r0 + N, GA, 2 * N, Dl[2], yes)
        scale_add(ZA, r0, ZA, r0 + N, Dl[5], no)
        scale_add(ZA, r0, GA, 3 * N, Dl[4], yes)


def grouped(code, N, k):
    """Whether a group step (:func:`vanilla_group_step`, :func:`lstm_group_step`) takes
    this cell with N units per layer and k columns (the engine asks, in Python).

    Vanilla cells always; the LSTM up to 256 units at every k, to 512 at k <= N / 2.
    Its group step forms each lane's block dc'/dh in the lanes layout and spends the
    flops of the per-sequence Jacobian (:func:`lstm_group_step`).  Measured against the
    code before, A/B in one process on two threads (benchmarks/RESULTS.md, "LSTM groups
    at many columns"): 1.05-1.29x for N = 32-128, k = 16, 32 and 2N (median 1.15x), the
    first two against the group step that took all four gates through the shared
    product, k = 2N against the per-sequence Jacobians.  At N = 256 the whole block
    (4 MiB in float64) left L2 (0.90-1.03x); formed and multiplied 256 KiB of rows at
    a time it ran 1.16-1.49x at k = 16 and 32, and 1.03-1.08x more at N = 128.  From
    257 to 512 units (with the interleaved QR to 1024 columns, lenum.lanes.MAX_COLS)
    up to k = N / 2: against the per-sequence kernel 1.63-1.67x at k = 16 in float64
    and 1.26-1.32x in float32 (N = 384, 512), 1.17-1.23x at k = 64 and 1.02-1.03x at
    k = 256 (N = 512), but 0.94-1.03x at k = 2N (benchmarks/RESULTS.md, "Column
    chunks").  Not measured beyond 512 units, where the per-sequence kernel stays.  (A
    GRU group step, at 3x the flops, gained 1.08-1.33x at N = 32-64, k = 16, and lost at
    N = 256: not worth the 3.5 s it added to the cold compile.)
    """
    if code == RNN_TANH or code == RNN_RELU:
        return True
    return code == LSTM and (N <= 256 or (N <= 512 and 2 * k <= N))


# bytes of dc'/dh that lstm_group_step forms at a time, a block of its rows multiplied
# while it stays in L2.  One group on one thread, LSTM k = 16, us a step: N = 256
# float64 1441 with the whole block (4 MiB), 956 / 834 / 903 with 128 / 256 / 512 KiB
# blocks (the per-sequence kernel: 1306); N = 128 318 whole (1 MiB), 246 in blocks
FORMED_BYTES = 262144


@jit(inline="always")
def formed_rows(N, itemsize):
    """Rows of dc'/dh in a block of :data:`FORMED_BYTES` (a multiple of lanes_product's
    tile, at most N)."""
    rows = FORMED_BYTES // (N * LANES * itemsize)
    return min(N, max(4, rows - rows % 4))


@jit
def make_group_workspace(code, w_ih0, w_hh, k, dtype_like):
    """Scratch of the group steps: ``(XA, HA, HN, P, GW, D)``, ``GW`` the LSTM's
    (:func:`lstm_group_step`), empty for the vanilla cells."""
    L, GN, N = w_hh.shape
    lstm = code == LSTM
    n = L * (2 * N if lstm else N)
    dt = dtype_like.dtype
    XA = lane_empty((1, w_ih0.shape[1], LANES), dt)
    HA = lane_empty((1, n, LANES), dt)
    HN = lane_empty((1, n, LANES), dt)
    P = lane_empty((1, GN, LANES), dt)
    GA = lane_empty((k if lstm else 0, GN, LANES), dt)
    MC = lane_empty((formed_rows(N, dtype_like.itemsize) if lstm else 0, N, LANES), dt)
    Z0 = lane_empty((N if lstm else 0, LANES), dt)
    Z0[:] = 0.0
    D = lane_empty((L, 6 if lstm else 1, N, LANES), dt)
    return XA, HA, HN, P, (GA, MC, Z0), D
