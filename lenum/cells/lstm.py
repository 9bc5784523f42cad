"""LSTM cell (PyTorch ``nn.LSTM``, gate rows i, f, g, o); the state is (h, c).

    i, f, o = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o);  g = tanh(a_g)
    c' = f c + i g;   h' = o tanh(c')

Jacobian blocks with D_x = diag(...):

    dc'/dh = D(c sig'(a_f)) W_f + D(g sig'(a_i)) W_i + D(i tanh'(a_g)) W_g,  dc'/dc = D(f)
    dh'/dh = D(tanh(c') sig'(a_o)) W_o + D(o tanh'(c')) dc'/dh,           dh'/dc = D(o tanh'(c') f)

and the same with W_ih in place of W_hh for the derivative with respect to the input.
Only the h columns are dense: ``M`` holds them (rows h then c), ``diag`` the c columns.
"""

from .._jit import jit
from .activations import like, sigmoid_and_slope, tanh_and_slope
from .affine import affine


@jit
def _lstm_block(W, N, ci, cf, cg, co, oc, out, i):
    # row i of [dh'/dv; dc'/dv] for v the h (W = W_hh) or the input (W = W_ih)
    for j in range(W.shape[1]):
        dc = cf * W[N + i, j] + ci * W[i, j] + cg * W[2 * N + i, j]
        out[N + i, j] = dc
        out[i, j] = co * W[3 * N + i, j] + oc * dc


@jit
def lstm_layer(w_ih, w_hh, b_ih, b_hh, inp, h, c, out_h, out_c, M, diag, Bin, need_m, need_bin,
               gates):
    """One step of one LSTM layer; fills ``M``, ``diag`` (2, N) and ``Bin``."""
    a, _ = affine(w_ih, w_hh, b_ih, b_hh, inp, h, gates, False)
    N = h.shape[0]
    for i in range(N):
        ai, af, ag, ao = a[i], a[N + i], a[2 * N + i], a[3 * N + i]
        gi, si = sigmoid_and_slope(ai)
        gf, sf = sigmoid_and_slope(af)
        go, so = sigmoid_and_slope(ao)
        gg, sg = tanh_and_slope(ag)
        cn = gf * c[i] + gi * gg
        tc, stc = tanh_and_slope(cn)
        out_c[i] = cn
        out_h[i] = go * tc
        if need_m or need_bin:
            ci = gg * si
            cf = c[i] * sf
            cg = gi * sg
            co = tc * so
            oc = go * stc
            diag[0, i] = oc * gf
            diag[1, i] = gf
            # the row loops in M's dtype (see activations.like)
            ci, cf, cg, co, oc = like(ci, M), like(cf, M), like(cg, M), like(co, M), like(oc, M)
            if need_m:
                _lstm_block(w_hh, N, ci, cf, cg, co, oc, M, i)
            if need_bin:
                _lstm_block(w_ih, N, ci, cf, cg, co, oc, Bin, i)
