"""Lyapunov spectra by the QR method: validation, chunking and the loop over windows.

The QR (Benettin et al. 1980; Shimada & Nagashima 1979) method propagates an
orthonormal basis Q through the tangent map, ``Z = J_t Q``, re-orthonormalises it with
a QR factorisation whose R has a non-negative diagonal, and averages ``log diag R``.
This module checks every argument once, splits the batch into chunks and time into
windows (inputs stream; memory does not grow with T), and hands clean arrays to the
kernels in :mod:`lenum.cpu` (or :mod:`lenum.gpu`).
"""

import contextlib
import logging
import math
import sys
import warnings

import numpy as np
from threadpoolctl import ThreadpoolController

from . import cpu
from .errors import DeviceError, NonFiniteError, ParameterError, ShapeError
from .network import Network
from .pipeline import windows_of_chunk
from .result import SpectrumResult
from .stats import BatchMeans, PooledBatchMeans

__all__ = ["lyapunov_spectrum", "spectrum_from_jacobians", "step", "jacobian", "default_basis",
           "ConvergenceWarning"]

log = logging.getLogger("lenum")

DEFAULT_SEED = 20200717
_WINDOW = 256  # time steps per kernel call
_CHUNK_BYTES = 256 * 2**20  # memory budget for the bases of one batch chunk
_MIN_BLOCK = 32  # shortest time block (batch mean) on short runs
_MIN_BLOCKS_FOR_TOL = 16  # block means a chunk needs before its standard error is trusted
_HISTORY_POINTS = 200  # the running history keeps about this many points at most


class ConvergenceWarning(UserWarning):
    """A run with ``tol`` ended (input or ``max_steps`` exhausted) above the tolerance."""


_blas = None


def _blas_single_threaded(parallel):
    """A context in which BLAS runs on one thread when the kernels run in parallel.

    The kernels call BLAS from their worker threads over sequences; a multi-threaded BLAS
    there oversubscribes the cores (measured 4-40x slower at N = 256 on 2 cores).  With
    one sequence in a chunk the kernel is serial and BLAS keeps its threads.
    """
    global _blas
    if not parallel:
        return contextlib.nullcontext()
    if _blas is None:
        _blas = ThreadpoolController()
    return _blas.limit(limits=1, user_api="blas")


def default_basis(n, k, seed=DEFAULT_SEED):
    """The default initial basis: a random orthonormal (n, k) matrix from a fixed seed.

    Not the identity: its first k columns can lie in a subspace that the dynamics
    annihilates (an LSTM's h block when W_hh = 0), which would give -inf exponents
    instead of the top k.
    """
    g = np.random.default_rng(seed).standard_normal((n, k))
    q, r = np.linalg.qr(g)
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)


def _int_arg(name, value, lo, hi=None):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ParameterError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ParameterError(f"{name}={value} is out of range: expected {bound}")
    return value


def _dtype_arg(dtype):
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ParameterError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return dt


def _units_scale(units):
    if units == "nats":
        return 1.0
    if units == "bits":
        return 1.0 / math.log(2.0)
    raise ParameterError(f"units must be 'nats' or 'bits', got {units!r}")


def _check_finite(arr, what):
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))
        where = tuple(int(i) for i in bad[0])
        raise NonFiniteError(f"{what}: {len(bad)} NaN or Inf value(s), first at index {where}")


def _resolve_device(device, cell=None):
    if device == "cpu":
        return "cpu"
    if device not in ("gpu", "auto"):
        raise ParameterError(f"device must be 'cpu', 'gpu' or 'auto', got {device!r}")
    try:
        from . import gpu
    except ImportError as exc:  # pragma: no cover - the module ships with lenum
        reason = str(exc)
    else:
        reason = gpu.unavailable_reason()
        if reason is None and cell is not None and cell not in gpu.CELLS:
            reason = f"the GPU kernels do not support cell {cell!r} yet"
        if reason is None:
            return "gpu"
    if device == "gpu":
        raise DeviceError(f"device='gpu' is not usable: {reason}")
    log.info("device='auto': no usable GPU (%s); running on the CPU", reason)
    return "cpu"


