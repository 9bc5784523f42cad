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

from lenum.thin import (
    MAX_COLS,
    _thin_product,
    gated_dot,
    gated_pack,
    gated_pays,
    gated_rows,
    lstm_gated_dot,
    thin_dot,
    thin_pays,
)


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


_GATES = np.array([1, 0, 2])  # the GRU's order: W_hz, W_hr, W_hn


def _formed(W, C, D):
    # the gated block as the cells form it, entry by entry in the working precision
    n = W.shape[1]
    A = C[0][:, None] * W[n:2 * n] + C[1][:, None] * W[:n] + C[2][:, None] * W[2 * n:]
    A[np.arange(n), np.arange(n)] += D
    return A


@njit(cache=False)
def _gated_rows_of(P, C, D, X, Y, r0, s0):
    # the GRU layer's call pattern: row slices of the basis and the tangent
    n = P.shape[1]
    gated_dot(P, C, D, X[r0:r0 + n], Y[s0:s0 + n])


@settings(max_examples=40, deadline=None)
@given(tiles=st.integers(1, 6), k=st.sampled_from([8, 16, 24, 32]),
       dtype=st.sampled_from([np.float64, np.float32]), seed=st.integers(0, 2 ** 32 - 1),
       r0=st.integers(0, 3), s0=st.integers(0, 3))
def test_gated_dot_is_the_formed_block_times_x(tiles, k, dtype, seed, r0, s0):
    """gated_dot equals thin_dot of the block formed in memory, to the bit (same
    rounding of each entry, same order of each sum), within the exact product's
    bound, and writes only its rows."""
    rng = np.random.default_rng(seed)
    n = tiles * gated_rows(np.empty(1, dtype))
    W = rng.standard_normal((3 * n, n)).astype(dtype)
    C = rng.standard_normal((3, n)).astype(dtype)
    D = rng.standard_normal(n).astype(dtype)
    P = np.empty((n // gated_rows(W), n, 3, gated_rows(W)), dtype)
    gated_pack(W, _GATES, P)
    X = np.zeros((n + r0 + 2, k), dtype)
    X[r0:r0 + n] = rng.standard_normal((n, k))
    Y = np.full((n + s0 + 2, k), np.nan, dtype)
    _gated_rows_of(P, C, D, X, Y, r0, s0)
    got = Y[s0:s0 + n]
    A = _formed(W, C, D)
    want = np.empty((n, k), dtype)
    thin_dot(A, X[r0:r0 + n], want)
    np.testing.assert_array_equal(got, want)
    err = np.abs(got.astype(np.longdouble) - _oracle(A, X[r0:r0 + n]))
    assert np.all(err <= _bound(A, X[r0:r0 + n]))
    assert np.all(np.isnan(Y[:s0])) and np.all(np.isnan(Y[s0 + n:]))


def test_gated_pack_layout():
    # P[t, j, g, v] = W_g[t V + v, j], W_g the block order[g] of W
    V = gated_rows(np.empty(1))
    n = 2 * V
    W = np.arange(3 * n * n, dtype=np.float64).reshape(3 * n, n)
    P = np.empty((2, n, 3, V))
    gated_pack(W, _GATES, P)
    for t, j, g, v in [(0, 0, 0, 0), (1, 3, 2, V - 1), (0, n - 1, 1, 2), (1, 0, 0, 1)]:
        assert P[t, j, g, v] == W[_GATES[g] * n + t * V + v, j]


def test_gated_pays_for_whole_tiles_and_thin_x():
    V64, V32 = gated_rows(np.empty(1)), gated_rows(np.empty(1, np.float32))
    assert V64 in (4, 8) and V32 == 2 * V64
    one = np.empty(1)
    assert gated_pays(4 * V64, 16, one) and gated_pays(V64, 8, one)
    assert not gated_pays(4 * V64 + 1, 16, one)  # rows not whole tiles
    assert not gated_pays(4 * V64, 12, one) and not gated_pays(4 * V64, 40, one)
    assert not gated_pays(V64, 16, np.empty(1, np.float32))


@njit(cache=False)
def _lstm_rows_of(P, C, D, X, Y, r0, s0):
    n = P.shape[1]
    lstm_gated_dot(P, C, D, X[r0:r0 + n], Y[s0:s0 + 2 * n])


@settings(max_examples=30, deadline=None)
@given(tiles=st.integers(1, 5), k=st.sampled_from([8, 16, 24, 32]),
       dtype=st.sampled_from([np.float64, np.float32]), seed=st.integers(0, 2 ** 32 - 1),
       r0=st.integers(0, 3), s0=st.integers(0, 3))
def test_lstm_gated_dot_is_the_formed_block_times_x(tiles, k, dtype, seed, r0, s0):
    """lstm_gated_dot equals thin_dot of the h and c rows that lenum.cells.lstm forms,
    to the bit, and writes only its 2 n rows."""
    from lenum.cells.lstm import _lstm_block

    rng = np.random.default_rng(seed)
    n = tiles * gated_rows(np.empty(1, dtype))
    W = rng.standard_normal((4 * n, n)).astype(dtype)
    C = rng.standard_normal((4, n)).astype(dtype)  # the gates i, f, g, o
    D = rng.standard_normal(n).astype(dtype)
    V = gated_rows(W)
    P = np.empty((n // V, n, 4, V), dtype)
    gated_pack(W, np.arange(4), P)
    X = np.zeros((n + r0 + 2, k), dtype)
    X[r0:r0 + n] = rng.standard_normal((n, k))
    Y = np.full((2 * n + s0 + 2, k), np.nan, dtype)
    _lstm_rows_of(P, C, D, X, Y, r0, s0)
    A = np.empty((2 * n, n), dtype)
    for i in range(n):
        _lstm_block(W, n, C[0, i], C[1, i], C[2, i], C[3, i], D[i], A, i)
    want = np.empty((2 * n, k), dtype)
    thin_dot(A, X[r0:r0 + n], want)
    np.testing.assert_array_equal(Y[s0:s0 + 2 * n], want)
    assert np.all(np.isnan(Y[:s0])) and np.all(np.isnan(Y[s0 + 2 * n:]))
    # and the block is the LSTM's: dc'/dh = C_f W_f + C_i W_i + C_g W_g, dh'/dh = ...
    dc = C[1][:, None] * W[n:2 * n] + C[0][:, None] * W[:n] + C[2][:, None] * W[2 * n:3 * n]
    dh = C[3][:, None] * W[3 * n:] + D[:, None] * dc
    np.testing.assert_array_equal(A, np.vstack([dh, dc]))
