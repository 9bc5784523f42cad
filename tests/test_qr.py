"""The QR kernels of lenum.qr against LAPACK (np.linalg.qr, signs fixed) and the contract.

Contract of every variant: Q (n x k) orthonormal, ``R = Q^T A`` upper triangular with
diag(R) >= 0 and ``Q R = A``, ``logs = log|R_ii|``; a zero column gives -inf (never
NaN); NaN or Inf input gives NaN logs without raising.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lenum import lanes, qr
from lenum._jit import jit


def lanes_one(A, Q, logs, work):
    """lenum.lanes.lanes_qr on one block (every lane holds a copy), in the common
    signature; the other lanes must come out the same."""
    n, k = A.shape
    L = lanes.LANES
    A3, lg, tau, ss, wy = lanes.make_lanes(n, k, A)
    lanes.gather(A[None], 1, A3)
    lanes.lanes_qr(A3, lg, tau, ss, wy)
    out = np.empty((L, n, k), dtype=A.dtype)
    lanes.scatter(A3, L, out, 0)
    Q[:] = out[0]
    logs[:] = lg[:, 0]
    np.testing.assert_array_equal(out, np.broadcast_to(out[0], out.shape))
    np.testing.assert_array_equal(lg, np.broadcast_to(lg[:, :1], lg.shape))


VARIANTS = {
    "plain": qr.householder_qr,
    "blocked": qr.blocked_qr,
    "lapack": qr.lapack_qr,
    "lq": qr.lq_qr,
    "geqrf": qr.geqrf_qr,
    "dispatch": qr.qr_logdiag,
    "lanes": lanes_one,
}
DTYPES = [np.float64, np.float32]
EPS = {np.float64: 1e-12, np.float32: 1e-5}


def run(variant, A):
    A0 = np.array(A)
    n, k = A0.shape
    Q = np.full((n, k), np.nan, dtype=A0.dtype)
    logs = np.full(k, 7.0)
    work = np.empty((qr.work_rows(n), k), dtype=A0.dtype)
    VARIANTS[variant](A0.copy(), Q, logs, work)
    return Q, logs


def lapack_reference(A):
    q, r = np.linalg.qr(np.asarray(A, dtype=np.float64))
    d = np.diag(r)
    sign = np.where(d < 0, -1.0, 1.0)
    with np.errstate(divide="ignore"):
        return q * sign, np.log(np.abs(d))


def check_contract(A, Q, logs, tol):
    """Orthonormal Q, upper triangular R = Q^T A with diag(R) = exp(logs) >= 0, QR = A."""
    A = np.asarray(A, dtype=np.float64)
    Q = Q.astype(np.float64)
    n, k = A.shape
    scale = max(np.abs(A).max(), np.finfo(float).tiny)
    assert not np.isnan(Q).any() and not np.isnan(logs).any()
    np.testing.assert_allclose(Q.T @ Q, np.eye(k), atol=tol * max(n, 10))
    R = Q.T @ A
    assert np.abs(np.tril(R, -1)).max(initial=0.0) <= tol * max(n, 10) * scale
    d = np.diag(R)
    assert (d >= -tol * max(n, 10) * scale).all()
    np.testing.assert_allclose(np.exp(logs), d, atol=tol * max(n, 10) * scale,
                               rtol=tol * max(n, 10))
    np.testing.assert_allclose(Q @ np.triu(R), A, atol=tol * max(n, 10) * scale)


# sizes covering one column, square, k < n, several panels of the blocked kernel
# (PANEL = 32) with a partial last one, and the dispatch threshold on both sides;
# from 128 rows lanes_qr applies its reflectors in pairs: (140, 37) has four panels of
# 8 reflectors and one of 5, so pairs in both directions and an odd one out; from 96
# rows panels with 16 or more columns after them go as one block (compact WY): the
# first two of (100, 37) and (140, 37), whose Gram matrices are computed again for Q
# (37 is no multiple of 8), and all but the last of (128, 128), whose are kept
SIZES = [(1, 1), (5, 1), (3, 3), (8, 8), (17, 5), (40, 40), (47, 47), (48, 48),
         (100, 37), (70, 70), (130, 16), (140, 37), (128, 128)]


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,k", SIZES)
def test_random_matches_lapack(variant, dtype, n, k):
    A = np.random.default_rng(n * 1000 + k).standard_normal((n, k)).astype(dtype)
    Q, logs = run(variant, A)
    q_ref, l_ref = lapack_reference(A)
    tol = EPS[dtype]
    np.testing.assert_allclose(logs, l_ref, atol=100 * tol * np.sqrt(n))
    np.testing.assert_allclose(Q, q_ref, atol=1e3 * tol * np.sqrt(n))
    check_contract(A, Q, logs, tol)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,k,zero", [(6, 4, 0), (6, 4, 3), (50, 50, 7), (80, 40, 39),
                                        (100, 60, 5)])
def test_zero_column_gives_minus_inf(variant, dtype, n, k, zero):
    A = np.random.default_rng(1).standard_normal((n, k)).astype(dtype)
    A[:, zero] = 0.0
    Q, logs = run(variant, A)
    assert logs[zero] == -np.inf
    others = np.delete(logs, zero)
    assert np.isfinite(others).all()
    # Q stays orthonormal and spans A
    finite = np.where(np.isfinite(logs), logs, 0.0)
    assert not np.isnan(Q).any()
    np.testing.assert_allclose(Q.T.astype(float) @ Q, np.eye(k), atol=EPS[dtype] * 100)
    R = Q.T.astype(float) @ A.astype(float)
    np.testing.assert_allclose(Q.astype(float) @ np.triu(R), A, atol=EPS[dtype] * 100 * n)
    np.testing.assert_allclose(np.delete(np.diag(R), zero), np.exp(np.delete(finite, zero)),
                               rtol=EPS[dtype] * 100 * n)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,k", [(6, 6), (60, 50)])
def test_all_zero_block(variant, dtype, n, k):
    Q, logs = run(variant, np.zeros((n, k), dtype=dtype))
    assert (logs == -np.inf).all()
    np.testing.assert_allclose(Q.T @ Q, np.eye(k), atol=EPS[dtype])


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,k", [(8, 5), (64, 64), (90, 40)])
def test_duplicate_columns_are_rank_deficient(variant, dtype, n, k):
    A = np.random.default_rng(2).standard_normal((n, k)).astype(dtype)
    A[:, 3] = A[:, 1]
    Q, logs = run(variant, A)
    assert not np.isnan(logs).any() and not np.isnan(Q).any()
    # R_33 is zero up to rounding: far below the other diagonal entries
    assert logs[3] < np.log(EPS[dtype]) + np.delete(logs, 3).min() + 5
    np.testing.assert_allclose(Q.T.astype(float) @ Q, np.eye(k), atol=EPS[dtype] * 100)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("n,k", [(10, 10), (64, 16), (100, 100)])
def test_tiny_scale_float32_does_not_underflow(variant, n, k):
    # 1e-30 is a normal float32, but its square is not: a naive norm returns 0 (-inf)
    A = np.random.default_rng(3).standard_normal((n, k))
    Q, logs = run(variant, (1e-30 * A).astype(np.float32))
    _, l_ref = lapack_reference(A)
    np.testing.assert_allclose(logs, l_ref + np.log(1e-30), atol=1e-3 * np.sqrt(n))
    np.testing.assert_allclose(Q.T @ Q, np.eye(k), atol=1e-4)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("n,k", [(12, 12), (80, 80), (120, 60)])
def test_graded_columns(variant, n, k):
    # columns scaled over 24 orders of magnitude, as a long product of Jacobians makes
    rng = np.random.default_rng(4)
    A = rng.standard_normal((n, k)) * np.logspace(0, -24, k)[None, :]
    Q, logs = run(variant, A)
    _, l_ref = lapack_reference(A)
    np.testing.assert_allclose(logs, l_ref, atol=1e-9 * n)
    np.testing.assert_allclose(Q.T @ Q, np.eye(k), atol=1e-12 * n)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("n,k,where", [(6, 6, (0, 0)), (6, 6, (5, 2)), (70, 60, (3, 50)),
                                         (100, 60, (90, 1))])
def test_non_finite_input_gives_nan(variant, dtype, bad, n, k, where):
    A = np.random.default_rng(5).standard_normal((n, k)).astype(dtype)
    A[where] = bad
    _, logs = run(variant, A)  # must not raise
    assert np.isnan(logs).any()


@given(
    n=st.integers(1, 80),
    frac=st.floats(0.0, 1.0),
    dtype=st.sampled_from(DTYPES),
    variant=st.sampled_from(list(VARIANTS)),
    seed=st.integers(0, 2**32 - 1),
    log_scale=st.floats(-20, 20),
)
def test_contract_hypothesis(n, frac, dtype, variant, seed, log_scale):
    k = max(1, round(frac * n))
    A = (np.random.default_rng(seed).standard_normal((n, k)) * 10.0 ** log_scale).astype(dtype)
    Q, logs = run(variant, A)
    check_contract(A, Q, logs, EPS[dtype] * 10)
    _, l_ref = lapack_reference(A)
    np.testing.assert_allclose(logs, l_ref, atol=EPS[dtype] * 1e3 * n)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,k", [(6, 6), (40, 16), (70, 70)])
def test_lq_falls_back_without_its_workspace(dtype, n, k):
    # a (2, k) workspace (older callers) or a non-contiguous block takes lapack_qr
    A = np.random.default_rng(6).standard_normal((n, k)).astype(dtype)
    q_ref, l_ref = lapack_reference(A)
    tol = EPS[dtype]
    for block, work in [(A.copy(), np.empty((2, k), dtype=dtype)),
                        (np.asfortranarray(A), np.empty((qr.WORK_ROWS, k), dtype=dtype))]:
        Q = np.full((n, k), np.nan, dtype=dtype)
        logs = np.full(k, 7.0)
        qr.lq_qr(block, Q, logs, work)
        np.testing.assert_allclose(logs, l_ref, atol=100 * tol * np.sqrt(n))
        np.testing.assert_allclose(Q, q_ref, atol=1e3 * tol * np.sqrt(n))


@pytest.mark.parametrize("dtype", DTYPES)
def test_lq_small_workspace(dtype):
    # three rows give LAPACK lwork = k, its minimum: the unblocked path, same result
    n, k = 150, 140
    A = np.random.default_rng(7).standard_normal((n, k)).astype(dtype)
    Q = np.empty((n, k), dtype=dtype)
    logs = np.empty(k)
    qr.lq_qr(A.copy(), Q, logs, np.empty((3, k), dtype=dtype))
    check_contract(A, Q, logs, EPS[dtype])


def test_lanes_group_fill_falls_with_block_size():
    # measured limits (benchmarks/RESULTS.md): the smaller the block, the more the
    # lanes win, the fewer real sequences a group needs
    fills = [lanes.min_fill(n) for n in (1, 8, 32, 33, 64, 65, 255, 1000)]
    assert all(1 <= f <= lanes.LANES for f in fills)
    assert fills == sorted(fills)
    assert lanes.MAX_COLS > 1 and qr.PANEL >= 8


def test_geqrf_refuses_a_short_workspace():
    # no silent fallback: a (2, k) workspace is a caller's bug and must say so
    A = np.random.default_rng(0).standard_normal((24, 4))
    with pytest.raises(ValueError, match="work_rows"):
        qr.geqrf_qr(A, np.empty_like(A), np.empty(4), np.empty((2, 4)))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 48), steps=st.integers(1, 4), dtype=st.sampled_from(DTYPES),
       seed=st.integers(0, 2**32 - 1), log_scale=st.floats(-3, 3), unblocked=st.booleans())
def test_held_steps_are_the_qr_of_j_times_the_formed_basis(n, steps, dtype, seed, log_scale,
                                                            unblocked):
    """The QR method at k = n with the basis kept as reflectors (``factor_step`` with
    ``held``) against the same steps with Q formed and multiplied (``geqrf_qr`` and a
    product): the same logs and, formed at the end, the same basis, to round-off.  A
    step that read the wrong slot moves the logs by O(1); one that left out Q's signs
    (which the logs do not see) ends in a basis with columns of the wrong sign."""
    _check_held_steps(n, steps, dtype, seed, log_scale, unblocked)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("unblocked", [False, True])
@pytest.mark.parametrize("n", [100, 140])
def test_held_steps_by_blocks_and_one_reflector_at_a_time(n, unblocked, dtype):
    """ormqr applies the held basis in compact-WY blocks at these sizes (the hypothesis
    test above stays under them, where ormqr's work array is too small for its blocks),
    and geqrf at 140, or one reflector at a time when told: both give the QR method's
    steps."""
    _check_held_steps(n, 2, dtype, 5, 0.0, unblocked)


def _check_held_steps(n, steps, dtype, seed, log_scale, unblocked):
    rng = np.random.default_rng(seed)
    J = (rng.standard_normal((steps + 1, n, n)) * 10.0 ** log_scale).astype(dtype)
    work = np.empty((qr.work_rows(n), n), dtype=dtype)
    logs = np.full(n, 7.0)
    assert qr.factor_step(J[0], logs, work, 1, False, unblocked) == 0
    Q_ref, l_ref = np.empty((n, n), dtype=dtype), np.empty(n)
    qr.geqrf_qr(J[0], Q_ref, l_ref, np.empty_like(work))
    tol = EPS[dtype] * 10 * n
    if unblocked:  # geqrf one reflector at a time: other round-off above 128 rows
        np.testing.assert_allclose(logs, l_ref, atol=tol)
    else:
        np.testing.assert_array_equal(logs, l_ref)
    slot = 0
    for t in range(1, steps + 1):
        slot = qr.factor_step(J[t], logs, work, slot, True, unblocked)
        assert slot == t % 2
        qr.geqrf_qr(J[t] @ Q_ref, Q_ref, l_ref, np.empty_like(work))
        np.testing.assert_allclose(logs, l_ref, atol=tol * 10)
    Q = np.full((n, n), np.nan, dtype=dtype)
    qr.form_q(Q, work, slot)
    np.testing.assert_allclose(Q, Q_ref, atol=tol * 100 * steps)
    np.testing.assert_allclose(Q.T.astype(np.float64) @ Q, np.eye(n), atol=tol)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_held_step_reports_a_non_finite_jacobian(bad):
    n = 6
    rng = np.random.default_rng(2)
    work = np.empty((qr.work_rows(n), n))
    logs = np.empty(n)
    assert qr.factor_step(rng.standard_normal((n, n)), logs, work, 0, False, False) == 0
    assert np.isfinite(logs).all()
    J = rng.standard_normal((n, n))
    J[4, 1] = bad
    assert qr.factor_step(J, logs, work, 0, True, False) == 1
    assert np.isnan(logs).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,k", [(1, 1), (7, 3), (33, 33), (70, 20), (140, 37)])
def test_lanes_are_independent(dtype, n, k):
    """Each lane of lanes_qr is the QR of its own block, whatever the others hold: a
    NaN, a zero column, a tiny or a huge scale in one lane leaves the rest exact."""
    rng = np.random.default_rng(n * 100 + k)
    L = lanes.LANES
    Z = rng.standard_normal((L, n, k)).astype(dtype)
    Z[1, 0, 0] = np.nan
    Z[2, :, k // 2] = 0.0
    Z[3] *= 1e-30 if dtype == np.float32 else 1e-200
    Z[4] *= 1e15 if dtype == np.float32 else 1e200
    Z[5, n // 2, k - 1] = np.inf
    A, lg, tau, ss, wy = lanes.make_lanes(n, k, Z)
    lanes.gather(Z, L, A)
    lanes.lanes_qr(A, lg, tau, ss, wy)
    Q = np.empty_like(Z)
    lanes.scatter(A, L, Q, 0)
    for ln in range(L):
        if ln in (1, 5):
            assert np.isnan(lg[:, ln]).all()
            continue
        Qr, lr = run("plain", Z[ln])
        check_contract(Z[ln], Q[ln], lg[:, ln], EPS[dtype])
        np.testing.assert_allclose(lg[:, ln], lr, rtol=0, atol=EPS[dtype] * n)


def test_lanes_gather_pads_with_block_zero_and_scatter_writes_only_m():
    rng = np.random.default_rng(3)
    Z = rng.standard_normal((3, 4, 2))
    A = lanes.make_lanes(4, 2, Z)[0]
    lanes.gather(Z, 3, A)
    for ln in range(lanes.LANES):
        np.testing.assert_array_equal(A[:, :, ln].T, Z[ln if ln < 3 else 0])
    Q = np.full((5, 4, 2), 7.0)
    lanes.scatter(A, 3, Q, 1)
    np.testing.assert_array_equal(Q[1:4], Z)
    assert (Q[0] == 7.0).all() and (Q[4] == 7.0).all()


def _reflectors_one_by_one(A, p0, c0, nc, tau, backwards):
    """The PANEL reflectors of lanes_qr's layout from column p0 applied to columns
    c0 .. c0 + nc - 1, one at a time, lane by lane, in float64 NumPy."""
    out = A.astype(np.float64)
    n = A.shape[1]
    order = range(lanes.PANEL - 1, -1, -1) if backwards else range(lanes.PANEL)
    for ln in range(lanes.LANES):
        for j in order:
            i = p0 + j
            v = np.zeros(n)
            v[i] = 1.0
            v[i + 1:] = A[i, i + 1:, ln]
            C = out[c0:c0 + nc, :, ln]
            C -= float(tau[i, ln]) * np.outer(C @ v, v)
    return out


@settings(max_examples=25, deadline=None)
@given(n=st.integers(lanes.WY_MIN_ROWS, 300), panel=st.integers(0, 3), extra=st.integers(1, 40),
       backwards=st.booleans(), gram_kept=st.booleans(), dtype=st.sampled_from(DTYPES),
       seed=st.integers(0, 2**32 - 1))
def test_wy_panel_matches_reflectors_one_by_one(n, panel, extra, backwards, gram_kept, dtype,
                                                seed):
    """A panel's reflectors applied as one block (the compact-WY path of lanes_qr, from
    WY_MIN_ROWS rows) against applying them one by one: the same up to round-off, in
    both orders, over any number of target columns (odd ones too), from a Gram matrix
    computed for the call or kept from an earlier one; up to 300 rows, so over more
    than one chunk of rows in both dtypes (64 or 128 rows with 32 KiB chunks)."""
    P, L = lanes.PANEL, lanes.LANES
    p0 = P * panel
    c0 = p0 + P
    k = min(c0 + extra, n)
    nc = k - c0
    rng = np.random.default_rng(seed)
    A = (rng.standard_normal((k, n, L)) / np.sqrt(n)).astype(dtype)
    # tau = 2 / |v|^2: each reflector orthogonal, as lanes_qr makes them
    tau = np.zeros((k, L), dtype=dtype)
    for i in range(p0, p0 + P):
        tau[i] = 2.0 / (1.0 + (A[i, i + 1:].astype(np.float64) ** 2).sum(axis=0))
    want = _reflectors_one_by_one(A, p0, c0, nc, tau, backwards)
    V = np.empty((lanes.wy_rows(n), P, L), dtype=dtype)
    D = np.full((P, k, L), np.nan, dtype=dtype)
    G = np.empty((P, P, L), dtype=dtype)
    lanes._load_panel(A, p0, V, G, D, True)
    if gram_kept:
        lanes._load_panel(A, p0, V, np.full_like(G, np.nan), D, False)
    got = A.copy()
    lanes._apply_panel(got, p0, c0, nc, tau, V, G, D, backwards)
    np.testing.assert_allclose(got[c0:k], want[c0:k], rtol=0, atol=EPS[dtype] * 10)
    # the reflectors' own columns and those before them are not touched
    np.testing.assert_array_equal(got[:c0], A[:c0])


def _cache_entry(root, name, level, kind, size):
    d = root / name
    d.mkdir()
    for field, value in (("level", level), ("type", kind), ("size", size)):
        (d / field).write_text(value + "\n")


@pytest.mark.parametrize("entries, want", [
    ([("index0", "1", "Data", "48K"), ("index1", "1", "Instruction", "32K"),
      ("index2", "2", "Unified", "2048K")], (48 * 1024, 2048 * 1024)),
    ([("index0", "1", "Instruction", "64K"), ("index1", "1", "Data", "32K")],
     (32 * 1024, None)),
    ([("index0", "1", "Unified", "1M")], (1024 ** 2, None)),
    ([("index0", "2", "Unified", "2048K")], (None, 2048 * 1024)),
    ([("index0", "1", "Data", "lots")], (None, None)),
    ([("index3", "2", "Instruction", "1M"), ("index4", "2", "Data", "512")], (None, 512)),
])
def test_cache_bytes_reads_the_data_caches(tmp_path, entries, want):
    """The WY passes size their row chunks by the L1 data cache and apply_held its
    column chunks by the L2: their sizes are read from Linux's listing of the caches,
    instruction caches and other levels skipped, and None (the defaults) where no
    data cache of the level, or no sense, is found there."""
    for entry in entries:
        _cache_entry(tmp_path, *entry)
    assert (lanes.cache_bytes(1, str(tmp_path)), lanes.cache_bytes(2, str(tmp_path))) == want
    assert lanes.cache_bytes(1, str(tmp_path / "absent")) is None


def test_chunk_columns_fill_the_chunk():
    """The column chunks of the factorisation and apply_held: a multiple of PANEL that
    fills COLUMN_CHUNK_BYTES, at least PANEL; all k columns, rounded up to a multiple
    of PANEL, where they fit (or no L2 size is known)."""
    L, P = lanes.LANES, lanes.PANEL
    chunk = lanes.COLUMN_CHUNK_BYTES
    for dtype in DTYPES:
        like = np.empty(0, dtype)
        for n, k in ((0, 0), (1, 1), (8, 8), (64, 64), (100, 100), (100, 20), (256, 256),
                     (256, 16), (512, 512), (4096, 4096)):
            c = lanes.chunk_columns(n, k, like)
            assert c % P == 0 and c >= P
            if chunk == 0 or k * n * L * like.itemsize <= chunk:
                assert c == max(P, -(-k // P) * P)
            else:
                assert c < k
                assert c == P or c * n * L * like.itemsize <= chunk
                assert (c + P) * n * L * like.itemsize > chunk


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [lanes.WY_MIN_ROWS + 16, lanes.WY_MIN_ROWS + 17])
def test_wy_copy_layout(dtype, n):
    """The compact-WY path's copy of a panel's reflectors: row i of reflector j at
    V[i, j], or, where two rows share a register (float32 with AVX-512), rows 2m and
    2m + 1 side by side, V viewed as (rows / 2, PANEL, 2, LANES); zeros above each
    reflector's own row and 1 on it; the Gram matrix is V^T V per lane."""
    P, L = lanes.PANEL, lanes.LANES
    p0 = P
    rng = np.random.default_rng(n)
    A = rng.standard_normal((2 * P, n, L)).astype(dtype)
    V = np.full((lanes.wy_rows(n), P, L), np.nan, dtype=dtype)
    D = np.empty((P, 2 * P, L), dtype=dtype)
    G = np.empty((P, P, L), dtype=dtype)
    lanes._load_panel(A, p0, V, G, D, True)
    rows = n - p0
    want = np.zeros((rows, P, L), dtype=dtype)
    for j in range(P):
        want[j, j] = 1.0
        want[j + 1:, j] = A[p0 + j, p0 + j + 1:]
    joined = lanes._wy_joined(np.dtype(dtype).itemsize)
    assert joined == (lanes.AVX512 and dtype == np.float32)
    if joined:
        got = V.reshape(-1, P, 2, L).transpose(0, 2, 1, 3).reshape(-1, P, L)[:rows]
    else:
        got = V[:rows]
    np.testing.assert_array_equal(got, want)
    gram = np.einsum("ijl,iml->jml", want.astype(np.float64), want.astype(np.float64))
    np.testing.assert_allclose(G, gram, rtol=EPS[dtype] * n, atol=EPS[dtype] * n)


