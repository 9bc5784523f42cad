"""GRU cell (PyTorch ``nn.GRU``, gate rows r, z, n).

    r = sigmoid(a_r), z = sigmoid(a_z),  a = W_i x + b_i + W_h h + b_h (per gate)
    n = tanh(W_in x + b_in + r (W_hn h + b_hn));   h' = (1 - z) n + z h

Jacobian blocks:

    dh'/dh = D((h - n) sig'(a_z)) W_hz + D((1 - z) tanh'(a_n)) [D(gh_n sig'(a_r)) W_hr + D(r) W_hn] + D(z)
    dh'/dx = D((h - n) sig'(a_z)) W_iz + D((1 - z) tanh'(a_n)) [D(gh_n sig'(a_r)) W_ir + W_in]

with gh_n = W_hn h + b_hn.  Building this N x N block explicitly and multiplying it by
the basis costs 2 N^2 k flops, a third of propagating through the three gate blocks.
For a basis of 8-32 columns the block is not written to memory: its entries are
formed in registers from the per-unit coefficients below and multiplied at once
(:func:`lenum.thin.gated_dot`, same rounding), where writing and reading it cost more
than the product.
"""

from .._jit import jit
from .activations import sigmoid_and_slope, tanh_and_slope
from .affine import affine


@jit
def gru_block_row(W, N, cz, cr, cn, out, i):
    """Row i of dh'/dv without its diagonal, for v the h (W = W_hh, ``cn`` the
    coefficient of W_hn) or the input (W = W_ih, of W_in): the products, then the sums
    in this order, as :func:`lenum.thin.gated_dot` rounds them too."""
    for j in range(W.shape[1]):
        out[i, j] = cz * W[N + i, j] + cr * W[i, j] + cn * W[2 * N + i, j]


@jit
def gru_layer(w_ih, w_hh, b_ih, b_hh, inp, h, out_h, M, Bin, need_m, need_bin, gates, pre,
              ln_in, ln_h):
    """One step of one GRU layer; fills ``M`` = dh'/dh and ``Bin`` = dh'/dinp.

    ``gates`` (4, 3N): the affine parts in rows 0 and 1 (:func:`lenum.cells.affine.affine`),
    the per-unit coefficients of the Jacobian rows in rows 2 and 3.  ``pre``, ``ln_in``,
    ``ln_h``: see :func:`lenum.cells.affine.affine`.
    """
    gi, gh = affine(w_ih, w_hh, b_ih, b_hh, inp, h, gates, True, pre, ln_in, ln_h)
    N = h.shape[0]
    cz, cr, cnr = gates[2, :N], gates[2, N:2 * N], gates[2, 2 * N:]
    cn, cd = gates[3, :N], gates[3, N:2 * N]
    # the gate functions over all units first, in a loop of their own with no branch
    # and no call, which runs as vector code; the rows of M after
    for i in range(N):
        ar = gi[i] + gh[i]
        az = gi[N + i] + gh[N + i]
        r, sr = sigmoid_and_slope(ar)
        z, sz = sigmoid_and_slope(az)
        hn = gh[2 * N + i]
        an = gi[2 * N + i] + r * hn
        n, sn = tanh_and_slope(an)
        out_h[i] = (1.0 - z) * n + z * h[i]
        dn = (1.0 - z) * sn
        # stored in the network's dtype, which rounds them once: the float64 arithmetic
        # above (float literals promote float32) would otherwise make the float32 row
        # loops below run in float64, 1.2x slower
        cz[i] = (h[i] - n) * sz
        cr[i] = dn * hn * sr
        cnr[i] = dn * r
        cn[i] = dn
        cd[i] = z
    if not (need_m or need_bin):
        return
    for i in range(N):
        if need_m:
            gru_block_row(w_hh, N, cz[i], cr[i], cnr[i], M, i)
            M[i, i] += cd[i]
        if need_bin:
            gru_block_row(w_ih, N, cz[i], cr[i], cn[i], Bin, i)


@jit(inline="always")
def gru_coefficients(gates, N):
    """The per-unit coefficients :func:`gru_layer` leaves in ``gates``, as the gated
    products take them: those of W_hz, W_hr and W_hn as rows of a (3, N) view, and z,
    the diagonal's (:func:`lenum.thin.gated_dot`, :func:`lenum.lanes.gated_lanes`)."""
    return gates[2].reshape((3, N)), gates[3, N:2 * N]
