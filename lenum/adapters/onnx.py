"""ONNX adapter: ``RNN``, ``LSTM`` and ``GRU`` operators of a model to a Network.

ONNX stores ``W`` (num_directions, G*N, d), ``R`` (num_directions, G*N, N) and
``B`` (num_directions, 2*G*N) = [Wb, Rb], rows already "output by input" as in
PyTorch, but with other gate orders:

=====  ============  ==============  =====================================
op     ONNX order    PyTorch order   note
=====  ============  ==============  =====================================
RNN    --            --              activation Tanh or Relu
LSTM   i, o, f, c    i, f, g, o
GRU    z, r, h       r, z, n         ``linear_before_reset=1``: ``gru``;
                                     0 (the default): ``gru_reset_before``
=====  ============  ==============  =====================================

Stacked layers are several operators chained through the graph; they are taken in
graph order (the order of ``graph.node``, which ONNX requires to be topological).
Weights must be initializers (or ``Constant`` nodes).  Refused with a clear error:
bidirectional or reverse direction, peepholes (input ``P``), ``clip``,
``input_forget``, non-default activations.

Requires ``onnx`` (``pip install 'lenum[onnx]'``).
"""

import os

import numpy as np

from ..errors import FormatError, ShapeError
from ..network import Network
from . import require

onnx = require("onnx", "lenum.adapters.onnx", "onnx", "onnx")
from onnx import numpy_helper  # noqa: E402

__all__ = ["from_onnx", "load_onnx", "OPS"]

OPS = ("RNN", "LSTM", "GRU")
# ONNX gate block order -> PyTorch's: new block b is ONNX block PERM[b]
_PERM = {"RNN": [0], "LSTM": [0, 2, 3, 1], "GRU": [1, 0, 2]}
_GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}
_DEFAULT_ACTS = {"LSTM": ["sigmoid", "tanh", "tanh"], "GRU": ["sigmoid", "tanh"]}


def _reorder(arr, op, N):
    """Permute gate blocks along the first axis from ONNX's order to PyTorch's."""
    return np.concatenate([arr[p * N:(p + 1) * N] for p in _PERM[op]], axis=0)


