"""One step of a stack of layers: the new state and the tangent J_t @ Q.

The state vector holds layer 0 first and, within an LSTM layer, h before c.  Layer
l > 0 reads the *new* h of layer l-1, so the Jacobian is block lower-triangular and the
tangent of layer l is  Z_l = A_l Q_l + B_l Z_{l-1}[h],  computed layer by layer (the
cross-layer chain of SPEC section 1).  ``lenum.jacobian`` is this tangent applied to
the identity.
"""

import numpy as np

from .._jit import jit
from ..lanes import shared_product
from .gru import gru_layer
from .gru_reset_before import gru_reset_before_layer
from .lstm import lstm_layer
from .activations import dtanh
from .rnn import rnn_layer

RNN_TANH, RNN_RELU, LSTM, GRU, GRU_RB = 0, 1, 2, 3, 4


@jit
def make_workspace(code, w_ih0, w_hh, k, dtype_like):
    """Per-sequence scratch arrays for :func:`stack_step`."""
    N = w_hh.shape[2]
    S = 2 * N if code == LSTM else N
    # the vanilla cells never form J's blocks (their tangent is D (W Q)): no M, Bin
    rows = 0 if code == RNN_TANH or code == RNN_RELU else S
    M = np.empty((rows, N), dtype=dtype_like.dtype)
    Bin = np.empty((rows, N), dtype=dtype_like.dtype)  # only layers > 0 (input N) use it
    diag = np.empty((2, N), dtype=dtype_like.dtype)
    tmp = np.empty((S, k), dtype=dtype_like.dtype)
    gates = np.empty((2, w_hh.shape[1]), dtype=dtype_like.dtype)  # see cells.affine
    return M, Bin, diag, tmp, gates


@jit
def stack_step(code, w_ih0, w_ihr, w_hh, b_ih, b_hh, x, s, s_new, Q, Z, M, Bin, diag, tmp, gates,
               tangent):
    """Advance state ``s`` by one step into ``s_new``; with ``tangent``, Z = J_t @ Q."""
    L = w_hh.shape[0]
    N = w_hh.shape[2]
    S = 2 * N if code == LSTM else N
    for layer in range(L):
        r0 = layer * S
        if layer == 0:
            inp = x
            w_ih = w_ih0
        else:
            inp = s_new[r0 - S:r0 - S + N]
            w_ih = w_ihr[layer - 1]
        need_bin = tangent and layer > 0
        h = s[r0:r0 + N]
        out_h = s_new[r0:r0 + N]
        if code == LSTM:
            lstm_layer(w_ih, w_hh[layer], b_ih[layer], b_hh[layer], inp, h, s[r0 + N:r0 + S],
                       out_h, s_new[r0 + N:r0 + S], M, diag, Bin, tangent, need_bin, gates)
        elif code == GRU:
            gru_layer(w_ih, w_hh[layer], b_ih[layer], b_hh[layer], inp, h, out_h, M, Bin,
                      tangent, need_bin, gates)
        elif code == GRU_RB:
            gru_reset_before_layer(w_ih, w_hh[layer], b_ih[layer], b_hh[layer], inp, h, out_h,
                                   M, Bin, tangent, need_bin)
        else:
            rnn_layer(code == RNN_RELU, w_ih, w_hh[layer], b_ih[layer], b_hh[layer], inp, h,
                      out_h, diag[0], tangent, gates)
        if not tangent:
            continue
        Zl = Z[r0:r0 + S]
        if code == RNN_TANH or code == RNN_RELU:
            # Z = D (W_hh Q + W_ih Z_below): the same flops as forming D W and
            # multiplying, without the N x N pass; 10-27 % faster for k << N
            np.dot(w_hh[layer], Q[r0:r0 + N], Zl)
            if layer > 0:
                np.dot(w_ih, Z[r0 - S:r0 - S + N], tmp)
                Zl += tmp
            for i in range(N):
                d = diag[0, i]
                for j in range(Q.shape[1]):
                    Zl[i, j] *= d
            continue
        np.dot(M, Q[r0:r0 + N], Zl)
        if code == LSTM:
            Qc = Q[r0 + N:r0 + S]
            for i in range(N):
                dh, dc = diag[0, i], diag[1, i]
                for j in range(Q.shape[1]):
                    Zl[i, j] += dh * Qc[i, j]
                    Zl[N + i, j] += dc * Qc[i, j]
        if layer > 0:
            # the cross-layer chain: this layer's input is the new h below
            np.dot(Bin, Z[r0 - S:r0 - S + N], tmp)
            Zl += tmp


@jit
def vanilla_group_step(relu, w_ih0, w_ihr, w_hh, b_ih, b_hh, XA, HA, HN, P, QA, ZA, D):
    """One step of a group of vanilla sequences, everything interleaved
    (:mod:`lenum.lanes` layout, sequence l in lane l): states ``HA`` -> ``HN`` and
    tangents ``ZA = J_t QA``.

    The sequences share W, so each product is one matrix times all lanes at once
    (:func:`lenum.lanes.shared_product`): the affine part W_ih x + W_hh h + b_ih + b_hh,
    in the order of :func:`lenum.cells.affine.affine`, and each layer's tangent
    Z_l = D_l (W_hh Q_l + W_ih Z_{l-1}).  ``XA`` (1, d, LANES) holds the inputs,
    ``HA``, ``HN`` (1, n, LANES) the states, ``QA``, ``ZA`` (k, n, LANES) the bases;
    ``D`` (L, N, LANES) receives the slopes, ``P`` (1, N, LANES) is scratch.
    """
    L = w_hh.shape[0]
    N = w_hh.shape[2]
    # offsets and flags as run-time values: constants would be typed as literals, and
    # each combination would compile its own copy of the product's vector code
    no, yes = np.bool_(False), np.bool_(True)
    top = np.intp(0)
    # LANES as a run-time count: with the constant, numba unrolls the cell's
    # arithmetic 8 times over (compile time, for no speed: tanh stays scalar)
    nl = HA.shape[2]
    for layer in range(L):
        r0 = layer * N
        Dl = D[layer]
        if layer == 0:
            shared_product(w_ih0, XA, top, P, top, Dl, no, no)
        else:
            shared_product(w_ihr[layer - 1], HN, r0 - N, P, top, Dl, no, no)
        shared_product(w_hh[layer], HA, r0, P, top, Dl, yes, no)
        bi = b_ih[layer]
        bh = b_hh[layer]
        for i in range(N):
            for ln in range(nl):
                a = P[0, i, ln] + bi[i] + bh[i]
                if relu:
                    # NaN (an overflowed state) must propagate, as in rnn_layer
                    if a > 0 or a != a:
                        HN[0, r0 + i, ln] = a
                        Dl[i, ln] = 1.0
                    else:
                        HN[0, r0 + i, ln] = 0.0
                        Dl[i, ln] = 0.0
                else:
                    HN[0, r0 + i, ln] = np.tanh(a)
                    Dl[i, ln] = dtanh(a)
    for layer in range(L):
        r0 = layer * N
        if layer > 0:
            shared_product(w_ihr[layer - 1], ZA, r0 - N, ZA, r0, D[layer], no, no)
        shared_product(w_hh[layer], QA, r0, ZA, r0, D[layer], layer > 0, yes)
