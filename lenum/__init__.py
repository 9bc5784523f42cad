"""lenum: Lyapunov spectra of recurrent neural networks, fast, on CPU and GPU."""

from ._version import __version__
from .engine import jacobian, lyapunov_spectrum, spectrum_from_jacobians, step
from .errors import (
    DeviceError,
    FormatError,
    LenumError,
    NonFiniteError,
    ParameterError,
    ShapeError,
)
from .network import Network
from .result import SpectrumResult

__all__ = [
    "__version__",
    "Network",
    "SpectrumResult",
    "lyapunov_spectrum",
    "spectrum_from_jacobians",
    "step",
    "jacobian",
    "LenumError",
    "FormatError",
    "ShapeError",
    "NonFiniteError",
    "DeviceError",
    "ParameterError",
]
