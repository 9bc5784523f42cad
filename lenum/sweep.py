"""Spectra of many networks: a manifest of runs in, one result file per run out.

A *manifest* is a CSV file with a column ``weights`` (a weights file or group,
``FILE.h5:/group``), a column ``inputs`` (an inputs file, group or dataset) and any
other columns (hyperparameters, epoch, final loss, ...).  Relative paths are resolved
against the manifest's folder, so a folder of checkpoints and its manifest can be moved
together.  :func:`sweep` computes the spectrum of every row, writes it to its own result
file in the results folder (``row0003_<weights name>.h5``) and writes
``summary.csv`` there: the manifest's columns plus ``status``, ``error``,
``max_exponent``, ``mean_exponent``, ``kaplan_yorke_dimension``, ``ks_entropy`` and
``result``.

Rows run as independent tasks on Dask distributed: a :class:`~distributed.LocalCluster`
of single-threaded worker processes on the loopback interface by default, or an
existing cluster given by its scheduler address.  ``scheduler="serial"`` runs them one
after another in this process and needs no Dask.  Each worker is a long-lived process,
so numba compiles (or loads from its cache) a cell's kernels once per worker, not once
per row.

Every result file is written atomically by the task that computed it, so a sweep that
is interrupted (Ctrl-C, a killed job, a lost node) loses only the rows in flight; run it
again and the rows whose result files exist and load are not recomputed.  A row that
fails (a missing or malformed file, inputs that do not fit the network) is recorded in
the summary with its error and the other rows go on.

Dask is an optional dependency (``pip install "lenum[dask]"``) and is imported only
when a sweep uses it.  Its worker processes are started with ``spawn`` and import the
main module of the program that starts them: a script that calls :func:`sweep` must do
so under ``if __name__ == "__main__":``.
"""

import contextlib
import csv
import hashlib
import json
import logging
import math
import os
import re
import sys
import tempfile

import numpy as np

from . import io
from .errors import LenumError, ParameterError

__all__ = [
    "sweep",
    "read_manifest",
    "result_name",
    "SweepSummary",
    "SweepError",
    "MissingDependencyError",
    "SUMMARY_NAME",
    "SUMMARY_COLUMNS",
]

SUMMARY_NAME = "summary.csv"

#: Columns that :func:`sweep` appends to the manifest's own in ``summary.csv``.
SUMMARY_COLUMNS = (
    "status",
    "error",
    "max_exponent",
    "mean_exponent",
    "kaplan_yorke_dimension",
    "ks_entropy",
    "result",
)

_STATS = ("max_exponent", "mean_exponent", "kaplan_yorke_dimension", "ks_entropy")

# keyword arguments of lyapunov_spectrum a sweep passes on to every row; h0 and c0
# come from each row's inputs file, progress is the sweep's own
_SPECTRUM_KWARGS = ("k", "warmup", "qr_every", "dtype", "device", "units", "keep_local",
                    "batch_chunk", "q0")

# options that change the numbers: a result computed with other values is not a
# finished row of this sweep (device and batch_chunk change only the rounding)
_RESULT_OPTIONS = ("k", "warmup", "qr_every", "dtype", "units", "keep_local", "q0_sha256")

