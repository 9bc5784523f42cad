"""Summary statistics of a Lyapunov spectrum."""

import numpy as np

__all__ = ["kaplan_yorke_dimension", "ks_entropy", "spread"]


def kaplan_yorke_dimension(exponents):
    """Kaplan-Yorke (Lyapunov) dimension of a spectrum.

    With the exponents sorted in descending order and ``j`` the largest index such that
    ``S_j = lambda_1 + ... + lambda_j >= 0``, ``D = j + S_j / |lambda_{j+1}|``; ``D = 0``
    when ``lambda_1 < 0``.  When every partial sum is non-negative the dimension is the
    number of exponents given: for a truncated spectrum (k < n) that is only a lower bound.
    A ``-inf`` exponent contributes nothing to the fraction.
    """
    lam = np.sort(np.asarray(exponents, dtype=np.float64))[::-1]
    if lam.size == 0 or not lam[0] >= 0:
        return 0.0
    sums = np.cumsum(lam)
    nonneg = np.nonzero(sums >= 0)[0]
    j = int(nonneg[-1]) + 1  # number of exponents in the non-negative partial sum
    if j == lam.size:
        return float(j)
    nxt = abs(lam[j])
    frac = sums[j - 1] / nxt if np.isfinite(nxt) and nxt > 0 else 0.0
    return float(j + frac)


def ks_entropy(exponents):
    """Sum of the positive exponents (Pesin's upper bound on the KS entropy rate)."""
    lam = np.asarray(exponents, dtype=np.float64)
    return float(np.sum(lam[lam > 0]))


def spread(per_sequence):
    """Standard deviation over sequences (axis 0), never NaN.

    Sample standard deviation (ddof=1) with more than one sequence, 0 with one.
    Columns holding -inf: 0 when every sequence is -inf, inf when only some are.
    """
    per_sequence = np.asarray(per_sequence, dtype=np.float64)
    B, k = per_sequence.shape
    out = np.zeros(k)
    if B < 2:
        return out
    finite = np.isfinite(per_sequence)
    all_finite = finite.all(axis=0)
    if all_finite.any():
        out[all_finite] = np.std(per_sequence[:, all_finite], axis=0, ddof=1)
    mixed = ~all_finite & finite.any(axis=0)
    out[mixed] = np.inf
    return out
