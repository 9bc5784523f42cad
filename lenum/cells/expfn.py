"""exp in plain arithmetic, so that the loops calling it become vector code.

numba compiles ``np.exp`` to a call into the C library, one element at a time, and a
loop with a call in it is never vectorised: the gates of a GRU or LSTM step cost
40-50 ns per unit, most of it in those calls.  The function here takes the classic
route: x = k ln2 + r with |r| <= ln2 / 2 (ln2 split in two so that k ln2 is exact), a
rational form in r (a degree-5 polynomial in r^2 and one division, the form of the
freely distributed fdlibm), and the scaling by 2^k written on the exponent bits.  Each
of these is an instruction LLVM has in vector form, so a loop of them runs four
float64 lanes at a time.

Accuracy (tests/test_expfn.py): within 1 ulp of e^x over the whole float64 range
(0.96 ulp measured against a long-double exp, where the C library's is within 0.51),
subnormal results, overflow, +-inf and NaN included.  Computed in float64 whatever
the argument's type.
"""

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .._jit import jit

_LOG2E = 1.4426950408889634
# ln2 = _LN2_HI + _LN2_LO with the low bits of _LN2_HI zero: k * _LN2_HI is exact for
# |k| < 2^20
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
# R(r^2) of exp(r) = 1 + 2r / (R - r) on |r| <= ln2 / 2, error below 2^-59
_P1 = 1.66666666666666019037e-01
_P2 = -2.77777777770155933842e-03
_P3 = 6.61375632143793436117e-05
_P4 = -1.65339022054652515390e-06
_P5 = 4.13813679705723846039e-08
# exp(x) rounds to 0 below this, overflows above the other
_UNDER = -745.1332191019412
_OVER = 709.782712893384


@intrinsic
def _float_from_bits(typingctx, bits):
    """The float64 whose bit pattern is the int64 ``bits``."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        v = context.cast(builder, args[0], signature.args[0], types.int64)
        return builder.bitcast(v, ir.DoubleType())

    return types.float64(bits), codegen


@jit
def _pow2(k):
    # 2^k for an integer -1022 <= k <= 1023, built from its exponent bits
    return _float_from_bits((k + 1023) << 52)


@jit
def _rational(r):
    # c of fdlibm's exp: exp(r) = 1 + r + r c / (2 - c)
    t = r * r
    return r - t * (_P1 + t * (_P2 + t * (_P3 + t * (_P4 + t * _P5))))


@jit
def exp(x):
    """e^x in float64, within 1 ulp, with no call into the C library.

    Branch-free (selects only), so that a loop calling it can vectorise.
    """
    x = np.float64(x)
    # clamped so that k stays an exponent 2^k can be built from (NaN clamps too; its
    # own result is chosen at the end)
    xc = x if x > -745.5 else -745.5
    xc = xc if xc < 709.8 else 709.8
    kf = np.floor(xc * _LOG2E + 0.5)
    r = (xc - kf * _LN2_HI) - kf * _LN2_LO
    c = _rational(r)
    y = 1.0 - ((r * c) / (c - 2.0) - r)
    # 2^k in two factors, each a normal number: a result in the subnormals is rounded
    # once, by the second product
    # through int32: AVX2 converts four float64 to int32 in one instruction, to int64
    # only one at a time (|k| <= 1076 here)
    k = np.int64(np.int32(kf))
    k1 = k >> 1
    y = (y * _pow2(k1)) * _pow2(k - k1)
    y = 0.0 if x < _UNDER else y
    y = np.inf if x > _OVER else y
    return x if x != x else y
