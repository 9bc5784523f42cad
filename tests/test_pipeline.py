"""Slices of a chunk running ahead of the bookkeeping (lenum.pipeline)."""

import contextlib
import functools
import threading
import time

import naive
import numba
import numpy as np
import pytest

import lenum
from lenum import engine, pipeline
from lenum.errors import NonFiniteError
from lenum.pipeline import windows_of_chunk

WINDOWS = [(0, 5), (5, 9), (9, 20), (20, 21), (21, 30), (30, 34), (34, 40), (40, 47)]


def _windows():
    return iter(WINDOWS)


class FakeKernel:
    """A pure-Python advance: row b's log-sums grow by (b + 1) * (t1 - t0) * [1, 2],
    with sleeps that differ by slice and window, so slices drift apart.  Records, for
    each call, how far its window was ahead of the windows the consumer had finished."""

    def __init__(self, fail_at=None, sleep=0.002):
        self.fail_at = fail_at  # (first row of the failing slice, window index)
        self.sleep = sleep
        self.consumed = 0  # kept by the test's consumer
        self.lags = []
        self.calls = []
        self.lock = threading.Lock()

    def __call__(self, b0, b1, t0, t1, Q, logsum, local, beside=None):
        w = [t for t, _ in WINDOWS].index(t0)
        with self.lock:
            self.lags.append(w - self.consumed)
            self.calls.append((b0, w, beside))
        if self.fail_at == (b0, w):
            raise NonFiniteError(f"slice from {b0} failed in window {w}")
        time.sleep(self.sleep * ((b0 + w) % 3))
        rows = np.arange(b0, b1)[:, None] + 1.0
        logsum += rows * (t1 - t0) * np.array([1.0, 2.0])


def _expected(B, upto):
    rows = np.arange(B)[:, None] + 1.0
    return rows * WINDOWS[upto][1] * np.array([1.0, 2.0])


def _consume(gen, kernel, B, pause=0.0, stop_after=None, seen=None):
    seen = [] if seen is None else seen
    for w, (t0, t1, after) in enumerate(gen):
        assert (t0, t1) == WINDOWS[w]
        np.testing.assert_array_equal(after, _expected(B, w))
        seen.append(w)
        time.sleep(pause)
        kernel.consumed = w + 1
        if stop_after is not None and w == stop_after:
            break
    return seen


def _slice_threads():
    """The slice workers still busy: none may be once a chunk's generator is done."""
    # by class: copies of the package (benchmarks/ab_versions.py) keep workers of their own
    workers = [t for t in threading.enumerate() if isinstance(t, pipeline._Worker)]
    return [t for t in workers if t not in pipeline._idle]


@pytest.mark.parametrize("bounds", [[0, 3, 7], [0, 2, 4, 7], [0, 1, 2, 3, 4, 5, 6, 7]])
@pytest.mark.parametrize("depth", [1, 2, 4])
def test_windows_in_order_and_never_more_than_depth_ahead(bounds, depth):
    """Every window is yielded in order with every row's log-sums after it, though the
    slices run unevenly; a slow consumer lets them run ahead by depth - 1 windows,
    never more."""
    B = 7
    kernel = FakeKernel()
    logsum = np.zeros((B, 2))
    Q = np.zeros((B, 1, 1))
    local = np.zeros((B, 0, 2))
    seen = _consume(windows_of_chunk(kernel, 0, B, _windows, Q, logsum, local, bounds, depth),
                    kernel, B, pause=0.01)
    assert seen == list(range(len(WINDOWS)))
    np.testing.assert_array_equal(logsum, _expected(B, len(WINDOWS) - 1))
    assert max(kernel.lags) == depth - 1
    # each slice once per window, run as one of len(bounds) - 1 slices
    assert sorted(kernel.calls) == sorted((b, w, len(bounds) - 1) for b in bounds[:-1]
                                          for w in range(len(WINDOWS)))
    assert not _slice_threads()


@pytest.mark.parametrize("bounds", [None, [0, 7], [0, 3, 7]])
def test_one_slice_runs_on_the_calling_thread(bounds):
    """Without a split, or with depth 0, the whole chunk advances window by window on
    the caller's thread, in step with the consumer."""
    B = 7
    kernel = FakeKernel(sleep=0.0)
    logsum = np.zeros((B, 2))
    depth = 0 if bounds == [0, 3, 7] else 4
    gen = windows_of_chunk(kernel, 0, B, _windows, np.zeros((B, 1, 1)), logsum,
                           np.zeros((B, 0, 2)), bounds, depth)
    _consume(gen, kernel, B)
    assert kernel.calls == [(0, w, None) for w in range(len(WINDOWS))]
    assert max(kernel.lags) == 0


@pytest.mark.parametrize("fail_at", [(0, 3), (3, 3), (3, 0), (3, 7)])
def test_a_slice_error_surfaces_at_its_window(fail_at):
    """A slice that raises at window w: windows before w are yielded whole, then its
    error is raised, and no slice thread is left running."""
    B = 7
    kernel = FakeKernel(fail_at=fail_at)
    logsum = np.zeros((B, 2))
    gen = windows_of_chunk(kernel, 0, B, _windows, np.zeros((B, 1, 1)), logsum,
                           np.zeros((B, 0, 2)), [0, 3, 7], 3)
    seen = []
    with pytest.raises(NonFiniteError, match=f"slice from {fail_at[0]} failed in window "
                                             f"{fail_at[1]}"):
        _consume(gen, kernel, B, seen=seen)
    assert seen == list(range(fail_at[1]))
    assert not _slice_threads()


