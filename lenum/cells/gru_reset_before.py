"""GRU cell with the reset gate applied before the recurrent product (gate rows r, z, n).

This is Keras' ``GRU(reset_after=False)`` and ONNX's ``GRU`` with
``linear_before_reset=0`` (the GRU of Cho et al. 2014), written with PyTorch's layout:

    r = sigmoid(a_r), z = sigmoid(a_z),  a = W_i x + b_i + W_h h + b_h (per gate)
    n = tanh(W_in x + b_in + W_hn (r h) + b_hn);   h' = (1 - z) n + z h

It differs from :mod:`lenum.cells.gru` (PyTorch's ``nn.GRU``, ``r (W_hn h + b_hn)``)
only in where r enters.  Because r multiplies h *inside* the product, the derivative
of the candidate couples every r_k with every h_j:

    dh'/dh = D((h - n) sig'(a_z)) W_hz
             + D((1 - z) tanh'(a_n)) [W_hn D(h sig'(a_r)) W_hr + W_hn D(r)] + D(z)
    dh'/dx = D((h - n) sig'(a_z)) W_iz
             + D((1 - z) tanh'(a_n)) [W_hn D(h sig'(a_r)) W_ir + W_in]

The product ``W_hn D(u) W_hr`` is an N x N by N x N matrix product (2 N^3 flops per
step), which the PyTorch variant does not need.
"""

import numpy as np

from .._jit import jit
from .activations import sigmoid_and_slope, tanh_and_slope


@jit
def gru_reset_before_layer(w_ih, w_hh, b_ih, b_hh, inp, h, out_h, M, Bin, need_m, need_bin):
    """One step of one reset-before GRU layer; fills ``M`` = dh'/dh and ``Bin`` = dh'/dinp.

    Parameters
    ----------
    w_ih, w_hh : ndarray, (3N, d) and (3N, N)
        Gate rows r, z, n.
    b_ih, b_hh : ndarray, (3N,)
    inp, h : ndarray, (d,) and (N,)
        Layer input and hidden state.
    out_h : ndarray, (N,)
        Receives the new hidden state (must not alias ``h``).
    M, Bin : ndarray, (>= N, N)
        Receive the Jacobian blocks in their first N rows when asked for.
    need_m, need_bin : bool
    """
    N = h.shape[0]
    # element loops and np.dot into arrays, no array expressions: each of those
    # compiled its own loop nest (seconds of cold compile) and allocated per step.
    # Row slices of a C-contiguous matrix are C-contiguous, as np.dot needs.
    gi = np.empty(3 * N, dtype=h.dtype)
    np.dot(w_ih, inp, gi)
    w_hr = w_hh[0:N]
    w_hz = w_hh[N:2 * N]
    w_hn = w_hh[2 * N:3 * N]
    ghr = np.empty(N, dtype=h.dtype)
    ghz = np.empty(N, dtype=h.dtype)
    np.dot(w_hr, h, ghr)
    np.dot(w_hz, h, ghz)
    r = np.empty(N, dtype=h.dtype)
    z = np.empty(N, dtype=h.dtype)
    u = np.empty(N, dtype=h.dtype)  # h * sigma'(a_r): how r h moves with a_r
    sz = np.empty(N, dtype=h.dtype)  # sigma'(a_z)
    rh = np.empty(N, dtype=h.dtype)
    for i in range(N):
        ar = (gi[i] + b_ih[i]) + ghr[i] + b_hh[i]
        az = (gi[N + i] + b_ih[N + i]) + ghz[i] + b_hh[N + i]
        r[i], sr = sigmoid_and_slope(ar)
        z[i], sz[i] = sigmoid_and_slope(az)
        u[i] = h[i] * sr
        rh[i] = r[i] * h[i]
    ghn = np.empty(N, dtype=h.dtype)
    np.dot(w_hn, rh, ghn)
    dz = np.empty(N, dtype=h.dtype)
    dn = np.empty(N, dtype=h.dtype)
    for i in range(N):
        an = (gi[2 * N + i] + b_ih[2 * N + i]) + ghn[i] + b_hh[2 * N + i]
        n, sn = tanh_and_slope(an)
        out_h[i] = (1.0 - z[i]) * n + z[i] * h[i]
        dz[i] = (h[i] - n) * sz[i]
        dn[i] = (1.0 - z[i]) * sn
    if not (need_m or need_bin):
        return
    # P = W_hn D(u): the chain through r, shared by both blocks
    P = np.empty((N, N), dtype=h.dtype)
    for i in range(N):
        for k in range(N):
            P[i, k] = w_hn[i, k] * u[k]
    if need_m:
        PR = np.empty((N, N), dtype=h.dtype)
        np.dot(P, w_hr, PR)
        for i in range(N):
            for j in range(N):
                M[i, j] = dz[i] * w_hz[i, j] + dn[i] * (PR[i, j] + w_hn[i, j] * r[j])
            M[i, i] += z[i]
    if need_bin:
        PI = np.empty((N, inp.shape[0]), dtype=h.dtype)
        np.dot(P, w_ih[0:N], PI)
        for i in range(N):
            for j in range(inp.shape[0]):
                Bin[i, j] = dz[i] * w_ih[N + i, j] + dn[i] * (PI[i, j] + w_ih[2 * N + i, j])
