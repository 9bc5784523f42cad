"""PyTorch adapter: ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` modules and state dicts.

lenum's weights *are* PyTorch's ``state_dict`` (same keys, shapes and gate order), so
the conversion is a read of the live parameters (``detach().cpu()``, no file) plus
checks for what lenum cannot represent: bidirectional modules and LSTM projections
(``proj_size > 0``).  :class:`SpectrumMonitor` computes the spectrum of a module's
live weights every few training steps and keeps a history that it can write to HDF5.

Requires PyTorch (``pip install 'lenum[torch]'``).
"""

import os
import re
import tempfile
import time

import numpy as np

from ..engine import lyapunov_spectrum
from ..errors import FormatError, ParameterError, ShapeError
from ..network import Network
from . import require

torch = require("torch", "lenum.adapters.torch", "PyTorch", "torch")

__all__ = [
    "from_module",
    "from_state_dict",
    "find_rnn",
    "module_inputs",
    "SpectrumMonitor",
    "load_history",
]

_MODES = {"RNN_TANH": "rnn_tanh", "RNN_RELU": "rnn_relu", "LSTM": "lstm", "GRU": "gru"}
# gate blocks in weight_hh_l0 -> cell, where the row count decides it
_BY_GATES = {1: "rnn_tanh", 3: "gru", 4: "lstm"}
_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)$")
_REVERSE = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh)_l\d+_reverse$")
_PROJ = re.compile(r"^weight_hr_l\d+(_reverse)?$")

HISTORY_FORMAT = "history"
HISTORY_FORMAT_VERSION = 1