# the worker processes of the local cluster run one task each at a time: parallelism
# comes from the tasks, and threaded kernels or BLAS inside a task would oversubscribe
# the cores
_WORKER_ENV = {
    "NUMBA_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}

_TEMP_FILE = re.compile(r"^\.(row\d+_.*\.h5|" + re.escape(SUMMARY_NAME) + r")\..+\.tmp$")


class SweepError(LenumError):
    """The sweep itself cannot run (no scheduler to reach, a missing dependency)."""


class MissingDependencyError(SweepError, ImportError):
    """An optional dependency the sweep needs is not installed (also an ImportError)."""


# --------------------------------------------------------------------------- manifest


def read_manifest(path):
    """Read a manifest CSV file.

    Parameters
    ----------
    path : str or os.PathLike
        CSV file with a header row naming at least ``weights`` and ``inputs``.

    Returns
    -------
    columns : list of str
        The header, in file order.
    rows : list of dict
        One dict per data row (blank lines are skipped), values as strings.

    Raises
    ------
    MissingFileError
        No such file.
    FormatError
        No header, a missing ``weights`` or ``inputs`` column, a duplicated column, a
        column that the summary adds itself (``status``, ``result``, ...), or a row with
        more cells than the header; the message names the file and the line.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise io.MissingFileError(f"{path}: no such file")
    if os.path.isdir(path):
        raise io.FormatError(f"{path}: is a folder, expected a manifest CSV file")
    try:
        # utf-8-sig: spreadsheet programs start their CSV files with a byte-order mark
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = None
            rows = []
            for record in reader:
                if not any(cell.strip() for cell in record):
                    continue
                if header is None:
                    header = [cell.strip() for cell in record]
                    _check_header(header, path, reader.line_num)
                    continue
                if len(record) > len(header):
                    raise io.FormatError(
                        f"{path}: line {reader.line_num}: {len(record)} cells, but the "
                        f"header names {len(header)} columns"
                    )
                record = record + [""] * (len(header) - len(record))
                rows.append(dict(zip(header, record)))
    except UnicodeDecodeError as exc:
        raise io.FormatError(f"{path}: not a UTF-8 text file ({exc.reason})") from None
    except csv.Error as exc:
        raise io.FormatError(f"{path}: not a valid CSV file ({exc})") from None
    if header is None:
        raise io.FormatError(f"{path}: empty manifest (expected a header with weights,inputs)")
    return header, rows


def _check_header(header, path, line):
    where = f"{path}: line {line}"
    if "" in header:
        raise io.FormatError(f"{where}: the header has an empty column name")
    seen = set()
    for name in header:
        if name in seen:
            raise io.FormatError(f"{where}: column {name!r} appears twice")
        seen.add(name)
    missing = [c for c in ("weights", "inputs") if c not in seen]
    if missing:
        raise io.FormatError(
            f"{where}: missing column(s) {', '.join(missing)} (the header is "
            f"{','.join(header)}; a manifest needs weights and inputs)"
        )
    clash = [c for c in header if c in SUMMARY_COLUMNS]
    if clash:
        raise io.FormatError(
            f"{where}: column(s) {', '.join(clash)} are added by the sweep's summary; "
            f"rename them in the manifest"
        )


def _rows_from_records(records):
    """Columns and string rows from an in-memory manifest (a sequence of mappings)."""
    columns = []
    rows = []
    for i, record in enumerate(records):
        if not hasattr(record, "items"):
            raise TypeError(f"manifest row {i} is a {type(record).__name__}, expected a mapping")
        for key in record:
            if key not in columns:
                columns.append(str(key))
        rows.append({str(k): "" if v is None else str(v) for k, v in record.items()})
    if rows:
        _check_header(columns, "manifest", 1)
    for row in rows:
        for c in columns:
            row.setdefault(c, "")
    return columns, rows


def _resolve(entry, base):
    """Absolute ``FILE[:/group]`` for a manifest entry relative to ``base``."""
    entry = os.path.expanduser(entry.strip())
    full = entry if os.path.isabs(entry) else os.path.join(base, entry)
    file, obj = io.split_path(full)
    file = os.path.abspath(file)
    return file if obj == "/" else f"{file}:{obj}"


def result_name(index, weights):
    """File name of a row's result: ``row0003_<sanitised weights name>.h5``.

    Parameters
    ----------
    index : int
        The row's position in the manifest (0 for the first data row).
    weights : str
        The row's ``weights`` entry, ``FILE.h5`` or ``FILE.h5:/group``.

    Returns
    -------
    str
        Only letters, digits, ``.``, ``_`` and ``-``: the file's stem and the group
        path, e.g. ``row0003_gru_gain1.5_epoch_010.h5``.
    """
    text = os.fspath(weights).strip()
    i = text.rfind(":/")
    file, obj = (text[:i], text[i + 1:]) if i > 1 else (text, "")
    stem = os.path.basename(file.rstrip("/\\"))
    stem = re.sub(r"\.(h5|hdf5|hdf|he5)$", "", stem, flags=re.IGNORECASE)
    label = "_".join(p for p in [stem] + obj.strip("/").split("/") if p)
    label = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._-")
    # long names stay readable in a listing; the row number keeps them unique
    label = label[:60].rstrip("._-") or "network"
    return f"row{int(index):04d}_{label}.h5"


# --------------------------------------------------------------------------- summary


class SweepSummary:
    """The outcome of a sweep: one row per network, as written to ``summary.csv``.

    Iterating gives the rows (dicts).  ``summary[i]`` is row ``i``;
    ``summary["max_exponent"]`` is a column as a list.

    Attributes
    ----------
    columns : list of str
        The manifest's columns followed by :data:`SUMMARY_COLUMNS`.
    rows : list of dict
        Manifest values as strings; ``status`` is ``"ok"`` or ``"error"``; ``error`` the
        one-line message (``""`` when ok); the statistics are floats (``None`` for a
        failed row); ``result`` is the result file's path, joined to the results folder
        as it was given (``None`` for a failed row).
    path : str
        The ``summary.csv`` written.  In it, ``result`` is relative to its folder.
    computed, skipped : int
        Rows computed by this call, and rows whose results were there already.
    """

    def __init__(self, columns, rows, path, computed=0, skipped=0):
        self.columns = list(columns)
        self.rows = list(rows)
        self.path = path
        self.computed = computed
        self.skipped = skipped

    def __len__(self):
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, key):
        if isinstance(key, str):
            if key not in self.columns:
                raise KeyError(key)
            return [row.get(key) for row in self.rows]
        return self.rows[key]

    @property
    def ok(self):
        """The rows whose spectrum was computed."""
        return [row for row in self.rows if row["status"] == "ok"]

    @property
    def failed(self):
        """The rows that failed (``status == "error"``)."""
        return [row for row in self.rows if row["status"] != "ok"]

    def __repr__(self):
        return (
            f"SweepSummary({len(self.rows)} rows: {len(self.ok)} ok, {len(self.failed)} "
            f"failed; {self.computed} computed, {self.skipped} already done; {self.path})"
        )


def _csv_value(value):
    if value is None:
        return ""
    if isinstance(value, float):
        # repr keeps every digit and writes inf/-inf/nan, which float() reads back
        return repr(value)
    return str(value)


def _write_summary(path, columns, rows, out_dir):
    """Write summary.csv atomically: a temporary file in the folder, then a rename."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            for row in rows:
                values = dict(row)
                if values.get("result"):
                    values["result"] = os.path.relpath(values["result"], out_dir)
                writer.writerow([_csv_value(values.get(c)) for c in columns])
            f.flush()
            os.fsync(f.fileno())
        mask = os.umask(0)
        os.umask(mask)
        # mkstemp creates 0600; the summary gets the permissions open() would give
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------- one row


def _one_line(text):
    return " ".join(str(text).split())


def _stats(res):
    exponents = np.asarray(res.exponents, dtype=np.float64)
    return {
        "max_exponent": float(res.max_exponent),
        "mean_exponent": float(np.mean(exponents)) if exponents.size else math.nan,
        "kaplan_yorke_dimension": float(res.kaplan_yorke_dimension()),
        "ks_entropy": float(res.ks_entropy()),
    }


def _ok(index, res, result):
    return {"index": index, "status": "ok", "error": "", "result": result, **_stats(res)}


def _failed(index, message):
    record = {"index": index, "status": "error", "error": _one_line(message), "result": None}
    record.update({name: None for name in _STATS})
    return record


def _limit_threads_in_worker():
    # numba's thread count is per calling thread, so this limits this task only
    import numba

    numba.set_num_threads(1)


def _run_task(task):
    """Compute, save and summarise one row; never raises for a bad row.

    Runs on a Dask worker (or in this process for ``scheduler="serial"``) and takes
    only plain values, so it pickles by reference.  The result file is written before
    the record is returned: a row whose record never reaches the client is not lost.
    """
    from . import engine

    index = task["index"]
    weights, inputs = task["weights"], task["inputs"]
    try:
        if task["worker"]:
            _limit_threads_in_worker()
        if not task["weights_entry"]:
            raise io.FormatError(f"{task['manifest']}: row {index}: empty weights entry")
        if not task["inputs_entry"]:
            raise io.FormatError(f"{task['manifest']}: row {index}: empty inputs entry")
        options = dict(task["options"])
        net = io.load_network(weights)
        with io.open_inputs(inputs) as inp:
            names = dict(inp.names, weights=weights)
            io.check_compatible(net, inp.x, inp.h0, inp.c0, k=options.get("k"),
                                warmup=options.get("warmup", 0), names=names)
            try:
                res = engine.lyapunov_spectrum(net, inp.x, h0=inp.h0, c0=inp.c0,
                                               progress=False, input_name=inp.names["inputs"],
                                               **options)
            except LenumError as exc:
                msg = str(exc)
                if io.split_path(weights)[0] not in msg and inp.file not in msg:
                    # the engine does not know the file names; say which run failed
                    exc.args = (f"{weights} with {inputs}: {msg}",)
                raise
        res.meta.update(
            weights_path=task["weights_entry"],
            inputs_path=task["inputs_entry"],
            weights_sha256=io.file_sha256(io.split_path(weights)[0]),
            inputs_sha256=io.file_sha256(io.split_path(inputs)[0]),
            manifest_row=index,
            sweep_options=task["options_key"],
        )
        io.save_result(res, task["result"], overwrite=task["overwrite"])
        return _ok(index, res, task["result"])
    except LenumError as exc:
        return _failed(index, exc)
    except Exception as exc:  # noqa: BLE001 - one broken row must not stop the sweep
        return _failed(index, f"unexpected error: {type(exc).__name__}: {exc}")


def _existing(task):
    """The record of a finished row (its result file exists and loads), else None.

    Raises
    ------
    OutputExistsError
        The file exists but does not load, or it was computed from another row or with
        other options: replacing it needs ``overwrite``.
    """
    path = task["result"]
    if not os.path.exists(path):
        return None
    hint = "use --overwrite (overwrite=True) to recompute, or another results folder"
    try:
        res = io.load_result(path)
    except LenumError as exc:
        raise io.OutputExistsError(
            f"{path}: exists but is not a readable result ({_one_line(exc)}); {hint}"
        ) from None
    meta = res.meta
    for key in ("weights_path", "inputs_path"):
        entry = task[key.replace("_path", "_entry")]
        if meta.get(key) != entry:
            raise io.OutputExistsError(
                f"{path}: holds the spectrum of {key.split('_')[0]} {meta.get(key)!r}, but "
                f"row {task['index']} of the manifest names {entry!r}; {hint}"
            )
    try:
        stored = json.loads(meta.get("sweep_options") or "{}")
    except (TypeError, ValueError):
        stored = {}
    wanted = json.loads(task["options_key"])
    if stored != wanted:
        diff = ", ".join(f"{k}={stored.get(k)!r} (now {wanted.get(k)!r})"
                         for k in _RESULT_OPTIONS if stored.get(k) != wanted.get(k))
        raise io.OutputExistsError(f"{path}: was computed with other options: {diff}; {hint}")
    return _ok(task["index"], res, path)


# --------------------------------------------------------------------------- schedulers


def _import_distributed():
    try:
        import distributed
    except ImportError as exc:
        raise MissingDependencyError(
            f"a sweep on Dask needs the dask[distributed] package, which is not installed "
            f"({exc}); install it with: pip install \"lenum[dask]\", or run the rows in "
            f"this process with --no-dask (scheduler=\"serial\")"
        ) from None
    return distributed


@contextlib.contextmanager
def _client(scheduler, workers):
    """A distributed.Client: on a new local cluster, a scheduler address, or as given."""
    distributed = _import_distributed()
    if isinstance(scheduler, distributed.Client):
        yield scheduler  # the caller's: neither closed nor restarted here
        return
    if scheduler is None or scheduler == "local":
        n = workers or os.cpu_count() or 1
        try:
            cluster = distributed.LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                silence_logs=logging.ERROR,
                env=_WORKER_ENV,
            )
        except (RuntimeError, OSError, TimeoutError) as exc:
            raise SweepError(
                f"cannot start a local Dask cluster of {n} worker(s): {_one_line(exc)} (a "
                f"script that starts a sweep must do so under if __name__ == \"__main__\":, "
                f"because the workers are new processes that import it)"
            ) from None
        with cluster, distributed.Client(cluster) as client:
            yield client
        return
    try:
        client = distributed.Client(scheduler, timeout="20s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise SweepError(
            f"cannot reach the Dask scheduler at {scheduler}: {_one_line(exc)}"
        ) from None
    with client:
        yield client


