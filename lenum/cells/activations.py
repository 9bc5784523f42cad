"""Activations and their derivatives, written so that derivatives do not underflow.

``1 - tanh(a)**2`` is exactly 0 in float64 once |a| > 19 although the true value is
about 4 exp(-2|a|); a Lyapunov exponent is a log of such factors, so the difference
between 0 (-inf) and 1e-17 (-39) matters.  The forms below use exp(-|a|), which stays
representable down to the subnormals.

The exponentials are :mod:`lenum.cells.expfn`'s, computed in float64 whatever the
argument's type, and the fused functions the cells call are free of branches and
library calls, so that a loop over units (or over the lanes of a group) runs as vector
code.
"""

import numpy as np

from .._jit import jit
from .expfn import exp


@jit
def sigmoid(a):
    if a >= 0:
        return 1.0 / (1.0 + exp(-a))
    e = exp(a)
    return e / (1.0 + e)


@jit
def dsigmoid(a):
    # sigma'(a) = e^{-|a|} / (1 + e^{-|a|})^2, symmetric in a
    e = exp(-abs(a))
    d = 1.0 + e
    return e / (d * d)


@jit
def dtanh(a):
    # sech^2(a) = 4 e^{-2|a|} / (1 + e^{-2|a|})^2
    e = exp(-2.0 * abs(np.float64(a)))
    d = 1.0 + e
    return 4.0 * e / (d * d)


@jit
def sigmoid_and_slope(a):
    """``(sigmoid(a), dsigmoid(a))`` from one exp, bit for bit the two functions above.

    Both need exp(-|a|): sigmoid's two branches are 1 / (1 + e) and e / (1 + e) with
    that e.  Both branches are computed and one is selected, so that no branch is
    left in the loops that call this.
    """
    e = exp(-abs(a))
    d = 1.0 + e
    pos = 1.0 / d
    neg = e / d
    return (pos if a >= 0 else neg), e / (d * d)


# below this |a|, tanh_and_slope takes tanh from its series (1 - e would cancel)
_SMALL = 0.55
# tanh(x) = x + x y P(y), y = x^2, on |x| < 0.55: the Taylor series to x^39 (the first
# term left out is below 2^-60 of tanh there), P's coefficients split into those of
# even and odd powers of y so that two short Horner chains run side by side
_TANH_EVEN = (-0.3333333333333333, -0.05396825396825397, -0.008863235529902197,
              -0.0014558343870513183, -0.00023912911424355248, -3.927832388331683e-05,
              -6.451689215655431e-06, -1.0597268320104654e-06, -1.7406618963571648e-07,
              -2.859136662305254e-08)
_TANH_ODD = (0.13333333333333333, 0.021869488536155203, 0.003592128036572481,
             0.000590027440945586, 9.691537956929451e-05, 1.5918905069328964e-05,
             2.6147711512907546e-06, 4.294911078273806e-07, 7.054636946400968e-08)


@jit
def _horner(c, z):
    s = c[len(c) - 1]
    for i in range(len(c) - 2, -1, -1):
        s = s * z + c[i]
    return s


@jit(inline="always")
def tanh_and_slope(a):
    """``(tanh(a), dtanh(a))`` from one exp.

    tanh(|a|) = (1 - e) / (1 + e) with e = exp(-2|a|), the e of :func:`dtanh`, so the
    slope is bit for bit :func:`dtanh`.  Where 1 - e would cancel (|a| < 0.55) tanh
    comes from its Taylor series instead; both are computed and one selected, so that
    the function has no branch.  Within 2 ulp of tanh in float64 (1.5 measured against
    a long-double tanh); float32 arguments compute in float64 and round once.  NaN
    stays NaN; +-inf give +-1.
    """
    x = abs(np.float64(a))
    e = exp(-2.0 * x)
    d = 1.0 + e
    y = x * x
    z = y * y
    small = x + x * (y * (_horner(_TANH_EVEN, z) + y * _horner(_TANH_ODD, z)))
    large = (1.0 - e) / d
    t = small if x < _SMALL else large
    return (-t if a < 0 else t), 4.0 * e / (d * d)
