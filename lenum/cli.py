"""The ``lenum`` command line (SPEC section 4); ``python -m lenum`` is the same.

Exit status: 0 done; 2 bad usage or bad input (one line on stderr,
``lenum: error: FILE:/dataset: what is wrong``); 1 anything unexpected (a short
message; the traceback with ``LENUM_DEBUG=1``); 130 interrupted (Ctrl-C).  Outputs are
written atomically (see :mod:`lenum.io`): a failed or interrupted run leaves no file.
"""

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import traceback

import numpy as np

from ._version import __version__
from .errors import DeviceError, LenumError, ParameterError
from .network import CELLS

__all__ = ["main"]

PROG = "lenum"


# --------------------------------------------------------------------------- output


def _fmt(value, width=12, digits=6):
    if value is None:
        return f"{'-':>{width}}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value:>{width}}"  # inf / -inf
    return f"{value:>{width}.{digits}f}"


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _dump_json(obj, out):
    # Python's json writes -inf as -Infinity: an exponent of -inf is a real answer
    # (a direction the dynamics annihilates) and must survive the round trip
    json.dump(obj, out, default=_json_default)
    out.write("\n")


def _units_label(units):
    return f"{units}/step"


def _describe_setup(meta, res):
    parts = [str(meta.get("cell", "?"))]
    if "num_layers" in meta:
        parts.append(f"{meta['num_layers']} layer(s) of N={meta.get('hidden_size', '?')}")
    if "input_size" in meta:
        parts.append(f"d={meta['input_size']}")
    parts.append(f"{res.num_sequences} sequence(s) x {res.steps} counted step(s)")
    if meta.get("warmup"):
        parts.append(f"warmup {meta['warmup']}")
    if meta.get("qr_every", 1) != 1:
        parts.append(f"QR every {meta['qr_every']}")
    parts.append(f"{meta.get('dtype', '?')} on {meta.get('device', '?')}")
    return ", ".join(parts)


def _summary_lines(res):
    return [
        ("max exponent", _fmt(res.max_exponent).strip() + f" {_units_label(res.units)}"),
        ("Kaplan-Yorke dimension", _fmt(res.kaplan_yorke_dimension(), 0, 4).strip()),
        ("KS entropy (sum of positive)",
         _fmt(res.ks_entropy()).strip() + f" {_units_label(res.units)}"),
        ("steps", str(res.steps)),
        ("sequences", str(res.num_sequences)),
    ]


def print_table(res, out=None, title=None):
    """Print a result as a readable table: index, exponent, std; then the summary."""
    out = sys.stdout if out is None else out
    if title:
        print(title, file=out)
    print(f"{'index':>5}  {'exponent':>12}  {'std':>12}", file=out)
    for i, (lam, sd) in enumerate(zip(res.exponents, res.std), start=1):
        print(f"{i:>5}  {_fmt(float(lam))}  {_fmt(float(sd))}", file=out)
    print(file=out)
    for label, value in _summary_lines(res):
        print(f"{label:<30}{value}", file=out)


def _result_json(res):
    d = res.to_dict()
    d.setdefault("lenum_version", __version__)
    d["sequences"] = res.num_sequences
    if res.local is not None:
        d["local"] = res.local.tolist()
    return d


# --------------------------------------------------------------------------- commands