def _array(value):
    """A tensor (any device, grad or not, any float dtype) or array to float64 NumPy."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.dtype not in (torch.float32, torch.float64):
            # bfloat16 / float16 have no NumPy twin; float64 holds them exactly
            value = value.to(torch.float64)
        return np.asarray(value.numpy(), dtype=np.float64)
    return np.asarray(value, dtype=np.float64)


def find_rnn(module, name=None):
    """The ``nn.RNN/LSTM/GRU`` inside ``module`` (``module`` itself if it is one).

    Parameters
    ----------
    module : torch.nn.Module
    name : str, optional
        Name of the submodule (as in ``module.named_modules()``) when there are several.

    Returns
    -------
    torch.nn.RNNBase

    Raises
    ------
    FormatError
        No recurrent submodule, several and no ``name``, or ``name`` not found.
    """
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(module).__name__}")
    if name is not None:
        found = dict(module.named_modules()).get(name)
        if not isinstance(found, torch.nn.RNNBase):
            raise FormatError(f"{type(module).__name__} has no nn.RNN/LSTM/GRU named {name!r}")
        return found
    if isinstance(module, torch.nn.RNNBase):
        return module
    rnns = [(n, m) for n, m in module.named_modules() if isinstance(m, torch.nn.RNNBase)]
    if not rnns:
        raise FormatError(f"{type(module).__name__} contains no nn.RNN, nn.LSTM or nn.GRU")
    if len(rnns) > 1:
        names = ", ".join(repr(n) for n, _ in rnns)
        raise FormatError(
            f"{type(module).__name__} contains several recurrent modules ({names}); "
            f"pass name= to choose one"
        )
    return rnns[0][1]


def from_module(module, name=None, source=None):
    """A :class:`~lenum.Network` holding a copy of a module's current weights.

    Parameters
    ----------
    module : torch.nn.RNN, torch.nn.LSTM, torch.nn.GRU or a module containing one
        ``nonlinearity``, ``num_layers`` and ``bias`` are honoured; ``batch_first``
        concerns only the inputs (see :func:`module_inputs`).  The weights are read
        with ``detach().cpu()``, so a module on a GPU or in training works as is.
    name : str, optional
        Which recurrent submodule, when ``module`` contains several.
    source : str, optional
        Provenance kept on the network.

    Returns
    -------
    Network

    Raises
    ------
    FormatError
        A bidirectional module, an LSTM with ``proj_size > 0``, an unknown mode, or
        no (or an ambiguous) recurrent submodule.
    """
    rnn = find_rnn(module, name)
    kind = type(rnn).__name__
    if rnn.bidirectional:
        raise FormatError(
            f"{kind}(bidirectional=True) is not supported: lenum computes the spectrum of "
            f"a forward-in-time dynamical system; convert each direction as its own network"
        )
    if getattr(rnn, "proj_size", 0):
        raise FormatError(
            f"{kind}(proj_size={rnn.proj_size}) is not supported: LSTM projections are not "
            f"part of lenum's cells"
        )
    cell = _MODES.get(rnn.mode)
    if cell is None:
        raise FormatError(f"{kind} with mode {rnn.mode!r} is not supported")
    weights = {}
    for key, value in rnn.state_dict().items():
        if _KEY.match(key):
            weights[key] = _array(value)
    return Network.from_state_dict(cell, weights, source=source)


def _strip(state_dict, prefix):
    """Keys under ``prefix`` with the prefix removed (RNN keys only, refusals checked)."""
    out = {}
    for key, value in state_dict.items():
        key = str(key)
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix):]
        if _REVERSE.match(rest):
            raise FormatError(
                f"{key!r}: bidirectional networks are not supported; lenum computes the "
                f"spectrum of a forward-in-time dynamical system"
            )
        if _PROJ.match(rest):
            raise FormatError(
                f"{key!r}: LSTM projections (proj_size > 0) are not supported"
            )
        if _KEY.match(rest):
            out[rest] = value
    return out


def _find_prefix(state_dict):
    prefixes = sorted({str(k)[:-len("weight_hh_l0")] for k in state_dict
                       if str(k).endswith("weight_hh_l0")})
    if not prefixes:
        raise FormatError(
            "no recurrent weights found: expected a key ending in 'weight_hh_l0' "
            "(the state_dict of an nn.RNN, nn.LSTM or nn.GRU)"
        )
    if len(prefixes) > 1:
        raise FormatError(
            "several recurrent modules in the state_dict (prefixes "
            + ", ".join(repr(p) for p in prefixes)
            + "); pass prefix= to choose one"
        )
    return prefixes[0]


def from_state_dict(state_dict, cell=None, prefix=None, source=None):
    """A :class:`~lenum.Network` from a (possibly prefixed) PyTorch ``state_dict``.

    Parameters
    ----------
    state_dict : mapping of str to tensor or array
        A module's ``state_dict()``, for example a checkpoint of a larger model whose
        recurrent part is ``encoder.rnn``.  Keys outside the recurrent module are ignored.
    cell : str, optional
        ``"rnn_tanh"``, ``"rnn_relu"``, ``"lstm"``, ``"gru"`` or
        ``"gru_reset_before"``.  By default inferred from the gate rows of
        ``weight_hh_l0``: 4N rows give ``"lstm"``, 3N ``"gru"`` (PyTorch's GRU), N
        ``"rnn_tanh"`` (a ReLU network cannot be told from its weights: pass
        ``cell="rnn_relu"``).
    prefix : str, optional
        The recurrent module's key prefix, e.g. ``"encoder.rnn."``.  By default the
        single prefix of the keys ending in ``weight_hh_l0`` (an error if several).
    source : str, optional
        Provenance kept on the network.

    Returns
    -------
    Network

    Raises
    ------
    FormatError
        No recurrent weights, several candidate modules, bidirectional or projected
        weights, or a row count that fits no cell.
    ShapeError
        Weights that disagree with ``cell`` or with each other.
    """
    if not hasattr(state_dict, "items"):
        raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
    if prefix is None:
        prefix = _find_prefix(state_dict)
    weights = _strip(state_dict, prefix)
    if "weight_hh_l0" not in weights:
        raise FormatError(f"no key {prefix + 'weight_hh_l0'!r} in the state_dict")
    weights = {k: _array(v) for k, v in weights.items()}
    if cell is None:
        whh = weights["weight_hh_l0"]
        rows, cols = (whh.shape + (0, 0))[:2] if whh.ndim == 2 else (0, 0)
        gates = rows // cols if cols and rows % cols == 0 else None
        cell = _BY_GATES.get(gates)
        if cell is None:
            raise FormatError(
                f"{prefix}weight_hh_l0 has shape {whh.shape}: expected (G*N, N) with G = "
                f"1 (rnn), 3 (gru) or 4 (lstm); pass cell= explicitly"
            )
    return Network.from_state_dict(cell, weights, source=source)


def module_inputs(module, x):
    """Inputs laid out for ``module`` as lenum's (B, T, d) float64 array.

    Parameters
    ----------
    module : torch.nn.Module
        The recurrent module (or one containing exactly one); its ``batch_first``
        decides whether a 3-d ``x`` is (T, B, d) or (B, T, d).
    x : tensor or array_like, (T, d), (T, B, d) or (B, T, d)

    Returns
    -------
    ndarray, (B, T, d)
    """
    rnn = find_rnn(module)
    x = _array(x)
    if x.ndim == 2:
        return x[None]
    if x.ndim != 3:
        layout = "(B, T, d)" if rnn.batch_first else "(T, B, d)"
        raise ShapeError(f"inputs: expected shape (T, d) or {layout}, found {x.shape}")
    return x if rnn.batch_first else np.ascontiguousarray(x.transpose(1, 0, 2))


class SpectrumMonitor:
    """Lyapunov spectra of a module's live weights, every ``every`` training steps.

    Call it once per training step (``monitor.step()`` or ``monitor(step_index)``);
    at every ``every``-th step it reads the current weights (``detach().cpu()``, no
    file), computes the spectrum along ``inputs`` and appends a record to
    :attr:`history`.  Training is not touched: no gradients, no change of mode.

    Parameters
    ----------
    module : torch.nn.Module
        An ``nn.RNN/LSTM/GRU`` or a model containing one (see :func:`find_rnn`).
    inputs : tensor or array_like
        Driving sequences in the module's own layout: (T, B, d), or (B, T, d) with
        ``batch_first=True``, or one sequence (T, d).  Copied once.
    every : int, default 1
        Compute at steps 0, every, 2*every, ... (so the untrained network is recorded
        when the first call comes before the first optimiser step).
    k : int, optional
        Number of exponents; default the whole state.
    name : str, optional
        The recurrent submodule's name when ``module`` contains several.
    **spectrum_kwargs
        Passed to :func:`lenum.lyapunov_spectrum` (``warmup``, ``h0``, ``qr_every``,
        ``dtype``, ``units``, ...).

    Attributes
    ----------
    history : list of dict
        One record per computation, keys ``step``, ``exponents`` (k,), ``std`` (k,),
        ``max_exponent``, ``kaplan_yorke_dimension``, ``ks_entropy``, ``seconds``
        (time the computation took), ``time`` (Unix time) and any extra scalars given
        to :meth:`step`.
    calls : int
        How many times :meth:`step` was called.

    Examples
    --------
    >>> monitor = SpectrumMonitor(model.rnn, x_probe, every=50, k=10, warmup=100)
    >>> for i, (x, y) in enumerate(loader):
    ...     monitor(i)                     # before the update: step 0 is the initial net
    ...     loss = ...; loss.backward(); opt.step()
    >>> monitor.save("spectra.h5")
    """

    def __init__(self, module, inputs, every=1, k=None, *, name=None, **spectrum_kwargs):
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ParameterError(f"every must be a positive integer, got {every!r}")
        if "x" in spectrum_kwargs or "keep_local" in spectrum_kwargs:
            raise ParameterError("inputs are given as `inputs`; keep_local is not supported")
        self.module = find_rnn(module, name)
        self.every = int(every)
        self.k = k
        self.inputs = module_inputs(self.module, inputs)
        self.spectrum_kwargs = dict(spectrum_kwargs)
        self.history = []
        self.calls = 0
        self._written = set()
        # fail now, not at the first scheduled step, on weights or inputs lenum refuses
        net = from_module(self.module)
        if self.inputs.shape[-1] != net.input_size:
            raise ShapeError(
                f"inputs: feature size {self.inputs.shape[-1]} does not match the module's "
                f"input_size {net.input_size}"
            )
        self.cell = net.cell
        self.num_layers = net.num_layers
        self.hidden_size = net.hidden_size
        self.input_size = net.input_size

    def step(self, index=None, **extra):
        """Count one training step; compute the spectrum when it is due.

        Parameters
        ----------
        index : int, optional
            The training step's index; by default the number of earlier calls.  The
            spectrum is computed when ``index % every == 0``.
        **extra : float
            Scalars to store with a computed record (the loss, the learning rate).

        Returns
        -------
        dict or None
            The new history record, or None when no computation was due.
        """
        index = self.calls if index is None else int(index)
        self.calls += 1
        if index % self.every:
            return None
        return self.compute(index, **extra)

    __call__ = step

    def compute(self, index=None, **extra):
        """Compute the spectrum of the current weights now and append a record."""
        index = self.calls if index is None else int(index)
        t0 = time.perf_counter()
        net = from_module(self.module)
        res = lyapunov_spectrum(net, self.inputs, k=self.k, **self.spectrum_kwargs)
        record = {
            "step": index,
            "exponents": np.array(res.exponents, dtype=np.float64),
            "std": np.array(res.std, dtype=np.float64),
            "max_exponent": float(res.max_exponent),
            "kaplan_yorke_dimension": float(res.kaplan_yorke_dimension()),
            "ks_entropy": float(res.ks_entropy()),
            "seconds": time.perf_counter() - t0,
            "time": time.time(),
        }
        for key, value in extra.items():
            if key in record:
                raise ParameterError(f"extra value {key!r} clashes with a history field")
            record[key] = float(_array(value))
        self.history.append(record)
        return record

    def as_arrays(self):
        """The history as a dict of arrays, one row per record (NaN for missing extras)."""
        out = {}
        if not self.history:
            return out
        keys = []
        for rec in self.history:
            keys.extend(k for k in rec if k not in keys)
        for key in keys:
            if key in ("exponents", "std"):
                out[key] = np.stack([rec[key] for rec in self.history])
            elif key == "step":
                out[key] = np.array([rec[key] for rec in self.history], dtype=np.int64)
            else:
                out[key] = np.array([rec.get(key, np.nan) for rec in self.history],
                                    dtype=np.float64)
        return out

    def save(self, path, overwrite=False):
        """Write the history to an HDF5 file, atomically.

        The file is written under a temporary name in the same folder and renamed when
        complete, so a reader never sees a partial file and a failure leaves the old
        one intact.  Datasets: ``step`` (S,), ``exponents`` (S, k), ``std`` (S, k),
        ``max_exponent``, ``kaplan_yorke_dimension``, ``ks_entropy``, ``seconds``,
        ``time`` and the extra scalars (S,).  Attributes: ``lenum_format = "history"``,
        ``lenum_format_version``, ``cell``, ``num_layers``, ``hidden_size``,
        ``input_size``, ``every`` and the spectrum settings.

        Parameters
        ----------
        path : str or os.PathLike
        overwrite : bool, default False
            Replace an existing file.  A file this monitor wrote itself is always
            replaced, so ``save`` can be called after every epoch.

        Raises
        ------
        FileExistsError
            The file exists, was not written by this monitor, and ``overwrite`` is False.
        """
        import h5py

        from .._version import __version__

        path = os.fspath(path)
        full = os.path.abspath(path)
        if os.path.exists(full) and not overwrite and full not in self._written:
            raise _exists_error(path)
        folder = os.path.dirname(full)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".lenum-", suffix=".h5.tmp")
        os.close(fd)
        try:
            with h5py.File(tmp, "w") as f:
                for key, arr in self.as_arrays().items():
                    f.create_dataset(key, data=arr)
                attrs = {
                    "lenum_format": HISTORY_FORMAT,
                    "lenum_format_version": HISTORY_FORMAT_VERSION,
                    "lenum_version": __version__,
                    "cell": self.cell,
                    "num_layers": self.num_layers,
                    "hidden_size": self.hidden_size,
                    "input_size": self.input_size,
                    "every": self.every,
                    "k": -1 if self.k is None else int(self.k),
                    "num_sequences": int(self.inputs.shape[0]),
                    "sequence_length": int(self.inputs.shape[1]),
                }
                for key, value in self.spectrum_kwargs.items():
                    if isinstance(value, (str, int, float, bool, np.integer, np.floating)):
                        attrs[key] = value
                for key, value in attrs.items():
                    f.attrs[key] = value
            # mkstemp makes the file private; give it the mode a plain open() would
            mask = os.umask(0)
            os.umask(mask)
            os.chmod(tmp, 0o666 & ~mask)
            os.replace(tmp, full)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        self._written.add(full)

    def __repr__(self):
        return (
            f"SpectrumMonitor(cell={self.cell!r}, every={self.every}, k={self.k}, "
            f"records={len(self.history)})"
        )


def _exists_error(path):
    try:
        from ..io import OutputExistsError
    except ImportError:  # pragma: no cover - io ships with lenum
        OutputExistsError = FileExistsError
    return OutputExistsError(f"{path}: file exists (pass overwrite=True to replace it)")


def load_history(path):
    """Read a history written by :meth:`SpectrumMonitor.save`.

    Returns
    -------
    dict
        The datasets as arrays (``step``, ``exponents``, ...) and ``"attrs"``, a dict of
        the file's attributes.

    Raises
    ------
    FormatError
        The file is not a lenum history.
    """
    import h5py

    with h5py.File(os.fspath(path), "r") as f:
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        if attrs.get("lenum_format") != HISTORY_FORMAT:
            raise FormatError(
                f"{path}: not a lenum spectrum history (lenum_format is "
                f"{attrs.get('lenum_format')!r}, expected {HISTORY_FORMAT!r})"
            )
        out = {k: f[k][()] for k in f.keys()}
    out["attrs"] = attrs
    return out
