"""The :class:`Network`: a cell type, stacked layers, and validated weights.

Weights use PyTorch's ``state_dict`` names and layouts (``weight_ih_l0`` of shape
(G*N, d), gate rows stacked in PyTorch's order), so weights exported from
``torch.nn.RNN/LSTM/GRU`` work unchanged.  All validation happens here, once; the
kernels receive clean, packed, contiguous arrays.
"""

import re

import numpy as np

from .errors import FormatError, NonFiniteError, ShapeError

__all__ = ["Network", "CELLS"]

# cell name -> (gate blocks G in the weight rows, state vectors per layer)
CELLS = {
    "rnn_tanh": (1, 1),
    "rnn_relu": (1, 1),
    "lstm": (4, 2),
    "gru": (3, 1),
    "gru_reset_before": (3, 1),
}

# integer codes used by the kernels (numba branches on them)
CELL_CODES = {"rnn_tanh": 0, "rnn_relu": 1, "lstm": 2, "gru": 3, "gru_reset_before": 4}

_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)$")


def _to_numpy(value, name):
    """Arrays, lists and (CPU or GPU, grad or not) torch tensors to a float64 array."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise FormatError(f"weight {name!r}: cannot be read as a float array ({exc})") from None
    return arr


class Network:
    """A recurrent network: cell type, layer count, sizes and weights.

    Parameters
    ----------
    cell : {"rnn_tanh", "rnn_relu", "lstm", "gru", "gru_reset_before"}
        The cell, with PyTorch's equations and gate order (see SPEC section 1).
        ``gru_reset_before`` is the GRU variant that applies the reset gate before the
        recurrent product, ``W_hn (r * h)`` (Keras ``reset_after=False``, ONNX
        ``linear_before_reset=0``).
    state_dict : mapping of str to array_like
        Weights keyed like PyTorch's ``state_dict``: ``weight_ih_l{l}`` (G*N, d_l),
        ``weight_hh_l{l}`` (G*N, N) and the optional biases ``bias_ih_l{l}``,
        ``bias_hh_l{l}`` (G*N,), where G is 1, 4 or 3 gate blocks.  Absent biases are
        zero.  ``d_l`` is the input size for layer 0 and N for the layers above.
    source : str, optional
        Where the weights came from (a file path), kept for provenance.
    label : callable, optional
        ``label(key)`` names a weight in error messages (a file reader passes one that
        gives ``FILE.h5:/group/weight_hh_l0``); default ``"weight_hh_l0 in SOURCE"``.

    Attributes
    ----------
    cell, num_layers, hidden_size, input_size, state_size : str, int
        ``state_size`` is N*L for rnn/gru and 2*N*L for lstm (h before c per layer).

    Raises
    ------
    FormatError
        Unknown cell, unknown or missing keys, layers not numbered 0..L-1.
    ShapeError
        A weight whose shape disagrees with the others (expected and found given).
    NonFiniteError
        NaN or Inf in a weight (named).
    """

    def __init__(self, cell, state_dict, source=None, label=None):
        cell = str(cell).lower()
        if cell not in CELLS:
            raise FormatError(
                f"unknown cell {cell!r}; expected one of {', '.join(sorted(CELLS))}"
            )
        self.cell = cell
        self.source = source
        gates, per_layer = CELLS[cell]
        where = f" in {source}" if source else ""
        if label is None:
            def label(key):
                return f"{key}{where}"

        weights = {}
        layers = set()
        for key, value in dict(state_dict).items():
            m = _KEY.match(str(key))
            if m is None:
                hint = ""
                if str(key).startswith("weight_hr"):
                    hint = " (LSTM projections, proj_size > 0, are not supported)"
                elif str(key).endswith("_reverse"):
                    hint = " (bidirectional networks are not supported)"
                raise FormatError(f"{label(key)}: unexpected weight{hint}")
            layers.add(int(m.group(2)))
            weights[str(key)] = _to_numpy(value, key)
        if not layers:
            raise FormatError(f"no weights{where}: expected weight_ih_l0, weight_hh_l0, ...")
        num_layers = max(layers) + 1
        for layer in range(num_layers):
            for name in ("weight_ih", "weight_hh"):
                if f"{name}_l{layer}" not in weights:
                    raise FormatError(
                        f"{label(f'{name}_l{layer}')}: missing ({cell}, {num_layers} layer(s))"
                    )

        whh0 = weights["weight_hh_l0"]
        if whh0.ndim != 2 or whh0.shape[0] != gates * whh0.shape[1] or whh0.shape[1] == 0:
            raise ShapeError(
                f"{label('weight_hh_l0')}: expected shape ({gates}*N, N) for cell {cell!r}, "
                f"found {whh0.shape}"
            )
        hidden = whh0.shape[1]
        wih0 = weights["weight_ih_l0"]
        if wih0.ndim != 2 or wih0.shape[0] != gates * hidden or wih0.shape[1] == 0:
            raise ShapeError(
                f"{label('weight_ih_l0')}: expected shape ({gates * hidden}, d) for cell "
                f"{cell!r} with N={hidden}, found {wih0.shape}"
            )
        input_size = wih0.shape[1]

        for key, arr in weights.items():
            kind, layer = _KEY.match(key).groups()
            layer = int(layer)
            if kind == "weight_hh":
                expected = (gates * hidden, hidden)
            elif kind == "weight_ih":
                expected = (gates * hidden, input_size if layer == 0 else hidden)
            else:
                expected = (gates * hidden,)
            if arr.shape != expected:
                raise ShapeError(f"{label(key)}: expected shape {expected}, found {arr.shape}")
            if not np.all(np.isfinite(arr)):
                bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
                raise NonFiniteError(f"{label(key)}: {bad} NaN or Inf value(s)")

        self.num_layers = num_layers
        self.hidden_size = hidden
        self.input_size = input_size
        self.gates = gates
        self.layer_state_size = per_layer * hidden
        self.state_size = per_layer * hidden * num_layers
        self._weights = weights
        self._packed = {}

    @classmethod
    def from_state_dict(cls, cell, state_dict, source=None, label=None):
        """Build a network from a PyTorch-style ``state_dict`` (see :class:`Network`)."""
        return cls(cell, state_dict, source=source, label=label)

    def state_dict(self):
        """The weights as a new dict of float64 arrays keyed like PyTorch's, biases included."""
        out = {}
        for layer in range(self.num_layers):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                key = f"{name}_l{layer}"
                if key in self._weights:
                    out[key] = self._weights[key].copy()
        return out

    def has_bias(self, layer=0):
        return f"bias_ih_l{layer}" in self._weights or f"bias_hh_l{layer}" in self._weights

    @property
    def cell_code(self):
        return CELL_CODES[self.cell]

    def packed(self, dtype=np.float64):
        """Weights packed as contiguous arrays for the kernels (cached per dtype).

        Returns ``(w_ih0, w_ihr, w_hh, b_ih, b_hh)`` with shapes (G*N, d),
        (L-1, G*N, N), (L, G*N, N), (L, G*N), (L, G*N).
        """
        dtype = np.dtype(dtype)
        if dtype not in self._packed:
            G, N, L = self.gates, self.hidden_size, self.num_layers
            w = self._weights
            zeros = np.zeros(G * N)
            w_ih0 = np.ascontiguousarray(w["weight_ih_l0"], dtype=dtype)
            w_ihr = np.zeros((max(L - 1, 0), G * N, N), dtype=dtype)
            for layer in range(1, L):
                w_ihr[layer - 1] = w[f"weight_ih_l{layer}"]
            w_hh = np.ascontiguousarray(
                np.stack([w[f"weight_hh_l{layer}"] for layer in range(L)]), dtype=dtype
            )
            b_ih = np.ascontiguousarray(
                np.stack([w.get(f"bias_ih_l{layer}", zeros) for layer in range(L)]), dtype=dtype
            )
            b_hh = np.ascontiguousarray(
                np.stack([w.get(f"bias_hh_l{layer}", zeros) for layer in range(L)]), dtype=dtype
            )
            self._packed[dtype] = (w_ih0, w_ihr, w_hh, b_ih, b_hh)
        return self._packed[dtype]

    def __eq__(self, other):
        if not isinstance(other, Network):
            return NotImplemented
        a, b = self.state_dict(), other.state_dict()
        return (
            self.cell == other.cell
            and a.keys() == b.keys()
            and all(np.array_equal(a[k], b[k]) for k in a)
        )

    __hash__ = None

    def __repr__(self):
        bias = "" if self.has_bias() else ", bias=False"
        return (
            f"Network(cell={self.cell!r}, num_layers={self.num_layers}, "
            f"hidden_size={self.hidden_size}, input_size={self.input_size}{bias})"
        )