def _cmd_spectrum(args):
    import lenum

    from . import io

    if args.output is not None:
        # refuse now rather than after a long run; checked again when writing
        io.check_output(args.output, args.overwrite)
    from .adapters.convert import is_model_path, load_model

    net = load_model(args.weights) if is_model_path(args.weights) else io.load_network(args.weights)
    weights_file, _ = io.split_path(args.weights)
    inputs_file, _ = io.split_path(args.inputs)
    with io.open_inputs(args.inputs) as inp:
        where = inp.names["inputs"]
        names = dict(inp.names, weights=args.weights)
        io.check_compatible(net, inp.x, inp.h0, inp.c0, k=args.k, warmup=args.warmup, names=names)
        progress = bool(not args.quiet and sys.stderr.isatty())
        kwargs = {}
        if args.batch_chunk is not None:
            kwargs["batch_chunk"] = args.batch_chunk
        try:
            res = lenum.lyapunov_spectrum(
                net,
                inp.x,
                k=args.k,
                warmup=args.warmup,
                h0=inp.h0,
                c0=inp.c0,
                qr_every=args.qr_every,
                dtype=args.dtype,
                device=args.device,
                units=args.units,
                progress=progress,
                input_name=where,
                **kwargs,
            )
        except LenumError as exc:
            msg = str(exc)
            if (not isinstance(exc, DeviceError) and weights_file not in msg
                    and inputs_file not in msg):
                # the engine does not know the file names; say which run failed
                exc.args = (f"{args.weights} with {args.inputs}: {msg}",)
            raise
    res.meta["weights_path"] = str(args.weights)
    res.meta["inputs_path"] = str(args.inputs)
    res.meta["weights_sha256"] = io.file_sha256(weights_file)
    res.meta["inputs_sha256"] = io.file_sha256(inputs_file)
    if args.output is not None:
        io.save_result(res, args.output, overwrite=args.overwrite)
    if args.json:
        _dump_json(_result_json(res), sys.stdout)
    else:
        print_table(res, title=f"Lyapunov spectrum ({_units_label(res.units)}): "
                    + _describe_setup(res.meta, res))
        if args.output is not None:
            print(f"{'written to':<30}{args.output}")
    return 0


def _print_info(d, out=None, indent=""):
    out = sys.stdout if out is None else out
    kind = d["kind"]
    p = lambda *a: print(indent + " ".join(str(v) for v in a), file=out)  # noqa: E731
    if kind == "checkpoints":
        p(f"{d['path']}: {len(d['groups'])} weight group(s)")
        for g in d["groups"]:
            name = g["path"].split(":", 1)[1]
            p(
                f"  {name:<20} {g['cell']:<9} layers={g['num_layers']} "
                f"N={g['hidden_size']} d={g['input_size']} state size={g['state_size']}"
            )
        return
    p(f"{d['path']}: {kind}")
    if kind == "weights":
        p(f"  cell            {d['cell']}")
        p(f"  layers          {d['num_layers']}")
        p(f"  hidden size N   {d['hidden_size']}")
        p(f"  input size d    {d['input_size']}")
        p(f"  state size n    {d['state_size']}")
        p(f"  biases          {'yes' if d['bias'] else 'no'}")
        for name, shape in sorted(d["datasets"].items()):
            p(f"  {name:<15} {tuple(shape)}")
    elif kind == "inputs":
        p(f"  sequences B     {d['sequences']}")
        p(f"  steps T         {d['steps']}")
        p(f"  input size d    {d['input_size']}")
        p(f"  dtype           {d['dtype']}")
        p(f"  h0              {tuple(d['h0']) if d['h0'] else 'absent (zeros)'}")
        p(f"  c0              {tuple(d['c0']) if d['c0'] else 'absent (zeros)'}")
    else:
        units = _units_label(d["units"])
        p(f"  exponents k     {d['k']}")
        p(f"  sequences       {d['sequences']}")
        p(f"  steps           {d['steps']}")
        p(f"  max exponent    {_fmt(d['max_exponent']).strip()} {units}")
        p(f"  KY dimension    {_fmt(d['kaplan_yorke_dimension'], 0, 4).strip()}")
        p(f"  KS entropy      {_fmt(d['ks_entropy']).strip()} {units}")
        p(f"  local           {tuple(d['local']) if d['local'] else 'absent'}")
        p(f"  lenum version   {d['lenum_version']}")
        for key, value in sorted(d["meta"].items()):
            p(f"  {key:<15} {value}")
    for key, value in sorted(d.get("attrs", {}).items()):
        p(f"  {key:<15} {value}")
    p("  valid")


def _cmd_info(args):
    from . import io

    d = io.describe(args.file)
    if args.json:
        _dump_json(d, sys.stdout)
    else:
        _print_info(d)
    return 0


