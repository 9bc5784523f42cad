"""The command line (SPEC section 4): ``python -m lenum`` as a subprocess, plus a few
in-process calls of :func:`lenum.cli.main` for what a subprocess cannot stage
(an interrupt at a chosen moment, an unexpected exception)."""

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

import lenum
from lenum import cli, io

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args, env=None, cwd=None):
    """Run ``python -m lenum ARGS``; return (status, stdout, stderr)."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = ROOT + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.pop("LENUM_DEBUG", None)
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "lenum", *map(str, args)],
        capture_output=True, text=True, env=full_env, cwd=cwd, timeout=300,
    )
    return proc.returncode, proc.stdout, proc.stderr


def one_error_line(stderr):
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("lenum: error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny LSTM (N=3, d=2), its inputs, a checkpoint collection and bad files."""
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    sd = {
        "weight_ih_l0": rng.normal(size=(12, 2)),
        "weight_hh_l0": rng.normal(size=(12, 3)),
        "bias_ih_l0": rng.normal(size=12) * 0.1,
        "bias_hh_l0": rng.normal(size=12) * 0.1,
    }
    net = lenum.Network("lstm", sd)
    io.save_network(net, d / "w.h5")
    for epoch in range(2):
        io.save_network(net, f"{d / 'ckpts.h5'}:/epoch_{epoch:03d}")
    x = rng.normal(size=(6, 30, 2))
    io.save_inputs(x, d / "in.h5")
    late_nan = x.copy()
    late_nan[5, 25, 1] = np.nan  # in the last chunk of 2 sequences
    io.save_inputs(x, d / "nan.h5")
    with h5py.File(d / "nan.h5", "a") as f:
        f["inputs"][...] = late_nan
    io.save_inputs(rng.normal(size=(6, 30, 4)), d / "in4.h5")
    (d / "text.h5").write_text("not an HDF5 file\n")
    with h5py.File(d / "badcell.h5", "w") as f:
        for k, v in sd.items():
            f[k] = v
        f.attrs["cell"] = "transformer"
    io.save_result(lenum.lyapunov_spectrum(net, x, k=2), d / "result.h5")
    return d, net, x


# --------------------------------------------------------------------------- subprocess runs


def test_demo():
    status, out, err = run("demo", "--quiet")
    assert status == 0, err
    assert "lstm exponent" in out and "gru exponent" in out
    assert "Kaplan-Yorke dimension" in out and "KS entropy" in out
    rows = [line for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert len(rows) >= 64


def test_spectrum_table_and_output_file(files):
    d, net, x = files
    out_path = d / "res.h5"
    status, out, err = run("spectrum", d / "w.h5", d / "in.h5", "-o", out_path,
                           "--warmup", "4", "--quiet")
    assert status == 0, err
    assert err == ""
    expected = lenum.lyapunov_spectrum(net, x, warmup=4)
    saved = io.load_result(out_path)
    assert np.allclose(saved.per_sequence, expected.per_sequence, rtol=0, atol=1e-12)
    assert saved.meta["weights_sha256"] == io.file_sha256(d / "w.h5")
    assert saved.meta["inputs_sha256"] == io.file_sha256(d / "in.h5")
    assert saved.meta["warmup"] == 4 and saved.steps == 26
    lines = out.splitlines()
    assert any(line.split()[:1] == ["index"] for line in lines)
    assert sum(1 for line in lines if line.strip()[:1].isdigit()) >= net.state_size
    for label in ("max exponent", "Kaplan-Yorke dimension", "KS entropy", "steps", "sequences"):
        assert any(line.startswith(label) for line in lines), label
    assert [f for f in os.listdir(d) if f.endswith(".tmp")] == []


def test_spectrum_json(files):
    d, net, x = files
    status, out, err = run("spectrum", d / "w.h5", f"{d / 'in.h5'}:/inputs", "--json",
                           "--k", "4", "--units", "bits", "--dtype", "float32")
    assert status == 0, err
    doc = json.loads(out)
    for key in ("exponents", "std", "per_sequence", "steps", "k", "max_exponent",
                "kaplan_yorke_dimension", "ks_entropy", "units", "cell", "warmup",
                "qr_every", "dtype", "device", "weights_sha256", "inputs_sha256",
                "lenum_version"):
        assert key in doc, key
    assert doc["k"] == 4 and len(doc["exponents"]) == 4 and doc["units"] == "bits"
    assert np.array(doc["per_sequence"]).shape == (6, 4) and doc["dtype"] == "float32"
    expected = lenum.lyapunov_spectrum(net, x, k=4, units="bits", dtype="float32")
    assert np.allclose(doc["exponents"], expected.exponents, atol=1e-5)


def test_no_clobber_then_overwrite(files, tmp_path):
    d, _, _ = files
    target = tmp_path / "keep.h5"
    target.write_bytes(b"precious")
    status, out, err = run("spectrum", d / "w.h5", d / "in.h5", "-o", target)
    assert status == 2
    line = one_error_line(err)
    assert "keep.h5" in line and "exists" in line and "--overwrite" in line
    assert target.read_bytes() == b"precious"
    status, _, err = run("spectrum", d / "w.h5", d / "in.h5", "-o", target, "--overwrite",
                         "--quiet")
    assert status == 0, err
    assert io.load_result(target).k == 6
    assert os.listdir(tmp_path) == ["keep.h5"]


def test_late_nan_leaves_no_output(files, tmp_path):
    d, _, _ = files
    out_path = tmp_path / "res.h5"
    status, _, err = run("spectrum", d / "w.h5", d / "nan.h5", "-o", out_path,
                         "--batch-chunk", "2")
    assert status == 2
    line = one_error_line(err)
    assert "nan.h5:/inputs" in line and "sequence 5, step 25" in line
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "args, expected",
    [
        (["spectrum", "{d}/missing.h5", "{d}/in.h5"], ["missing.h5: no such file"]),
        (["spectrum", "{d}/text.h5", "{d}/in.h5"], ["text.h5: not an HDF5 file"]),
        (["spectrum", "{d}/w.h5", "{d}/in4.h5"], ["in4.h5:/inputs", "input size d=4", "weight_ih_l0"]),
        (["info", "{d}/badcell.h5"], ["badcell.h5:/", "cell='transformer'"]),
    ],
)
def test_bad_input_exit_2_one_line(files, args, expected):
    d, _, _ = files
    status, out, err = run(*[a.format(d=d) for a in args])
    assert status == 2
    line = one_error_line(err)
    for text in expected:
        assert text in line, (text, line)
    assert out == ""


