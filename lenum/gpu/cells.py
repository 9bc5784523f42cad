"""Per-cell CUDA device functions: one forward step and the tangent ``J_t @ Q``.

The twins of :mod:`lenum.cells`.  Weights arrive transposed, ``WT[m, g*N + i]`` is
PyTorch's ``W[g*N + i, m]``, so that the threads of a warp, which take consecutive
rows i, read consecutive addresses.  The basis and the tangent are stored by columns
(``QT[j, r]`` is entry (r, j)) for the same reason.

Forward (``gpu_rnn_layer``, ``gpu_lstm_layer``, ``gpu_gru_layer``): one thread per
row i computes the row's gate pre-activations, the new state and the per-row
coefficients of the Jacobian blocks (``coef``, see each function).

Tangent (``gpu_layer_tangent``): the Jacobian is never stored.  A thread owns row i
and a tile of TJ columns; for each m it forms the Jacobian entry (i, m) from the gate
rows of W and the coefficients (G loads, G fused multiply-adds), then uses it TJ
times.  This is the explicit-Jacobian flop count (2 n_rows N k), with the Jacobian
formed on the fly: no (n x N) array per sequence in device memory.
"""

import math

import numba
from numba import cuda

from .activations import gpu_dsigmoid, gpu_dtanh, gpu_sigmoid

RNN_TANH, RNN_RELU, LSTM, GRU = 0, 1, 2, 3

# basis columns per thread in the tangent: the Jacobian entry formed from the gate
# rows is reused TJ times; more columns cost registers
TJ = 4


@cuda.jit(device=True)
def gpu_rnn_layer(relu, WiT, WhT, bi, bh, inp, h, out_h, coef, i):
    """Row i of a vanilla layer: ``out_h[i]``; ``coef[0, i]`` = phi'(a_i)."""
    a = bi[i] + bh[i]
    for m in range(inp.shape[0]):
        a += WiT[m, i] * inp[m]
    for m in range(h.shape[0]):
        a += WhT[m, i] * h[m]
    if relu:
        # PyTorch's convention: the derivative at 0 is 0; NaN (an overflowed state)
        # propagates so that the engine reports it
        if a > 0 or a != a:
            out_h[i] = a
            coef[0, i] = 1.0
        else:
            out_h[i] = 0.0
            coef[0, i] = 0.0
    else:
        out_h[i] = math.tanh(a)
        coef[0, i] = gpu_dtanh(a)


@cuda.jit(device=True)
def gpu_lstm_layer(WiT, WhT, bi, bh, inp, h, c, out_h, out_c, coef, i):
    """Row i of an LSTM layer (gate rows i, f, g, o).

    ``coef[:, i]`` = (g sig'(a_i), c sig'(a_f), i tanh'(a_g), tanh(c') sig'(a_o),
    o tanh'(c'), f): dc'/dv = coef1 W_f + coef0 W_i + coef2 W_g, dh'/dv = coef3 W_o +
    coef4 dc'/dv, dc'/dc = f and dh'/dc = coef4 f.
    """
    N = h.shape[0]
    ai = bi[i] + bh[i]
    af = bi[N + i] + bh[N + i]
    ag = bi[2 * N + i] + bh[2 * N + i]
    ao = bi[3 * N + i] + bh[3 * N + i]
    for m in range(inp.shape[0]):
        x = inp[m]
        ai += WiT[m, i] * x
        af += WiT[m, N + i] * x
        ag += WiT[m, 2 * N + i] * x
        ao += WiT[m, 3 * N + i] * x
    for m in range(N):
        x = h[m]
        ai += WhT[m, i] * x
        af += WhT[m, N + i] * x
        ag += WhT[m, 2 * N + i] * x
        ao += WhT[m, 3 * N + i] * x
    gi = gpu_sigmoid(ai)
    gf = gpu_sigmoid(af)
    gg = math.tanh(ag)
    go = gpu_sigmoid(ao)
    cn = gf * c[i] + gi * gg
    tc = math.tanh(cn)
    out_c[i] = cn
    out_h[i] = go * tc
    coef[0, i] = gg * gpu_dsigmoid(ai)
    coef[1, i] = c[i] * gpu_dsigmoid(af)
    coef[2, i] = gi * gpu_dtanh(ag)
    coef[3, i] = tc * gpu_dsigmoid(ao)
    coef[4, i] = go * gpu_dtanh(cn)
    coef[5, i] = gf


