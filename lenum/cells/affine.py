"""The affine part of a cell step, W_ih inp + b_ih and W_hh h + b_hh, into workspace rows.

Written out rather than as ``np.dot(w_ih, inp) + np.dot(w_hh, h) + b_ih + b_hh``: that
expression allocates four arrays per layer and step, a measurable share of a step of a
small network.  The sums run in the expression's order, so results are bit for bit
those of the expression.
"""

import numpy as np

from .._jit import jit


@jit
def preactivation(w_ih, w_hh, b_ih, b_hh, inp, h, gates):
    """``gates[0] = W_ih inp + W_hh h + b_ih + b_hh`` (``gates[1]`` is scratch)."""
    a = gates[0]
    u = gates[1]
    np.dot(w_ih, inp, u)
    np.dot(w_hh, h, a)
    for i in range(a.shape[0]):
        a[i] = ((u[i] + a[i]) + b_ih[i]) + b_hh[i]
    return a


@jit
def gate_inputs(w_ih, w_hh, b_ih, b_hh, inp, h, gates):
    """``(W_ih inp + b_ih, W_hh h + b_hh)`` in ``gates[0]`` and ``gates[1]``."""
    gi = gates[0]
    gh = gates[1]
    np.dot(w_ih, inp, gi)
    np.dot(w_hh, h, gh)
    for i in range(gi.shape[0]):
        gi[i] += b_ih[i]
        gh[i] += b_hh[i]
    return gi, gh
