"""Exceptions raised by lenum.

Every error lenum raises derives from :class:`LenumError`.  Errors caused by a bad
value (a file that does not follow the format, arrays whose shapes disagree, NaN in
the weights) also derive from :class:`ValueError`, so code that already catches
``ValueError`` keeps working.
"""

__all__ = [
    "LenumError",
    "FormatError",
    "ShapeError",
    "NonFiniteError",
    "DeviceError",
    "ParameterError",
]


class LenumError(Exception):
    """Base class of every exception raised by lenum."""


class FormatError(LenumError, ValueError):
    """A file or group does not follow lenum's file format (SPEC section 3)."""


class ShapeError(LenumError, ValueError):
    """Array shapes disagree; the message gives the expected and the found shape."""


class NonFiniteError(LenumError, ValueError):
    """NaN or Inf in weights, inputs or an initial state; the message names where."""


class DeviceError(LenumError):
    """The GPU was asked for and is not usable; the message says why."""


class ParameterError(LenumError, ValueError):
    """An argument value is out of range (k larger than the state, warmup >= T, ...)."""
