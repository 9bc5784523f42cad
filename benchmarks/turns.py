"""Methods timed in turns: one run of each per round, the order rotated each round.

On a shared machine a slow spell of a few seconds then slows every method a little
rather than all the runs of one of them (table H's torch column moved 0.6-2.9x between
runs when each method ran its repeats back to back), and the run that follows another
method's (its caches, the clock it left) is not always the same method's.
"""

import time

__all__ = ["take_turns"]


def take_turns(calls, repeats):
    """Wall-clock seconds of each of ``calls`` over ``repeats`` rounds.

    Parameters
    ----------
    calls : dict
        Name -> callable without arguments; round r starts at the (r mod len)-th name.
    repeats : int
        Rounds, one run of every call each.

    Returns
    -------
    dict
        Name -> list of ``repeats`` durations in seconds, in round order.
    """
    names = list(calls)
    times = {m: [] for m in names}
    for r in range(repeats):
        for m in names[r % len(names):] + names[:r % len(names)]:
            t = time.perf_counter()
            calls[m]()
            times[m].append(time.perf_counter() - t)
    return times
