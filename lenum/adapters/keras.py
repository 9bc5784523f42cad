"""Keras 3 adapter: ``SimpleRNN``, ``LSTM`` and ``GRU`` layers (and stacks) to a Network.

Keras stores a layer's weights transposed with respect to PyTorch, ``kernel`` (d, G*N)
and ``recurrent_kernel`` (N, G*N), and a single ``bias``:

==========  ==========  ==============  =============================================
layer       Keras gates PyTorch gates   bias
==========  ==========  ==============  =============================================
SimpleRNN   --          --              (N,): the input bias, no recurrent bias
LSTM        i, f, c, o  i, f, g, o      (4N,): the input bias
GRU         z, r, h     r, z, n         ``reset_after=True`` (Keras 3's default):
                                        (2, 3N) = input and recurrent biases, cell
                                        ``gru``; ``reset_after=False``: (3N,), cell
                                        ``gru_reset_before``
==========  ==========  ==============  =============================================

A ``Sequential`` (or functional) model is converted as the stack of its recurrent
layers in order.  Layers that are the identity at inference (``Dropout`` and the like)
may sit between them; layers after the last recurrent layer are a readout and do not
enter the dynamics, so they are ignored.  Refused with a clear error: activations
other than tanh (relu too for ``SimpleRNN``), recurrent activations other than
sigmoid, ``Bidirectional``, ``go_backwards=True``, and layers that transform the
sequence between or before recurrent layers.

Requires Keras 3 (``pip install 'lenum[keras]'``) with any backend.
"""

import numpy as np

from ..errors import FormatError, ShapeError
from ..network import Network
from . import require

keras = require("keras", "lenum.adapters.keras", "Keras 3", "keras")

__all__ = ["from_keras", "from_layer", "from_model", "layer_weights"]

# gate block permutation Keras -> PyTorch: new block b is Keras block _PERM[b]
_PERM = {"SimpleRNN": [0], "LSTM": [0, 1, 2, 3], "GRU": [1, 0, 2]}
_GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}
_CELL_TYPES = {"SimpleRNNCell": "SimpleRNN", "LSTMCell": "LSTM", "GRUCell": "GRU"}
# identity at inference: may sit between stacked recurrent layers
_PASS_THROUGH = {"InputLayer", "Dropout", "SpatialDropout1D", "GaussianDropout",
                 "GaussianNoise", "AlphaDropout", "ActivityRegularization"}


def _reorder(arr, kind, N):
    """Permute gate blocks along the first axis from Keras' order to PyTorch's."""
    return np.concatenate([arr[p * N:(p + 1) * N] for p in _PERM[kind]], axis=0)


def _name(value):
    if isinstance(value, str):
        return value
    if isinstance(value, dict):  # a serialised object: {"class_name": ..., "config": ...}
        return str(value.get("config", {}).get("name", value.get("class_name")))
    return getattr(value, "__name__", str(value))


def _kind(layer):
    """'SimpleRNN', 'LSTM' or 'GRU' for a recurrent layer, else None."""
    cls = type(layer).__name__
    if cls in _PERM:
        return cls
    cell = getattr(layer, "cell", None)
    if cls == "RNN" and cell is not None:
        kind = _CELL_TYPES.get(type(cell).__name__)
        if kind is None:
            raise FormatError(
                f"layer {layer.name!r}: RNN with cell {type(cell).__name__} is not supported "
                f"(SimpleRNNCell, LSTMCell or GRUCell)"
            )
        return kind
    return None


def layer_weights(kind, kernel, recurrent_kernel, bias=None, reset_after=True, layer=0):
    """Keras arrays of one layer as PyTorch-style weights of layer ``layer``.

    Framework-free: the conversion of :func:`from_layer` on plain arrays.

    Parameters
    ----------
    kind : {"SimpleRNN", "LSTM", "GRU"}
    kernel : array_like, (d, G*N)
    recurrent_kernel : array_like, (N, G*N)
    bias : array_like, optional
        (G*N,), or (2, 3N) for a GRU with ``reset_after=True``.
    reset_after : bool
        GRU only.
    layer : int
        Layer index used in the keys.

    Returns
    -------
    dict
        ``weight_ih_l{layer}``, ``weight_hh_l{layer}`` and the biases present.
    """
    G = _GATES[kind]
    kernel = np.asarray(kernel, dtype=np.float64)
    recurrent_kernel = np.asarray(recurrent_kernel, dtype=np.float64)
    if recurrent_kernel.ndim != 2 or recurrent_kernel.shape[1] != G * recurrent_kernel.shape[0]:
        raise ShapeError(f"{kind} recurrent_kernel: expected shape (N, {G}*N), found "
                         f"{recurrent_kernel.shape}")
    N = recurrent_kernel.shape[0]
    if kernel.ndim != 2 or kernel.shape[1] != G * N:
        raise ShapeError(f"{kind} kernel: expected shape (d, {G * N}), found {kernel.shape}")
    out = {
        f"weight_ih_l{layer}": _reorder(kernel.T, kind, N),
        f"weight_hh_l{layer}": _reorder(recurrent_kernel.T, kind, N),
    }
    if bias is not None:
        bias = np.asarray(bias, dtype=np.float64)
        if kind == "GRU" and reset_after:
            if bias.shape != (2, G * N):
                raise ShapeError(f"GRU(reset_after=True) bias: expected shape (2, {G * N}), "
                                 f"found {bias.shape}")
            out[f"bias_ih_l{layer}"] = _reorder(bias[0], kind, N)
            out[f"bias_hh_l{layer}"] = _reorder(bias[1], kind, N)
        else:
            if bias.shape != (G * N,):
                raise ShapeError(f"{kind} bias: expected shape ({G * N},), found {bias.shape}")
            out[f"bias_ih_l{layer}"] = _reorder(bias, kind, N)
    return out


