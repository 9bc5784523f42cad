"""Householder QR kernels, CPU (:func:`lenum.qr.householder_qr`) and GPU
(:func:`lenum.gpu.qr.gpu_householder_qr`, through the CUDA simulator on machines
without a GPU).

The contract both must meet: A = Q R with Q orthonormal, diag(R) >= 0 and
``logs = log diag(R)``; a zero column gives -inf (and Q stays orthonormal), a column
with NaN gives NaN.  The oracle is LAPACK (``np.linalg.qr``) with signs fixed.
"""

import sys

import numpy as np
import pytest

from lenum.qr import householder_qr

TOL = {np.float64: 1e-12, np.float32: 2e-5}


def _gpu_reason():
    try:
        from lenum import gpu
    except ImportError as exc:  # pragma: no cover
        return str(exc)
    return gpu.unavailable_reason()


@pytest.fixture(autouse=True)
def _fast_thread_switch():
    # The CUDA simulator runs each GPU thread as a Python thread and polls them at
    # every barrier; a short switch interval cuts its run time about threefold.
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    yield
    sys.setswitchinterval(old)


def _cpu(A):
    B, n, k = A.shape
    Q = np.empty_like(A)
    logs = np.empty((B, k))
    work = np.empty((2, k), dtype=A.dtype)
    for b in range(B):
        householder_qr(A[b].copy(), Q[b], logs[b], work)
    return Q, logs


def _gpu(A):
    reason = _gpu_reason()
    if reason is not None:
        pytest.skip(f"GPU path not usable: {reason}")
    from lenum.gpu.host import householder_qr as gpu_qr

    return gpu_qr(A, threads=8)


IMPLS = {"cpu": _cpu, "gpu": _gpu}


def _oracle(A):
    """LAPACK QR with diag(R) >= 0 and log|R_jj|."""
    A = np.asarray(A, dtype=np.float64)
    Qs, Ls = [], []
    for a in A:
        q, r = np.linalg.qr(a)
        d = np.diag(r)
        sgn = np.where(d < 0, -1.0, 1.0)
        Qs.append(q * sgn)
        with np.errstate(divide="ignore"):
            Ls.append(np.log(np.abs(d)))
    return np.array(Qs), np.array(Ls)


def _check_factorisation(A, Q, logs, tol):
    A = A.astype(np.float64)
    Q = Q.astype(np.float64)
    k = A.shape[2]
    for b in range(A.shape[0]):
        assert np.abs(Q[b].T @ Q[b] - np.eye(k)).max() < tol * 10
        R = Q[b].T @ A[b]
        scale = np.abs(A[b]).max()
        assert np.abs(np.tril(R, -1)).max() <= tol * 10 * scale
        assert (np.diag(R) >= -tol * scale).all()
        assert np.abs(Q[b] @ np.triu(R) - A[b]).max() <= tol * 10 * scale
        finite = np.isfinite(logs[b])
        np.testing.assert_allclose(np.exp(logs[b][finite]), np.diag(R)[finite],
                                   rtol=tol * 10, atol=tol * 10 * scale)


@pytest.mark.parametrize("impl", ["cpu", "gpu"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_random_blocks_match_lapack(impl, dtype):
    """Tall 8 x 3 blocks, one of them scaled far down (no false zero from underflow)."""
    rng = np.random.default_rng(7)
    A = rng.normal(size=(2, 8, 3)).astype(dtype)
    A[1] *= 1e-30 if dtype == np.float64 else 1e-20  # tiny columns must not underflow
    Q, logs = IMPLS[impl](A.copy())
    tol = TOL[dtype]
    Qo, Lo = _oracle(A)
    np.testing.assert_allclose(Q, Qo, atol=tol * 10)
    np.testing.assert_allclose(logs, Lo, rtol=tol * 10)
    _check_factorisation(A, Q, logs, tol)


@pytest.mark.parametrize("impl", ["cpu", "gpu"])
def test_square_block(impl):
    rng = np.random.default_rng(8)
    A = rng.normal(size=(1, 5, 5))
    Q, logs = IMPLS[impl](A.copy())
    Qo, Lo = _oracle(A)
    np.testing.assert_allclose(Q, Qo, atol=1e-12)
    np.testing.assert_allclose(logs, Lo, rtol=1e-12)
    # sum of log diag R = log|det A|
    assert abs(logs.sum() - np.linalg.slogdet(A[0])[1]) < 1e-12


@pytest.mark.parametrize("impl", ["cpu", "gpu"])
def test_zero_column_gives_minus_inf_and_orthonormal_q(impl):
    rng = np.random.default_rng(9)
    A = rng.normal(size=(1, 6, 4))
    A[0, :, 1] = 0.0
    A[0, :, 3] = A[0, :, 0]  # dependent column: R_33 is round-off, not exactly 0
    Q, logs = IMPLS[impl](A.copy())
    assert logs[0, 1] == -np.inf
    assert np.isfinite(logs[0, [0, 2]]).all()
    assert not np.isnan(logs).any()
    assert np.abs(Q[0].T @ Q[0] - np.eye(4)).max() < 1e-12
    R = Q[0].T @ A[0]
    assert np.abs(Q[0] @ np.triu(R) - A[0]).max() < 1e-12
    assert (np.diag(R) >= -1e-12).all()


@pytest.mark.parametrize("impl", ["cpu", "gpu"])
def test_nan_column_gives_nan(impl):
    A = np.random.default_rng(10).normal(size=(1, 5, 3))
    A[0, 2, 1] = np.nan
    _, logs = IMPLS[impl](A.copy())
    assert np.isnan(logs[0, 1])
    assert np.isfinite(logs[0, 0])