@cuda.jit(device=True)
def gpu_gru_layer(WiT, WhT, bi, bh, inp, h, out_h, coef, i):
    """Row i of a GRU layer (gate rows r, z, n).

    ``coef[:, i]`` = ((h - n) sig'(a_z), (1 - z) tanh'(a_n) gh_n sig'(a_r),
    (1 - z) tanh'(a_n), r, z): dh'/dh = coef0 W_hz + coef1 W_hr + coef2 coef3 W_hn +
    diag(z) and dh'/dinp = coef0 W_iz + coef1 W_ir + coef2 W_in.
    """
    N = h.shape[0]
    xr = bi[i]
    xz = bi[N + i]
    xn = bi[2 * N + i]
    hr = bh[i]
    hz = bh[N + i]
    hn = bh[2 * N + i]
    for m in range(inp.shape[0]):
        x = inp[m]
        xr += WiT[m, i] * x
        xz += WiT[m, N + i] * x
        xn += WiT[m, 2 * N + i] * x
    for m in range(N):
        x = h[m]
        hr += WhT[m, i] * x
        hz += WhT[m, N + i] * x
        hn += WhT[m, 2 * N + i] * x
    ar = xr + hr
    az = xz + hz
    r = gpu_sigmoid(ar)
    z = gpu_sigmoid(az)
    an = xn + r * hn
    n = math.tanh(an)
    out_h[i] = (1.0 - z) * n + z * h[i]
    dn = (1.0 - z) * gpu_dtanh(an)
    coef[0, i] = (h[i] - n) * gpu_dsigmoid(az)
    coef[1, i] = dn * hn * gpu_dsigmoid(ar)
    coef[2, i] = dn
    coef[3, i] = r
    coef[4, i] = z


@cuda.jit(device=True)
def gpu_layer_forward(code, WiT, WhT, bi, bh, inp, s, s_new, r0, N, coef):
    """All rows of one layer, split over the threads of the block."""
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    h = s[r0:r0 + N]
    out_h = s_new[r0:r0 + N]
    for i in range(tid, N, nt):
        if code == LSTM:
            gpu_lstm_layer(WiT, WhT, bi, bh, inp, h, s[r0 + N:r0 + 2 * N], out_h,
                           s_new[r0 + N:r0 + 2 * N], coef, i)
        elif code == GRU:
            gpu_gru_layer(WiT, WhT, bi, bh, inp, h, out_h, coef, i)
        else:
            gpu_rnn_layer(code == RNN_RELU, WiT, WhT, bi, bh, inp, h, out_h, coef, i)


