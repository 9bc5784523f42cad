"""Activation derivatives as CUDA device functions, in underflow-safe forms.

The same formulas as :mod:`lenum.cells.activations`: ``1 - tanh(a)**2`` is exactly 0
in float64 once |a| > 19, so the derivatives are written with ``exp(-|a|)``, which
stays representable down to the subnormals.
"""

import math

from numba import cuda


@cuda.jit(device=True)
def gpu_sigmoid(a):
    """Logistic function without overflow for large |a|."""
    if a >= 0:
        return 1.0 / (1.0 + math.exp(-a))
    e = math.exp(a)
    return e / (1.0 + e)


@cuda.jit(device=True)
def gpu_dsigmoid(a):
    """sigma'(a) = e^{-|a|} / (1 + e^{-|a|})^2."""
    e = math.exp(-abs(a))
    d = 1.0 + e
    return e / (d * d)


@cuda.jit(device=True)
def gpu_dtanh(a):
    """sech^2(a) = 4 e^{-2|a|} / (1 + e^{-2|a|})^2."""
    e = math.exp(-2.0 * abs(a))
    d = 1.0 + e
    return 4.0 * e / (d * d)