def _cmd_demo(args):
    from . import demo

    runs = demo.run(progress=bool(not args.quiet and sys.stderr.isatty()))
    if args.json:
        _dump_json({name: _result_json(res) for name, res in runs.items()}, sys.stdout)
        return 0
    print(demo.DESCRIPTION)
    print()
    names = list(runs)
    results = [runs[n] for n in names]
    k = max(r.k for r in results)
    header = f"{'index':>5}" + "".join(f"  {n + ' exponent':>16}  {'std':>10}" for n in names)
    print(header)
    for i in range(k):
        row = f"{i + 1:>5}"
        for r in results:
            if i < r.k:
                row += f"  {_fmt(float(r.exponents[i]), 16)}  {_fmt(float(r.std[i]), 10)}"
            else:
                row += f"  {'':>16}  {'':>10}"
        print(row)
    print()
    labels = [label for label, _ in _summary_lines(results[0])]
    print(f"{'':<30}" + "".join(f"{n:>28}" for n in names))
    for j, label in enumerate(labels):
        print(f"{label:<30}" + "".join(f"{_summary_lines(r)[j][1]:>28}" for r in results))
    for r in results:
        print(_describe_setup(r.meta, r))
    return 0


def _cmd_sweep(args):
    # the sweep owns its reporting (progress, summary table, status for failed rows);
    # imported by name: the package attribute lenum.sweep is the function, not the module
    from .sweep import run_command

    return run_command(args)


def _cmd_convert(args):
    from . import io
    from .adapters.convert import convert

    io.check_output(args.weights, args.overwrite)  # refuse before reading the model
    net = convert(args.model, args.weights, overwrite=args.overwrite,
                  cell=args.cell, prefix=args.prefix)
    print(f"{args.model} -> {args.weights}: {net!r}")
    return 0


def _cmd_plot(args):
    from . import io

    if args.label is not None and len(args.label) != len(args.results):
        raise ParameterError(f"--label given {len(args.label)} times for "
                             f"{len(args.results)} result files")
    try:
        import matplotlib  # noqa: F401

        from .plot import plot_files
    except ImportError:
        raise LenumError("lenum plot needs matplotlib: pip install 'lenum[plot]'") from None
    io.check_output(args.output, args.overwrite)
    folder = os.path.dirname(os.path.abspath(args.output))
    ext = os.path.splitext(args.output)[1]
    fd, tmp = tempfile.mkstemp(suffix=ext, prefix=".lenum-plot-", dir=folder)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~io._umask())  # mkstemp's 0600 is not what a figure wants
    try:  # write under a temporary name, rename when complete (SPEC section 4)
        plot_files(args.results, tmp, labels=args.label, kind=args.kind)
        os.replace(tmp, args.output)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    print(f"{'written to':<30}{args.output}")
    return 0