def test_first_slice_error_wins_when_two_fail_together():
    class Both(FakeKernel):
        def __call__(self, b0, b1, t0, t1, Q, logsum, local, beside=None):
            if t0 == WINDOWS[2][0]:
                time.sleep(0.05 if b0 == 0 else 0.0)  # the later slice fails first
                raise NonFiniteError(f"slice from {b0}")
            super().__call__(b0, b1, t0, t1, Q, logsum, local, beside)

    kernel = Both()
    gen = windows_of_chunk(kernel, 0, 7, _windows, np.zeros((7, 1, 1)), np.zeros((7, 2)),
                           np.zeros((7, 0, 2)), [0, 3, 7], 4)
    with pytest.raises(NonFiniteError, match="slice from 0"):
        _consume(gen, kernel, 7)
    assert not _slice_threads()


def test_closing_early_stops_the_slices():
    """A consumer that stops after window 1 (or raises): the slices finish the window
    they are in and start no other; none is left running."""
    B = 7
    kernel = FakeKernel(sleep=0.001)
    gen = windows_of_chunk(kernel, 0, B, _windows, np.zeros((B, 1, 1)), np.zeros((B, 2)),
                           np.zeros((B, 0, 2)), [0, 3, 7], 2)
    with contextlib.closing(gen):
        _consume(gen, kernel, B, stop_after=1)
    assert not _slice_threads()
    # stopped while window 1 was out, window 0 done: with depth 2 none started window 3
    assert max(w for _, w, _ in kernel.calls) <= 2


@contextlib.contextmanager
def _sequential():
    """The engine with its slices in step (the code before lenum.pipeline)."""
    orig = engine.windows_of_chunk
    engine.windows_of_chunk = functools.partial(windows_of_chunk, depth=0)
    try:
        yield
    finally:
        engine.windows_of_chunk = orig


@contextlib.contextmanager
def _two_threads():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs numba's pool to have 2 threads")
    before = numba.get_num_threads()
    numba.set_num_threads(2)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def _net(cell, N, d, seed):
    w = naive.random_weights(cell, N, d, 1, np.random.default_rng(seed), hh_scale=1.5)
    return lenum.Network.from_state_dict(cell, w)


@pytest.mark.parametrize("cell, N, k, B", [("rnn_tanh", 12, 12, 16), ("lstm", 6, 4, 5),
                                           ("gru", 10, 3, 3)])
def test_engine_results_equal_in_step_and_ahead(cell, N, k, B):
    """Whole spectra on two threads: the slices running ahead give the same numbers,
    to the bit, as slices kept in step (exponents, finite-time exponents, standard
    errors, history), over warm-up windows, counted blocks and two batch chunks."""
    net = _net(cell, N, 3, 5)
    x = np.random.default_rng(6).standard_normal((B, 700, 3))
    kw = {"k": k, "warmup": 300, "keep_local": True, "batch_chunk": max(2, B // 2 + 1)}
    with _two_threads():
        ahead = lenum.lyapunov_spectrum(net, x, **kw)
        with _sequential():
            step = lenum.lyapunov_spectrum(net, x, **kw)
        J = np.random.default_rng(7).standard_normal((B, 90, 5, 5)) / 2
        j_ahead = lenum.spectrum_from_jacobians(J, keep_local=True)
        with _sequential():
            j_step = lenum.spectrum_from_jacobians(J, keep_local=True)
    np.testing.assert_array_equal(ahead.per_sequence, step.per_sequence)
    np.testing.assert_array_equal(ahead.local, step.local)
    np.testing.assert_array_equal(ahead.stderr, step.stderr)
    np.testing.assert_array_equal(ahead.history, step.history)
    np.testing.assert_array_equal(ahead.history_stderr, step.history_stderr)
    np.testing.assert_array_equal(j_ahead.per_sequence, j_step.per_sequence)
    np.testing.assert_array_equal(j_ahead.local, j_step.local)


def test_engine_errors_name_the_same_sequence_and_steps():
    """A NaN in one input of the second slice, and an overflowing state: the engine's
    error names the same sequence and steps whether the slices run ahead or not."""
    net = _net("rnn_tanh", 4, 2, 1)
    x = np.random.default_rng(2).standard_normal((6, 600, 2))
    x[4, 450, 1] = np.nan
    messages = []
    with _two_threads():
        for ctx in (contextlib.nullcontext, _sequential):
            with ctx(), pytest.raises(NonFiniteError) as e:
                lenum.lyapunov_spectrum(net, x)
            messages.append(str(e.value))
    assert messages[0] == messages[1]
    assert "sequence 4, step 450" in messages[0]
    assert not _slice_threads()


def _two_spectra(net, x):
    # without tol through lenum.pipeline's workers, with it through lenum.cpu's pool
    return (lenum.lyapunov_spectrum(net, x).per_sequence,
            lenum.lyapunov_spectrum(net, x, tol=1e3).per_sequence)


def _spectrum_in_child(net, x, queue):
    with _two_threads():
        queue.put(_two_spectra(net, x))


def test_a_forked_child_does_not_wait_for_its_parents_threads():
    """After spectra on two threads, a child of fork() computes them too: it starts
    threads of its own rather than handing slices to threads it does not have."""
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork() here")
    net = _net("gru", 6, 2, 3)
    x = np.random.default_rng(4).standard_normal((4, 300, 2))
    with _two_threads():
        parent = _two_spectra(net, x)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_spectrum_in_child, args=(net, x, queue))
    child.start()
    try:
        got = queue.get(timeout=120)
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
    for a, b in zip(got, parent):
        np.testing.assert_array_equal(a, b)
