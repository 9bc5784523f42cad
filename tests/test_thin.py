"""lenum.thin: products of a matrix by a thin basis, against an exact oracle.

The oracle is the product in long double (80-bit where the platform has it) of the
same float32/float64 entries; the kernel's error must be that of a sum of p products
in the working precision, whatever the shapes, the row slices or the fallback to the
BLAS for other widths.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from lenum.thin import MAX_COLS, _thin_product, thin_dot, thin_pays


def _oracle(A, X):
    return A.astype(np.longdouble) @ X.astype(np.longdouble)


def _bound(A, X):
    # |fl(A X) - A X| <= p u |A| |X| for a sum of p products (any order, FMA or not)
    u = np.finfo(A.dtype).eps
    p = A.shape[1]
    return (p + 1) * u * (np.abs(A).astype(np.longdouble) @ np.abs(X).astype(np.longdouble))


@njit(cache=False)
def _rows_of(A, X, Y, r0, s0):
    # the kernels' call pattern: row slices of larger C-contiguous arrays
    thin_dot(A, X[r0:r0 + A.shape[1]], Y[s0:s0 + A.shape[0]])


@njit(cache=False)
def _kernel(A, X, Y):
    _thin_product(A, X, Y)


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 70), p=st.integers(1, 70), k=st.integers(1, 40),
       dtype=st.sampled_from([np.float64, np.float32]), seed=st.integers(0, 2 ** 32 - 1),
       r0=st.integers(0, 3), s0=st.integers(0, 3))
def test_thin_dot_matches_the_exact_product(m, p, k, dtype, seed, r0, s0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, p)).astype(dtype)
    X = np.zeros((p + r0 + 2, k), dtype)
    X[r0:r0 + p] = rng.standard_normal((p, k))
    Y = np.full((m + s0 + 2, k), np.nan, dtype)
    _rows_of(A, X, Y, r0, s0)
    got = Y[s0:s0 + m]
    err = np.abs(got.astype(np.longdouble) - _oracle(A, X[r0:r0 + p]))
    assert np.all(err <= _bound(A, X[r0:r0 + p]))
    # nothing outside the target rows is written
    assert np.all(np.isnan(Y[:s0])) and np.all(np.isnan(Y[s0 + m:]))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("k", [8, 16, 24, 32])
def test_kernel_itself_on_every_tile_shape(dtype, k):
    # rows not a multiple of any tile (2-16 rows, lenum.thin._ROWS), one vector-column
    # left over at k = 8, 24
    rng = np.random.default_rng(k)
    for m in (1, 2, 3, 5, 7, 9, 13, 17, 33, 50):
        A = rng.standard_normal((m, 37)).astype(dtype)
        X = rng.standard_normal((37, k)).astype(dtype)
        Y = np.empty((m, k), dtype)
        _kernel(A, X, Y)
        err = np.abs(Y.astype(np.longdouble) - _oracle(A, X))
        assert np.all(err <= _bound(A, X))


def test_thin_pays_only_for_whole_vectors_up_to_max_cols():
    assert [k for k in range(1, 65) if thin_pays(k)] == list(range(8, MAX_COLS + 1, 8))


def test_special_values_propagate():
    # a NaN or Inf in A or X reaches exactly the outputs it feeds, as in the BLAS
    A = np.ones((4, 5))
    X = np.ones((5, 16))
    A[1, 2] = np.nan
    X[3, 7] = np.inf
    Y = np.empty((4, 16))
    thin_dot(A, X, Y)
    assert np.all(np.isnan(Y[1]))
    others = np.delete(Y, 1, axis=0)
    assert np.all(np.isinf(others[:, 7])) and np.all(np.isfinite(np.delete(others, 7, 1)))


def test_empty_inner_dimension_gives_zeros():
    Y = np.full((3, 16), np.nan)
    thin_dot(np.empty((3, 0)), np.empty((0, 16)), Y)
    assert np.all(Y == 0.0)