def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def _constants(graph):
    """Arrays of the graph's initializers and Constant nodes, by name."""
    values = {init.name: init for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            for a in node.attribute:
                if a.name == "value":
                    values[node.output[0]] = a.t
    return values


def _cell_of(node, where):
    """The lenum cell of one operator, after refusing what lenum cannot represent."""
    op = node.op_type
    at = _attrs(node)
    direction = _text(at.get("direction", b"forward"))
    if direction != "forward":
        raise FormatError(
            f"{where}: direction={direction!r} is not supported (forward only: lenum "
            f"computes the spectrum of a forward-in-time dynamical system)"
        )
    if "clip" in at:
        raise FormatError(f"{where}: clip={at['clip']} is not supported (the cell state "
                          f"would not follow a differentiable map)")
    if at.get("activation_alpha") or at.get("activation_beta"):
        raise FormatError(f"{where}: activation_alpha/activation_beta are not supported")
    if op == "LSTM" and at.get("input_forget", 0):
        raise FormatError(f"{where}: input_forget=1 (coupled input and forget gates) is "
                          f"not supported")
    if op == "LSTM" and len(node.input) > 7 and node.input[7]:
        raise FormatError(f"{where}: peephole weights (input P) are not supported")
    acts = [_text(a).lower() for a in at.get("activations", [])]
    if op == "RNN":
        acts = acts or ["tanh"]
        if acts not in (["tanh"], ["relu"]):
            raise FormatError(f"{where}: activations={acts} are not supported "
                              f"(RNN: Tanh or Relu)")
        return "rnn_" + acts[0]
    if acts and acts != _DEFAULT_ACTS[op]:
        raise FormatError(f"{where}: activations={acts} are not supported "
                          f"({op}: only the default {_DEFAULT_ACTS[op]})")
    if op == "LSTM":
        return "lstm"
    return "gru" if at.get("linear_before_reset", 0) else "gru_reset_before"


def from_onnx(model, source=None):
    """A :class:`~lenum.Network` from the recurrent operators of an ONNX model.

    Parameters
    ----------
    model : onnx.ModelProto
    source : str, optional
        Provenance kept on the network (and used in error messages).

    Returns
    -------
    Network

    Raises
    ------
    FormatError
        No recurrent operator, operators of different kinds, a weight that is not a
        constant, or an option lenum refuses (see the module docstring).
    ShapeError
        Layers whose sizes do not chain (layer l's input size must be layer l-1's
        hidden size, and all hidden sizes equal).
    """
    where0 = source or "ONNX model"
    graph = model.graph
    nodes = [n for n in graph.node if n.op_type in OPS]
    if not nodes:
        raise FormatError(f"{where0}: no RNN, LSTM or GRU operator in the graph")
    values = _constants(graph)
    cells = []
    weights = {}
    hidden = None
    for layer, node in enumerate(nodes):
        where = f"{where0}: {node.op_type} node {node.name or '#' + str(layer)!r}"
        cells.append(_cell_of(node, where))
        op = node.op_type
        G = _GATES[op]
        arrays = {}
        for idx, name in ((1, "W"), (2, "R"), (3, "B")):
            if len(node.input) <= idx or not node.input[idx]:
                if name == "B":
                    continue
                raise FormatError(f"{where}: input {name} is missing")
            tensor = values.get(node.input[idx])
            if tensor is None:
                raise FormatError(
                    f"{where}: input {name} ({node.input[idx]!r}) is not an initializer or "
                    f"Constant; lenum reads weights stored in the model"
                )
            arrays[name] = np.asarray(numpy_helper.to_array(tensor), dtype=np.float64)
        W, R = arrays["W"], arrays["R"]
        if W.ndim != 3 or R.ndim != 3 or W.shape[0] != 1 or R.shape[0] != 1:
            raise ShapeError(
                f"{where}: expected W (1, {G}*N, d) and R (1, {G}*N, N), found "
                f"{W.shape} and {R.shape}"
            )
        N = R.shape[2]
        if R.shape[1] != G * N or W.shape[1] != G * N:
            raise ShapeError(f"{where}: expected W ({G * N}, d) and R ({G * N}, {N}) per "
                             f"direction, found {W.shape[1:]} and {R.shape[1:]}")
        hs = _attrs(node).get("hidden_size")
        if hs is not None and hs != N:
            raise ShapeError(f"{where}: hidden_size={hs} but R has shape {R.shape}")
        if hidden is not None and N != hidden:
            raise ShapeError(f"{where}: hidden size {N} differs from layer 0's {hidden}; "
                             f"lenum's stacks have one hidden size")
        if layer > 0 and W.shape[2] != hidden:
            raise ShapeError(f"{where}: input size {W.shape[2]} does not match the hidden "
                             f"size {hidden} of the layer below")
        hidden = N
        weights[f"weight_ih_l{layer}"] = _reorder(W[0], op, N)
        weights[f"weight_hh_l{layer}"] = _reorder(R[0], op, N)
        if "B" in arrays:
            Bv = arrays["B"]
            if Bv.shape != (1, 2 * G * N):
                raise ShapeError(f"{where}: expected B of shape (1, {2 * G * N}), found "
                                 f"{Bv.shape}")
            weights[f"bias_ih_l{layer}"] = _reorder(Bv[0, :G * N], op, N)
            weights[f"bias_hh_l{layer}"] = _reorder(Bv[0, G * N:], op, N)
    if len(set(cells)) > 1:
        raise FormatError(f"{where0}: recurrent operators of different kinds {cells}; "
                          f"lenum's stacks have one cell")
    return Network.from_state_dict(cells[0], weights, source=source)


def load_onnx(path):
    """Read an ONNX file and convert its recurrent operators (see :func:`from_onnx`).

    Raises
    ------
    FormatError
        The file cannot be parsed as ONNX, or :func:`from_onnx` refuses it.
    """
    path = os.fspath(path)
    try:
        model = onnx.load(path)
    except FileNotFoundError:
        raise
    except Exception as exc:  # protobuf's DecodeError and friends
        raise FormatError(f"{path}: not a readable ONNX model ({exc})") from None
    return from_onnx(model, source=path)
