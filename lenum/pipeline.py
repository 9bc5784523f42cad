"""The time windows of a batch chunk, with each thread's sequences running ahead.

Threads over sequences used to meet after every window: the chunk's bookkeeping (batch
means, the NaN check, the progress bar) reads the log-sums of all its sequences, so
each window waited for its slowest slice, and the threads then idled through the
bookkeeping and the next window's start.  On a shared machine a core that is
interrupted for part of a window holds up the other, window after window
(benchmarks/RESULTS.md, "Threads running ahead").

Here each slice of the chunk runs its own window loop on its own thread, up to
``depth`` windows ahead of the bookkeeping, and leaves a copy of its rows' log-sums
after every window in a ring of ``depth`` slots; the calling thread takes the windows
in order from the ring.  The kernels run on the same slices with the same thread
count as before, so the results are the same to the bit; memory is ``depth`` copies
of the chunk's log-sums, whatever T.
"""

import os
import queue
import threading

import numpy as np

DEPTH = 4  # windows a slice may run ahead of the bookkeeping

_idle = []  # slice workers free for the next chunk
_idle_lock = threading.Lock()


class _Worker(threading.Thread):
    """A thread that runs one slice at a time, kept between chunks and calls.

    Each chunk takes workers of its own (:func:`_take_workers`): in a pool shared by
    calls running at once, slices waiting for their consumer could hold every worker
    while another call's slices wait in the queue.  Kept, not started per chunk: on
    new threads whole spectra of a few windows ran 0.94-0.96x (benchmarks/RESULTS.md).
    """

    def __init__(self):
        super().__init__(name="lenum-slice", daemon=True)
        self._jobs = queue.SimpleQueue()
        self.start()

    def submit(self, fn, *args):
        """Run ``fn(*args)`` (which must not raise) here; returns an Event set after."""
        done = threading.Event()
        self._jobs.put((fn, args, done))
        return done

    def run(self):
        while True:
            fn, args, done = self._jobs.get()
            fn(*args)
            with _idle_lock:
                _idle.append(self)
            done.set()


def _take_workers(count):
    with _idle_lock:
        taken = [_idle.pop() for _ in range(min(count, len(_idle)))]
    return taken + [_Worker() for _ in range(count - len(taken))]


def _forget_workers():
    # a child of fork() has none of its parent's threads: slices handed to them would
    # never run
    global _idle_lock
    _idle.clear()
    _idle_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_workers)


def windows_of_chunk(advance, b0, b1, windows, Q, logsum, local, bounds=None, depth=DEPTH):
    """Run a chunk's windows and yield ``(t0, t1, logsum)`` after each, in order.

    Parameters
    ----------
    advance : callable
        ``advance(b0, b1, t0, t1, Q, logsum, local, beside=None)`` moves sequences
        ``b0:b1`` through steps ``t0:t1``; with ``beside`` a number, as one of that many
        slices running at once, on the calling thread alone.
    b0, b1 : int
        The chunk's sequences.
    windows : callable
        Returns a fresh iterator of the ``(t0, t1)`` windows, in order.
    Q, logsum, local : ndarray
        The chunk's bases (b1 - b0, n, k), log-sums (b1 - b0, k) and finite-time
        exponents (b1 - b0, S, k), advanced in place.
    bounds : sequence of int, optional
        Slice boundaries relative to ``b0`` (``bounds[0] == 0``, ``bounds[-1] ==
        b1 - b0``), one slice per thread.  With one slice or none, or ``depth < 1``,
        the windows run one after the other on the calling thread, ``advance`` taking
        the whole chunk.
    depth : int
        Windows a slice may run ahead of the consumer.

    Yields
    ------
    t0, t1 : int
    logsum : ndarray (b1 - b0, k)
        The log-sums after the window; valid until the next item is asked for.

    Notes
    -----
    An exception raised by a slice at some window is raised here when that window's
    turn comes (the earlier windows are yielded first), from the first slice that
    failed there.  Closing the generator early, or an exception in the consumer, stops
    the slices after their current window; nothing runs on once this returns.
    """
    if bounds is None or len(bounds) <= 2 or depth < 1:
        for t0, t1 in windows():
            advance(b0, b1, t0, t1, Q, logsum, local)
            yield t0, t1, logsum
        return
    parts = len(bounds) - 1
    ring = np.empty((depth,) + logsum.shape, dtype=logsum.dtype)
    cond = threading.Condition()
    done = [0] * parts  # windows each slice has finished
    failed = [None] * parts  # the exception a slice stopped with (at window done[p])
    consumed = 0  # windows the consumer is done with; rebound here, read by the slices
    cancel = False

    def run(p):
        lo, hi = int(bounds[p]), int(bounds[p + 1])
        try:
            for w, (t0, t1) in enumerate(windows()):
                with cond:
                    while not cancel and w - consumed >= depth:
                        cond.wait()
                    if cancel:
                        return
                advance(b0 + lo, b0 + hi, t0, t1, Q[lo:hi], logsum[lo:hi], local[lo:hi],
                        beside=parts)
                # slot w % depth last held window w - depth, which the consumer is done with
                ring[w % depth, lo:hi] = logsum[lo:hi]
                with cond:
                    done[p] = w + 1
                    cond.notify_all()
        except BaseException as e:  # noqa: BLE001 -- handed to the consumer, raised there
            with cond:
                failed[p] = e
                cond.notify_all()

    finished = [w.submit(run, p) for p, w in enumerate(_take_workers(parts))]
    try:
        for w, (t0, t1) in enumerate(windows()):
            with cond:
                # every slice past window w, or stopped at it
                while not all(done[p] > w or failed[p] is not None for p in range(parts)):
                    cond.wait()
                for p in range(parts):
                    if done[p] == w and failed[p] is not None:
                        raise failed[p]
            yield t0, t1, ring[w % depth]
            with cond:
                consumed = w + 1
                cond.notify_all()
    finally:
        with cond:
            cancel = True
            cond.notify_all()
        for f in finished:
            f.wait()
