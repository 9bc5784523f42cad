"""HDF5 files: weights, inputs and results (SPEC section 3).

A path may name a group or a dataset inside a file as ``FILE.h5:/group/name``; the
path is split on the last ``:`` that is followed by ``/``.  Every problem with a file
raises a :class:`~lenum.errors.LenumError` whose message starts with
``FILE:/object:`` and says what is wrong.

Writes are atomic: the data go to a temporary file in the destination folder, which is
flushed to disk and renamed over the destination only when complete.  Adding a group to
an existing file (a collection of checkpoints) copies the file to the temporary name
first, so the original is never opened for writing.  An existing file or group is
replaced only with ``overwrite=True``.

This module does not import numba: reading and writing files stays cheap.
"""

import contextlib
import hashlib
import numbers
import os
import shutil
import tempfile

import h5py
import numpy as np

from ._version import __version__
from .errors import FormatError, LenumError, NonFiniteError, ParameterError, ShapeError
from .network import CELLS, Network, _KEY

__all__ = [
    "FORMAT_VERSION",
    "MissingFileError",
    "OutputExistsError",
    "split_path",
    "file_sha256",
    "load_network",
    "save_network",
    "load_inputs",
    "load_inputs_with_state",
    "open_inputs",
    "InputFile",
    "LazyInputs",
    "save_inputs",
    "save_result",
    "load_result",
    "check_compatible",
    "check_output",
    "describe",
]

FORMAT_VERSION = 1

# Bytes of input read at once by load_inputs and by validation passes: large enough
# that per-read overhead vanishes, small enough to be negligible next to the engine.
READ_BYTES = 64 * 2**20


class MissingFileError(FormatError, FileNotFoundError):
    """The file named does not exist (also a :class:`FileNotFoundError`)."""

    def __str__(self):
        # OSError formats one-argument instances as "[Errno ...]" only with two
        # arguments; keep the plain message either way.
        return str(self.args[0]) if self.args else ""


