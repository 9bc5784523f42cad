"""The affine part of a cell step, W_ih inp + b_ih and W_hh h + b_hh, into workspace rows.

Written out rather than as ``np.dot(w_ih, inp) + np.dot(w_hh, h) + b_ih + b_hh``: that
expression allocates four arrays per layer and step, a measurable share of a step of a
small network.  The sums run in the expression's order, so results are bit for bit
those of the expression.
"""

import numpy as np

from .._jit import jit


@jit
def affine(w_ih, w_hh, b_ih, b_hh, inp, h, gates, split, pre, ln_in, ln_h):
    """The affine part of a layer's step in rows 0 and 1 of ``gates`` (>= 2, G N).

    With ``split``, ``(W_ih inp + b_ih, W_hh h + b_hh)`` in ``gates[0]`` and
    ``gates[1]`` (the GRU keeps them apart); otherwise the pre-activation
    ``W_ih inp + W_hh h + b_ih + b_hh`` in ``gates[0]``.  Returns ``gates[0]``,
    ``gates[1]``.

    ``W_ih inp`` is taken from ``pre[0, :, ln_in]`` when ``ln_in >= 0``, and ``W_hh h``
    from ``pre[1, :, ln_h]`` when ``ln_h >= 0``: products computed for a group of
    sequences at once (:func:`lenum.cpu.shared_products`).
    """
    gi = gates[0]
    gh = gates[1]
    if ln_in >= 0:
        for i in range(gi.shape[0]):
            gi[i] = pre[0, i, ln_in]
    else:
        np.dot(w_ih, inp, gi)
    if ln_h >= 0:
        for i in range(gh.shape[0]):
            gh[i] = pre[1, i, ln_h]
    else:
        np.dot(w_hh, h, gh)
    for i in range(gi.shape[0]):
        if split:
            gi[i] += b_ih[i]
            gh[i] += b_hh[i]
        else:
            gi[i] = ((gi[i] + gh[i]) + b_ih[i]) + b_hh[i]
    return gi, gh
