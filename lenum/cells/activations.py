"""Activations and their derivatives, written so that derivatives do not underflow.

``1 - tanh(a)**2`` is exactly 0 in float64 once |a| > 19 although the true value is
about 4 exp(-2|a|); a Lyapunov exponent is a log of such factors, so the difference
between 0 (-inf) and 1e-17 (-39) matters.  The forms below use exp(-|a|), which stays
representable down to the subnormals.
"""

import numpy as np

from .._jit import jit


@jit
def sigmoid(a):
    if a >= 0:
        return 1.0 / (1.0 + np.exp(-a))
    e = np.exp(a)
    return e / (1.0 + e)


@jit
def dsigmoid(a):
    # sigma'(a) = e^{-|a|} / (1 + e^{-|a|})^2, symmetric in a
    e = np.exp(-abs(a))
    d = 1.0 + e
    return e / (d * d)


@jit
def dtanh(a):
    # sech^2(a) = 4 e^{-2|a|} / (1 + e^{-2|a|})^2
    e = np.exp(-2.0 * abs(a))
    d = 1.0 + e
    return 4.0 * e / (d * d)


@jit
def sigmoid_and_slope(a):
    """``(sigmoid(a), dsigmoid(a))`` from one exp, bit for bit the two functions above.

    Both need exp(-|a|): sigmoid's two branches are 1 / (1 + e) and e / (1 + e) with
    that e.  The cells evaluate a sigmoid and its slope per gate and step, and the
    exponentials are most of a small network's non-QR time.
    """
    e = np.exp(-abs(a))
    d = 1.0 + e
    s = 1.0 / d if a >= 0 else e / d
    return s, e / (d * d)