def test_usage_error_exit_2():
    status, _, err = run("spectrum", "--k")
    assert status == 2 and "usage:" in err and "Traceback" not in err


def test_info(files):
    d, _, _ = files
    status, out, err = run("info", d / "ckpts.h5")
    assert status == 0, err
    assert "2 weight group(s)" in out and "/epoch_000" in out and "/epoch_001" in out
    status, out, err = run("info", d / "result.h5", "--json")
    assert status == 0, err
    doc = json.loads(out)
    assert doc["kind"] == "result" and doc["meta"]["cell"] == "lstm"


# --------------------------------------------------------------------------- in process


@pytest.mark.parametrize(
    "args, expected",
    [
        (["spectrum", "{d}/w.h5", "{d}/in.h5", "--k", "7"], "w.h5: k=7 is not between 1 and the state size 6"),
        (["spectrum", "{d}/w.h5", "{d}/in.h5", "--warmup", "30"], "in.h5:/inputs: warmup=30 leaves no counted steps"),
        (["spectrum", "{d}/ckpts.h5", "{d}/in.h5"], "name one as"),
        (["spectrum", "{d}/ckpts.h5:/epoch_007", "{d}/in.h5"], "ckpts.h5:/epoch_007: no such group"),
        (["spectrum", "{d}/w.h5", "{d}/w.h5"], "lenum_format is 'weights', expected 'inputs'"),
        (["info", "{d}/text.h5"], "text.h5: not an HDF5 file"),
    ],
)
def test_bad_input_in_process(files, capsys, args, expected):
    d, _, _ = files
    assert cli.main([a.format(d=d) for a in args]) == 2
    captured = capsys.readouterr()
    line = one_error_line(captured.err)
    assert expected in line


def test_checkpoint_group_and_info_in_process(files, capsys):
    d, _, _ = files
    assert cli.main(["spectrum", f"{d}/ckpts.h5:/epoch_001", f"{d}/in.h5", "--json", "--quiet"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["weights_path"].endswith("ckpts.h5:/epoch_001")
    for name in ("w.h5", "in.h5"):
        assert cli.main(["info", f"{d}/{name}"]) == 0
        assert "valid" in capsys.readouterr().out


def test_interrupt_exit_130_no_partial_file(files, tmp_path, capsys, monkeypatch):
    d, _, _ = files
    original = h5py.Group.create_dataset

    def interrupted(group, name, *args, **kwargs):
        if name == "per_sequence":  # mid-way through writing the result
            raise KeyboardInterrupt
        return original(group, name, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", interrupted)
    status = cli.main(["spectrum", f"{d}/w.h5", f"{d}/in.h5", "-o", f"{tmp_path}/r.h5", "--quiet"])
    assert status == 130
    assert capsys.readouterr().err.strip() == "lenum: interrupted"
    assert os.listdir(tmp_path) == []


def test_unexpected_error_exit_1(files, capsys, monkeypatch):
    d, _, _ = files

    def boom(path):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(io, "describe", boom)
    monkeypatch.delenv("LENUM_DEBUG", raising=False)
    assert cli.main(["info", f"{d}/w.h5"]) == 1
    err = capsys.readouterr().err
    assert "RuntimeError: disk on fire" in err and "Traceback" not in err
    assert "LENUM_DEBUG=1" in err
    monkeypatch.setenv("LENUM_DEBUG", "1")
    assert cli.main(["info", f"{d}/w.h5"]) == 1
    assert "Traceback" in capsys.readouterr().err
