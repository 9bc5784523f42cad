"""Figures of Lyapunov spectra (matplotlib, the ``lenum[plot]`` extra).

Figures are built as :class:`matplotlib.figure.Figure` objects without pyplot, so no
global backend or open-figure state is touched: they render with Agg when saved and
show inline when a notebook displays them.
"""

import os

import numpy as np

__all__ = ["plot_spectrum", "plot_convergence", "plot_result", "plot_files"]

FORMATS = ("png", "pdf", "svg")


def _figure(ncols=1, width=6.4, height=4.2):
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError("lenum's plots need matplotlib: pip install 'lenum[plot]'") from exc
    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def _units(results):
    units = {r.units for r in results}
    return units.pop() if len(units) == 1 else "mixed units"


def _labels(results, labels):
    if labels is None:
        return [None] * len(results) if len(results) == 1 else [
            f"result {i + 1}" for i in range(len(results))]
    labels = list(labels)
    if len(labels) != len(results):
        raise ValueError(f"{len(labels)} labels for {len(results)} results")
    return labels


def plot_spectrum(results, labels=None, ax=None, errorbars="stderr"):
    """The spectrum: exponent against its index (1 = largest), with error bars.

    Parameters
    ----------
    results : SpectrumResult or sequence of SpectrumResult
        Several results (checkpoints, say) are overlaid, one colour each.
    labels : sequence of str, optional
        Legend entries; default ``result 1``, ``result 2``, ... for several results.
    ax : matplotlib Axes, optional
        Draw into this axes; default a new Figure.
    errorbars : {"stderr", "std", None}
        Standard error of the mean exponents, spread over sequences, or none.

    Returns
    -------
    matplotlib.axes.Axes
    """
    from .result import SpectrumResult

    if isinstance(results, SpectrumResult):
        results = [results]
    results = list(results)
    if errorbars not in ("stderr", "std", None):
        raise ValueError(f"errorbars must be 'stderr', 'std' or None, got {errorbars!r}")
    if ax is None:
        _, (ax,) = _figure()
    for res, label in zip(results, _labels(results, labels)):
        lam = np.asarray(res.exponents, dtype=float)
        idx = np.arange(1, lam.size + 1)
        err = None if errorbars is None else np.asarray(getattr(res, errorbars), dtype=float)
        if err is not None:
            # an infinite error bar (a single block) would swamp the axis: leave it out
            err = np.where(np.isfinite(err), err, 0.0)
        shown = np.isfinite(lam)  # -inf exponents cannot be drawn
        ax.errorbar(idx[shown], lam[shown], yerr=None if err is None else err[shown],
                    marker="o", markersize=3.5, linewidth=1.0, capsize=2.5, label=label)
    ax.axhline(0.0, color="0.5", linewidth=0.8, linestyle="--")
    ax.set_xlabel("exponent index i (1 = largest)")
    ax.set_ylabel(f"Lyapunov exponent $\\lambda_i$ ({_units(results)}/step)")
    bars = {"stderr": "error bars: standard error", "std": "error bars: std over sequences",
            None: ""}[errorbars]
    ax.set_title("Lyapunov spectrum" + (f" ({bars})" if bars else ""), fontsize="medium")
    if any(label is not None for label in _labels(results, labels)):
        ax.legend(fontsize="small")
    ax.grid(True, alpha=0.3)
    return ax


def plot_convergence(result, ax=None, indices=None, max_lines=6):
    """Running estimates of the exponents against counted steps, +-1 standard error.

    Parameters
    ----------
    result : SpectrumResult
    ax : matplotlib Axes, optional
    indices : sequence of int, optional
        0-based exponents to draw; default the first ``max_lines``.
    max_lines : int

    Returns
    -------
    matplotlib.axes.Axes
    """
    if ax is None:
        _, (ax,) = _figure()
    steps = np.asarray(result.history_steps)
    hist = np.asarray(result.history)
    se = np.asarray(result.history_stderr)
    if indices is None:
        indices = range(min(result.k, max_lines))
    for i in indices:
        y = hist[:, i]
        if not np.isfinite(y).any():
            continue
        (line,) = ax.plot(steps, y, marker="." if steps.size < 30 else None, linewidth=1.2,
                          label=f"$\\lambda_{{{i + 1}}}$")
        band = np.where(np.isfinite(se[:, i]), se[:, i], np.nan)
        ax.fill_between(steps, y - band, y + band, color=line.get_color(), alpha=0.2,
                        linewidth=0)
    ax.set_xlabel("counted steps")
    ax.set_ylabel(f"running estimate ({result.units}/step)")
    title = "Convergence (bands: $\\pm$1 standard error)"
    if "tol" in result.meta:
        title += f", tol = {result.meta['tol']:g}"
    ax.set_title(title, fontsize="medium")
    ax.legend(fontsize="small", ncol=2)
    ax.grid(True, alpha=0.3)
    return ax


def plot_result(result, kind="both", labels=None):
    """A Figure of one result (or several overlaid): spectrum and/or convergence.

    Parameters
    ----------
    result : SpectrumResult or sequence of SpectrumResult
    kind : {"both", "spectrum", "convergence"}
        ``"convergence"`` and the right panel of ``"both"`` show the first result.
    labels : sequence of str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    from .result import SpectrumResult

    results = [result] if isinstance(result, SpectrumResult) else list(result)
    if not results:
        raise ValueError("nothing to plot")
    if kind not in ("both", "spectrum", "convergence"):
        raise ValueError(f"kind must be 'both', 'spectrum' or 'convergence', got {kind!r}")
    fig, axes = _figure(2 if kind == "both" else 1)
    if kind in ("both", "spectrum"):
        plot_spectrum(results, labels=labels, ax=axes[0])
    if kind in ("both", "convergence"):
        plot_convergence(results[0], ax=axes[-1])
        if len(results) > 1 and kind == "both":
            first = _labels(results, labels)[0]
            axes[-1].set_title(axes[-1].get_title() + f"\n{first}", fontsize="medium")
    return fig


def _file_label(path):
    from .io import split_path

    file, obj = split_path(path)
    name = os.path.basename(str(file))
    return name if obj in (None, "", "/") else f"{name}:{obj}"


def plot_files(paths, out, labels=None, kind=None):
    """Plot result files into a figure file (the ``lenum plot`` command).

    Parameters
    ----------
    paths : sequence of str
        Result files (``FILE.h5`` or ``FILE.h5:/group``), overlaid in the spectrum.
    out : str
        Figure file; the format follows the extension: .png, .pdf or .svg.
    labels : sequence of str, optional
        Legend entries; default the file names.
    kind : {"both", "spectrum", "convergence"}, optional
        Default: both panels for one file, the spectrum alone for several.

    Returns
    -------
    str
        ``out``.
    """
    from .io import load_result

    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError("no result files to plot")
    ext = os.path.splitext(str(out))[1].lower().lstrip(".")
    if ext not in FORMATS:
        from .errors import ParameterError

        raise ParameterError(f"{out}: unknown figure format {ext!r}; use .png, .pdf or .svg")
    results = [load_result(p) for p in paths]
    if labels is None:
        labels = [_file_label(p) for p in paths]
    if kind is None:
        kind = "both" if len(results) == 1 else "spectrum"
    fig = plot_result(results, kind=kind, labels=labels)
    fig.savefig(out, format=ext, dpi=150)
    return str(out)
