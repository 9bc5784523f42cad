"""Vanilla RNN cell (PyTorch ``nn.RNN``): h' = phi(W_ih x + b_ih + W_hh h + b_hh).

Jacobian blocks: dh'/dh = diag(phi'(a)) W_hh and dh'/dx = diag(phi'(a)) W_ih, with
phi' of ReLU taken as 0 at 0 (PyTorch's convention).  The layer returns the slopes
phi'(a) only: the tangent multiplies by W and then scales rows
(:func:`lenum.cells.stack.vanilla_stack_step`), which never forms the N x N product D W.
"""

from .._jit import jit
from .activations import tanh_and_slope
from .affine import affine


@jit
def rnn_layer(relu, w_ih, w_hh, b_ih, b_hh, inp, h, out_h, slope, need_slope, gates, pre,
              ln_in, ln_h):
    """One step of one vanilla layer; with ``need_slope``, ``slope`` receives phi'(a),
    the diagonal of D.  ``pre``, ``ln_in``, ``ln_h``: see :func:`lenum.cells.affine.affine`."""
    a, _ = affine(w_ih, w_hh, b_ih, b_hh, inp, h, gates, False, pre, ln_in, ln_h)
    N = h.shape[0]
    for i in range(N):
        if relu:
            # NaN (an overflowed state: 0 * inf) must propagate, so that the engine
            # reports the overflow instead of reading it as a dead unit
            if a[i] > 0 or a[i] != a[i]:
                out_h[i] = a[i]
                slope[i] = 1.0
            else:
                out_h[i] = 0.0
                slope[i] = 0.0
        else:
            out_h[i], s = tanh_and_slope(a[i])
            if need_slope:
                slope[i] = s
