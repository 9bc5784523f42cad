"""Summary statistics of a Lyapunov spectrum and the error bars of its estimate.

Spectrum statistics: the Kaplan-Yorke dimension (Kaplan & Yorke 1979), the sum of the
positive exponents (Pesin's bound on the Kolmogorov-Sinai entropy), and
:func:`summary`, the numbers that studies of trained RNNs compare across networks
(mean, maximum, variance and number of positive exponents; Vogt et al. 2020).

Error bars: the QR method's estimate is a time average, and the log-increments of
neighbouring steps are correlated, so the standard error of the mean is estimated by
*batch means*: each (sequence, time block) pair gives one block mean, and the spread of
the block means gives the standard error.  :class:`BatchMeans` accumulates the sums it
needs block by block (memory does not grow with T), and :func:`combine_batch_means`
pools batch chunks of sequences that may have run for different numbers of steps.
"""

import math

import numpy as np

__all__ = [
    "kaplan_yorke_dimension",
    "ks_entropy",
    "summary",
    "spread",
    "local_statistics",
    "BatchMeans",
    "PooledBatchMeans",
    "combine_batch_means",
]


def kaplan_yorke_dimension(exponents):
    """Kaplan-Yorke (Lyapunov) dimension of a spectrum (Kaplan & Yorke 1979).

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
    """Sum of the positive exponents: Pesin's upper bound on the KS entropy rate.

    ``h_KS <= sum_{lambda_i > 0} lambda_i`` (Pesin 1977), in the units of the exponents
    (nats or bits per step).  For a truncated spectrum (k < n) whose last exponent is
    still positive, the sum misses the positive exponents beyond k and is then a lower
    bound of Pesin's sum, not an upper bound of the entropy.
    """
    lam = np.asarray(exponents, dtype=np.float64)
    return float(np.sum(lam[lam > 0]))


def summary(exponents):
    """The spectrum statistics used to compare networks (Vogt et al. 2020 and follow-ups).

    Parameters
    ----------
    exponents : array_like (k,)

    Returns
    -------
    dict
        ``max`` (the largest exponent), ``mean`` and ``variance`` (population variance,
        ddof=0) over the finite exponents, ``num_positive`` (exponents > 0),
        ``num_minus_inf`` (exponents that are ``-inf``: directions the dynamics
        annihilates; left out of mean and variance), ``k``, ``kaplan_yorke_dimension``
        and ``ks_entropy``.  Mean and variance are NaN when no exponent is finite.
    """
    lam = np.asarray(exponents, dtype=np.float64).ravel()
    finite = lam[np.isfinite(lam)]
    return {
        "k": int(lam.size),
        "max": float(np.max(lam)) if lam.size else math.nan,
        "mean": float(np.mean(finite)) if finite.size else math.nan,
        "variance": float(np.var(finite)) if finite.size else math.nan,
        "num_positive": int(np.sum(lam > 0)),
        "num_minus_inf": int(np.sum(lam == -np.inf)),
        "kaplan_yorke_dimension": kaplan_yorke_dimension(lam),
        "ks_entropy": ks_entropy(lam),
    }


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


def local_statistics(local):
    """Distribution statistics of finite-time (local) exponents.

    Parameters
    ----------
    local : array_like (B, S, k)
        ``log R_ii / qr_every`` of every counted QR step; NaN entries (steps a sequence
        did not run) are left out.

    Returns
    -------
    dict
        ``mean`` (k,) and ``variance`` (k,) (ddof=0) of the local exponents over all
        sequences and QR steps; ``fraction_positive`` (k,), the fraction of QR steps at
        which local exponent i is positive; ``fraction_max_positive``, the same for the
        leading (first, in QR order) exponent: the fraction of steps whose local maximum
        exponent is positive, i.e. that expand volumes along the most unstable
        direction; ``samples``, the number of QR steps counted per exponent.
        Columns holding ``-inf`` get ``-inf`` mean and NaN variance.
    """
    loc = np.asarray(local, dtype=np.float64)
    if loc.ndim != 3:
        raise ValueError(f"local must be (B, S, k), found shape {loc.shape}")
    k = loc.shape[2]
    flat = loc.reshape(-1, k)
    valid = ~np.isnan(flat)
    count = valid.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        total = np.where(valid, flat, 0.0).sum(axis=0)
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        dev = np.where(valid, flat - mean, 0.0)
        var = np.where(count > 0, (dev * dev).sum(axis=0) / np.maximum(count, 1), np.nan)
        pos = np.where(count > 0, (np.where(valid, flat, 0.0) > 0).sum(axis=0)
                       / np.maximum(count, 1), np.nan)
    var[~np.isfinite(mean)] = np.nan
    return {
        "mean": mean,
        "variance": var,
        "fraction_positive": pos,
        "fraction_max_positive": float(pos[0]) if k else math.nan,
        "samples": int(count.max()) if k else 0,
    }


class BatchMeans:
    """Running sums of the block means of one batch chunk of sequences.

    The chunk's sequences all advance together, block by block; :meth:`add` takes the
    increments of their log-sums over one block.  With block means ``m = increment /
    L`` (``L`` counted steps in the block), the chunk keeps ``sum L (m - shift)`` and
    ``sum L (m - shift)^2`` over sequences and blocks, the number of blocks, and how
    many sequences have a ``-inf`` log-sum (a zero ``R_ii``).  ``shift`` (by default
    the first block's mean) keeps the sums free of cancellation; chunks that are to be
    pooled must share it.  Memory is O(k) whatever the number of steps.
    """

    def __init__(self, num_sequences, k, shift=None):
        self.n = int(num_sequences)
        self.k = int(k)
        self.steps = 0
        self.blocks = 0
        self.shift = None if shift is None else np.array(shift, dtype=np.float64)
        self.s1 = np.zeros(k)
        self.s2 = np.zeros(k)
        self.ninf = np.zeros(k, dtype=np.int64)

    def add(self, increments, length, logsum):
        """Count one block of ``length`` steps.

        Parameters
        ----------
        increments : ndarray (n, k)
            Change of each sequence's log-sum over the block.
        length : int
            Counted steps the block covers.
        logsum : ndarray (n, k)
            The log-sums after the block (to tell which sequences have reached -inf).
        """
        if length <= 0:
            return
        with np.errstate(invalid="ignore"):
            m = np.where(np.isfinite(increments), increments, 0.0) / length
        if self.shift is None:
            self.shift = m.mean(axis=0)
        d = m - self.shift
        self.s1 += length * d.sum(axis=0)
        self.s2 += length * (d * d).sum(axis=0)
        self.steps += int(length)
        self.blocks += 1
        self.ninf = np.sum(logsum == -np.inf, axis=0)

    def stderr(self):
        """Mean and standard error of this chunk alone (see :func:`combine_batch_means`)."""
        return combine_batch_means([self])


class PooledBatchMeans:
    """Sums of :class:`BatchMeans` of several chunks (sharing one shift), O(k) memory.

    :meth:`add` takes a chunk's state at some step; :meth:`result` gives the pooled
    mean and standard error (formulas in :func:`combine_batch_means`).
    """

    def __init__(self, k):
        self.k = int(k)
        self.shift = None
        self.a1 = np.zeros(k)  # sum over chunks of s1 / C
        self.s1 = np.zeros(k)
        self.s2 = np.zeros(k)
        self.ninf = np.zeros(k, dtype=np.int64)
        self.n = 0  # sequences
        self.nc = 0  # sum of n C: the weight of all blocks
        self.nblocks = 0  # number of block means
        self.f = 0.0  # sum of n / C

    def add(self, chunk):
        if chunk.blocks == 0:
            return
        if self.shift is None:
            self.shift = chunk.shift.copy()
        elif not np.array_equal(self.shift, chunk.shift):
            raise ValueError("chunks pooled together must share their shift")
        self.a1 += chunk.s1 / chunk.steps
        self.s1 += chunk.s1
        self.s2 += chunk.s2
        self.ninf += chunk.ninf
        self.n += chunk.n
        self.nc += chunk.n * chunk.steps
        self.nblocks += chunk.n * chunk.blocks
        self.f += chunk.n / chunk.steps

    def result(self):
        """Pooled mean and standard error, ndarrays (k,)."""
        if self.n == 0:
            raise ValueError("no counted blocks")
        B = self.n
        mu = self.a1 / B  # relative to the shift
        ss = self.s2 - 2.0 * mu * self.s1 + mu * mu * self.nc
        if self.nblocks > 1:
            stderr = np.sqrt(np.maximum(ss, 0.0) / (self.nblocks - 1) * self.f / B**2)
        else:
            stderr = np.full(self.k, np.inf)
        mean = np.where(self.ninf > 0, -np.inf, mu + self.shift)
        stderr = np.where(self.ninf == B, 0.0, np.where(self.ninf > 0, np.inf, stderr))
        return mean, stderr


def combine_batch_means(chunks):
    """Pool the batch means of several chunks into a mean and its standard error.

    The estimate is the mean over sequences of each sequence's time average,
    ``mu = (1/B) sum_b logsum_b / C_b``, a weighted mean of the block means with
    weights ``w = L / (B C_b)``.  Modelling the block means as independent with
    variance ``s^2 / L`` (the batch-means method: blocks longer than the correlation
    time of the local exponents), ``Var(mu) = s^2 sum w^2 / L = s^2 / B^2 sum_b 1/C_b``
    with ``s^2 = sum L (m - mu)^2 / (N - 1)`` over the N block means.  For blocks of
    equal length this is the textbook ``sd(block means) / sqrt(N)``; with one block
    per sequence it is the standard deviation over sequences over ``sqrt(B)``; with a
    single block in all it is ``inf``.

    Exponents that are ``-inf`` in every sequence have a standard error of 0 (they
    are exact); those ``-inf`` in only some sequences have mean ``-inf`` and an
    infinite standard error.

    Parameters
    ----------
    chunks : sequence of BatchMeans
        Sharing one ``shift``.

    Returns
    -------
    mean, stderr : ndarray (k,)
        In the units of the increments (nats per step in lenum).
    """
    chunks = list(chunks)
    if not chunks:
        raise ValueError("no chunks")
    pooled = PooledBatchMeans(chunks[0].k)
    for c in chunks:
        pooled.add(c)
    return pooled.result()