def _run_serial(tasks, bar):
    for task in tasks:
        record = _run_task(dict(task, worker=False))
        bar.update(1)
        yield record


def _run_dask(tasks, scheduler, workers, bar):
    with _client(scheduler, workers) as client:
        from distributed import as_completed

        futures = {}
        for task in tasks:
            future = client.submit(_run_task, dict(task, worker=True), pure=False,
                                   key=f"lenum-sweep-row{task['index']}-{os.urandom(6).hex()}")
            futures[future] = task["index"]
        try:
            for future in as_completed(futures):
                try:
                    record = future.result()
                except Exception as exc:  # noqa: BLE001 - a worker died, a task was lost
                    record = _failed(futures[future], f"task failed on the cluster: "
                                     f"{type(exc).__name__}: {exc}")
                bar.update(1)
                yield record
        finally:
            # on an interrupt, do not leave the caller's cluster computing for nobody
            with contextlib.suppress(Exception):
                client.cancel(list(futures))


# --------------------------------------------------------------------------- the sweep


def _check_options(kwargs):
    from . import engine

    unknown = sorted(set(kwargs) - set(_SPECTRUM_KWARGS))
    if unknown:
        raise TypeError(f"sweep() got unexpected keyword argument(s): {', '.join(unknown)} "
                        f"(spectrum options are {', '.join(_SPECTRUM_KWARGS)})")
    options = {key: value for key, value in kwargs.items() if value is not None}
    if "k" in options:
        options["k"] = engine._int_arg("k", options["k"], 1)
    options["warmup"] = engine._int_arg("warmup", options.get("warmup", 0), 0)
    options["qr_every"] = engine._int_arg("qr_every", options.get("qr_every", 1), 1)
    options["dtype"] = engine._dtype_arg(options.get("dtype", "float64")).name
    options["units"] = options.get("units", "nats")
    engine._units_scale(options["units"])
    device = options.get("device", "cpu")
    if device not in ("cpu", "gpu", "auto"):
        raise ParameterError(f"device must be 'cpu', 'gpu' or 'auto', got {device!r}")
    options["device"] = device
    options["keep_local"] = bool(options.get("keep_local", False))
    if "batch_chunk" in options:
        options["batch_chunk"] = engine._int_arg("batch_chunk", options["batch_chunk"], 1)
    q0_sha = None
    if "q0" in options:
        q0 = np.ascontiguousarray(options["q0"], dtype=np.float64)
        options["q0"] = q0
        q0_sha = hashlib.sha256(repr(q0.shape).encode() + q0.tobytes()).hexdigest()
    key = {name: options.get(name) for name in _RESULT_OPTIONS if name != "q0_sha256"}
    key["k"] = options.get("k")
    key["q0_sha256"] = q0_sha
    return options, json.dumps(key, sort_keys=True)


