"""Covariant Lyapunov vectors (Ginelli et al. 2007): known vectors and consistency."""

import numpy as np
import pytest

import lenum
from lenum.clv import covariant_vectors, covariant_vectors_from_jacobians

# a non-normal map with distinct |eigenvalues|: 2, -1.2, 0.5, 0.25 on the diagonal
A = np.array([[2.0, 1.0, 0.5, 0.3],
              [0.0, -1.2, 0.7, 0.2],
              [0.0, 0.0, 0.5, 1.0],
              [0.0, 0.0, 0.0, 0.25]])


def _eigenvectors(M):
    w, E = np.linalg.eig(M)
    order = np.argsort(-np.abs(w))
    return w[order].real, E[:, order].real / np.linalg.norm(E[:, order].real, axis=0)


def test_constant_non_normal_map_gives_its_eigenvectors():
    """For J_t = A the covariant vectors are A's eigenvectors (not orthogonal) and the
    growth rates log|eigenvalue| at every step.  Convergence of both passes goes like
    max|lam_{i+1}/lam_i|^steps = 0.6^60 ~ 5e-14."""
    w, E = _eigenvectors(A)
    J = np.broadcast_to(A, (2, 200, 4, 4))
    cv = covariant_vectors_from_jacobians(J, warmup=60, tail=60)
    assert cv.vectors.shape == (2, 80, 4, 4) and cv.growth_rates.shape == (2, 80, 4)
    assert cv.start == 61
    cos = np.abs(np.einsum("bsnk,nk->bsk", cv.vectors, E))
    np.testing.assert_allclose(cos, 1.0, atol=1e-10)
    np.testing.assert_allclose(cv.growth_rates, np.broadcast_to(np.log(np.abs(w)), (2, 80, 4)),
                               atol=1e-10)
    np.testing.assert_allclose(cv.exponents, np.log(np.abs(w)), atol=1e-10)
    # the angle between the first two vectors is that of the eigenvectors
    np.testing.assert_allclose(cv.angles(0, 1), np.arccos(abs(E[:, 0] @ E[:, 1])), atol=1e-8)


def test_truncated_k_and_spilling_to_a_file_give_the_same_vectors(tmp_path):
    w, E = _eigenvectors(A)
    J = np.broadcast_to(A, (3, 150, 4, 4))
    mem = covariant_vectors_from_jacobians(J, k=2, warmup=50, tail=50)
    disk = covariant_vectors_from_jacobians(J, k=2, warmup=50, tail=50, memory_limit=4096,
                                            tmpdir=tmp_path)
    assert disk.meta["spilled"] and not mem.meta["spilled"]
    np.testing.assert_array_equal(disk.vectors, mem.vectors)
    np.testing.assert_array_equal(disk.growth_rates, mem.growth_rates)
    np.testing.assert_allclose(np.abs(np.einsum("bsnk,nk->bsk", mem.vectors, E[:, :2])), 1.0,
                               atol=1e-10)
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone


def _net():
    rng = np.random.default_rng(3)
    N, d = 6, 2
    sd = {"weight_ih_l0": rng.normal(size=(N, d)) * 0.5,
          "weight_hh_l0": rng.normal(size=(N, N)) * 2.5 / np.sqrt(N),
          "bias_ih_l0": rng.normal(size=N) * 0.1}
    return lenum.Network.from_state_dict("rnn_tanh", sd)


def test_network_vectors_are_covariant_and_average_to_the_exponents():
    net = _net()
    warmup, tail, T = 100, 100, 1700
    x = np.random.default_rng(0).normal(size=(2, T, 2))
    cv = covariant_vectors(net, x, warmup=warmup, tail=tail)
    S = T - warmup - tail
    assert cv.vectors.shape == (2, S, 6, 6)
    np.testing.assert_allclose(np.linalg.norm(cv.vectors, axis=2), 1.0, atol=1e-12)

    # covariance: J_t v_j(t-1) is parallel to v_j(t) and its norm is the growth rate
    h = np.zeros(6)
    for t in range(1, warmup + 11):
        Jt = lenum.jacobian(net, h, x[0, t - 1])
        h = lenum.step(net, h, x[0, t - 1])
        s = t - warmup - 1  # index of step t in the window
        if s >= 1:
            img = Jt @ cv.vectors[0, s - 1]
            norm = np.linalg.norm(img, axis=0)
            np.testing.assert_allclose(np.log(norm), cv.growth_rates[0, s], atol=1e-9)
            cos = np.abs(np.sum(img / norm * cv.vectors[0, s], axis=0))
            np.testing.assert_allclose(cos, 1.0, atol=1e-9)

    # time averages: the growth rates summed over the window differ from the QR
    # method's log R_jj sums over the same steps only by log|C_jj| at the two ends, so
    # with |C_jj| > 0.01 the means differ by at most 2 * 4.6 / S = 6e-3
    qr = lenum.lyapunov_spectrum(net, x[:, :T - tail], warmup=warmup)
    assert qr.steps == S
    np.testing.assert_allclose(cv.exponents, qr.exponents, atol=6e-3)
    assert np.all(np.diff(cv.exponents) < 0)


def test_errors():
    J = np.broadcast_to(A, (30, 4, 4))
    with pytest.raises(lenum.ParameterError, match="leaves no steps"):
        covariant_vectors_from_jacobians(J, warmup=20, tail=10)
    with pytest.raises(lenum.ShapeError):
        covariant_vectors_from_jacobians(np.zeros((5, 3, 4)))
    singular = A.copy()
    singular[3, 3] = 0.0  # an exponent of -inf: no covariant vector for it
    with pytest.raises(lenum.NonFiniteError, match="reduce k"):
        covariant_vectors_from_jacobians(np.broadcast_to(singular, (40, 4, 4)), warmup=10,
                                         tail=10)
    # with k below the rank the vectors exist
    cv = covariant_vectors_from_jacobians(np.broadcast_to(singular, (40, 4, 4)), k=3,
                                          warmup=10, tail=10)
    assert np.isfinite(cv.growth_rates).all()
