"""Spectrum statistics and batch-means error bars, checked against hand computations."""

import math

import numpy as np
import pytest

from lenum import stats


def test_summary_by_hand():
    lam = [0.5, 0.1, -0.2, -1.0, -np.inf]
    s = stats.summary(lam)
    finite = np.array([0.5, 0.1, -0.2, -1.0])
    assert s["k"] == 5 and s["max"] == 0.5
    assert s["mean"] == pytest.approx(-0.15)
    assert s["variance"] == pytest.approx(np.mean((finite + 0.15) ** 2))
    assert s["num_positive"] == 2 and s["num_minus_inf"] == 1
    # partial sums 0.5, 0.6, 0.4, -0.6: j = 3, D = 3 + 0.4 / 1.0
    assert s["kaplan_yorke_dimension"] == pytest.approx(3.4)
    assert s["ks_entropy"] == pytest.approx(0.6)


def test_summary_all_negative_and_empty():
    s = stats.summary([-0.1, -0.3])
    assert s["num_positive"] == 0 and s["kaplan_yorke_dimension"] == 0.0
    assert s["ks_entropy"] == 0.0
    assert math.isnan(stats.summary([])["mean"])


def test_local_statistics_by_hand():
    loc = np.array([[[0.2, -1.0], [-0.4, -2.0]],
                    [[0.6, -3.0], [np.nan, np.nan]]])  # the second sequence stopped early
    s = stats.local_statistics(loc)
    assert s["samples"] == 3
    np.testing.assert_allclose(s["mean"], [0.4 / 3, -2.0])
    np.testing.assert_allclose(s["variance"], [np.var([0.2, -0.4, 0.6]), np.var([-1, -2, -3])])
    np.testing.assert_allclose(s["fraction_positive"], [2 / 3, 0.0])
    assert s["fraction_max_positive"] == pytest.approx(2 / 3)


def _feed(means, lengths, shift=None):
    """A BatchMeans fed with block means (n, nblocks, k) of the given block lengths."""
    n, nb, k = means.shape
    bm = stats.BatchMeans(n, k, shift=shift)
    logsum = np.zeros((n, k))
    for j in range(nb):
        inc = means[:, j] * lengths[j]
        logsum += inc
        bm.add(inc, lengths[j], logsum)
    return bm


def test_equal_blocks_give_sd_over_sqrt_n():
    rng = np.random.default_rng(0)
    means = rng.normal(1.0, 0.3, size=(3, 7, 2))
    mean, se = _feed(means, [10] * 7).stderr()
    flat = means.reshape(-1, 2)
    np.testing.assert_allclose(mean, flat.mean(0), rtol=1e-12)
    np.testing.assert_allclose(se, flat.std(0, ddof=1) / np.sqrt(21), rtol=1e-10)


def test_one_block_per_sequence_gives_sd_over_sequences_and_one_block_gives_inf():
    means = np.array([[[1.0]], [[2.0]], [[4.0]]])
    _, se = _feed(means, [5]).stderr()
    np.testing.assert_allclose(se, np.std([1.0, 2.0, 4.0], ddof=1) / np.sqrt(3))
    _, se1 = _feed(means[:1], [5]).stderr()
    assert np.isinf(se1).all()


def test_unequal_chunks_pool_by_hand():
    """Two chunks that ran for different numbers of steps (early stopping per chunk)."""
    rng = np.random.default_rng(1)
    a = rng.normal(size=(2, 4, 1))
    b = rng.normal(size=(3, 2, 1))
    la, lb = [8, 8, 8, 4], [8, 8]
    ca = _feed(a, la)
    cb = _feed(b, lb, shift=ca.shift)
    mean, se = stats.combine_batch_means([ca, cb])
    # by hand: mu = mean over sequences of the length-weighted sequence means
    seq = np.concatenate([(a[..., 0] * la).sum(1) / sum(la), (b[..., 0] * lb).sum(1) / sum(lb)])
    mu = seq.mean()
    m = np.concatenate([a[..., 0].ravel(), b[..., 0].ravel()])
    L = np.concatenate([np.tile(la, 2), np.tile(lb, 3)]).astype(float)
    C = np.concatenate([np.full(8, sum(la)), np.full(6, sum(lb))]).astype(float)
    s2 = np.sum(L * (m - mu) ** 2) / (m.size - 1)
    w = L / (5 * C)
    assert mean[0] == pytest.approx(mu, rel=1e-12)
    assert se[0] == pytest.approx(np.sqrt(s2 * np.sum(w**2 / L)), rel=1e-10)


def test_minus_inf_columns():
    bm = stats.BatchMeans(2, 3)
    inc = np.array([[0.1, -np.inf, -np.inf], [0.2, -np.inf, 0.3]])
    bm.add(inc, 4, inc.copy())
    with np.errstate(invalid="ignore"):
        bm.add(inc - inc, 4, inc.copy())
    mean, se = bm.stderr()
    assert mean[1] == -np.inf and se[1] == 0.0  # -inf everywhere: exact
    assert mean[2] == -np.inf and se[2] == np.inf  # -inf in one sequence only
    assert np.isfinite(mean[0]) and np.isfinite(se[0])


def test_shift_must_be_shared():
    a = _feed(np.ones((1, 2, 1)), [3, 3])
    b = _feed(2 * np.ones((1, 2, 1)), [3, 3])
    with pytest.raises(ValueError, match="shift"):
        stats.combine_batch_means([a, b])
