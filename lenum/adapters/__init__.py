"""Adapters from deep-learning frameworks to :class:`lenum.Network`.

Each adapter is an optional extra and imports its framework when it is imported:

* :mod:`lenum.adapters.torch` -- ``torch.nn.RNN/LSTM/GRU`` modules and state dicts,
  and :class:`~lenum.adapters.torch.SpectrumMonitor` for training loops
  (``pip install 'lenum[torch]'``);
* :mod:`lenum.adapters.keras` -- Keras 3 ``SimpleRNN/LSTM/GRU`` layers and
  ``Sequential`` stacks of them (``pip install 'lenum[keras]'``);
* :mod:`lenum.adapters.onnx` -- ONNX ``RNN/LSTM/GRU`` operators
  (``pip install 'lenum[onnx]'``);
* :mod:`lenum.adapters.convert` -- :func:`~lenum.adapters.convert.load_model` and
  :func:`~lenum.adapters.convert.convert` for model files of any of them.

Nothing here is imported by ``import lenum``: the core never imports a framework.
"""

import importlib

from ..errors import LenumError

__all__ = ["MissingDependencyError", "require"]


class MissingDependencyError(LenumError, ImportError):
    """An adapter's framework is not installed; the message says what to install.

    An :class:`ImportError` (so ``pytest.importorskip`` and ``except ImportError`` work)
    and a :class:`~lenum.LenumError` (so the command line reports it in one line).
    """


def require(module, adapter, what, extra):
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra.

    Parameters
    ----------
    module : str
        The framework's import name (``"torch"``).
    adapter : str
        The adapter asking (``"lenum.adapters.torch"``).
    what : str
        The framework's name for people (``"PyTorch"``).
    extra : str
        The lenum extra that installs it (``"torch"``).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = getattr(exc, "name", None)
        if missing is not None and missing != module and not module.startswith(missing + "."):
            # the framework is there but one of its own imports failed (for Keras: a
            # backend that is not installed); say so instead of "install the framework"
            raise MissingDependencyError(
                f"{adapter}: importing {what} failed: {exc}"
                + (" (set KERAS_BACKEND to an installed backend: torch, jax or tensorflow)"
                   if module == "keras" else "")
            ) from exc
        raise MissingDependencyError(
            f"{adapter} needs {what}: pip install 'lenum[{extra}]'"
        ) from exc