class OutputExistsError(LenumError, FileExistsError):
    """The output file or group exists and ``overwrite`` was not given."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


# --------------------------------------------------------------------------- paths


def split_path(path):
    """Split ``"FILE.h5:/group/name"`` into ``("FILE.h5", "/group/name")``.

    Parameters
    ----------
    path : str or os.PathLike
        A file name, optionally followed by ``:`` and an absolute HDF5 object path.

    Returns
    -------
    file : str
    obj : str
        The object path inside the file; ``"/"`` when none is given.

    Notes
    -----
    The split is on the last ``:`` followed by ``/``.  A path that exists as a file
    as a whole is never split (so ``C:/data/x.h5`` keeps working on Windows).
    """
    path = os.fspath(path)
    if not isinstance(path, str):
        path = os.fsdecode(path)
    i = path.rfind(":/")
    if i > 0 and not os.path.isfile(path):
        file, obj = path[:i], path[i + 1 :]
        # a lone drive letter ("C:/x.h5") is a Windows path, not a file name
        if not (len(file) == 1 and file.isalpha()):
            obj = "/" + obj.strip("/")
            return file, obj
    return path, "/"


def _where(file, obj=None):
    if obj is None:
        return str(file)
    return f"{file}:{obj}"


def _join(group, name):
    return "/" + "/".join(p for p in (group.strip("/"), name.strip("/")) if p)


def file_sha256(path):
    """SHA-256 hex digest of a whole file (the ``FILE`` part of ``FILE:/group``).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    str
    """
    file, _ = split_path(path)
    h = hashlib.sha256()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def _open_read(file):
    """Open an HDF5 file for reading, turning OS and format problems into lenum errors."""
    if not os.path.exists(file):
        raise MissingFileError(f"{file}: no such file")
    if os.path.isdir(file):
        raise FormatError(f"{file}: is a folder, not an HDF5 file")
    try:
        is_hdf5 = h5py.is_hdf5(file)
    except OSError as exc:
        raise FormatError(f"{file}: cannot be read ({exc})") from None
    if not is_hdf5:
        raise FormatError(f"{file}: not an HDF5 file")
    try:
        f = h5py.File(file, "r")
    except OSError as exc:
        raise FormatError(f"{file}: cannot be opened as HDF5 ({exc})") from None
    try:
        yield f
    finally:
        f.close()


def _get(f, file, obj):
    if obj == "/":
        return f
    try:
        node = f.get(obj)
    except (KeyError, ValueError, OSError):
        node = None
    if node is None:
        raise FormatError(f"{_where(file, obj)}: no such group or dataset")
    return node


def _attr(node, name, default=None):
    """An attribute as a plain Python value (bytes decoded, numpy scalars unwrapped)."""
    if name not in node.attrs:
        return default
    return _plain(node.attrs[name])


def _plain(value):
    if isinstance(value, h5py.Empty):
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return _plain(value[()])
        if value.dtype.kind in "OSU":
            return [_plain(v) for v in value.tolist()]
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _check_format(node, file, obj, expected):
    fmt = _attr(node, "lenum_format")
    if fmt is not None and fmt != expected:
        raise FormatError(
            f"{_where(file, obj)}: lenum_format is {fmt!r}, expected {expected!r} "
            f"(this is a {fmt} file)"
        )
    version = _attr(node, "lenum_format_version")
    if version is not None:
        if not isinstance(version, numbers.Integral) or isinstance(version, bool):
            raise FormatError(
                f"{_where(file, obj)}: attribute lenum_format_version={version!r} is not an integer"
            )
        if version > FORMAT_VERSION:
            raise FormatError(
                f"{_where(file, obj)}: lenum_format_version {version} is newer than this "
                f"lenum ({__version__}) reads (up to {FORMAT_VERSION}); upgrade lenum"
            )


def _read_numeric(ds, file, what="values"):
    """Read a whole (small) dataset as a float array, checking type and finiteness."""
    name = ds.name
    if ds.dtype.kind not in "fiub":
        raise FormatError(f"{_where(file, name)}: dtype {ds.dtype} is not numeric")
    arr = ds[()]
    arr = np.asarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        raise NonFiniteError(f"{_where(file, name)}: {bad} NaN or Inf {what}")
    return arr


# --------------------------------------------------------------------------- atomic writes


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_path(path, directory=False):
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    except OSError:
        return  # platforms that cannot open folders (Windows): nothing to sync
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def _atomic_h5(path, overwrite):
    """Yield ``(h5py.File, group_path)`` open on a temporary copy; rename when done.

    ``path`` is ``FILE`` or ``FILE:/group``.  For the root (whole file) the temporary
    file starts empty.  For a group of an existing file it starts as a copy of the
    file, so other groups survive; the group itself must not exist unless
    ``overwrite``.  On any exception (KeyboardInterrupt included) the temporary file is
    removed and the destination is untouched.
    """
    file, obj = split_path(path)
    file = os.fspath(file)
    folder = os.path.dirname(os.path.abspath(file))
    exists = os.path.exists(file)
    if exists and os.path.isdir(file):
        raise FormatError(f"{file}: is a folder")
    if not os.path.isdir(folder):
        raise MissingFileError(f"{file}: folder {os.path.dirname(file) or '.'} does not exist")
    if exists and obj == "/" and not overwrite:
        raise OutputExistsError(f"{file}: exists; not replaced without overwrite (--overwrite)")
    copy = exists and obj != "/"
    if copy:
        # fail before copying a large file when the group is there already
        with _open_read(file) as f:
            if obj in f and not overwrite:
                raise OutputExistsError(
                    f"{_where(file, obj)}: exists; not replaced without overwrite (--overwrite)"
                )

    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(file) + ".", suffix=".tmp")
    os.close(fd)
    try:
        if copy:
            shutil.copyfile(file, tmp)
            mode = os.stat(file).st_mode & 0o7777
        elif exists:
            mode = os.stat(file).st_mode & 0o7777
        else:
            # mkstemp creates 0600; a new output gets the permissions open() would give
            mode = 0o666 & ~_umask()
        os.chmod(tmp, mode)
        with h5py.File(tmp, "r+" if copy else "w") as f:
            if obj != "/" and obj in f:
                del f[obj]  # overwrite is set: checked above
            group = f if obj == "/" else f.require_group(obj)
            yield group, (file, obj)
        _fsync_path(tmp)
        os.replace(tmp, file)
        _fsync_path(folder, directory=True)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def check_output(path, overwrite):
    """Raise :class:`OutputExistsError` now if writing ``path`` would need overwrite.

    Lets a command line refuse before a long computation rather than after it (the
    writers check again when they write).

    Parameters
    ----------
    path : str or os.PathLike
        ``FILE.h5`` or ``FILE.h5:/group``.
    overwrite : bool
    """
    file, obj = split_path(path)
    if overwrite or not os.path.exists(file):
        return
    if obj == "/":
        raise OutputExistsError(f"{file}: exists; not replaced without overwrite (--overwrite)")
    with _open_read(file) as f:
        if obj in f:
            raise OutputExistsError(
                f"{_where(file, obj)}: exists; not replaced without overwrite (--overwrite)"
            )


def _set_attrs(node, attrs):
    for key, value in attrs.items():
        node.attrs[key] = _attr_value(value)


def _attr_value(value):
    if value is None:
        return h5py.Empty("f8")
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, str) for v in value) and value:
            return np.array(value, dtype=h5py.string_dtype())
        return np.asarray(value)
    return value


# --------------------------------------------------------------------------- weights


def _checkpoint_groups(node):
    """Names of the subgroups of ``node`` that carry a ``cell`` attribute."""
    if not isinstance(node, h5py.Group):
        return []
    return [
        name
        for name, child in node.items()
        if isinstance(child, h5py.Group) and "cell" in child.attrs
    ]


def _read_weights(node, file, obj):
    """Validate a weights group and return its :class:`Network`."""
    where = _where(file, obj)
    if not isinstance(node, h5py.Group):
        raise FormatError(f"{where}: is a dataset, expected a weights group")
    _check_format(node, file, obj, "weights")
    if "cell" not in node.attrs:
        groups = _checkpoint_groups(node)
        if groups:
            shown = ", ".join(_join(obj, g) for g in sorted(groups)[:4])
            more = ", ..." if len(groups) > 4 else ""
            raise FormatError(
                f"{where}: holds {len(groups)} weight groups ({shown}{more}), not weights; "
                f"name one as {file}:{_join(obj, sorted(groups)[0])}"
            )
        raise FormatError(f"{where}: missing attribute 'cell' (one of {', '.join(sorted(CELLS))})")
    cell = _attr(node, "cell")
    if not isinstance(cell, str) or cell.lower() not in CELLS:
        hint = ""
        if isinstance(cell, str) and cell.lower() in ("rnn", "tanh", "relu", "elman"):
            hint = " (for torch.nn.RNN write 'rnn_tanh' or 'rnn_relu')"
        raise FormatError(
            f"{where}: attribute cell={cell!r} is not a known cell; expected one of "
            f"{', '.join(sorted(CELLS))}{hint}"
        )
    cell = cell.lower()

    arrays = {}
    for name, child in node.items():
        path = _join(obj, name)
        if isinstance(child, h5py.Group):
            # nested groups are allowed only beside weights in a checkpoint file's root;
            # inside a weights group they are most likely a mistake
            raise FormatError(f"{_where(file, path)}: unexpected group inside a weights group")
        if _KEY.match(name) is None:
            hint = ""
            if name.startswith("weight_hr"):
                hint = " (LSTM projections, proj_size > 0, are not supported)"
            elif name.endswith("_reverse"):
                hint = " (bidirectional networks are not supported)"
            elif "." in name:
                hint = (
                    " (datasets must be named like torch.nn.LSTM's own state_dict keys; "
                    "strip the module prefix)"
                )
            raise FormatError(f"{_where(file, path)}: unexpected dataset{hint}")
        arrays[name] = _read_numeric(child, file, what="value(s) in weights")

    layers = sorted({int(_KEY.match(n).group(2)) for n in arrays})
    if not layers:
        raise FormatError(
            f"{_where(file, _join(obj, 'weight_ih_l0'))}: missing dataset (no weights in group)"
        )
    num_layers = layers[-1] + 1
    for layer in range(num_layers):
        for kind in ("weight_ih", "weight_hh"):
            name = f"{kind}_l{layer}"
            if name not in arrays:
                raise FormatError(
                    f"{_where(file, _join(obj, name))}: missing dataset "
                    f"({cell}, {num_layers} layer(s))"
                )

    # Network checks the shapes, naming each dataset in the file
    net = Network(cell, arrays, source=where if obj != "/" else file,
                  label=lambda key: _where(file, _join(obj, key)))
    for attr, value in (
        ("num_layers", net.num_layers),
        ("hidden_size", net.hidden_size),
        ("input_size", net.input_size),
    ):
        stated = _attr(node, attr)
        if stated is not None and stated != value:
            raise ShapeError(
                f"{where}: attribute {attr}={stated!r} disagrees with the datasets, "
                f"which give {attr}={value}"
            )
    return net


def load_network(path):
    """Read a :class:`~lenum.Network` from a weights file or group.

    Parameters
    ----------
    path : str or os.PathLike
        ``FILE.h5`` or ``FILE.h5:/group`` (e.g. one checkpoint of a collection).

    Returns
    -------
    Network

    Raises
    ------
    MissingFileError, FormatError
        No such file, not HDF5, no ``cell`` attribute, unknown cell, missing or
        unexpected dataset (the message names file and dataset).
    ShapeError
        A dataset's shape disagrees with the others or with the size attributes.
    NonFiniteError
        NaN or Inf in a weight.

    Notes
    -----
    A group holding PyTorch ``state_dict`` datasets and only a ``cell`` attribute is
    accepted; sizes are then read off the shapes.
    """
    file, obj = split_path(path)
    with _open_read(file) as f:
        node = _get(f, file, obj)
        return _read_weights(node, file, obj)


def save_network(net, path, overwrite=False, attrs=None):
    """Write a network's weights (SPEC section 3, weights format).

    Parameters
    ----------
    net : Network
    path : str or os.PathLike
        ``FILE.h5`` (the whole file) or ``FILE.h5:/group``: a group is added to an
        existing file, keeping the file's other groups (checkpoint collections).
    overwrite : bool, default False
        Replace an existing file (root path) or an existing group.
    attrs : dict, optional
        Extra attributes to store on the group (provenance, notes).

    Raises
    ------
    OutputExistsError
        The file (or group) exists and ``overwrite`` is False; nothing is changed.
    """
    if not isinstance(net, Network):
        raise TypeError(f"save_network needs a lenum.Network, got {type(net).__name__}")
    with _atomic_h5(path, overwrite) as (group, _):
        for name, arr in net.state_dict().items():
            group.create_dataset(name, data=arr)
        _set_attrs(group, dict(attrs or {}))
        _set_attrs(
            group,
            {
                "cell": net.cell,
                "num_layers": int(net.num_layers),
                "hidden_size": int(net.hidden_size),
                "input_size": int(net.input_size),
                "lenum_format": "weights",
                "lenum_format_version": FORMAT_VERSION,
                "lenum_version": __version__,
            },
        )


# --------------------------------------------------------------------------- inputs


class LazyInputs:
    """Inputs (B, T, d) left in their HDF5 file and read a batch slice at a time.

    Behaves enough like an ndarray for :func:`lenum.lyapunov_spectrum`: ``shape``,
    ``ndim``, ``dtype``, ``len``, ``x[b0:b1]`` and ``x[b0:b1, t0:t1]`` (ndarrays;
    only that hyperslab is read from the file).  Every slice read is checked for NaN
    and Inf; a bad value raises :class:`~lenum.errors.NonFiniteError` naming the
    file, the dataset and the position.  ``max_rows_read`` and ``max_values_read``
    record the largest read so far, so the memory bound can be checked.
    ``np.asarray(x)`` reads everything.

    The file must stay open while the object is used: get one from
    :func:`open_inputs`.
    """

    def __init__(self, dataset, file):
        self._ds = dataset
        self.file = file
        self.name = dataset.name
        if dataset.ndim == 2:
            self.shape = (1,) + tuple(dataset.shape)
        else:
            self.shape = tuple(dataset.shape)
        stored = dataset.dtype
        # float32/float64 stay as stored (no copy for the engine to undo); anything
        # else numeric is read as float64
        self.dtype = stored if stored in (np.float32, np.float64) else np.dtype(np.float64)
        # what has been read so far: lets tests check the memory bound
        self.max_rows_read = 0
        self.max_values_read = 0
        self.values_read = 0

    ndim = 3

    def __len__(self):
        return self.shape[0]

    def _read(self, b0, b1, t0, t1):
        if b1 <= b0 or t1 <= t0:
            return np.empty((max(b1 - b0, 0), max(t1 - t0, 0), self.shape[2]), dtype=self.dtype)
        # h5py reads only the hyperslab asked for: memory is that of the slice
        if self._ds.ndim == 2:
            arr = self._ds[t0:t1][None]
        else:
            arr = self._ds[b0:b1, t0:t1]
        arr = np.asarray(arr, dtype=self.dtype)
        self.max_rows_read = max(self.max_rows_read, b1 - b0)
        self.max_values_read = max(self.max_values_read, arr.size)
        self.values_read += arr.size
        _check_finite_chunk(arr, self.file, self.name, b0, t0)
        return arr

    def __getitem__(self, index):
        if not isinstance(index, tuple):
            index = (index,)
        if len(index) > 3:
            raise IndexError(f"too many indices for inputs of shape {self.shape}")
        index = index + (slice(None),) * (3 - len(index))
        ranges = []
        squeeze = []
        for axis, (ix, size) in enumerate(zip(index[:2], self.shape[:2])):
            if isinstance(ix, slice):
                start, stop, stride = ix.indices(size)
                if stride != 1:
                    raise TypeError("lazy inputs support contiguous slices (step 1) only")
                ranges.append((start, max(start, stop)))
            elif isinstance(ix, numbers.Integral):
                i = int(ix) + (size if ix < 0 else 0)
                if not 0 <= i < size:
                    raise IndexError(f"index {ix} out of range for axis {axis} of size {size}")
                ranges.append((i, i + 1))
                squeeze.append(axis)
            else:
                raise TypeError("lazy inputs support integer and slice indices only")
        arr = self._read(*ranges[0], *ranges[1])[:, :, index[2]]
        if squeeze:
            arr = arr.reshape(tuple(n for a, n in enumerate(arr.shape) if a not in squeeze))
        return arr

    def __array__(self, dtype=None, copy=None):
        arr = self[:]
        return arr if dtype is None else arr.astype(dtype, copy=False)

    def iter_chunks(self, rows=None):
        """Yield ``(b0, chunk)`` for consecutive chunks of ``rows`` sequences."""
        rows = rows or _rows_for(self.shape, self.dtype)
        for b0 in range(0, self.shape[0], rows):
            yield b0, self[b0 : b0 + rows]

    def __repr__(self):
        return f"LazyInputs({_where(self.file, self.name)}, shape={self.shape}, dtype={self.dtype})"


def _rows_for(shape, dtype, nbytes=READ_BYTES):
    per_row = max(1, int(np.prod(shape[1:])) * np.dtype(dtype).itemsize)
    return max(1, nbytes // per_row)


def _check_finite_chunk(arr, file, name, b0=0, t0=0):
    finite = np.isfinite(arr)
    if not finite.all():
        bad = np.argwhere(~finite)
        b, t, i = (int(v) for v in bad[0])
        raise NonFiniteError(
            f"{_where(file, name)}: NaN or Inf value at sequence {b0 + b}, step {t0 + t}, "
            f"feature {i} ({len(bad)} in the sequences {b0}..{b0 + arr.shape[0] - 1}, "
            f"steps {t0}..{t0 + arr.shape[1] - 1} read)"
        )


class InputFile:
    """An open inputs file: lazy ``x`` plus the (small) initial states ``h0``, ``c0``.

    Use as a context manager (or call :meth:`close`); see :func:`open_inputs`.

    Attributes
    ----------
    x : LazyInputs
        (B, T, d), read in batch slices.
    h0, c0 : ndarray (num_layers, B, N) or None
    file, name : str
        The file and the dataset path of ``x``.
    names : dict
        ``"inputs"``, ``"h0"``, ``"c0"`` as ``FILE:/dataset``, for messages.
    """

    def __init__(self, path):
        file, obj = split_path(path)
        self.file = file
        stack = contextlib.ExitStack()
        try:
            f = stack.enter_context(_open_read(file))
            node = _get(f, file, obj)
            ds, group = _inputs_dataset(node, file, obj)
            self.x = LazyInputs(ds, file)
            self.name = ds.name
            self.h0 = self.c0 = None
            base = group.name if group is not None else ds.parent.name
            self.names = {
                "inputs": _where(file, ds.name),
                "h0": _where(file, _join(base, "h0")),
                "c0": _where(file, _join(base, "c0")),
            }
            if group is not None:
                self.h0 = _read_state(group, "h0", file, self.x.shape[0])
                self.c0 = _read_state(group, "c0", file, self.x.shape[0])
            self.attrs = {k: _plain(v) for k, v in node.attrs.items()}
        except BaseException:
            stack.close()
            raise
        self._stack = stack

    def close(self):
        """Close the file (``x`` cannot be read afterwards)."""
        self._stack.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        return f"InputFile({_where(self.file, self.name)}, shape={self.x.shape})"


def _inputs_dataset(node, file, obj):
    """The inputs dataset named by (or inside) ``node`` and the group holding h0/c0."""
    if isinstance(node, h5py.Dataset):
        ds, group = node, None
        # a path naming the dataset "inputs" itself still picks up its h0/c0 siblings
        if node.name.rsplit("/", 1)[-1] == "inputs":
            group = node.parent
            _check_format(group, file, group.name, "inputs")
    else:
        _check_format(node, file, obj, "inputs")
        if "inputs" not in node:
            found = ", ".join(sorted(node.keys())[:6]) or "nothing"
            raise FormatError(
                f"{_where(file, _join(obj, 'inputs'))}: missing dataset (the group holds {found})"
            )
        ds, group = node["inputs"], node
        if not isinstance(ds, h5py.Dataset):
            raise FormatError(f"{_where(file, ds.name)}: is a group, expected a dataset")
    if ds.dtype.kind not in "fiub":
        raise FormatError(f"{_where(file, ds.name)}: dtype {ds.dtype} is not numeric")
    if ds.ndim not in (2, 3):
        raise ShapeError(
            f"{_where(file, ds.name)}: expected shape (B, T, d) or (T, d), found {ds.shape}"
        )
    shape = ds.shape if ds.ndim == 3 else (1,) + ds.shape
    if 0 in shape:
        raise ShapeError(
            f"{_where(file, ds.name)}: empty inputs, shape {ds.shape} (need B, T, d >= 1)"
        )
    return ds, group


def _read_state(group, name, file, batch):
    if name not in group:
        return None
    ds = group[name]
    if not isinstance(ds, h5py.Dataset):
        raise FormatError(f"{_where(file, ds.name)}: is a group, expected a dataset")
    if ds.ndim != 3 or ds.shape[1] != batch:
        raise ShapeError(
            f"{_where(file, ds.name)}: expected shape (num_layers, B={batch}, N), found {ds.shape}"
        )
    return _read_numeric(ds, file, what="value(s) in the initial state")


def open_inputs(path):
    """Open an inputs file for reading in batch chunks.

    Parameters
    ----------
    path : str or os.PathLike
        ``FILE.h5`` (dataset ``inputs`` at the root), ``FILE.h5:/group`` (dataset
        ``inputs`` in the group) or ``FILE.h5:/path/to/dataset``.

    Returns
    -------
    InputFile
        A context manager; its ``x`` can be passed to :func:`lenum.lyapunov_spectrum`,
        which reads it ``batch_chunk`` sequences at a time.

    Examples
    --------
    >>> with lenum.io.open_inputs("inputs.h5") as inp:          # doctest: +SKIP
    ...     res = lenum.lyapunov_spectrum(net, inp.x, h0=inp.h0, c0=inp.c0)
    """
    return InputFile(path)


def load_inputs_with_state(path):
    """Read inputs and their optional initial states into memory.

    Parameters
    ----------
    path : str or os.PathLike
        As for :func:`open_inputs`.

    Returns
    -------
    x : ndarray (B, T, d)
        float32 or float64 as stored (other numeric types become float64).  A (T, d)
        dataset is returned as one sequence, (1, T, d).
    h0, c0 : ndarray (num_layers, B, N) or None

    Raises
    ------
    MissingFileError, FormatError, ShapeError, NonFiniteError
        The message names the file and the dataset.
    """
    with open_inputs(path) as inp:
        x = np.empty(inp.x.shape, dtype=inp.x.dtype)
        for b0, chunk in inp.x.iter_chunks():
            x[b0 : b0 + chunk.shape[0]] = chunk
        return x, inp.h0, inp.c0


def load_inputs(path):
    """Read input sequences into memory as an ndarray (B, T, d).

    See :func:`load_inputs_with_state` (which also returns ``h0``, ``c0``) and
    :func:`open_inputs` (which leaves the data in the file).
    """
    return load_inputs_with_state(path)[0]


def save_inputs(x, path, h0=None, c0=None, overwrite=False, attrs=None):
    """Write input sequences (SPEC section 3, inputs format).

    Parameters
    ----------
    x : array_like (B, T, d) or (T, d)
    path : str or os.PathLike
        ``FILE.h5`` or ``FILE.h5:/group``.
    h0, c0 : array_like (num_layers, B, N), optional
    overwrite : bool, default False
    attrs : dict, optional
        Extra attributes (provenance).

    Raises
    ------
    ShapeError, NonFiniteError
        Bad shapes or non-finite values (nothing is written).
    OutputExistsError
    """
    x = np.asarray(x)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or 0 in x.shape:
        raise ShapeError(f"inputs: expected shape (B, T, d) or (T, d), found {x.shape}")
    if x.dtype.kind not in "fiub":
        raise ShapeError(f"inputs: dtype {x.dtype} is not numeric")
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    _check_finite_chunk(x, "inputs", "x")
    states = {}
    for name, s in (("h0", h0), ("c0", c0)):
        if s is None:
            continue
        s = np.asarray(s, dtype=np.float64)
        if s.ndim != 3 or s.shape[1] != x.shape[0]:
            raise ShapeError(
                f"{name}: expected shape (num_layers, B={x.shape[0]}, N), found {s.shape}"
            )
        if not np.all(np.isfinite(s)):
            raise NonFiniteError(f"{name}: NaN or Inf value(s)")
        states[name] = s
    with _atomic_h5(path, overwrite) as (group, _):
        # contiguous layout: a hyperslab x[b0:b1, t0:t1] is read without touching the
        # rest (a chunked layout would read whole chunks)
        group.create_dataset("inputs", data=x)
        for name, s in states.items():
            group.create_dataset(name, data=s)
        _set_attrs(group, dict(attrs or {}))
        _set_attrs(
            group,
            {
                "lenum_format": "inputs",
                "lenum_format_version": FORMAT_VERSION,
                "lenum_version": __version__,
            },
        )


def check_compatible(net, x, h0=None, c0=None, k=None, warmup=0, names=None):
    """Check that inputs and options suit a network, naming files in the messages.

    Parameters
    ----------
    net : Network
    x : array_like or LazyInputs
        Anything with ``shape`` (B, T, d) or (T, d).
    h0, c0 : ndarray (num_layers, B, N), optional
    k, warmup : int, optional
    names : dict, optional
        How to name ``"weights"``, ``"inputs"``, ``"h0"`` and ``"c0"`` in messages
        (e.g. ``{"inputs": "in.h5:/inputs"}``); the keys themselves by default.

    Raises
    ------
    ShapeError
        Input size or state shapes disagree with the network.
    ParameterError
        ``k`` is not in 1..state size, or ``warmup`` leaves no counted step.
    """
    names = {key: key for key in ("weights", "inputs", "h0", "c0")} | dict(names or {})
    shape = tuple(x.shape)
    if len(shape) == 2:
        shape = (1,) + shape
    B, T, d = shape
    if d != net.input_size:
        raise ShapeError(
            f"{names['inputs']}: input size d={d} does not match the network's input size "
            f"{net.input_size} (weight_ih_l0 of {names['weights']} has shape "
            f"({net.gates * net.hidden_size}, {net.input_size}))"
        )
    expected = (net.num_layers, B, net.hidden_size)
    for name, s in (("h0", h0), ("c0", c0)):
        if s is None:
            continue
        if name == "c0" and net.cell != "lstm":
            raise ShapeError(f"{names[name]}: c0 given but cell {net.cell!r} has no cell state")
        if tuple(np.shape(s)) != expected:
            raise ShapeError(
                f"{names[name]}: expected shape (num_layers, B, N) = {expected} "
                f"for {names['weights']}, found {tuple(np.shape(s))}"
            )
    if k is not None and not 1 <= k <= net.state_size:
        raise ParameterError(
            f"{names['weights']}: k={k} is not between 1 and the state size {net.state_size} "
            f"({net.cell}, {net.num_layers} layer(s) of N={net.hidden_size})"
        )
    if warmup < 0 or warmup >= T:
        raise ParameterError(
            f"{names['inputs']}: warmup={warmup} leaves no counted steps "
            f"(T={T}; need 0 <= warmup < T)"
        )


# --------------------------------------------------------------------------- results

# attributes that describe the file or are derived from the data, never meta
_RESULT_RESERVED = {
    "lenum_format",
    "lenum_format_version",
    "lenum_version",
    "steps",
    "units",
    "max_exponent",
    "kaplan_yorke_dimension",
    "ks_entropy",
}


def save_result(result, path, overwrite=False):
    """Write a :class:`~lenum.SpectrumResult` (SPEC section 3, result format).

    Parameters
    ----------
    result : SpectrumResult
    path : str or os.PathLike
        ``FILE.h5`` or ``FILE.h5:/group``.
    overwrite : bool, default False

    Notes
    -----
    Datasets ``exponents``, ``std``, ``stderr``, ``per_sequence``, the running
    estimates ``history_steps``, ``history``, ``history_stderr`` and, when kept,
    ``local`` with its statistics in the group ``local_stats`` (datasets ``mean``,
    ``variance``, ``fraction_positive``; attributes ``fraction_max_positive``,
    ``samples``); every entry of ``result.meta`` becomes an attribute (``None`` as an
    empty attribute),
    plus ``steps``, ``units``, ``max_exponent``, ``kaplan_yorke_dimension``,
    ``ks_entropy`` and the format attributes.  :func:`load_result` gives back the
    same numbers and meta.

    Raises
    ------
    OutputExistsError
        The file (or group) exists and ``overwrite`` is False; nothing is changed.
    """
    meta = dict(result.meta)
    meta.setdefault("k", int(result.k))
    with _atomic_h5(path, overwrite) as (group, _):
        group.create_dataset("exponents", data=np.asarray(result.exponents, dtype=np.float64))
        group.create_dataset("std", data=np.asarray(result.std, dtype=np.float64))
        group.create_dataset("per_sequence", data=np.asarray(result.per_sequence, dtype=np.float64))
        group.create_dataset("stderr", data=np.asarray(result.stderr, dtype=np.float64))
        group.create_dataset("history_steps", data=np.asarray(result.history_steps, dtype=np.int64))
        group.create_dataset("history", data=np.asarray(result.history, dtype=np.float64))
        group.create_dataset("history_stderr",
                             data=np.asarray(result.history_stderr, dtype=np.float64))
        if result.local is not None:
            group.create_dataset("local", data=np.asarray(result.local, dtype=np.float64))
            stats = result.local_stats()
            ls = group.create_group("local_stats")
            for name in ("mean", "variance", "fraction_positive"):
                ls.create_dataset(name, data=np.asarray(stats[name], dtype=np.float64))
            _set_attrs(ls, {"fraction_max_positive": float(stats["fraction_max_positive"]),
                            "samples": int(stats["samples"])})
        _set_attrs(group, {k: v for k, v in meta.items() if k not in _RESULT_RESERVED})
        _set_attrs(
            group,
            {
                "lenum_format": "result",
                "lenum_format_version": FORMAT_VERSION,
                "lenum_version": __version__,
                "steps": int(result.steps),
                "units": str(result.units),
                "max_exponent": float(result.max_exponent),
                "kaplan_yorke_dimension": float(result.kaplan_yorke_dimension()),
                "ks_entropy": float(result.ks_entropy()),
            },
        )


def load_result(path):
    """Read a result written by :func:`save_result`.

    Parameters
    ----------
    path : str or os.PathLike
        ``FILE.h5`` or ``FILE.h5:/group``.

    Returns
    -------
    SpectrumResult
        ``meta`` holds every attribute of the file except the format attributes
        (``lenum_format``, ``lenum_format_version``, ``lenum_version``) and the values
        derived from the data (``steps``, ``units``, ``max_exponent``, ...).

    Raises
    ------
    MissingFileError, FormatError, ShapeError
    """
    from .result import SpectrumResult

    file, obj = split_path(path)
    with _open_read(file) as f:
        node = _get(f, file, obj)
        where = _where(file, obj)
        if not isinstance(node, h5py.Group):
            raise FormatError(f"{where}: is a dataset, expected a result group")
        fmt = _attr(node, "lenum_format")
        if fmt is None:
            raise FormatError(f"{where}: missing attribute lenum_format='result'")
        _check_format(node, file, obj, "result")
        data = {}
        optional = ("local", "stderr", "history_steps", "history", "history_stderr")
        for name in ("exponents", "std", "per_sequence") + optional:
            if name not in node:
                if name in optional:  # absent in files written before lenum kept them
                    continue
                raise FormatError(f"{_where(file, _join(obj, name))}: missing dataset")
            ds = node[name]
            if not isinstance(ds, h5py.Dataset) or ds.dtype.kind not in "fiu":
                raise FormatError(f"{_where(file, ds.name)}: expected a numeric dataset")
            data[name] = np.asarray(ds[()], dtype=np.float64)
        per_sequence = data["per_sequence"]
        if per_sequence.ndim != 2:
            raise ShapeError(
                f"{_where(file, _join(obj, 'per_sequence'))}: expected shape (B, k), "
                f"found {per_sequence.shape}"
            )
        B, k = per_sequence.shape
        for name in ("exponents", "std"):
            if data[name].shape != (k,):
                raise ShapeError(
                    f"{_where(file, _join(obj, name))}: expected shape ({k},), "
                    f"found {data[name].shape}"
                )
        local = data.get("local")
        if local is not None and (local.ndim != 3 or local.shape[0] != B or local.shape[2] != k):
            raise ShapeError(
                f"{_where(file, _join(obj, 'local'))}: expected shape ({B}, S, {k}), "
                f"found {local.shape}"
            )
        stderr = data.get("stderr")
        if stderr is not None and stderr.shape != (k,):
            raise ShapeError(
                f"{_where(file, _join(obj, 'stderr'))}: expected shape ({k},), "
                f"found {stderr.shape}"
            )
        history = None
        if all(name in data for name in ("history_steps", "history", "history_stderr")):
            H = data["history_steps"].reshape(-1).shape[0]
            for name in ("history", "history_stderr"):
                if data[name].shape != (H, k):
                    raise ShapeError(
                        f"{_where(file, _join(obj, name))}: expected shape ({H}, {k}), "
                        f"found {data[name].shape}"
                    )
            history = {"steps": data["history_steps"], "exponents": data["history"],
                       "stderr": data["history_stderr"]}
        for name in ("steps", "units"):
            if name not in node.attrs:
                raise FormatError(f"{where}: missing attribute {name!r}")
        attrs = {key: _plain(value) for key, value in node.attrs.items()}
    meta = {key: value for key, value in attrs.items() if key not in _RESULT_RESERVED}
    return SpectrumResult(per_sequence, attrs["steps"], local=local, units=attrs["units"],
                          stderr=stderr, history=history, **meta)


# --------------------------------------------------------------------------- info


def describe(path):
    """Identify, validate and summarise a lenum file, group or dataset.

    Parameters
    ----------
    path : str or os.PathLike
        ``FILE.h5`` or ``FILE.h5:/object``.

    Returns
    -------
    dict
        ``{"kind": "weights" | "inputs" | "result" | "checkpoints", "path": ..., ...}``
        with the sizes of the object; ``"checkpoints"`` lists a summary per group.

    Raises
    ------
    LenumError
        The object is not a valid lenum weights, inputs or result object (the
        message names the file, the dataset and what is wrong).
    """
    file, obj = split_path(path)
    with _open_read(file) as f:
        node = _get(f, file, obj)
        kind = _guess_kind(node, file, obj)
    if kind == "weights":
        return _describe_weights(file, obj)
    if kind == "checkpoints":
        with _open_read(file) as f:
            names = sorted(_checkpoint_groups(_get(f, file, obj)))
        groups = [_describe_weights(file, _join(obj, name)) for name in names]
        return {"kind": "checkpoints", "path": _where(file, obj), "groups": groups}
    if kind == "inputs":
        with open_inputs(_where(file, obj)) as inp:
            for _ in inp.x.iter_chunks():
                pass  # validates every value, one chunk at a time
            B, T, d = inp.x.shape
            return {
                "kind": "inputs",
                "path": _where(file, inp.name),
                "sequences": B,
                "steps": T,
                "input_size": d,
                "dtype": str(inp.x.dtype),
                "h0": None if inp.h0 is None else list(inp.h0.shape),
                "c0": None if inp.c0 is None else list(inp.c0.shape),
                "attrs": _user_attrs(inp.attrs),
            }
    res = load_result(_where(file, obj))
    with _open_read(file) as f:
        attrs = {k: _plain(v) for k, v in _get(f, file, obj).attrs.items()}
    return {
        "kind": "result",
        "path": _where(file, obj),
        "k": res.k,
        "sequences": res.num_sequences,
        "steps": res.steps,
        "units": res.units,
        "local": None if res.local is None else list(res.local.shape),
        "max_exponent": res.max_exponent,
        "kaplan_yorke_dimension": res.kaplan_yorke_dimension(),
        "ks_entropy": res.ks_entropy(),
        "lenum_version": attrs.get("lenum_version"),
        "meta": res.meta,
    }


def _user_attrs(attrs):
    skip = {"lenum_format", "lenum_format_version", "cell", "num_layers", "hidden_size",
            "input_size"}
    return {k: v for k, v in attrs.items() if k not in skip}


def _guess_kind(node, file, obj):
    where = _where(file, obj)
    if isinstance(node, h5py.Dataset):
        return "inputs"
    fmt = _attr(node, "lenum_format")
    if fmt is not None:
        if fmt not in ("weights", "inputs", "result"):
            raise FormatError(f"{where}: unknown lenum_format {fmt!r}")
        return fmt
    if "cell" in node.attrs:
        return "weights"
    if "inputs" in node:
        return "inputs"
    if "per_sequence" in node or "exponents" in node:
        return "result"
    if _checkpoint_groups(node):
        return "checkpoints"
    found = ", ".join(sorted(node.keys())[:6]) or "nothing"
    raise FormatError(
        f"{where}: not a lenum weights, inputs or result file (no lenum_format or cell "
        f"attribute; holds {found})"
    )


def _describe_weights(file, obj):
    net = load_network(_where(file, obj))
    with _open_read(file) as f:
        node = _get(f, file, obj)
        attrs = {k: _plain(v) for k, v in node.attrs.items()}
        datasets = {name: list(ds.shape) for name, ds in node.items()}
    return {
        "kind": "weights",
        "path": _where(file, obj),
        "cell": net.cell,
        "num_layers": net.num_layers,
        "hidden_size": net.hidden_size,
        "input_size": net.input_size,
        "state_size": net.state_size,
        "bias": net.has_bias(),
        "datasets": datasets,
        "attrs": _user_attrs(attrs),
    }