def _basis(q0, n, k, B, dtype):
    """Validated initial basis, (n, k) shared or (B, n, k) per sequence."""
    if q0 is None:
        return default_basis(n, k).astype(dtype)
    q0 = np.asarray(q0, dtype=np.float64)
    if q0.ndim not in (2, 3) or q0.shape[-2:] != (n, k) or (q0.ndim == 3 and q0.shape[0] != B):
        raise ShapeError(f"q0: expected shape ({n}, {k}) or ({B}, {n}, {k}), found {q0.shape}")
    _check_finite(q0, "q0")
    gram = np.einsum("...ij,...il->...jl", q0, q0)
    err = float(np.max(np.abs(gram - np.eye(k)))) if k else 0.0
    if err > 1e-6:
        raise ParameterError(
            f"q0 is not orthonormal: max |Q^T Q - I| = {err:.3g} (tolerance 1e-6)"
        )
    return q0.astype(dtype)


def _initial_state(net, h0, c0, B, dtype):
    """State vectors (B, n) from PyTorch-style h0/c0 of shape (num_layers, B, N)."""
    L, N = net.num_layers, net.hidden_size
    S = np.zeros((B, net.state_size), dtype=np.float64)
    per = net.layer_state_size
    for name, arr, offset in (("h0", h0, 0), ("c0", c0, N)):
        if arr is None:
            continue
        if name == "c0" and net.cell != "lstm":
            raise ParameterError(f"c0 is given but cell {net.cell!r} has no cell state")
        arr = np.asarray(arr, dtype=np.float64)
        if arr.ndim == 2 and arr.shape == (L, N):
            arr = np.broadcast_to(arr[:, None, :], (L, B, N))
        if arr.shape != (L, B, N):
            raise ShapeError(
                f"{name}: expected shape (num_layers, B, N) = ({L}, {B}, {N}), found {arr.shape}"
            )
        _check_finite(arr, name)
        for layer in range(L):
            S[:, layer * per + offset:layer * per + offset + N] = arr[layer]
    return S.astype(dtype)