def make_tangent(nbt):
    """Tangent device functions for the compute type ``nbt`` (numba.float32/64).

    The accumulators are per-thread arrays of the compute type, which numba needs as
    a compile-time constant; hence one set of functions per dtype.
    """

    @cuda.jit(device=True)
    def gpu_layer_tangent(code, WiT, WhT, coef, QT, ZT, r0, N, cross, lower):
        """Rows of layer at ``r0`` of Z = J Q; ``cross``: add B_l Z[lower:lower+N]."""
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        k = QT.shape[0]
        tiles = (k + TJ - 1) // TJ
        acc = cuda.local.array(TJ, nbt)
        acc2 = cuda.local.array(TJ, nbt)
        col = cuda.local.array(TJ, numba.int64)
        for item in range(tid, N * tiles, nt):
            i = item % N
            j0 = (item // N) * TJ
            for jj in range(TJ):
                # past the last column, recompute the last one (a valid address);
                # the result is not written
                col[jj] = min(j0 + jj, k - 1)
                acc[jj] = nbt(0)
                acc2[jj] = nbt(0)
            # the row's coefficients, read once (not in the loop over m)
            k0 = coef[0, i]
            k1 = coef[1, i]
            k2 = coef[2, i]
            k3 = coef[3, i]
            k4 = coef[4, i]
            # source 0: the layer's own old state (W_hh, the basis rows of its h);
            # source 1: its input, the new h below (W_ih, the tangent rows of that h)
            for src in range(2 if cross else 1):
                if src == 0:
                    W = WhT
                    V = QT
                    off = r0
                else:
                    W = WiT
                    V = ZT
                    off = lower
                if code == LSTM:
                    for m in range(N):
                        dc = k1 * W[m, N + i] + k0 * W[m, i] + k2 * W[m, 2 * N + i]
                        dh = k3 * W[m, 3 * N + i] + k4 * dc
                        for jj in range(TJ):
                            q = V[col[jj], off + m]
                            acc[jj] += dh * q
                            acc2[jj] += dc * q
                elif code == GRU:
                    # r multiplies W_hn h only, not W_in x
                    gn = k2 * k3 if src == 0 else k2
                    for m in range(N):
                        w = k0 * W[m, N + i] + k1 * W[m, i] + gn * W[m, 2 * N + i]
                        for jj in range(TJ):
                            acc[jj] += w * V[col[jj], off + m]
                else:
                    # diag(phi') W: the row's factor is applied once at the end
                    for m in range(N):
                        w = W[m, i]
                        for jj in range(TJ):
                            acc[jj] += w * V[col[jj], off + m]
            if code == LSTM:
                f = coef[5, i]
                fh = k4 * f
                for jj in range(TJ):
                    if j0 + jj < k:
                        qc = QT[j0 + jj, r0 + N + i]
                        ZT[j0 + jj, r0 + i] = acc[jj] + fh * qc
                        ZT[j0 + jj, r0 + N + i] = acc2[jj] + f * qc
            elif code == GRU:
                z = k4
                for jj in range(TJ):
                    if j0 + jj < k:
                        ZT[j0 + jj, r0 + i] = acc[jj] + z * QT[j0 + jj, r0 + i]
            else:
                d = k0
                for jj in range(TJ):
                    if j0 + jj < k:
                        ZT[j0 + jj, r0 + i] = d * acc[jj]

    @cuda.jit(device=True)
    def gpu_stack_step(code, w_ih0T, w_ihrT, w_hhT, b_ih, b_hh, x, s, s_new, QT, ZT, coef):
        """One step of the whole stack: ``s_new`` = F(s, x) and ``ZT`` = (J QT^T)^T.

        Layer l > 0 reads the new h of layer l-1, so its tangent adds the input block
        times the tangent rows of that h (the cross-layer chain).
        """
        L = w_hhT.shape[0]
        N = w_hhT.shape[1]
        S = 2 * N if code == LSTM else N
        for layer in range(L):
            r0 = layer * S
            # one call site per device function (each call site is compiled and
            # inlined separately): pick the arrays first
            below = layer - 1 if layer > 0 else 0
            if layer == 0:
                WiT = w_ih0T
                inp = x
            else:
                WiT = w_ihrT[below]
                inp = s_new[r0 - S:r0 - S + N]
            gpu_layer_forward(code, WiT, w_hhT[layer], b_ih[layer], b_hh[layer], inp, s,
                              s_new, r0, N, coef)
            cuda.syncthreads()
            gpu_layer_tangent(code, w_ihrT[below], w_hhT[layer], coef, QT, ZT, r0, N,
                              layer > 0, r0 - S)
            # the next layer's forward overwrites coef and reads this layer's new h
            cuda.syncthreads()

    return gpu_layer_tangent, gpu_stack_step
