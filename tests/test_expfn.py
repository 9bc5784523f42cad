"""lenum.cells.expfn.exp, and the activations built on it, against long-double oracles.

The kernels' exp is lenum's own arithmetic (so that loops of gate functions vectorise),
so its accuracy is checked here over the whole float64 range, in scalar calls and
inside loops, where LLVM turns it into vector code.
"""

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lenum.cells.activations import sigmoid_and_slope, tanh_and_slope
from lenum.cells.expfn import exp

LONG = np.finfo(np.longdouble).eps < 1e-17  # an 80-bit long double: a real oracle
TINY = np.float64(5e-324)  # the smallest subnormal
_map = numba.njit(error_model="numpy")


@_map
def _exp_loop(x, out):
    for i in range(x.shape[0]):
        out[i] = exp(x[i])


@_map
def _tanh_loop(x, t, s):
    for i in range(x.shape[0]):
        t[i], s[i] = tanh_and_slope(x[i])


@_map
def _sigmoid_loop(x, g, s):
    for i in range(x.shape[0]):
        g[i], s[i] = sigmoid_and_slope(x[i])


def _ulps(got, ref):
    """|got - ref| in units of the last place of ref rounded to float64."""
    ref = np.asarray(ref, dtype=np.longdouble)
    unit = np.spacing(np.abs(ref).astype(np.float64)).astype(np.longdouble)
    return np.abs(np.asarray(got, dtype=np.longdouble) - ref) / unit


def _exp_ref(x):
    with np.errstate(over="ignore", under="ignore"):
        return np.exp(np.asarray(x, dtype=np.longdouble))


def _check_exp(x, got):
    ref = _exp_ref(x)
    normal = (ref >= np.finfo(np.float64).tiny) & (ref <= np.finfo(np.float64).max)
    slack = 0.0 if LONG else 0.51  # where long double is double, libm is the oracle
    assert _ulps(got[normal], ref[normal]).max(initial=0) <= 1.0 + slack
    sub = ref < np.finfo(np.float64).tiny
    # results below the normals: one rounding, so within one subnormal step
    assert np.all(np.abs(got[sub].astype(np.longdouble) - ref[sub]) <= TINY)
    over = ref > np.finfo(np.float64).max
    assert np.all(np.isinf(got[over]) & (got[over] > 0))


@pytest.mark.parametrize("lo, hi", [(-1.0, 1.0), (-40.0, 0.0), (-708.0, 709.0),
                                    (-760.0, -700.0), (700.0, 720.0)])
def test_exp_within_one_ulp_in_loops(lo, hi):
    """A loop of exp runs as vector code: every element within 1 ulp of a long-double
    exp, subnormal results within one step, overflow to +inf."""
    x = np.random.default_rng(0).uniform(lo, hi, 100_003)  # odd: the loop's scalar tail
    out = np.empty_like(x)
    _exp_loop(x, out)
    _check_exp(x, out)
    # the vector loop and a scalar call give the same bits (no fast-math anywhere)
    for i in (0, 1, 7, 50_000, x.size - 1):
        assert out[i] == exp(x[i]) or (np.isnan(out[i]) and np.isnan(exp(x[i])))


def test_exp_special_values():
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-300, -1e-300,
                  709.782712893383, 709.782712893385, -745.1332191019411,
                  -745.1332191019413, -1e4, 1e4])
    out = np.empty_like(x)
    _exp_loop(x, out)
    assert np.isnan(out[0])
    assert out[1] == np.inf and out[2] == 0.0
    assert out[3] == 1.0 and out[4] == 1.0 and out[5] == 1.0 and out[6] == 1.0
    assert np.isfinite(out[7]) and out[8] == np.inf
    assert out[9] == TINY and out[10] == 0.0
    assert out[11] == 0.0 and out[12] == np.inf


@settings(max_examples=300)
@given(x=st.one_of(st.floats(), st.floats(-800, 800), st.floats(-1e-3, 1e-3)))
def test_exp_any_float(x):
    got = np.array([exp(x)])
    if np.isnan(x):
        assert np.isnan(got[0])
        return
    _check_exp(np.array([x]), got)
    # float32 arguments compute in float64
    x32 = np.float32(x) if abs(x) < 3e38 else np.float32(np.sign(x) * np.inf)
    assert exp(x32) == exp(np.float64(x32)) or np.isnan(x32)


def test_tanh_and_slope_in_loops():
    """tanh within 2 ulp of a long-double tanh (both of its forms, and across the
    switch at 0.55), the slope within 4 ulp of 4 e / (1 + e)^2 (four roundings after
    exp's; the same formula on the C library's exp reaches 3.9), over a dense sweep,
    run as vector code."""
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(-3, 3, 100_001), np.linspace(0.549, 0.551, 2001),
                        10.0 ** rng.uniform(-300, 0, 20_000), rng.uniform(-400, 400, 5000)])
    t, s = np.empty_like(x), np.empty_like(x)
    _tanh_loop(x, t, s)
    xl = x.astype(np.longdouble)
    slack = 0.0 if LONG else 1.0
    assert _ulps(t, np.tanh(xl)).max() <= 2.0 + slack
    e = np.exp(-2 * np.abs(xl))
    sref = 4 * e / (1 + e) ** 2
    ok = sref >= np.finfo(np.float64).tiny
    assert _ulps(s[ok], sref[ok]).max() <= 4.0 + slack
    assert np.all(s[(x > 40) & (x < 370)] > 0)  # sech^2 stays a number, never 0, up to 370
    assert np.array_equal(t, -_tanh_loop_copy(-x)[0])


def _tanh_loop_copy(x):
    t, s = np.empty_like(x), np.empty_like(x)
    _tanh_loop(x, t, s)
    return t, s


def test_sigmoid_and_slope_in_loops():
    """sigmoid within 2.5 ulp, its slope within 4 ulp of long-double oracles (exp's
    error and two or four roundings), at both signs, saturated but never 0."""
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.uniform(-40, 40, 100_001), [0.0, -0.0, 700.0, -700.0]])
    g, s = np.empty_like(x), np.empty_like(x)
    _sigmoid_loop(x, g, s)
    xl = x.astype(np.longdouble)
    slack = 0.0 if LONG else 1.0
    gref = 1 / (1 + np.exp(-xl))
    assert _ulps(g, gref).max() <= 2.5 + slack
    e = np.exp(-np.abs(xl))
    sref = e / (1 + e) ** 2
    assert _ulps(s, sref).max() <= 4.0 + slack
    assert g[-2] == 1.0 and g[-1] > 0.0 and s[-1] > 0.0