# below and above WY_MIN_ROWS (panels as blocks with kept Gram matrices), with and
# without a last partial panel, and under one panel
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [5, 13, 64, 100, 104])
def test_held_lanes_factor_form_and_apply(dtype, n):
    """lanes_factor + form_held is lanes_qr, split (the same logs and Q, bit for bit);
    apply_held multiplies by the Q held as reflectors, Q^T X, against NumPy's QR in
    float64 (held Q = formed Q times the signs of R's diagonal); transpose_lanes turns
    each lane's block."""
    rng = np.random.default_rng(n)
    L = lanes.LANES
    Z = rng.standard_normal((L, n, n)).astype(dtype)
    M = rng.standard_normal((L, n, n)).astype(dtype)
    A, lg, tau, ss, wy = lanes.make_lanes(n, n, Z)
    lanes.gather(Z, L, A)
    H = A.copy()
    H0 = A.copy()
    lanes.lanes_qr(A, lg, tau, ss, wy)
    _, lg2, tau2, ss2, wy2 = lanes.make_lanes(n, n, Z)
    _, signs, V, D, G = lanes.make_held(n, Z)
    lanes.lanes_factor(H, lg2, signs, tau2, ss2, wy2)
    np.testing.assert_array_equal(lg2, lg)
    # the factorisation in column chunks, left-looking (a divisor of n or not, one
    # panel): the same reflectors, tau, logs, signs and Gram matrices (of the panels
    # applied as blocks, the others' are not made), bit for bit
    P = lanes.PANEL
    blocks = [p // P for p in range(0, n - n % P, P)
              if lanes._as_block(lanes._wy_pays(n, n), p, p + P, n)]
    for cols in (P, 3 * P):
        Hc = H0.copy()
        _, lg3, tau3, ss3, wy3 = lanes.make_lanes(n, n, Z)
        signs3 = np.empty_like(signs)
        lanes._qr_parts(Hc, lg3, tau3, ss3, wy3, signs3, True, False, cols)
        for got, want in ((Hc, H), (tau3, tau2), (lg3, lg2), (signs3, signs),
                          (wy3[2][blocks], wy2[2][blocks])):
            np.testing.assert_array_equal(got, want)
    X = np.ascontiguousarray(M.transpose(1, 2, 0))  # X[c, r, l] = M[l][c, r]: M^T
    X0 = X.copy()
    lanes.apply_held(H, tau2, wy2[2], X, V, D, G, n)
    # in column chunks (a divisor of n or not, a single column): the same bits
    for cols in (1, 8, 24):
        Xc = X0.copy()
        lanes.apply_held(H, tau2, wy2[2], Xc, V, D, G, cols)
        np.testing.assert_array_equal(Xc, X)
    Y = np.empty_like(X)
    lanes.transpose_lanes(X, Y)  # Y[c, r, l] = (M Q)[l][r, c]
    F = H.copy()
    lanes.form_held(F, lg2, signs, tau2, ss2, wy2)
    np.testing.assert_array_equal(F, A)
    for cols in (P, 3 * P):
        Fc = H.copy()
        lanes._qr_parts(Fc, lg2, tau2, ss2, wy2, signs, False, True, cols)
        np.testing.assert_array_equal(Fc, A)
    for ln in range(L):
        Qr, lr = lapack_reference(Z[ln])
        np.testing.assert_allclose(lg[:, ln], lr, rtol=0, atol=EPS[dtype] * n)
        assert set(np.unique(signs[:, ln])) <= {-1.0, 1.0}
        want = (M[ln].astype(np.float64) @ Qr) * signs[:, ln]
        np.testing.assert_allclose(Y[:, :, ln].T, want, rtol=0, atol=EPS[dtype] * n * 10)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, k", [(64, 64), (100, 44), (104, 104), (60, 20), (13, 13)])
