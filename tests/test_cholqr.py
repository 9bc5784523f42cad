"""lenum.cholqr (CholeskyQR2 of interleaved blocks) against LAPACK and its bound.

Where it answers, its Q and log|R_jj| must be LAPACK's (signs fixed so that diag(R) >=
0) to round-off; where a lane's condition number may exceed the bound of the second
pass, or its Gram matrix is not positive definite, it must leave the block as it was,
so that the Householder QR (lenum.lanes) takes over.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lenum import cholqr, lanes
from lenum._jit import jit

L = lanes.LANES


@jit
def _gram_then_multiply(A, C, W, rows):
    # the intrinsics are callable from compiled code only
    n = A.shape[1]
    for r0 in range(0, n, rows):
        cholqr._gram(A, r0, min(rows, n - r0), C, r0 == 0)
    for r0 in range(0, n, rows):
        cholqr._tri_mul(A, r0, min(rows, n - r0), W, False)


@jit
def _make_chol(n, k, like):
    return cholqr.make_chol(n, k, like)


@jit
def _factor(C, R, W, out):
    cholqr._factor(C, R, W, out)


def _blocks(rng, n, k, conds, dtype=np.float64):
    """LANES blocks n x k with the given 2-norm condition numbers (U diag V^T with
    singular values spread log-evenly), their rows scaled by one random factor."""
    out = np.empty((L, n, k))
    for ln, c in enumerate(conds):
        U, _ = np.linalg.qr(rng.standard_normal((n, k)))
        V, _ = np.linalg.qr(rng.standard_normal((k, k)))
        s = np.logspace(0, -np.log10(c), k) if k > 1 else np.ones(1)
        out[ln] = (U * s) @ V.T
    return (out * rng.uniform(0.5, 2.0)).astype(dtype)


def _interleaved(blocks):
    L_, n, k = blocks.shape
    A = lanes.lane_empty((k, n, L), blocks.dtype)
    A[:] = np.transpose(blocks, (2, 1, 0))
    return A


def _workspace(k, dtype):
    return (lanes.lane_empty((k, k, L), dtype), lanes.lane_empty((k, k, L), dtype),
            lanes.lane_empty((k, k, L), dtype), lanes.lane_empty((2, L), dtype),
            np.zeros(1, dtype=np.int64))


def _lapack(block):
    Q, R = np.linalg.qr(block.astype(np.float64))
    s = np.where(np.diag(R) < 0, -1.0, 1.0)
    return Q * s, np.log(np.abs(np.diag(R)))


def _check_against_lapack(blocks, A, logs, tol):
    for ln in range(L):
        Q, lg = _lapack(blocks[ln])
        got = A[:, :, ln].T
        np.testing.assert_allclose(got, Q, rtol=0, atol=tol)
        np.testing.assert_allclose(logs[:, ln], lg, rtol=0, atol=tol)
        k = got.shape[1]
        np.testing.assert_allclose(got.T @ got, np.eye(k), rtol=0, atol=tol)


@settings(max_examples=25, deadline=None)
@given(k=st.sampled_from([4, 8, 12, 16, 20, 28, 32]), extra=st.integers(0, 150),
       log_cond=st.floats(0.0, 4.0), seed=st.integers(0, 2 ** 32 - 1))
def test_matches_lapack_within_the_bound(k, extra, log_cond, seed):
    """Blocks of 4-32 columns and k to k + 150 rows (chunks of rows cut anywhere),
    condition numbers up to 1e4 in one lane, the others well conditioned."""
    rng = np.random.default_rng(seed)
    n = k + extra
    conds = [10.0 ** log_cond] + list(rng.uniform(1, 10, L - 1))
    blocks = _blocks(rng, n, k, conds)
    A = _interleaved(blocks)
    logs = np.full((k, L), 7.0)
    cw = _workspace(k, np.float64)
    assert cholqr.cholesky_qr2(A, logs, cw)
    assert cw[4][0] == 0
    # Q's columns are determined to about eps * cond (their sensitivity), R_jj to eps
    _check_against_lapack(blocks, A, logs, 1e-13 * 10.0 ** log_cond)


@pytest.mark.parametrize("n,k", [(48, 16), (256, 16), (130, 32)])
def test_gram_and_triangular_product_against_numpy(n, k):
    """The two passes alone: C = A^T A on and above the diagonal tiles, and A W in
    place for an upper triangular W (rows in several chunks, the last one short)."""
    rng = np.random.default_rng(n + k)
    blocks = rng.standard_normal((L, n, k))
    A = _interleaved(blocks)
    C = lanes.lane_empty((k, k, L), np.float64)
    C[:] = np.nan
    W = np.triu(rng.standard_normal((L, k, k)))
    Wl = lanes.lane_empty((k, k, L), np.float64)
    Wl[:] = np.transpose(W, (1, 2, 0))
    _gram_then_multiply(A, C, Wl, 24)
    upper = np.add.outer(np.arange(k) // cholqr.TILE, -(np.arange(k) // cholqr.TILE)) <= 0
    for ln in range(L):
        G = blocks[ln].T @ blocks[ln]
        np.testing.assert_allclose(C[:, :, ln][upper], G[upper], rtol=1e-13, atol=1e-12)
        np.testing.assert_allclose(A[:, :, ln].T, blocks[ln] @ W[ln], rtol=1e-13, atol=1e-12)


def test_factor_against_numpy():
    """Per lane: R with R^T R = C (np.linalg.cholesky's transpose), W = R^{-1}, and
    the product of their squared Frobenius norms; a lane with a negative pivot is
    flagged."""
    rng = np.random.default_rng(3)
    k = 12
    M = rng.standard_normal((L, 40, k))
    Cs = np.einsum("lri,rlj->lij", M, np.transpose(M, (1, 0, 2)))
    Cs[5, 4, 4] = -1.0  # not positive definite
    C = lanes.lane_empty((k, k, L), np.float64)
    C[:] = np.transpose(Cs, (1, 2, 0))
    R, W, out = (lanes.lane_empty(s, np.float64) for s in ((k, k, L), (k, k, L), (2, L)))
    _factor(C, R, W, out)
    for ln in range(L):
        if ln == 5:
            assert out[0, ln] == 0.0
            continue
        assert out[0, ln] == 1.0
        Rn = np.linalg.cholesky(Cs[ln]).T
        np.testing.assert_allclose(R[:, :, ln], Rn, rtol=0, atol=1e-12 * np.abs(Rn).max())
        Wn = np.linalg.inv(Rn)
        np.testing.assert_allclose(W[:, :, ln], Wn, rtol=0, atol=1e-12 * np.abs(Wn).max())
        expect = (Rn ** 2).sum() * (Wn ** 2).sum()
        np.testing.assert_allclose(out[1, ln], expect, rtol=1e-12)


@pytest.mark.parametrize("bad", ["ill", "zero column", "nan", "inf", "tiny", "huge"])
def test_hands_back_what_it_cannot_certify(bad):
    """One lane ill-conditioned (1e9, beyond the bound at 64 x 16), with a zero column,
    a NaN or an Inf, or scaled so far (1e-152, 1e152) that its squares leave the range
    where they are trusted (their sums near 1e-302 and 1e306):
    False, A untouched to the bit, ``fails`` counted; interleaved_qr then gives exactly
    lanes_qr's answer."""
    rng = np.random.default_rng(9)
    n, k = 64, 16
    conds = [3.0] * L
    if bad == "ill":
        conds[2] = 1e9
    blocks = _blocks(rng, n, k, conds)
    if bad == "zero column":
        blocks[2, :, 5] = 0.0
    elif bad == "nan":
        blocks[2, 7, 3] = np.nan
    elif bad == "inf":
        blocks[2, 7, 3] = np.inf
    elif bad in ("tiny", "huge"):
        blocks[2] *= 1e-152 if bad == "tiny" else 1e152
    A = _interleaved(blocks)
    before = A.copy()
    logs = np.zeros((k, L))
    cw = _workspace(k, np.float64)
    assert not cholqr.cholesky_qr2(A, logs, cw)
    assert cw[4][0] == 1
    np.testing.assert_array_equal(A, before)

    A2, lg2, tau, ss, wy = lanes.make_lanes(n, k, A)
    A2[:] = before
    lanes.lanes_qr(A2, lg2, tau, ss, wy)
    A3, lg3, tau, ss, wy = lanes.make_lanes(n, k, A)
    A3[:] = before
    cholqr.interleaved_qr(A3, lg3, tau, ss, wy, cw)
    np.testing.assert_array_equal(A3, A2)
    np.testing.assert_array_equal(lg3, lg2)


def test_the_bound_is_met_where_it_answers():
    """Condition numbers from 1e3 to 1e8 at 256 x 16: where it answers, Q is
    orthonormal to 1e-14 (the second pass's guarantee); past the bound (about 1.6e5
    here, through ||R||_F ||R^-1||_F, which can exceed cond by up to k) it declines."""
    rng = np.random.default_rng(12)
    n, k = 256, 16
    answered = []
    for c in 10.0 ** np.arange(3.0, 8.5, 0.5):
        blocks = _blocks(rng, n, k, [c] * L)
        A = _interleaved(blocks)
        logs = np.zeros((k, L))
        ok = cholqr.cholesky_qr2(A, logs, _workspace(k, np.float64))
        answered.append(ok)
        if ok:
            for ln in range(L):
                Q = A[:, :, ln].T
                assert np.abs(Q.T @ Q - np.eye(k)).max() < 1e-14
                _, lg = _lapack(blocks[ln])
                # both R's to about eps * cond relative, LAPACK's too
                np.testing.assert_allclose(logs[:, ln], lg, rtol=0, atol=1e-15 * c)
    assert answered[:2] == [True, True] and not any(answered[-6:])


def test_interleaved_qr_gives_up_after_max_fails():
    """After MAX_FAILS groups handed back in one workspace, the Householder QR runs
    without a try (a well-conditioned group then also gets lanes_qr's bits)."""
    rng = np.random.default_rng(4)
    n, k = 64, 8
    cw = _workspace(k, np.float64)
    cw[4][0] = cholqr.MAX_FAILS
    blocks = _blocks(rng, n, k, [2.0] * L)
    A = _interleaved(blocks)
    A2, lg2, tau, ss, wy = lanes.make_lanes(n, k, A)
    A2[:] = A
    lanes.lanes_qr(A2, lg2, tau, ss, wy)
    lg = np.zeros((k, L))
    cholqr.interleaved_qr(A, lg, tau, ss, wy, cw)
    np.testing.assert_array_equal(A, A2)
    cw[4][0] = 0
    A[:] = _interleaved(blocks)
    cholqr.interleaved_qr(A, lg, tau, ss, wy, cw)
    assert not np.array_equal(A, A2)  # CholeskyQR2 ran: the same Q to round-off only
    np.testing.assert_allclose(A, A2, rtol=0, atol=1e-14)


@pytest.mark.parametrize("n,k,dtype,expect", [
    (256, 16, np.float64, True), (48, 16, np.float64, True), (96, 32, np.float64, True),
    (64, 32, np.float64, False), (40, 8, np.float64, False), (256, 64, np.float64, False),
    (256, 18, np.float64, False), (256, 16, np.float32, False)])
def test_where_it_is_tried(n, k, dtype, expect):
    like = np.empty(0, dtype)
    assert cholqr.chol_pays(n, k, like) == (expect and lanes.AVX512)
    cw = _make_chol(n, k, like)
    if dtype == np.float32 or not lanes.AVX512:
        assert cw is None  # not even compiled
    else:
        assert cw[0].shape == ((k, k, L) if expect else (0, 0, L))
