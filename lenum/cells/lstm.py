"""LSTM cell (PyTorch ``nn.LSTM``, gate rows i, f, g, o); the state is (h, c).

    i, f, o = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o);  g = tanh(a_g)
    c' = f c + i g;   h' = o tanh(c')

Jacobian blocks with D_x = diag(...):

    dc'/dh = D(c sig'(a_f)) W_f + D(g sig'(a_i)) W_i + D(i tanh'(a_g)) W_g,  dc'/dc = D(f)
    dh'/dh = D(tanh(c') sig'(a_o)) W_o + D(o tanh'(c')) dc'/dh,           dh'/dc = D(o tanh'(c') f)

and the same with W_ih in place of W_hh for the derivative with respect to the input.
Only the h columns are dense: ``M`` holds them (rows h then c), ``diag`` the c columns.
For a basis of 8-32 columns, stepped one sequence at a time, they are formed in
registers instead and multiplied at once (:func:`lenum.thin.lstm_gated_dot`, same
rounding).
"""

from .._jit import jit
from .activations import sigmoid_and_slope, tanh_and_slope
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
               gates, pre, ln_in, ln_h):
    """One step of one LSTM layer; fills ``M``, ``diag`` (2, N) and ``Bin``.

    ``gates`` (4, 4N): the pre-activations in row 0 (:func:`lenum.cells.affine.affine`),
    the per-unit coefficients of the Jacobian rows in rows 2 and 3.  ``pre``, ``ln_in``,
    ``ln_h``: see :func:`lenum.cells.affine.affine`.
    """
    a, _ = affine(w_ih, w_hh, b_ih, b_hh, inp, h, gates, False, pre, ln_in, ln_h)
    N = h.shape[0]
    ci, cf, cg, co = gates[2, :N], gates[2, N:2 * N], gates[2, 2 * N:3 * N], gates[2, 3 * N:]
    oc = gates[3, :N]
    # the gate functions over all units first, in a loop of their own with no branch
    # and no call, which runs as vector code; the rows of M after
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
        o_c = go * stc
        diag[0, i] = o_c * gf
        diag[1, i] = gf
        # stored in the network's dtype, which rounds them once: the float64 arithmetic
        # above (float literals promote float32) would otherwise make the float32 row
        # loops below run in float64, 1.2x slower
        ci[i] = gg * si
        cf[i] = c[i] * sf
        cg[i] = gi * sg
        co[i] = tc * so
        oc[i] = o_c
    if not (need_m or need_bin):
        return
    for i in range(N):
        if need_m:
            _lstm_block(w_hh, N, ci[i], cf[i], cg[i], co[i], oc[i], M, i)
        if need_bin:
            _lstm_block(w_ih, N, ci[i], cf[i], cg[i], co[i], oc[i], Bin, i)


@jit(inline="always")
def lstm_coefficients(gates, N):
    """The per-unit coefficients :func:`lstm_layer` leaves in ``gates``, as
    :func:`lenum.thin.lstm_gated_dot` takes them: those of W_hi, W_hf, W_hg and W_ho as
    rows of a (4, N) view, and o tanh'(c'), dh'/dh's factor of dc'/dh."""
    return gates[2].reshape((4, N)), gates[3, :N]