class _Progress:
    """A tqdm bar on stderr that appears only for runs longer than a second."""

    def __init__(self, enabled, total, desc):
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="step", unit_scale=True,
                            file=sys.stderr, delay=1.0, leave=False)

    def update(self, n):
        if self.bar is not None:
            self.bar.update(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()


def _run_options(T, what, warmup, qr_every, tol, max_steps, units):
    """The checked run options of a spectrum over ``T`` steps (``what`` names them in
    errors: "sequences have"): ``(warmup, qr_every, tol, max_steps, T_run, scale)``."""
    warmup = _int_arg("warmup", warmup, 0)
    if warmup >= T:
        raise ParameterError(f"warmup={warmup} leaves no counted steps: {what} T={T}")
    qr_every = _int_arg("qr_every", qr_every, 1)
    tol = _tol_arg(tol)
    if max_steps is not None:
        max_steps = _int_arg("max_steps", max_steps, 1)
    T_run = T if max_steps is None else min(T, warmup + max_steps)
    return warmup, qr_every, tol, max_steps, T_run, _units_scale(units)


def _tol_arg(tol):
    if tol is None:
        return None
    try:
        tol = float(tol)
    except (TypeError, ValueError):
        raise ParameterError(f"tol must be a positive number, got {tol!r}") from None
    if not (tol > 0 and math.isfinite(tol)):
        raise ParameterError(f"tol must be a positive finite number, got {tol!r}")
    return tol


def _block_size(counted, qr_every):
    """Counted steps per time block: one kernel window and one batch mean.

    ``_WINDOW`` steps on long runs; shorter runs get about 16 blocks per sequence, but
    no block shorter than ``_MIN_BLOCK`` steps, so that block means stay nearly
    independent.  A multiple of ``qr_every``: every block then ends on a QR step and
    its log-sum increment covers exactly its own steps.
    """
    size = min(_WINDOW, max(_MIN_BLOCK, -(-counted // 16)))
    return -(-size // qr_every) * qr_every


def _chunk_size(B, n, k, itemsize, batch_chunk):
    if batch_chunk is not None:
        return _int_arg("batch_chunk", batch_chunk, 1)
    threads = cpu.num_threads()
    fit = _CHUNK_BYTES // max(1, 2 * n * k * itemsize)
    return max(1, min(B, max(threads, fit)))


def _run_qr_method(B, T, n, k, warmup, qr_every, keep_local, q0, dtype, advance, progress,
                   desc, batch_chunk, tol=None, scale=1.0):
    """The loop over batch chunks and time windows shared by both public entry points.

    ``advance(b0, b1, t0, t1, Q, logsum, local)`` moves chunk ``b0:b1`` through steps
    ``t0:t1`` (0-based, half open) and returns nothing.  An advancer with a ``split``
    method (the CPU's: ``split(nb)``, the slice boundaries of ``nb`` sequences, one per
    thread) is run slice by slice without ``tol``, each slice on its thread and ahead of
    the bookkeeping (:mod:`lenum.pipeline`); ``T`` is the last step run
    (``max_steps`` already applied).  The warm-up runs in windows of ``_WINDOW`` steps,
    the counted steps in blocks of :func:`_block_size` starting at the end of the
    warm-up; after each block the log-sum increments feed the batch means
    (:class:`lenum.stats.BatchMeans`).

    Early stopping with ``tol`` is decided per batch chunk: a chunk stops at the first
    block boundary where the standard error of each of its exponents, from its own
    block means and times ``scale`` (the result's units), is below ``tol``, once it has
    at least 2 blocks per sequence and ``_MIN_BLOCKS_FOR_TOL`` block means in all.  Every
    chunk thus meets ``tol`` on its own and the pooled standard error is smaller still;
    chunks may stop after different numbers of steps.

    Returns
    -------
    per_sequence : ndarray (B, k)
    local : ndarray (B, S, k) or None
        NaN after the last QR step of a chunk that stopped early.
    info : dict
        ``steps`` (most counted steps of any chunk), ``steps_min``, ``stderr`` (k,),
        ``history_steps`` (H,), ``history`` and ``history_stderr`` (H, k) (nats),
        ``converged`` (True, False, or None without ``tol``).
    """
    counted = T - warmup
    block = _block_size(counted, qr_every)
    n_blocks = -(-counted // block)
    # the history records every hstride-th block boundary (and the end)
    hstride = max(1, -(-n_blocks // _HISTORY_POINTS))
    n_local = -(-counted // qr_every) if keep_local else 0
    per_sequence = np.empty((B, k))
    local = np.full((B, n_local, k), np.nan) if keep_local else None

    def windows():
        # generated, not listed: a list would grow with T
        for t0 in range(0, warmup, _WINDOW):
            yield t0, min(warmup, t0 + _WINDOW)
        for t0 in range(warmup, T, block):
            yield t0, min(T, t0 + block)

    # pooled sums at every hstride-th block boundary and at the end of each chunk: a
    # chunk that stops early adds its final sums to the later points (O(H k) memory)
    grid = {min(counted, j * block): PooledBatchMeans(k)
            for j in range(hstride, n_blocks + hstride, hstride)}
    final = PooledBatchMeans(k)
    shift = None  # the first chunk's first block mean, shared by all chunks
    steps_run = []
    converged = None if tol is None else True
    worst = None  # (standard error in result units, exponent, b0, b1) of an unconverged chunk
    bc = _chunk_size(B, n, k, dtype.itemsize, batch_chunk)
    if batch_chunk is None and hasattr(advance, "chunk_size"):
        # the GPU runs one thread block per sequence: it wants the whole batch per launch
        bc = advance.chunk_size(B, n, k, dtype.itemsize)
    with _Progress(progress, B * T, desc) as bar, _blas_single_threaded(bc > 1):
        for b0 in range(0, B, bc):
            b1 = min(B, b0 + bc)
            Q = np.ascontiguousarray(np.broadcast_to(q0 if q0.ndim == 2 else q0[b0:b1],
                                                     (b1 - b0, n, k)), dtype=dtype).copy()
            logsum = np.zeros((b1 - b0, k))
            loc = np.zeros((b1 - b0, n_local, k))
            blocks = BatchMeans(b1 - b0, k, shift=shift)
            before = logsum.copy()
            done = 0
            stopped = False
            # with tol the chunk may stop at any block, so its slices keep in step
            bounds = advance.split(b1 - b0) if tol is None and hasattr(advance, "split") else None
            with contextlib.closing(windows_of_chunk(advance, b0, b1, windows, Q, logsum, loc,
                                                     bounds)) as run:
                for t0, t1, after in run:
                    if np.isnan(after).any():
                        raise NonFiniteError(
                            f"NaN in the tangent dynamics of sequences {b0}..{b1 - 1} between "
                            f"steps {t0} and {t1}: the state or the Jacobian overflowed"
                        )
                    bar.update((b1 - b0) * (t1 - t0))
                    if t1 <= warmup:
                        continue
                    with np.errstate(invalid="ignore"):  # -inf - -inf once R_ii hit zero
                        blocks.add(after - before, t1 - t0, after)
                    before[...] = after
                    shift = blocks.shift
                    done = t1 - warmup
                    if done in grid:
                        grid[done].add(blocks)
                    if (tol is not None and blocks.blocks >= 2
                            and blocks.n * blocks.blocks >= _MIN_BLOCKS_FOR_TOL):
                        _, se = blocks.stderr()
                        if np.all(se * scale < tol):
                            stopped = True
                            break
            if tol is not None and not stopped:
                converged = False
                se = blocks.stderr()[1] * scale
                j = int(np.argmax(se))
                if worst is None or se[j] > worst[0]:
                    worst = (float(se[j]), j, b0, b1)
            per_sequence[b0:b1] = logsum / done
            if keep_local:
                rows = -(-done // qr_every)
                local[b0:b1, :rows] = loc[:, :rows]
            final.add(blocks)
            for s, pooled in grid.items():
                if s > done:
                    pooled.add(blocks)
            steps_run.append(done)
    steps = max(steps_run)
    if keep_local and steps < counted:
        local = local[:, :-(-steps // qr_every)]
    history_steps = [s for s in sorted(grid) if s < steps] + [steps]
    history, history_se = [], []
    for s in history_steps:
        mean, se = (grid[s] if s < steps else final).result()
        history.append(mean)
        history_se.append(se)
    info = {
        "steps": steps,
        "steps_min": min(steps_run),
        "stderr": history_se[-1],
        "history_steps": np.asarray(history_steps, dtype=np.int64),
        "history": np.asarray(history),
        "history_stderr": np.asarray(history_se),
        "converged": converged,
        "worst": worst,
    }
    return per_sequence, local, info


def _finish(per_sequence, local, info, units, tol=None, max_steps=None, **meta):
    scale = _units_scale(units)
    stderr = info["stderr"] * scale
    history = {"steps": info["history_steps"], "exponents": info["history"] * scale,
               "stderr": info["history_stderr"] * scale}
    if scale != 1.0:
        per_sequence = per_sequence * scale
        local = None if local is None else local * scale
    if max_steps is not None:
        meta["max_steps"] = max_steps
    if info["steps_min"] != info["steps"]:
        meta["steps_min"] = info["steps_min"]
    if tol is not None:
        meta["tol"] = tol
        meta["converged"] = bool(info["converged"])
        if not info["converged"]:
            se, j, b0, b1 = info["worst"]
            why = ("max_steps was reached" if max_steps is not None
                   and info["steps"] >= max_steps else "the input ran out")
            warnings.warn(
                f"not converged: {why} after {info['steps']} counted steps; the standard "
                f"error of exponent {j} over sequences {b0}..{b1 - 1} is {se:.3g} "
                f"{units}/step, above tol={tol:g}; result.meta['converged'] is False",
                ConvergenceWarning, stacklevel=3)
    return SpectrumResult(per_sequence, info["steps"], local=local, units=units, stderr=stderr,
                          history=history, **meta)


def _input_shape(x, net, input_name):
    shape = tuple(getattr(x, "shape", ()))
    if len(shape) == 2:
        return (1,) + shape, True
    if len(shape) != 3:
        raise ShapeError(
            f"{input_name}: expected shape (B, T, d) or (T, d) with d = {net.input_size}, "
            f"found {shape}"
        )
    return shape, False


def network_args(net, x, k, h0, c0, q0, dtype, input_name):
    """Checks shared by every computation on a network driven by inputs.

    Returns ``(B, T, single, k, dtype, S0, Q0)``: the batch and time sizes, whether
    ``x`` was one (T, d) sequence, the number of exponents, the compute dtype, the
    initial states (B, n) and the initial basis ((n, k) or (B, n, k)).
    """
    if not isinstance(net, Network):
        raise TypeError(f"net must be a lenum.Network, got {type(net).__name__}")
    shape, single = _input_shape(x, net, input_name)
    B, T, d = shape
    if d != net.input_size:
        raise ShapeError(
            f"{input_name}: input size {d} does not match the network's "
            f"(weight_ih_l0 has shape {net.packed()[0].shape}, so d = {net.input_size}); "
            f"found inputs of shape {tuple(x.shape)}"
        )
    if B < 1 or T < 1:
        raise ShapeError(f"{input_name}: no sequences or no steps, shape {tuple(x.shape)}")
    n = net.state_size
    if k is None and q0 is not None:
        k = np.shape(q0)[-1]
    k = n if k is None else _int_arg("k", k, 1, n)
    dt = _dtype_arg(dtype)
    if single:
        h0 = None if h0 is None else np.asarray(h0).reshape(net.num_layers, 1, -1)
        c0 = None if c0 is None else np.asarray(c0).reshape(net.num_layers, 1, -1)
    S0 = _initial_state(net, h0, c0, B, dt)
    Q0 = _basis(q0, n, k, B, dt)
    return B, T, single, k, dt, S0, Q0


def lyapunov_spectrum(net, x, k=None, warmup=0, h0=None, c0=None, q0=None, qr_every=1,
                      dtype="float64", device="cpu", units="nats", keep_local=False,
                      progress=False, tol=None, max_steps=None, *, batch_chunk=None,
                      input_name="inputs"):
    """Lyapunov spectrum of a recurrent network driven by input sequences.

    The QR method (Benettin et al. 1980; Shimada & Nagashima 1979): along each input
    sequence the state advances, ``s_t = F(s_{t-1}, x_t)``, an orthonormal basis is
    pushed through the Jacobian, ``Z = J_t Q``, and re-orthonormalised, ``Q, R = qr(Z)``
    with diag(R) >= 0; the exponents are the time averages of ``log diag R``.

    Parameters
    ----------
    net : Network
    x : array_like, (B, T, d) or (T, d)
        Input sequences.  Anything with ``.shape`` and NumPy slicing (an h5py Dataset)
        is read in chunks of sequences and windows of time steps.
    k : int, optional
        Number of exponents (the k largest, in QR order); default the whole state.
    warmup : int
        Leading steps that advance the state and the basis but are not counted.
    h0, c0 : array_like, (num_layers, B, N) or (num_layers, N), optional
        Initial hidden (and LSTM cell) states, as in PyTorch; default zeros.
    q0 : array_like, (n, k) or (B, n, k), optional
        Orthonormal initial basis; default :func:`default_basis` (fixed seed).
    qr_every : int
        Re-orthonormalisation interval.  Larger values skip QR work but lose the small
        exponents to round-off when the spread of exponents times ``qr_every`` is large.
    dtype : {"float64", "float32"}
        Compute precision; the log-sums are accumulated in float64 either way.
    device : {"cpu", "gpu", "auto"}
    units : {"nats", "bits"}
        Natural log per step, or log2 per step.
    keep_local : bool
        Keep the finite-time exponents of every counted QR step in ``result.local``.
    progress : bool
        Show a progress bar on stderr for runs longer than a second.
    tol : float, optional
        Stop early once the standard error of every exponent is below ``tol`` (in
        ``units`` per step).  The check runs at the end of each time block (256 counted
        steps, fewer on short runs) and needs at least 16 block means and 2 blocks per
        sequence; with several batch chunks each chunk stops on its own standard error
        (see Notes).  If the input (or ``max_steps``) runs out first, a
        :class:`ConvergenceWarning` is issued and ``result.meta["converged"]`` is False.
    max_steps : int, optional
        At most this many counted steps (after the warm-up) per sequence.
    batch_chunk : int, optional
        Sequences processed together (memory: about 2 * batch_chunk * n * k values).
    input_name : str
        How error messages name the inputs (a file and dataset, for example).

    Returns
    -------
    SpectrumResult
        With ``stderr`` (k,) and the running estimates ``history_steps`` (H,),
        ``history`` and ``history_stderr`` (H, k).

    Raises
    ------
    ShapeError, NonFiniteError, ParameterError, DeviceError

    Notes
    -----
    Standard error by batch means: the counted steps of each sequence are cut into time
    blocks; every (sequence, block) pair gives a block mean of the local exponents, and
    ``stderr = sd(block means) / sqrt(number of blocks)`` (lengths weighted when the
    last block is shorter; see :func:`lenum.stats.combine_batch_means`).  It assumes
    blocks longer than the correlation time of the local exponents and does not see the
    bias of a too short warm-up.  With a single block in all it is ``inf``.

    With ``tol`` and several batch chunks, each chunk runs until its own standard error
    is below ``tol``; the pooled standard error of the result is then below ``tol`` as
    well, and ``result.steps`` is the longest chunk's count (``meta["steps_min"]`` the
    shortest, when they differ; ``local`` is NaN-padded).
    """
    B, T, single, k, dt, S0, Q0 = network_args(net, x, k, h0, c0, q0, dtype, input_name)
    n = net.state_size
    warmup, qr_every, tol, max_steps, T_run, scale = _run_options(
        T, "sequences have", warmup, qr_every, tol, max_steps, units)
    device = _resolve_device(device, net.cell)
    weights = net.packed(dt)

    if device == "gpu":
        from . import gpu

        advance_factory = gpu.network_advancer
    else:
        advance_factory = _cpu_network_advancer
    advance = advance_factory(net.cell_code, weights, x, single, S0, T_run, warmup, qr_every,
                              keep_local, dt, input_name)
    per_sequence, local, info = _run_qr_method(B, T_run, n, k, warmup, qr_every, keep_local,
                                               Q0, dt, advance, progress, "lenum", batch_chunk,
                                               tol=tol, scale=scale)
    return _finish(per_sequence, local, info, units, tol=tol, max_steps=max_steps,
                   cell=net.cell, k=k, warmup=warmup, qr_every=qr_every, dtype=dt.name,
                   device=device, num_layers=net.num_layers, hidden_size=net.hidden_size,
                   input_size=net.input_size)


def read_inputs(x, single, b0, b1, t0, t1, dtype, input_name):
    """Inputs of sequences b0:b1, steps t0:t1 as a contiguous array, checked finite."""
    chunk = x[t0:t1][None] if single else x[b0:b1, t0:t1]
    chunk = np.ascontiguousarray(chunk, dtype=dtype)
    if not np.all(np.isfinite(chunk)):
        b, t, i = np.argwhere(~np.isfinite(chunk))[0]
        raise NonFiniteError(
            f"{input_name}: NaN or Inf in sequence {b0 + b}, step {t0 + t}, feature {i}"
        )
    return chunk


def _cpu_network_advancer(code, weights, x, single, S0, T, warmup, qr_every, keep_local,
                          dtype, input_name):
    # every sequence's state, (B, n) like S0: slices of a chunk advance from their own
    # threads (lenum.pipeline), each through its own rows
    states = np.array(S0, dtype=dtype, order="C")

    def advance(b0, b1, t0, t1, Q, logsum, local, beside=None):
        X = read_inputs(x, single, b0, b1, t0, t1, dtype, input_name)
        S = states[b0:b1]
        cpu.advance_network(code, *weights, X, S, Q, logsum, local, t0, T, warmup, qr_every,
                            keep_local, beside)
        if not np.all(np.isfinite(S)):
            b = int(np.argwhere(~np.isfinite(S))[0][0])
            raise NonFiniteError(
                f"the state of sequence {b0 + b} overflowed to Inf or NaN between steps "
                f"{t0} and {t1} (an unbounded rnn_relu network?)"
            )

    advance.split = cpu.split
    return advance


def jacobians_arg(J, k, q0):
    """Validated Jacobians as a contiguous (B, T, n, n) array, and the number k.

    float32 stays float32, anything else becomes float64.
    """
    J = np.asarray(J)
    dt = np.dtype(np.float32) if J.dtype == np.float32 else np.dtype(np.float64)
    if J.ndim == 3:
        J = J[None]
    if J.ndim != 4 or J.shape[-1] != J.shape[-2] or J.shape[-1] == 0:
        raise ShapeError(f"J: expected shape (T, n, n) or (B, T, n, n), found {J.shape}")
    if J.shape[0] < 1 or J.shape[1] < 1:
        raise ShapeError(f"J: no sequences or no steps, shape {J.shape}")
    J = np.ascontiguousarray(J, dtype=dt)
    _check_finite(J, "J")
    if k is None and q0 is not None:
        k = np.shape(q0)[-1]
    n = J.shape[-1]
    k = n if k is None else _int_arg("k", k, 1, n)
    return J, k


def spectrum_from_jacobians(J, k=None, warmup=0, qr_every=1, q0=None, units="nats",
                            keep_local=False, progress=False, tol=None, max_steps=None):
    """Lyapunov spectrum of a given sequence of Jacobians by the QR method.

    Parameters
    ----------
    J : array_like, (T, n, n) or (B, T, n, n)
        Jacobians J_1 .. J_T in time order (the product is J_T ... J_1).  float32 input
        is computed in float32, anything else in float64.
    k, warmup, qr_every, q0, units, keep_local, progress, tol, max_steps
        As in :func:`lyapunov_spectrum`.

    Returns
    -------
    SpectrumResult
    """
    J, k = jacobians_arg(J, k, q0)
    dt = J.dtype
    B, T, n, _ = J.shape
    warmup, qr_every, tol, max_steps, T_run, scale = _run_options(
        T, "J has", warmup, qr_every, tol, max_steps, units)
    Q0 = _basis(q0, n, k, B, dt)

    def advance(b0, b1, t0, t1, Q, logsum, local, beside=None):
        cpu.advance_jacobians(np.ascontiguousarray(J[b0:b1, t0:t1]), Q, logsum, local, t0,
                              T_run, warmup, qr_every, keep_local, beside)

    advance.split = cpu.split

    per_sequence, local, info = _run_qr_method(B, T_run, n, k, warmup, qr_every, keep_local,
                                               Q0, dt, advance, progress, "lenum", None,
                                               tol=tol, scale=scale)
    return _finish(per_sequence, local, info, units, tol=tol, max_steps=max_steps, k=k,
                   warmup=warmup, qr_every=qr_every, dtype=dt.name, device="cpu")


def _step_args(net, h, x):
    if not isinstance(net, Network):
        raise TypeError(f"net must be a lenum.Network, got {type(net).__name__}")
    h = np.asarray(h)
    x = np.asarray(x)
    single = h.ndim == 1
    dt = np.dtype(np.float32) if (h.dtype == np.float32 and x.dtype == np.float32) else np.dtype(np.float64)
    H = np.atleast_2d(h).astype(dt)
    X = np.atleast_2d(x).astype(dt)
    n, d = net.state_size, net.input_size
    if H.ndim != 2 or H.shape[1] != n:
        raise ShapeError(f"h: expected shape ({n},) or (B, {n}), found {h.shape}")
    if X.ndim != 2 or X.shape[1] != d or (X.shape[0] != H.shape[0] and X.shape[0] != 1):
        raise ShapeError(
            f"x: expected shape ({d},) or ({H.shape[0]}, {d}), found {x.shape}"
        )
    X = np.ascontiguousarray(np.broadcast_to(X, (H.shape[0], d)))
    _check_finite(H, "h")
    _check_finite(X, "x")
    return single and x.ndim == 1, H, X, dt


def step(net, h, x):
    """One forward step ``s_t = F(s_{t-1}, x_t)`` on full state vectors.

    Parameters
    ----------
    net : Network
    h : array_like, (n,) or (B, n)
        State vectors in lenum's layout: layer 0 first, h before c within an LSTM layer.
    x : array_like, (d,) or (B, d)

    Returns
    -------
    ndarray of the shape of ``h``
    """
    single, H, X, dt = _step_args(net, h, x)
    out = np.empty_like(H)
    Q = np.zeros((net.state_size, 1), dtype=dt)
    Z = np.zeros((H.shape[0], net.state_size, 1), dtype=dt)
    cpu.step_batch(net.cell_code, *net.packed(dt), X, H, out, Q, Z, False)
    return out[0] if single else out


def jacobian(net, h, x):
    """Jacobian of one step with respect to the whole state, ``dF/ds (h, x)``.

    Returns an (n, n) array for a single state, (B, n, n) for a batch.
    """
    single, H, X, dt = _step_args(net, h, x)
    n = net.state_size
    out = np.empty_like(H)
    eye = np.eye(n, dtype=dt)
    Z = np.empty((H.shape[0], n, n), dtype=dt)
    cpu.step_batch(net.cell_code, *net.packed(dt), X, H, out, eye, Z, True, True)
    return Z[0] if single else Z
