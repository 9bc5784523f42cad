"""Activations and their derivatives, written so that derivatives do not underflow.

``1 - tanh(a)**2`` is exactly 0 in float64 once |a| > 19 although the true value is
about 4 exp(-2|a|); a Lyapunov exponent is a log of such factors, so the difference
between 0 (-inf) and 1e-17 (-39) matters.  The forms below use exp(-|a|), which stays
representable down to the subnormals.
"""

import numpy as np
from numba import types
from numba.extending import overload

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


def _expm1_below(a):
    """|a| under which :func:`tanh_and_slope` takes tanh from expm1 (dtype-dependent)."""
    return 0.55


@overload(_expm1_below)
def _expm1_below_typed(a):
    # float32 results are rounded from float64 arithmetic: (1 - e) / (1 + e) keeps a
    # relative error under 6e-13 down to |a| = 1e-4, far below float32's 6e-8
    if isinstance(a, types.Float) and a.bitwidth == 32:
        return lambda a: 1e-4
    return lambda a: 0.55


@jit
def tanh_and_slope(a):
    """``(tanh(a), dtanh(a))`` from one exp for most arguments.

    tanh(|a|) = (1 - e) / (1 + e) with e = exp(-2|a|), the e of :func:`dtanh`, so the
    slope is bit for bit :func:`dtanh` and the pair costs one exp where np.tanh and
    dtanh cost two transcendentals.  The tanh of float32 was the slowest of all the
    cells' elementwise functions (27 ns against 3 ns for expf).  Where 1 - e would
    cancel (|a| < 0.55 in float64, < 1e-4 in float32) tanh comes from expm1 instead,
    -m / (2 + m) with m = expm1(-2|a|): both forms are within 2 ulp of tanh (float64;
    float32 rounds the float64 value).  NaN stays NaN; +-inf give +-1.
    """
    x = abs(np.float64(a))
    e = np.exp(-2.0 * x)
    d = 1.0 + e
    if x < _expm1_below(a):
        m = np.expm1(-2.0 * x)
        t = -m / (2.0 + m)
    else:
        t = (1.0 - e) / d
    return (-t if a < 0 else t), 4.0 * e / (d * d)


def like(x, arr):
    """``x`` rounded to the dtype of array ``arr`` (in compiled code only)."""
    return arr.dtype.type(x)


@overload(like)
def _like_typed(x, arr):
    # a cell's per-unit coefficients come out of float64 arithmetic (the literals
    # promote float32); rounded once, the row loops they scale run in the array's
    # dtype: float32 GRU Jacobian rows formed 1.2-1.3x faster than in mixed precision
    if arr.dtype == types.float32:
        return lambda x, arr: np.float32(x)
    return lambda x, arr: np.float64(x)
