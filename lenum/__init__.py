"""lenum: Lyapunov spectra of recurrent neural networks, fast, on CPU and GPU."""

from ._version import __version__
from .clv import CovariantVectors, covariant_vectors, covariant_vectors_from_jacobians
from .engine import ConvergenceWarning, jacobian, lyapunov_spectrum, spectrum_from_jacobians, step
from .errors import (
    DeviceError,
    FormatError,
    LenumError,
    NonFiniteError,
    ParameterError,
    ShapeError,
)
from .io import load_inputs, load_network, save_network
from .network import Network
from .result import SpectrumResult
from .sweep import SweepSummary, sweep

__all__ = [
    "__version__",
    "Network",
    "SpectrumResult",
    "lyapunov_spectrum",
    "spectrum_from_jacobians",
    "step",
    "jacobian",
    "load_network",
    "save_network",
    "load_inputs",
    "sweep",
    "covariant_vectors",
    "covariant_vectors_from_jacobians",
    "CovariantVectors",
    "ConvergenceWarning",
    "SweepSummary",
    "LenumError",
    "FormatError",
    "ShapeError",
    "NonFiniteError",
    "DeviceError",
    "ParameterError",
]
