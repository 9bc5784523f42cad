import os

# The CUDA simulator must be chosen before numba is imported.  LENUM_REAL_GPU=1 keeps
# the real driver (on a machine with a GPU).
if os.environ.get("LENUM_REAL_GPU") != "1":
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

from hypothesis import HealthCheck, settings  # noqa: E402

# The first call of a jitted kernel compiles it (seconds): no per-example deadline.
settings.register_profile(
    "lenum", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "lenum"))