def _layer_cell(layer, kind):
    """lenum cell name of a recurrent layer, after the refusals."""
    where = f"layer {layer.name!r} ({type(layer).__name__})"
    cfg = layer.cell.get_config()
    if getattr(layer, "go_backwards", False):
        raise FormatError(f"{where}: go_backwards=True is not supported (lenum runs "
                          f"forward in time; reverse the inputs instead)")
    act = _name(cfg.get("activation"))
    if kind == "SimpleRNN":
        if act not in ("tanh", "relu"):
            raise FormatError(f"{where}: activation {act!r} is not supported (tanh or relu)")
        return "rnn_" + act
    if act != "tanh":
        raise FormatError(f"{where}: activation {act!r} is not supported (tanh only)")
    rec = _name(cfg.get("recurrent_activation"))
    if rec != "sigmoid":
        raise FormatError(f"{where}: recurrent_activation {rec!r} is not supported "
                          f"(sigmoid only)")
    if kind == "LSTM":
        return "lstm"
    return "gru" if cfg.get("reset_after", True) else "gru_reset_before"


def _numpy(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float64)


def _convert_layers(layers, source):
    weights = {}
    cells = []
    for index, layer in enumerate(layers):
        kind = _kind(layer)
        cell = _layer_cell(layer, kind)
        cells.append(cell)
        c = layer.cell
        bias = _numpy(c.bias) if getattr(c, "use_bias", True) and c.bias is not None else None
        weights.update(layer_weights(kind, _numpy(c.kernel), _numpy(c.recurrent_kernel), bias,
                                     reset_after=cell == "gru", layer=index))
    if len(set(cells)) > 1:
        raise FormatError(f"recurrent layers of different kinds {cells}: lenum's stacks "
                          f"have one cell")
    return Network.from_state_dict(cells[0], weights, source=source)


def from_layer(layer, source=None):
    """A :class:`~lenum.Network` (one layer) from a built Keras recurrent layer.

    Parameters
    ----------
    layer : keras.layers.SimpleRNN, LSTM, GRU, or RNN with one of their cells
    source : str, optional
        Provenance kept on the network.

    Raises
    ------
    FormatError
        Not a supported layer, an unsupported option, or a layer not built yet.
    """
    if type(layer).__name__ == "Bidirectional":
        raise FormatError(f"layer {layer.name!r}: Bidirectional is not supported (lenum "
                          f"computes the spectrum of a forward-in-time dynamical system)")
    kind = _kind(layer)
    if kind is None:
        raise FormatError(f"layer {getattr(layer, 'name', '?')!r} ({type(layer).__name__}) "
                          f"is not a SimpleRNN, LSTM or GRU layer")
    if not layer.built:
        raise FormatError(f"layer {layer.name!r} is not built yet: call it on data or "
                          f"build it with an input shape first")
    return _convert_layers([layer], source)


def from_model(model, source=None):
    """A :class:`~lenum.Network` from the recurrent layers of a Keras model, stacked.

    Parameters
    ----------
    model : keras.Model (``Sequential`` or functional)
        Recurrent layers are taken in ``model.layers`` order; see the module docstring
        for the layers allowed around them.
    source : str, optional

    Raises
    ------
    FormatError
        No recurrent layer, a layer that transforms the sequence before or between
        recurrent layers, a lower layer without ``return_sequences=True``, or any
        refusal of :func:`from_layer`.
    """
    layers = list(model.layers)
    rec = [i for i, layer in enumerate(layers)
           if _kind(layer) is not None or type(layer).__name__ == "Bidirectional"]
    if not rec:
        raise FormatError(f"model {model.name!r} has no SimpleRNN, LSTM or GRU layer")
    for layer in layers[:rec[-1]]:
        cls = type(layer).__name__
        if cls == "Bidirectional":
            from_layer(layer)  # raises the Bidirectional refusal
        if _kind(layer) is None and cls not in _PASS_THROUGH:
            raise FormatError(
                f"model {model.name!r}: layer {layer.name!r} ({cls}) transforms the sequence "
                f"before or between recurrent layers; lenum converts stacks of recurrent "
                f"layers only"
            )
    rnns = [layers[i] for i in rec]
    for layer in rnns:
        if type(layer).__name__ == "Bidirectional":
            from_layer(layer)
        if not layer.built:
            raise FormatError(f"layer {layer.name!r} is not built yet")
    for layer in rnns[:-1]:
        if not getattr(layer, "return_sequences", False):
            raise FormatError(f"layer {layer.name!r} feeds another recurrent layer but has "
                              f"return_sequences=False")
    return _convert_layers(rnns, source)


def from_keras(obj, source=None):
    """:func:`from_model` for models, :func:`from_layer` for layers."""
    if isinstance(obj, keras.Model):
        return from_model(obj, source=source)
    return from_layer(obj, source=source)
