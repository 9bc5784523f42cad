"""GPU path (numba.cuda): the twins of the CPU kernels, with a ``gpu_`` prefix.

:func:`unavailable_reason` says why the GPU cannot be used (None when it can; the
CUDA simulator, ``NUMBA_ENABLE_CUDASIM=1``, counts as usable so that the GPU path is
tested on CPU-only machines).  :func:`network_advancer` is the GPU ``advance``
callable that :func:`lenum.engine.lyapunov_spectrum` drives.  numba.cuda is imported
only when these are called, so ``import lenum.gpu`` never fails.
"""

__all__ = ["unavailable_reason", "network_advancer"]

_INSTALL = 'pip install "lenum[gpu]"'


# cells the GPU kernels implement; the engine refuses (device="gpu") or falls back to
# the CPU (device="auto") for the others
CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru")


def unavailable_reason():
    """Why the GPU cannot be used, or None when it can.

    Returns
    -------
    str or None
        A one-line reason: numba.cuda not importable, no CUDA driver, no device, no
        CUDA toolkit libraries (NVVM) to compile the kernels with, or a numba-cuda whose
        compiler does not load with the installed NumPy.
    """
    try:
        from numba import config, cuda
    except ImportError as exc:
        return f"numba.cuda cannot be imported ({exc}); {_INSTALL}"
    if config.ENABLE_CUDASIM:
        return None
    try:
        from numba.cuda.cudadrv.driver import driver

        count = driver.get_device_count()
    except Exception as exc:  # CudaSupportError and friends: no usable driver
        words = " ".join(w.strip() for w in str(exc).splitlines() if w.strip(" :"))
        detail = f" ({words})" if words else ""
        return f"no usable CUDA driver{detail}; install the NVIDIA driver"
    if count < 1:
        return "the CUDA driver found no GPU device"
    if not cuda.is_available():
        return "numba.cuda reports the GPU as unavailable (unsupported device or driver)"
    try:
        from numba.cuda.cudadrv import nvvm

        if not nvvm.is_available():
            return f"the CUDA compiler libraries (NVVM) are not found; {_INSTALL}"
    except Exception as exc:
        return f"the CUDA compiler libraries (NVVM) cannot be loaded ({exc}); {_INSTALL}"
    return _compiler_load_problem()


def _compiler_load_problem():
    """Why numba-cuda's kernel compiler cannot load, or None when it can.

    numba-cuda loads its NumPy support only when the first kernel compiles, so a
    numba-cuda release that predates the installed NumPy (0.30.4 under NumPy 2.5, whose
    ``np.row_stack`` is gone) imports and sees the device, then fails in the middle of
    a run.  Loading that part here turns the failure into a reason given up front.
    """
    try:
        import importlib

        importlib.import_module("numba.cuda.cudaimpl")
    except Exception as exc:
        import numpy

        try:
            from importlib.metadata import version

            nc = f"numba-cuda {version('numba-cuda')}"
        except Exception:
            nc = "numba-cuda"
        words = " ".join(str(exc).split())
        return (f"{nc} cannot compile kernels under NumPy {numpy.__version__} ({words}); "
                f"install a NumPy it supports, e.g. pip install \"numpy<2.5\"")
    return None


def network_advancer(code, weights, x, single, S0, T, warmup, qr_every, keep_local, dtype,
                     input_name):
    """The GPU ``advance(b0, b1, t0, t1, Q, logsum, local)`` callable.

    See :func:`lenum.gpu.host.network_advancer`.
    """
    from .host import network_advancer as _advancer

    return _advancer(code, weights, x, single, S0, T, warmup, qr_every, keep_local, dtype,
                     input_name)
