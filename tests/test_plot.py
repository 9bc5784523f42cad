"""Figures: valid PNG/PDF/SVG files of the expected size, from results and files."""

import numpy as np
import pytest

import lenum

matplotlib = pytest.importorskip("matplotlib")

from lenum.plot import plot_files, plot_result, plot_spectrum  # noqa: E402


def _result(seed, B=2, T=700):
    rng = np.random.default_rng(1)
    N, d = 5, 2
    sd = {"weight_ih_l0": rng.normal(size=(N, d)) * 0.5,
          "weight_hh_l0": rng.normal(size=(N, N)) * 2.0 / np.sqrt(N)}
    net = lenum.Network.from_state_dict("rnn_tanh", sd)
    x = np.random.default_rng(seed).normal(size=(B, T, d))
    return lenum.lyapunov_spectrum(net, x, warmup=50)


def test_result_plot_returns_a_figure_and_saves_png(tmp_path):
    from matplotlib.figure import Figure
    from matplotlib.image import imread

    fig = _result(0).plot()
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    ax = fig.axes[0]
    assert "nats/step" in ax.get_ylabel() and "index" in ax.get_xlabel()
    fig.savefig(tmp_path / "f.png", dpi=100)
    data = (tmp_path / "f.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    # two panels of 6.4 x 4.2 inches at 100 dpi
    assert imread(tmp_path / "f.png").shape[:2] == (420, 1280)


def test_overlaid_results_have_a_legend():
    ax = plot_spectrum([_result(0), _result(1)], labels=["epoch 1", "epoch 2"])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["epoch 1", "epoch 2"]
    with pytest.raises(ValueError, match="labels"):
        plot_spectrum([_result(0)], labels=["a", "b"])
    fig = plot_result(_result(0), kind="convergence")
    assert len(fig.axes) == 1 and fig.axes[0].get_xlabel() == "counted steps"


@pytest.mark.parametrize("ext,magic", [("png", b"\x89PNG"), ("pdf", b"%PDF"), ("svg", b"<?xml")])
def test_plot_files(tmp_path, ext, magic):
    paths = []
    for i in range(2):
        p = tmp_path / f"r{i}.h5"
        _result(i).save(p)
        paths.append(str(p))
    out = tmp_path / f"fig.{ext}"
    assert plot_files(paths, str(out)) == str(out)
    assert out.read_bytes()[:len(magic)] == magic
    assert out.stat().st_size > 1000


def test_plot_files_rejects_unknown_formats(tmp_path):
    p = tmp_path / "r.h5"
    _result(0).save(p)
    with pytest.raises(lenum.ParameterError, match="format"):
        plot_files([str(p)], str(tmp_path / "fig.jpg"))
    assert not (tmp_path / "fig.jpg").exists()
