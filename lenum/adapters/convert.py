"""Model files of PyTorch, Keras and ONNX to lenum networks and weights files.

:func:`load_model` reads a model file by its extension and returns a
:class:`~lenum.Network`; :func:`convert` writes that network in lenum's weights format
(SPEC section 3) with :func:`lenum.io.save_network`.

==============  ===============================================================
extension       read as
==============  ===============================================================
``.pt .pth``    ``torch.load(weights_only=True)``: a ``state_dict`` (of an
                ``nn.RNN/LSTM/GRU`` or of a model holding one: the prefix is found),
                a checkpoint dict holding such a ``state_dict``, or a whole
                ``nn.RNN/LSTM/GRU`` saved with ``torch.save(module)``
``.keras``      ``keras.saving.load_model``, then its recurrent layers
``.onnx``       ``onnx.load``, then its RNN / LSTM / GRU operators
==============  ===============================================================

No file is unpickled with arbitrary code execution: ``.pt`` files go through PyTorch's
``weights_only`` loader, which accepts tensors, containers and (allowed here) the
``nn.RNN/LSTM/GRU`` classes only.
"""

import os

from ..errors import FormatError

__all__ = ["load_model", "convert", "MODEL_EXTENSIONS", "is_model_path"]

MODEL_EXTENSIONS = (".pt", ".pth", ".keras", ".onnx")

# checkpoint dicts often nest the state_dict under one of these keys
_NESTED_KEYS = ("state_dict", "model_state_dict", "model", "net", "module")


def is_model_path(path):
    """True when ``path`` names a framework model file (by extension) rather than HDF5."""
    return os.fspath(path).lower().endswith(MODEL_EXTENSIONS)


def _missing(path):
    try:
        from ..io import MissingFileError
    except ImportError:  # pragma: no cover - io ships with lenum
        return FormatError(f"{path}: no such file")
    return MissingFileError(f"{path}: no such file")


def _torch_state(obj, path, cell, prefix):
    from . import torch as lt

    torch = lt.torch
    if isinstance(obj, torch.nn.Module):
        if cell is not None and lt.from_module(obj).cell != cell:
            raise FormatError(f"{path}: holds a {type(obj).__name__}, not a {cell!r} network")
        return lt.from_module(obj, source=path)
    if not hasattr(obj, "items"):
        raise FormatError(f"{path}: holds a {type(obj).__name__}, not a state_dict or an "
                          f"nn.RNN/LSTM/GRU module")
    if not any(str(k).endswith("weight_hh_l0") for k in obj):
        for key in _NESTED_KEYS:
            inner = obj.get(key)
            if hasattr(inner, "items") and any(str(k).endswith("weight_hh_l0") for k in inner):
                obj = inner
                break
            if isinstance(inner, torch.nn.Module):
                return lt.from_module(inner, source=path)
    try:
        return lt.from_state_dict(obj, cell=cell, prefix=prefix, source=path)
    except FormatError as exc:
        raise FormatError(f"{path}: {exc}") from None


def _load_torch(path, cell, prefix):
    from . import torch as lt

    torch = lt.torch
    allowed = [torch.nn.RNN, torch.nn.LSTM, torch.nn.GRU]
    try:
        with torch.serialization.safe_globals(allowed):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise _missing(path) from None
    except Exception as exc:  # torch raises UnpicklingError or RuntimeError here
        msg = " ".join(str(exc).split())
        if "weights_only" in msg or "Unsupported global" in msg:
            raise FormatError(
                f"{path}: holds objects other than tensors and nn.RNN/LSTM/GRU modules "
                f"(a whole model of a custom class?); lenum loads no pickled code: save "
                f"model.state_dict() with torch.save and convert that"
            ) from None
        raise FormatError(f"{path}: not a readable PyTorch file ({msg[:200]})") from None
    return _torch_state(obj, path, cell, prefix)


def _load_keras(path):
    from . import keras as lk

    try:
        model = lk.keras.saving.load_model(path, compile=False)
    except FileNotFoundError:
        raise _missing(path) from None
    except Exception as exc:
        msg = " ".join(str(exc).split())
        raise FormatError(f"{path}: not a readable Keras model ({msg[:200]})") from None
    try:
        return lk.from_keras(model, source=path)
    except FormatError as exc:
        raise FormatError(f"{path}: {exc}") from None


def _load_onnx(path):
    from . import onnx as lo

    try:
        return lo.load_onnx(path)
    except FileNotFoundError:
        raise _missing(path) from None


def load_model(path, cell=None, prefix=None):
    """Read a PyTorch, Keras or ONNX model file as a :class:`~lenum.Network`.

    Parameters
    ----------
    path : str or os.PathLike
        ``.pt``/``.pth`` (PyTorch), ``.keras`` (Keras 3) or ``.onnx``.
    cell : str, optional
        PyTorch state dicts only: the cell when the weights alone do not say it
        (``"rnn_relu"``; by default inferred, see
        :func:`lenum.adapters.torch.from_state_dict`).
    prefix : str, optional
        PyTorch state dicts only: the recurrent module's key prefix when the file holds
        several recurrent modules.

    Returns
    -------
    Network

    Raises
    ------
    FormatError
        Unknown extension, unreadable file, or a model lenum cannot represent (the
        message names the file and the reason).
    lenum.adapters.MissingDependencyError
        The framework for this extension is not installed (an ``ImportError`` too).
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in MODEL_EXTENSIONS:
        raise FormatError(f"{path}: unknown model file type {ext or '(none)'!r}; expected "
                          f"one of {', '.join(MODEL_EXTENSIONS)}")
    if (cell is not None or prefix is not None) and ext not in (".pt", ".pth"):
        raise FormatError(f"{path}: cell= and prefix= apply to PyTorch files only")
    if not os.path.exists(path):
        raise _missing(path)
    if ext in (".pt", ".pth"):
        return _load_torch(path, cell, prefix)
    if ext == ".keras":
        return _load_keras(path)
    return _load_onnx(path)


def convert(model_path, weights_path, overwrite=False, cell=None, prefix=None):
    """Convert a model file to lenum's weights format (HDF5, SPEC section 3).

    Parameters
    ----------
    model_path : str or os.PathLike
        A model file accepted by :func:`load_model`.
    weights_path : str or os.PathLike
        Output ``FILE.h5`` or ``FILE.h5:/group``; written atomically.
    overwrite : bool, default False
        Replace an existing output.
    cell, prefix : str, optional
        As in :func:`load_model`.

    Returns
    -------
    Network
        The network written.

    Raises
    ------
    lenum.io.OutputExistsError
        The output exists and ``overwrite`` is False (nothing is changed).
    FormatError, MissingDependencyError
        As in :func:`load_model`.
    """
    from ..io import save_network

    net = load_model(model_path, cell=cell, prefix=prefix)
    save_network(net, weights_path, overwrite=overwrite,
                 attrs={"converted_from": os.path.basename(os.fspath(model_path))})
    return net
