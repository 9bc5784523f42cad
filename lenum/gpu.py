"""GPU path (numba.cuda): availability check."""


def unavailable_reason():
    """Why the GPU cannot be used, or None when it can."""
    try:
        from numba import cuda
    except ImportError as exc:
        return f"numba.cuda cannot be imported ({exc}); install lenum[gpu]"
    if not cuda.is_available():
        return "no CUDA driver or device found"
    return "the GPU kernels are not part of this version yet"