def _remove_stale_temporaries(out_dir):
    # a sweep killed outright (SIGKILL, a lost node) leaves its atomic writes'
    # temporary files behind; only this folder's own patterns are touched
    with contextlib.suppress(OSError):
        for name in os.listdir(out_dir):
            if _TEMP_FILE.match(name):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(out_dir, name))


def sweep(manifest, out_dir, *, scheduler=None, workers=None, overwrite=False, progress=False,
          **spectrum_kwargs):
    """Lyapunov spectra of every network listed in a manifest.

    Each row's network (``weights``) is driven by its ``inputs`` and its spectrum is
    computed with :func:`lenum.lyapunov_spectrum` and written to
    ``out_dir/row0003_<weights name>.h5`` (see :func:`result_name`); then
    ``out_dir/summary.csv`` is written with one row per network.

    Parameters
    ----------
    manifest : str, os.PathLike or sequence of mappings
        A CSV file with columns ``weights`` and ``inputs`` (paths relative to the
        file's folder; ``FILE.h5:/group`` names one checkpoint of a collection) and any
        other columns, which are copied to the summary.  A sequence of dicts is taken
        as the rows of such a file, with paths relative to the working folder.
    out_dir : str or os.PathLike
        Results folder; created if missing.
    scheduler : None, "serial", str or distributed.Client, optional
        ``None`` (or ``"local"``): a new Dask ``LocalCluster`` of ``workers``
        single-threaded processes on 127.0.0.1, closed at the end.  ``"serial"``: the
        rows one after another in this process (no Dask needed).  An address such as
        ``"tcp://host:8786"``: the running cluster there (its workers must see the
        same files, the results folder included).  A ``distributed.Client``: used
        as is and left open.
    workers : int, optional
        Worker processes of the local cluster; default the number of cores.
    overwrite : bool, default False
        Recompute every row and replace its result file.  Without it, a row whose
        result file exists and loads is not recomputed.
    progress : bool, default False
        A progress bar over finished rows on stderr.
    **spectrum_kwargs
        Passed to :func:`lenum.lyapunov_spectrum` for every row: ``k``, ``warmup``,
        ``qr_every``, ``dtype``, ``device``, ``units``, ``keep_local``,
        ``batch_chunk``, ``q0``.  ``h0``/``c0`` come from each inputs file.

    Returns
    -------
    SweepSummary
        The rows of ``summary.csv``, in manifest order.

    Raises
    ------
    MissingFileError, FormatError
        The manifest is missing or malformed (the message names file and line).
    OutputExistsError
        A result file in ``out_dir`` does not load, or was computed for another row or
        with other options, and ``overwrite`` is False (nothing is computed).
    MissingDependencyError
        Dask is not installed and ``scheduler`` is not ``"serial"``.
    SweepError
        The scheduler at the address given cannot be reached.
    ParameterError, TypeError
        A bad option.

    Notes
    -----
    A row that fails (a missing or malformed file, inputs of the wrong size, ``k``
    larger than its state) does not stop the sweep: it gets ``status="error"`` and
    its message in the summary, no result file, and it is tried again by the next
    run.  ``mean_exponent`` is the mean of the ``k`` exponents computed (the whole
    spectrum by default).  Whether a row is finished is judged from its result file
    only: the row's ``weights``/``inputs`` entries and the options that change the
    numbers are compared, not the contents of the files (a checkpoint collection
    grows during training without invalidating its earlier groups).

    Examples
    --------
    >>> summary = lenum.sweep("runs/manifest.csv", "runs/spectra", k=8,
    ...                       warmup=100)                        # doctest: +SKIP
    >>> [row["max_exponent"] for row in summary.ok]            # doctest: +SKIP
    """
    options, options_key = _check_options(spectrum_kwargs)
    if workers is not None:
        if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
            raise ParameterError(f"workers must be a positive integer, got {workers!r}")
        if scheduler not in (None, "local"):
            raise ParameterError("workers sets the size of the local cluster; it cannot be "
                                 f"used with scheduler={scheduler!r}")
    if isinstance(manifest, (str, os.PathLike)):
        manifest_name = os.fspath(manifest)
        columns, rows = read_manifest(manifest_name)
        base = os.path.dirname(os.path.abspath(manifest_name))
    else:
        manifest_name = "manifest"
        columns, rows = _rows_from_records(manifest)
        base = os.getcwd()
        if not rows:
            columns = ["weights", "inputs"]

    out_dir = os.fspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise io.FormatError(f"{out_dir}: exists and is not a folder")
    os.makedirs(out_dir, exist_ok=True)
    _remove_stale_temporaries(out_dir)

    tasks = []
    for index, row in enumerate(rows):
        weights_entry = row.get("weights", "").strip()
        inputs_entry = row.get("inputs", "").strip()
        tasks.append({
            "index": index,
            "manifest": manifest_name,
            "weights_entry": weights_entry,
            "inputs_entry": inputs_entry,
            "weights": _resolve(weights_entry, base) if weights_entry else "",
            "inputs": _resolve(inputs_entry, base) if inputs_entry else "",
            # absolute: the workers of a remote cluster do not share our working folder
            "result": os.path.abspath(os.path.join(out_dir, result_name(index, weights_entry))),
            "options": options,
            "options_key": options_key,
            "overwrite": bool(overwrite),
        })

    records = {}
    if not overwrite:
        for task in tasks:
            record = _existing(task)
            if record is not None:
                records[task["index"]] = record
    skipped = len(records)
    pending = [task for task in tasks if task["index"] not in records]

    if pending:
        if scheduler != "serial":
            _import_distributed()  # fail before the bar appears
        from tqdm.auto import tqdm

        with tqdm(total=len(tasks), initial=skipped, desc="lenum sweep", unit="net",
                  file=sys.stderr, disable=not progress, dynamic_ncols=True) as bar:
            if scheduler == "serial":
                stream = _run_serial(pending, bar)
            else:
                stream = _run_dask(pending, scheduler, workers, bar)
            failed = 0
            for record in stream:
                records[record["index"]] = record
                if record["status"] != "ok":
                    failed += 1
                    bar.set_postfix(failed=failed, refresh=False)

    summary_rows = []
    for task, row in zip(tasks, rows):
        record = records[task["index"]]
        out = {c: row.get(c, "") for c in columns}
        for name in SUMMARY_COLUMNS:
            value = record.get(name)
            if name == "result" and value is not None:
                # as the caller named the folder, not the absolute path the workers used
                value = os.path.join(out_dir, os.path.basename(value))
            out[name] = value
        summary_rows.append(out)
    all_columns = list(columns) + list(SUMMARY_COLUMNS)
    path = os.path.join(out_dir, SUMMARY_NAME)
    _write_summary(path, all_columns, summary_rows, out_dir)
    return SweepSummary(all_columns, summary_rows, path, computed=len(pending), skipped=skipped)