def test_lanes_qr_in_column_chunks(dtype, n, k):
    """lanes_qr taking its columns in chunks (a divisor of k or not, one panel, k not a
    multiple of PANEL, whose Q is formed on panels counted from the last column): the
    Q factors and logs of all columns at once, bit for bit, and those of LAPACK."""
    rng = np.random.default_rng(n + k)
    L, P = lanes.LANES, lanes.PANEL
    Z = rng.standard_normal((L, n, k)).astype(dtype)
    A, lg, tau, ss, wy = lanes.make_lanes(n, k, Z)
    lanes.gather(Z, L, A)
    A0 = A.copy()
    whole = -(-k // P) * P
    lanes._qr_parts(A, lg, tau, ss, wy, tau, True, True, whole)
    for ln in range(L):
        Qr, lr = lapack_reference(Z[ln])
        np.testing.assert_allclose(lg[:, ln], lr, rtol=0, atol=EPS[dtype] * n)
        np.testing.assert_allclose(A[:, :, ln].T, Qr, rtol=0, atol=EPS[dtype] * n * 10)
    for cols in (P, 2 * P, 3 * P):
        Ac = A0.copy()
        _, lgc, tauc, ssc, wyc = lanes.make_lanes(n, k, Z)
        lanes._qr_parts(Ac, lgc, tauc, ssc, wyc, tauc, True, True, cols)
        np.testing.assert_array_equal(Ac, A)
        np.testing.assert_array_equal(lgc, lg)
    with pytest.raises(ValueError, match="lanes_qr"):
        lanes._qr_parts(A0.copy(), lg, tau, ss, wy, tau, True, True, P + 1)


def test_held_lanes_refuse_wrong_shapes():
    n, L = 10, lanes.LANES
    A, lg, tau, ss, wy = lanes.make_lanes(n, n, np.empty(0))
    V, D, G = lanes.make_held(n, np.empty(0))[2:]
    with pytest.raises(ValueError, match="apply_held"):
        lanes.apply_held(A, tau, wy[2], np.zeros((n, n + 1, L)), V, D, G, n)
    with pytest.raises(ValueError, match="apply_held"):
        lanes.apply_held(A, tau, wy[2], np.zeros((n, n, L)), V[:4], D, G, n)
    with pytest.raises(ValueError, match="apply_held"):
        lanes.apply_held(A, tau, wy[2], np.zeros((n, n, L)), V, D, G, 0)
    with pytest.raises(ValueError, match="transpose_lanes"):
        lanes.transpose_lanes(np.zeros((n, n, L)), np.zeros((n, n + 1, L)))
    with pytest.raises(ValueError, match="make_lanes"):
        lanes.lanes_factor(A, lg[:3], np.zeros((n, L)), tau, ss, wy)


def test_lanes_refuses_wrong_shapes():
    # the vector code would read past a wrongly shaped array: refused, not run
    A, logs, tau, ss, wy = lanes.make_lanes(6, 4, np.empty(0))
    with pytest.raises(ValueError, match="make_lanes"):
        lanes.lanes_qr(np.zeros((4, 6, lanes.LANES - 1)), logs,
                       np.zeros((4, lanes.LANES - 1)), ss, wy)
    with pytest.raises(ValueError, match="make_lanes"):
        lanes.lanes_qr(A, logs[:3], tau, ss, wy)
    with pytest.raises(ValueError, match="make_lanes"):
        lanes.lanes_qr(np.zeros((7, 6, lanes.LANES)), np.zeros((7, lanes.LANES)),
                       np.zeros((7, lanes.LANES)), ss, wy)
    # the compact-WY workspace of a size that takes no block, given to one that does
    n, k = lanes.WY_MIN_ROWS, lanes.PANEL + lanes.WY_MIN_COLS
    big = lanes.make_lanes(n, k, np.empty(0))
    big[0][:] = np.random.default_rng(0).standard_normal(big[0].shape)
    with pytest.raises(ValueError, match="make_lanes"):
        lanes.lanes_qr(*big[:4], wy)
    lanes.lanes_qr(*big)  # its own workspace: accepted


# ------------------------------------------------------------- shared_product


def _shared_product_oracle(W, X, xr0, Y, yr0, D, accumulate, scale):
    """lenum.lanes.shared_product written with one NumPy product per lane."""
    out = Y.copy()
    m, p = W.shape
    for ln in range(lanes.LANES):
        block = W @ X[:, xr0:xr0 + p, ln].T  # (m, k): W times lane ln's columns
        if accumulate:
            block = block + Y[:, yr0:yr0 + m, ln].T
        if scale:
            block = D[:m, ln, None] * block
        out[:, yr0:yr0 + m, ln] = block.T
    return out


@given(
    m=st.integers(1, 19),
    p=st.one_of(st.integers(1, 11), st.integers(30, 70)),
    k=st.integers(1, 5),
    xr0=st.integers(0, 3),
    yr0=st.integers(0, 3),
    accumulate=st.booleans(),
    scale=st.booleans(),
    dtype=st.sampled_from(["float64", "float32"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_shared_product_matches_per_lane_products(m, p, k, xr0, yr0, accumulate, scale,
                                                  dtype, seed):
    """Every row-block and column remainder of the register tiles (up to 8 rows and 4
    columns at a time, lanes._PRODUCT_TILE; with AVX-512 float32 columns joined in
    pairs), offsets, and both flags, against a product per lane; rows of Y outside
    yr0 .. yr0 + m - 1 must not change."""
    rng = np.random.default_rng(seed)
    L = lanes.LANES
    W = rng.standard_normal((m, p)).astype(dtype)
    X = rng.standard_normal((k, xr0 + p + 1, L)).astype(dtype)
    Y = rng.standard_normal((k, yr0 + m + 2, L)).astype(dtype)
    D = rng.standard_normal((m, L)).astype(dtype)
    expected = _shared_product_oracle(W.astype(float), X.astype(float), xr0, Y.astype(float),
                                      yr0, D.astype(float), accumulate, scale)
    got = Y.copy()
    lanes.shared_product(W, X, xr0, got, yr0, D, accumulate, scale)
    tol = (1e-13 if dtype == "float64" else 1e-5) * (p + 1)
    np.testing.assert_allclose(got, expected, rtol=0, atol=tol)
    untouched = np.ones(Y.shape[1], bool)
    untouched[yr0:yr0 + m] = False
    np.testing.assert_array_equal(got[:, untouched], Y[:, untouched])


@given(
    m=st.integers(1, 13),
    p=st.one_of(st.integers(1, 11), st.integers(30, 70)),
    k=st.integers(1, 9),
    xr0=st.integers(0, 3),
    yr0=st.integers(0, 3),
    accumulate=st.booleans(),
    dtype=st.sampled_from(["float64", "float32"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_lanes_product_matches_per_lane_products(m, p, k, xr0, yr0, accumulate, dtype, seed):
    """lenum.lanes.lanes_product against one NumPy product per lane, each lane its own
    matrix: every row and column remainder of the register tiles (lanes._LANES_TILE),
    offsets, both flags; rows of Y outside yr0 .. yr0 + m - 1 must not change."""
    rng = np.random.default_rng(seed)
    L = lanes.LANES
    M = rng.standard_normal((m, p, L)).astype(dtype)
    X = rng.standard_normal((k, xr0 + p + 1, L)).astype(dtype)
    Y = rng.standard_normal((k, yr0 + m + 2, L)).astype(dtype)
    expected = Y.astype(float)
    for ln in range(L):
        block = M[:, :, ln].astype(float) @ X[:, xr0:xr0 + p, ln].astype(float).T
        if accumulate:
            block = block + Y[:, yr0:yr0 + m, ln].T
        expected[:, yr0:yr0 + m, ln] = block.T
    got = Y.copy()
    lanes.lanes_product(M, X, xr0, got, yr0, accumulate)
    tol = (1e-13 if dtype == "float64" else 1e-5) * (p + 1)
    np.testing.assert_allclose(got, expected, rtol=0, atol=tol)
    untouched = np.ones(Y.shape[1], bool)
    untouched[yr0:yr0 + m] = False
    np.testing.assert_array_equal(got[:, untouched], Y[:, untouched])


def test_lanes_product_refuses_wrong_shapes():
    L = lanes.LANES
    M, X, Y = np.ones((3, 4, L)), np.ones((2, 4, L)), np.ones((2, 3, L))
    lanes.lanes_product(M, X, 0, Y, 0, True)
    for args in [(M, X, 1, Y, 0), (M, X, 0, Y, 1), (M, np.ones((2, 4, L - 1)), 0, Y, 0),
                 (M, X, 0, np.ones((3, 3, L)), 0), (M, X, -1, Y, 0),
                 (np.ones((3, 4, L - 1)), X, 0, Y, 0)]:
        with pytest.raises(ValueError, match="lanes_product"):
            lanes.lanes_product(*args, True)


@jit
def _lane_empty_of(shape, like):
    return lanes.lane_empty(shape, like.dtype)


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(0, 9), min_size=1, max_size=4).map(tuple),
       dtype=st.sampled_from(DTYPES))
def test_lane_empty_starts_on_a_cache_line(shape, dtype):
    """Whatever numba's allocator returns (32-byte aligned), lane arrays start on 64
    bytes, C-contiguous, of the shape and dtype asked, each its own memory."""
    arrays = [_lane_empty_of(shape, np.empty(0, dtype)) for _ in range(8)]
    for a in arrays:
        assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous
        assert a.ctypes.data % lanes.ALIGN_BYTES == 0
    for i, a in enumerate(arrays):
        a[...] = i
    for i, a in enumerate(arrays):
        assert (a == i).all()  # no two overlap, none is cut short


_OTHER_TARGET = """
import numpy as np
from lenum import lanes
assert not lanes.AVX512, "the AVX-512 features were not taken away"
rng = np.random.default_rng(3)
for dt, tol in (("float64", 1e-12), ("float32", 2e-4)):
    W = rng.standard_normal((13, 40)).astype(dt)
    X = rng.standard_normal((5, 40, lanes.LANES)).astype(dt)
    Y = np.zeros((5, 13, lanes.LANES), dt)
    D = np.ones((13, lanes.LANES), dt)
    lanes.shared_product(W, X, 0, Y, 0, D, False, False)
    want = np.einsum("ir,crl->cil", W.astype(float), X.astype(float))
    assert np.abs(Y - want).max() < tol * 40, dt
    M = rng.standard_normal((13, 40, lanes.LANES)).astype(dt)
    lanes.lanes_product(M, X, 0, Y, 0, False)
    want = np.einsum("irl,crl->cil", M.astype(float), X.astype(float))
    assert np.abs(Y - want).max() < tol * 40, dt
    for n, k in ((40, 40), (120, 120)):  # from 96 rows the compact-WY path
        B = rng.standard_normal((lanes.LANES, n, k)).astype(dt)
        A, logs, tau, ss, wy = lanes.make_lanes(n, k, B)
        lanes.gather(B, lanes.LANES, A)
        lanes.lanes_qr(A, logs, tau, ss, wy)
        for ln in range(lanes.LANES):
            r = np.linalg.qr(B[ln].astype(float), mode="r")
            assert np.abs(logs[:, ln] - np.log(np.abs(np.diag(r)))).max() < tol * 100, (dt, n)
from lenum.thin import thin_dot
for dt in ("float64", "float32"):
    for m, k in ((13, 16), (13, 8), (40, 24)):
        A = rng.standard_normal((m, 30)).astype(dt)
        X = rng.standard_normal((30, k)).astype(dt)
        Y = np.empty((m, k), dt)
        thin_dot(A, X, Y)
        want = A.astype(float) @ X.astype(float)
        assert np.abs(Y - want).max() < (1e-12 if dt == "float64" else 1e-4), (dt, m, k)
from lenum.thin import gated_dot, gated_pack, gated_rows, lstm_gated_dot
for dt in ("float64", "float32"):
    for n, k in ((16, 8), (32, 24)):  # tiles of 4 or 8 rows, column chunks of 8
        W = rng.standard_normal((3 * n, n)).astype(dt)
        C, D = rng.standard_normal((3, n)).astype(dt), rng.standard_normal(n).astype(dt)
        V = gated_rows(W)
        assert V == 32 // W.itemsize
        P = np.empty((n // V, n, 3, V), dt)
        gated_pack(W, np.array([1, 0, 2]), P)
        X = rng.standard_normal((n, k)).astype(dt)
        Y = np.empty((n, k), dt)
        gated_dot(P, C, D, X, Y)
        A = C[0][:, None] * W[n:2 * n] + C[1][:, None] * W[:n] + C[2][:, None] * W[2 * n:]
        want = (A.astype(float) + np.diag(D.astype(float))) @ X.astype(float)
        assert np.abs(Y - want).max() < (1e-12 if dt == "float64" else 1e-4), (dt, n, k)
        W4 = rng.standard_normal((4 * n, n)).astype(dt)  # the LSTM's, tiles of 4 columns
        C4 = rng.standard_normal((4, n)).astype(dt)
        P4 = np.empty((n // V, n, 4, V), dt)
        gated_pack(W4, np.arange(4), P4)
        Y2 = np.empty((2 * n, k), dt)
        lstm_gated_dot(P4, C4, D, X, Y2)
        dc = sum(C4[g][:, None].astype(float) * W4[g * n:(g + 1) * n] for g in range(3))
        dh = C4[3][:, None] * W4[3 * n:].astype(float) + D[:, None] * dc
        want = np.vstack([dh, dc]) @ X.astype(float)
        assert np.abs(Y2 - want).max() < (1e-12 if dt == "float64" else 1e-3), (dt, n, k)
print("ok")
"""


@pytest.mark.skipif(not lanes.AVX512, reason="the AVX2 code is what this CPU runs")
def test_register_blocking_for_avx2_on_an_avx512_machine(tmp_path):
    """This machine runs the AVX-512 register blocking; the AVX2 one (4 x 1 product
    tiles in float64, 3 x 3 tiles of lanes_product, 256-bit halves in the compact-WY
    passes, 2 x 2 tiles in lenum.thin, gated products' tiles of one 256-bit vector) is
    what CPUs without
    AVX-512 run.  Compiled here for the host's
    features less AVX-512, in a process of its own, against NumPy."""
    from numba.core.codegen import get_host_cpu_features

    kept = [f for f in get_host_cpu_features().split(",")
            if not f.startswith(("+avx512", "+avx10", "+evex512"))]
    features = ",".join(kept + ["-avx512f"])
    env = dict(os.environ, NUMBA_CPU_FEATURES=features, NUMBA_CACHE_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", _OTHER_TARGET], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_shared_product_refuses_wrong_shapes():
    L = lanes.LANES
    W, D = np.ones((3, 4)), np.ones((3, L))
    X, Y = np.ones((2, 4, L)), np.ones((2, 3, L))
    lanes.shared_product(W, X, 0, Y, 0, D, False, True)
    for args in [(W, X, 1, Y, 0), (W, X, 0, Y, 1), (W, np.ones((2, 4, L - 1)), 0, Y, 0),
                 (W, X, 0, np.ones((3, 3, L)), 0), (W, X, -1, Y, 0)]:
        with pytest.raises(ValueError, match="shared_product"):
            lanes.shared_product(*args, D, False, True)
    with pytest.raises(ValueError, match="shared_product"):
        lanes.shared_product(W, X, 0, Y, 0, np.ones((2, L)), False, True)


@given(
    m=st.integers(1, 9),
    k=st.integers(1, 4),
    xr0=st.integers(0, 3),
    yr0=st.integers(0, 3),
    accumulate=st.booleans(),
    same=st.booleans(),
    dtype=st.sampled_from(["float64", "float32"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_scale_add_matches_numpy(m, k, xr0, yr0, accumulate, same, dtype, seed):
    """lenum.lanes.scale_add against the NumPy expression, also with X and Y one array
    (rows read below the rows written); other rows of Y must not change."""
    rng = np.random.default_rng(seed)
    L = lanes.LANES
    C = rng.standard_normal((m, L)).astype(dtype)
    Y = rng.standard_normal((k, yr0 + m + 1, L)).astype(dtype)
    X = rng.standard_normal((k, xr0 + m + 2, L)).astype(dtype)
    if same:  # rows yr0 + m + 1 .. read, rows yr0 .. yr0 + m - 1 written
        Y = rng.standard_normal((k, yr0 + 2 * m + 1, L)).astype(dtype)
        X, xr0 = Y, yr0 + m + 1
    expected = Y.copy()
    term = C[None] * X[:, xr0:xr0 + m]
    expected[:, yr0:yr0 + m] = (Y[:, yr0:yr0 + m] + term) if accumulate else term
    got = Y.copy()
    lanes.scale_add(got, yr0, got if same else X, xr0, C, accumulate)
    tol = 1e-15 if dtype == "float64" else 1e-6
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)


def test_scale_add_refuses_wrong_shapes():
    L = lanes.LANES
    C, X, Y = np.ones((3, L)), np.ones((2, 4, L)), np.ones((2, 3, L))
    lanes.scale_add(Y, 0, X, 1, C, True)
    for args in [(Y, 1, X, 0), (Y, 0, X, 2), (np.ones((1, 3, L)), 0, X, 0),
                 (Y, 0, np.ones((2, 4, L - 1)), 0), (Y, -1, X, 0)]:
        with pytest.raises(ValueError, match="scale_add"):
            lanes.scale_add(*args, C, True)


@settings(max_examples=30, deadline=None)
@given(N=st.integers(1, 40), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**31 - 1),
       order=st.sampled_from([(1, 0, 2), (0, 1, 2), (2, 1, 0, 3), (3,)]),
       rows=st.data())
def test_gated_lanes_is_each_lanes_formed_block(N, dtype, seed, order, rows):
    """lenum.lanes.gated_lanes against each lane's block formed entry by entry in the
    working precision as the cells form it (products, then sums in order, then the
    diagonal): equal to the bit, for any gate count and block order, the whole block
    or a block of its rows."""
    rng = np.random.default_rng(seed)
    L, G = lanes.LANES, len(order)
    i0 = rows.draw(st.integers(0, N - 1))
    m = rows.draw(st.integers(1, N - i0))
    W = rng.standard_normal(((max(order) + 1) * N, N)).astype(dtype)
    C = rng.standard_normal((G, N, L)).astype(dtype)
    D = rng.standard_normal((N, L)).astype(dtype)
    XT = np.full((m, N, L), np.nan, dtype)
    lanes.gated_lanes(W, order, C, D, XT, i0)
    for ln in range(L):
        A = C[0, :, ln][:, None] * W[order[0] * N:(order[0] + 1) * N]
        for g in range(1, G):
            A = A + C[g, :, ln][:, None] * W[order[g] * N:(order[g] + 1) * N]
        A[np.arange(N), np.arange(N)] += D[:, ln]
        np.testing.assert_array_equal(XT[:, :, ln], A[i0:i0 + m])


def test_gated_lanes_refuses_wrong_shapes():
    L = lanes.LANES
    W, C, D, XT = np.ones((12, 4)), np.ones((3, 4, L)), np.ones((4, L)), np.ones((4, 4, L))
    lanes.gated_lanes(W, (1, 0, 2), C, D, XT, 0)
    lanes.gated_lanes(W, (1, 0, 2), C, D, XT[:2], 2)
    for args in [(np.ones((8, 4)), (1, 0, 2), C, D, XT, 0), (W, (1, 0), C, D, XT, 0),
                 (W, (1, 0, 3), C, D, XT, 0), (W, (1, -1, 2), C, D, XT, 0),
                 (W, (1, 0, 2), C, np.ones((4, L - 1)), XT, 0),
                 (W, (1, 0, 2), C, D, np.ones((4, 3, L)), 0),
                 (W, (1, 0, 2), C, D, XT, 1), (W, (1, 0, 2), C, D, XT[:2], 3),
                 (W, (1, 0, 2), C, D, XT[:2], -1)]:
        with pytest.raises(ValueError, match="gated_lanes"):
            lanes.gated_lanes(*args)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 40), k=st.integers(1, 45), m=st.integers(1, lanes.LANES),
       b0=st.integers(0, 2), dtype=st.sampled_from(DTYPES))
def test_lanes_gather_and_scatter_are_transposes(n, k, m, b0, dtype):
    """gather and scatter against NumPy's transposes, bit for bit: full groups take
    8 x 8 blocks in registers (float32 at any k, float64 up to 32 columns), with the
    columns past a multiple of 8 one by one; partial groups element by element."""
    rng = np.random.default_rng(n * 1000 + k * 10 + m)
    Z = rng.standard_normal((m, n, k)).astype(dtype)
    A = lanes.make_lanes(n, k, Z)[0]
    lanes.gather(Z, m, A)
    want = np.stack([Z[ln if ln < m else 0] for ln in range(lanes.LANES)], axis=2)
    np.testing.assert_array_equal(A, want.transpose(1, 0, 2))
    Q = np.full((b0 + m + 1, n, k), 7.0, dtype=dtype)
    lanes.scatter(A, m, Q, b0)
    np.testing.assert_array_equal(Q[b0:b0 + m], Z)
    assert (Q[:b0] == 7.0).all() and (Q[b0 + m:] == 7.0).all()
