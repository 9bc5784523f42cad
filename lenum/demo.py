"""The bundled example behind ``lenum demo``.

Two small networks trained with PyTorch on the 3-bit flip-flop task (see
``examples/make_demo_weights.py``, which made the files in ``lenum/data``): a one-layer
LSTM and a two-layer GRU, 32 units each, driven by 8 held-out input sequences of 500
steps.  Running it needs neither PyTorch nor network access.
"""

import contextlib
from importlib import resources

__all__ = ["DESCRIPTION", "WARMUP", "data_files", "run"]

DESCRIPTION = (
    "lenum demo: Lyapunov spectra (nats/step) of a 1-layer LSTM and a 2-layer GRU "
    "(N=32, d=3)\ntrained on the 3-bit flip-flop task, driven by 8 held-out sequences "
    "of 500 steps (first 100 not counted)."
)
WARMUP = 100  # transient steps before the exponents are averaged

_FILES = {"lstm": "demo_lstm.h5", "gru": "demo_gru.h5", "inputs": "demo_inputs.h5"}


@contextlib.contextmanager
def data_files():
    """Yield ``{"lstm": path, "gru": path, "inputs": path}`` of the bundled files.

    The paths are real files for the duration of the ``with`` block, also when lenum
    is installed as a zip.
    """
    base = resources.files("lenum").joinpath("data")
    with contextlib.ExitStack() as stack:
        yield {
            key: str(stack.enter_context(resources.as_file(base.joinpath(name))))
            for key, name in _FILES.items()
        }


def run(progress=False):
    """Compute the demo spectra.

    Parameters
    ----------
    progress : bool
        Passed on to :func:`lenum.lyapunov_spectrum`.

    Returns
    -------
    dict
        ``{"lstm": SpectrumResult, "gru": SpectrumResult}``, all exponents of each.
    """
    from . import io
    from .engine import lyapunov_spectrum

    out = {}
    with data_files() as paths:
        x = io.load_inputs(paths["inputs"])
        for name in ("lstm", "gru"):
            net = io.load_network(paths[name])
            out[name] = lyapunov_spectrum(net, x, warmup=WARMUP, progress=progress)
    return out