# --------------------------------------------------------------------------- command line


def _print_summary(summary, out):
    from .cli import _fmt

    print(f"{'row':>4}  {'status':<6}  {'max':>10}  {'mean':>10}  {'KY dim':>8}  "
          f"{'KS':>10}  result / error", file=out)
    for i, row in enumerate(summary.rows):
        if row["status"] == "ok":
            tail = os.path.basename(row["result"])
            print(f"{i:>4}  {'ok':<6}  {_fmt(row['max_exponent'], 10, 4)}  "
                  f"{_fmt(row['mean_exponent'], 10, 4)}  "
                  f"{_fmt(row['kaplan_yorke_dimension'], 8, 3)}  "
                  f"{_fmt(row['ks_entropy'], 10, 4)}  {tail}", file=out)
        else:
            print(f"{i:>4}  {'error':<6}  {'-':>10}  {'-':>10}  {'-':>8}  {'-':>10}  "
                  f"{row['error']}", file=out)


def run_command(args):
    """``lenum sweep``: run :func:`sweep` from parsed arguments; return the exit status.

    0 when every row is ok; 2 when a row failed (one line on stderr; the rows are in
    the summary) or the sweep cannot start (raised as a LenumError to the caller).
    """
    summary = sweep(
        args.manifest,
        args.output,
        scheduler="serial" if args.no_dask else args.scheduler,
        workers=args.workers,
        overwrite=args.overwrite,
        progress=not args.quiet,
        k=args.k,
        warmup=args.warmup,
        qr_every=args.qr_every,
        dtype=args.dtype,
        device=args.device,
        units=args.units,
        batch_chunk=args.batch_chunk,
    )
    failed = summary.failed
    if args.json:
        from .cli import _dump_json

        _dump_json({"summary": summary.path, "computed": summary.computed,
                    "skipped": summary.skipped, "rows": summary.rows}, sys.stdout)
    else:
        _print_summary(summary, sys.stdout)
        print(f"\n{len(summary)} row(s): {len(summary.ok)} ok ({summary.computed - len(failed)} "
              f"computed, {summary.skipped} already done), {len(failed)} failed; "
              f"summary written to {summary.path}")
    if failed:
        first = summary.rows.index(failed[0])
        print(f"lenum: error: {len(failed)} of {len(summary)} row(s) failed (row {first}: "
              f"{failed[0]['error']}); see {summary.path}", file=sys.stderr)
        return 2
    return 0