# --------------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    """argparse with lenum's usage-error status (2) and a one-line hint."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _int_at_least(lo):
    """An argparse type: an integer >= ``lo``."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"{value} is not >= {lo}")
        return value

    return parse


_positive_int = _int_at_least(1)
_nonnegative_int = _int_at_least(0)


def _add_spectrum_options(p, batch_chunk_help):
    """The options of a spectrum computation, shared by ``spectrum`` and ``sweep``."""
    p.add_argument("--k", type=_positive_int, default=None, metavar="K",
                   help="number of exponents (default: the whole state)")
    p.add_argument("--warmup", type=_nonnegative_int, default=0, metavar="W",
                   help="leading steps not counted (default 0)")
    p.add_argument("--qr-every", type=_positive_int, default=1, metavar="M",
                   help="re-orthonormalisation interval (default 1)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    p.add_argument("--device", choices=("cpu", "gpu", "auto"), default="cpu")
    p.add_argument("--units", choices=("nats", "bits"), default="nats")
    p.add_argument("--batch-chunk", type=_positive_int, default=None, metavar="B",
                   help=batch_chunk_help)


def build_parser():
    """The argparse parser of the ``lenum`` command."""
    parser = _Parser(
        prog=PROG,
        description="Lyapunov spectra of recurrent neural networks (RNN, LSTM, GRU).",
        epilog="Paths may name a group or dataset inside a file: FILE.h5:/group/name. "
        "Set LENUM_DEBUG=1 for tracebacks of unexpected errors.",
    )
    parser.add_argument("--version", action="version", version=f"lenum {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("demo", help="spectra of the bundled example LSTM and GRU")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser(
        "spectrum",
        help="Lyapunov spectrum of a network driven by input sequences",
        description="Compute the Lyapunov spectrum of the network in WEIGHTS driven by "
        "the sequences in INPUTS (QR method; exponents per step).",
    )
    p.add_argument("weights", metavar="WEIGHTS",
                   help="weights file or group (FILE.h5[:/group]), or a model file "
                   "(.pt, .pth, .keras, .onnx)")
    p.add_argument("inputs", metavar="INPUTS", help="inputs file, group or dataset")
    p.add_argument("-o", "--output", metavar="RESULT.h5", help="write the result to this file")
    _add_spectrum_options(p, "sequences processed (and read from INPUTS) at once; bounds memory")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_spectrum)

    p = sub.add_parser(
        "sweep",
        help="spectra of every network listed in a manifest (CSV), in parallel",
        description="Compute the spectrum of every row of MANIFEST (a CSV file with "
        "columns 'weights' and 'inputs', paths relative to its folder, and any other "
        "columns), one result file per row in RESULTS_DIR, and RESULTS_DIR/summary.csv. "
        "Runs on a local Dask cluster by default; rows already finished are skipped.",
    )
    p.add_argument("manifest", metavar="MANIFEST", help="CSV file: weights, inputs, ...")
    p.add_argument("-o", "--output", metavar="RESULTS_DIR", required=True,
                   help="folder for the result files and summary.csv (created if missing)")
    _add_spectrum_options(p, "sequences processed at once per network; bounds memory")
    p.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                   help="worker processes of the local cluster (default: the cores)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", default=None,
                       help="use a running Dask cluster (tcp://host:port) instead of a local one")
    where.add_argument("--no-dask", action="store_true",
                       help="compute the rows one after another in this process")
    p.add_argument("--overwrite", action="store_true",
                   help="recompute every row, replacing existing result files")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("info", help="what a weights, inputs or result file holds; validates it")
    p.add_argument("file", metavar="FILE", help="FILE.h5 or FILE.h5:/group")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_info)
    p = sub.add_parser("convert", help="convert a PyTorch, Keras or ONNX model to a weights file",
                       description="Write the recurrent part of MODEL (.pt/.pth, .keras, .onnx) "
                       "in lenum's weights format.")
    p.add_argument("model", metavar="MODEL", help="model file (.pt, .pth, .keras, .onnx)")
    p.add_argument("weights", metavar="WEIGHTS", help="output FILE.h5[:/group]")
    p.add_argument("--cell", choices=sorted(CELLS), default=None,
                   help="PyTorch state dicts: the cell when the weights do not tell (rnn_relu)")
    p.add_argument("--prefix", default=None, metavar="PREFIX",
                   help="PyTorch state dicts: key prefix of the recurrent module (encoder.rnn.)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser(
        "plot", help="plot result files: spectrum with error bars, convergence",
        description="Plot one or more result files into a PNG, PDF or SVG figure "
        "(format from the extension); several files are overlaid in the spectrum.")
    p.add_argument("results", metavar="RESULT.h5", nargs="+",
                   help="result files or groups (FILE.h5[:/group])")
    p.add_argument("-o", "--output", metavar="FIGURE", required=True,
                   help="figure file: .png, .pdf or .svg")
    p.add_argument("--label", action="append", default=None, metavar="TEXT",
                   help="legend entry, once per result file (default: the file names)")
    p.add_argument("--kind", choices=("both", "spectrum", "convergence"), default=None,
                   help="panels (default: both for one file, the spectrum for several)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing figure")
    p.set_defaults(func=_cmd_plot)

    return parser


def _one_line(text):
    return " ".join(str(text).split())


def main(argv=None):
    """Run the ``lenum`` command line; returns the exit status.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name; default ``sys.argv[1:]``.

    Returns
    -------
    int
        0 done, 1 unexpected error, 2 bad usage or input, 130 interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return args.func(args)
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except LenumError as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (``lenum ... | head``): no traceback
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        if os.environ.get("LENUM_DEBUG"):
            traceback.print_exc()
        else:
            print(
                f"{PROG}: unexpected error: {type(exc).__name__}: {_one_line(exc)} "
                f"(set LENUM_DEBUG=1 for a traceback)",
                file=sys.stderr,
            )
        return 1
