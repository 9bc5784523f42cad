"""SpectrumResult: what a Lyapunov spectrum computation returns."""

import math

import numpy as np

from . import stats

__all__ = ["SpectrumResult"]


class SpectrumResult:
    """Lyapunov exponents of a network driven by a batch of input sequences.

    Attributes
    ----------
    exponents : ndarray (k,)
        Mean over sequences of the per-sequence exponents, in QR order (which converges
        to descending order), per step, in ``units``.
    std : ndarray (k,)
        Standard deviation over sequences (ddof=1; 0 for a single sequence).
    per_sequence : ndarray (B, k)
        Exponents of each sequence.
    local : ndarray (B, S, k) or None
        Finite-time exponents, ``log R_ii / qr_every`` of each counted QR step, when
        asked for with ``keep_local=True``.
    stderr : ndarray (k,)
        Standard error of :attr:`exponents` by batch means over (sequence, time block)
        pairs (see :func:`lenum.stats.combine_batch_means`).  When not given (a result
        built by hand or read from an older file) it falls back to ``std / sqrt(B)``,
        and to ``inf`` for a single sequence.
    history_steps : ndarray (H,) of int
        Counted steps at which the running estimate was recorded (block boundaries,
        ending with :attr:`steps`).
    history : ndarray (H, k)
        Running estimate of the exponents at ``history_steps``.
    history_stderr : ndarray (H, k)
        Its standard error.
    steps : int
        Counted steps per sequence (T - warmup, or fewer with ``tol``/``max_steps``).
    units : {"nats", "bits"}
    meta : dict
        How the spectrum was computed: cell, k, warmup, qr_every, dtype, device, ...;
        with ``tol``, also ``tol`` and ``converged``.
    """

    def __init__(self, per_sequence, steps, local=None, units="nats", stderr=None,
                 history=None, **meta):
        per_sequence = np.asarray(per_sequence, dtype=np.float64)
        if per_sequence.ndim != 2:
            raise ValueError(f"per_sequence must be (B, k), found shape {per_sequence.shape}")
        self.per_sequence = per_sequence
        self.exponents = per_sequence.mean(axis=0) if per_sequence.shape[0] else np.full(
            per_sequence.shape[1], np.nan
        )
        self.std = stats.spread(per_sequence)
        self.local = None if local is None else np.asarray(local, dtype=np.float64)
        self.steps = int(steps)
        self.units = units
        self.meta = dict(meta)
        B, k = per_sequence.shape
        if stderr is None:
            stderr = self.std / math.sqrt(B) if B > 1 else np.full(k, np.inf)
        self.stderr = np.asarray(stderr, dtype=np.float64).reshape(k)
        if history is None:
            history = {"steps": [self.steps], "exponents": self.exponents[None],
                       "stderr": self.stderr[None]}
        self.history_steps = np.asarray(history["steps"], dtype=np.int64).reshape(-1)
        H = self.history_steps.shape[0]
        self.history = np.asarray(history["exponents"], dtype=np.float64).reshape(H, k)
        self.history_stderr = np.asarray(history["stderr"], dtype=np.float64).reshape(H, k)

    @property
    def k(self):
        return self.per_sequence.shape[1]

    @property
    def num_sequences(self):
        return self.per_sequence.shape[0]

    @property
    def max_exponent(self):
        """The largest exponent (the first, in converged QR order)."""
        return float(np.max(self.exponents)) if self.k else math.nan

    def kaplan_yorke_dimension(self):
        """Kaplan-Yorke dimension of :attr:`exponents` (see :func:`lenum.stats.kaplan_yorke_dimension`)."""
        return stats.kaplan_yorke_dimension(self.exponents)

    def ks_entropy(self):
        """Sum of the positive exponents (an upper bound on the KS entropy rate)."""
        return stats.ks_entropy(self.exponents)

    def summary(self):
        """Spectrum statistics of :attr:`exponents` (see :func:`lenum.stats.summary`)."""
        return stats.summary(self.exponents)

    def local_stats(self):
        """Distribution of the finite-time exponents kept with ``keep_local=True``.

        Returns
        -------
        dict
            Per exponent ``mean``, ``variance`` and ``fraction_positive`` (k,) over all
            sequences and counted QR steps, ``fraction_max_positive`` (the fraction of
            QR steps whose local leading exponent is positive) and ``samples``; see
            :func:`lenum.stats.local_statistics`.

        Raises
        ------
        ValueError
            The result holds no local exponents.
        """
        if self.local is None:
            raise ValueError("no local exponents: compute with keep_local=True")
        return stats.local_statistics(self.local)

    def plot(self, kind="both", **kwargs):
        """A matplotlib Figure of the spectrum and/or the running convergence.

        Parameters
        ----------
        kind : {"both", "spectrum", "convergence"}
        **kwargs
            Passed to :func:`lenum.plot.plot_result`.

        Returns
        -------
        matplotlib.figure.Figure
        """
        from .plot import plot_result

        return plot_result(self, kind=kind, **kwargs)

    def to_dict(self):
        """A JSON-ready summary keyed like the result file."""
        d = {
            "exponents": self.exponents.tolist(),
            "std": self.std.tolist(),
            "stderr": self.stderr.tolist(),
            "per_sequence": self.per_sequence.tolist(),
            "steps": self.steps,
            "k": self.k,
            "units": self.units,
            "max_exponent": self.max_exponent,
            "kaplan_yorke_dimension": self.kaplan_yorke_dimension(),
            "ks_entropy": self.ks_entropy(),
        }
        for key, value in self.meta.items():
            d.setdefault(key, value)
        return d

    def save(self, path, overwrite=False):
        """Write the result to an HDF5 file (``FILE.h5`` or ``FILE.h5:/group``)."""
        from .io import save_result

        save_result(self, path, overwrite=overwrite)

    @classmethod
    def load(cls, path):
        """Read a result written by :meth:`save`."""
        from .io import load_result

        return load_result(path)

    def __repr__(self):
        ex = np.array2string(self.exponents[:6], precision=4, separator=", ")
        more = ", ..." if self.k > 6 else ""
        return (
            f"SpectrumResult(k={self.k}, sequences={self.num_sequences}, steps={self.steps}, "
            f"units={self.units!r}, exponents={ex[:-1]}{more}])"
        )
