"""Sweeps over a manifest of networks (lenum.sweep and ``lenum sweep``).

Tiny networks (N=4, T=30) keep every test fast; the Dask tests start a two-worker
LocalCluster on the loopback interface and are skipped where Dask is not installed.
"""

import csv
import importlib
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import lenum
from lenum import cli, io
from lenum.sweep import (
    SUMMARY_COLUMNS,
    SUMMARY_NAME,
    MissingDependencyError,
    read_manifest,
    result_name,
    sweep,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N, D, T = 4, 2, 30
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}
STATS = ("max_exponent", "mean_exponent", "kaplan_yorke_dimension", "ks_entropy")


def tiny_network(cell, seed, gain=1.0):
    rng = np.random.default_rng(seed)
    g = GATES[cell]
    return lenum.Network(cell, {
        "weight_ih_l0": rng.normal(size=(g * N, D)),
        "weight_hh_l0": rng.normal(size=(g * N, N)) * gain / np.sqrt(N),
        "bias_ih_l0": rng.normal(size=g * N) * 0.1,
        "bias_hh_l0": rng.normal(size=g * N) * 0.1,
    })


def write_manifest(path, header, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def read_summary(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A folder like a training run's: checkpoint collections, inputs, a manifest."""
    d = tmp_path_factory.mktemp("runs")
    (d / "ckpts").mkdir()
    rows = []
    cells = ["rnn_tanh", "lstm", "gru"]
    for i, cell in enumerate(cells):
        for epoch in (0, 5):
            io.save_network(tiny_network(cell, 10 * i + epoch, gain=1.0 + 0.5 * i),
                            f"{d / 'ckpts' / f'{cell}.h5'}:/epoch_{epoch:03d}")
            rows.append([f"ckpts/{cell}.h5:/epoch_{epoch:03d}", "inputs.h5", cell, epoch,
                         f"{0.1 * (i + 1):.3f}", "lr=1e-3, adam"])
    io.save_inputs(np.random.default_rng(1).normal(size=(3, T, D)), d / "inputs.h5")
    header = ["weights", "inputs", "cell", "epoch", "final_loss", "notes"]
    write_manifest(d / "manifest.csv", header, rows)
    return d, header, rows


def expected_stats(d, weights, **kwargs):
    net = io.load_network(os.path.join(d, weights.split(":")[0]) + ":" + weights.split(":")[1])
    x, h0, c0 = io.load_inputs_with_state(d / "inputs.h5")
    res = lenum.lyapunov_spectrum(net, x, h0=h0, c0=c0, **kwargs)
    return {
        "max_exponent": res.max_exponent,
        "mean_exponent": float(np.mean(res.exponents)),
        "kaplan_yorke_dimension": res.kaplan_yorke_dimension(),
        "ks_entropy": res.ks_entropy(),
    }


def stamps(folder):
    """(inode, mtime_ns) of every result file: a recomputed row gets a new file."""
    return {
        name: (os.stat(folder / name).st_ino, os.stat(folder / name).st_mtime_ns)
        for name in os.listdir(folder)
        if name.startswith("row") and name.endswith(".h5")
    }


# --------------------------------------------------------------------------- serial


def test_serial_summary_columns_and_values(runs, tmp_path, monkeypatch):
    d, header, rows = runs
    monkeypatch.chdir(tmp_path)  # manifest paths resolve against the manifest's folder
    summary = sweep(d / "manifest.csv", "out", scheduler="serial", warmup=5)
    assert summary.columns == header + list(SUMMARY_COLUMNS)
    assert len(summary) == len(rows) and summary.computed == len(rows) and summary.skipped == 0
    assert summary.path == os.path.join("out", "summary.csv")

    fieldnames, written = read_summary(tmp_path / "out" / "summary.csv")
    assert fieldnames == header + list(SUMMARY_COLUMNS)
    for i, (row, line, got) in enumerate(zip(rows, written, summary)):
        # free columns verbatim, a comma inside a cell included
        assert [line[c] for c in header] == [str(v) for v in row]
        assert line["status"] == got["status"] == "ok" and line["error"] == ""
        # in the CSV the result is relative to summary.csv's folder
        assert line["result"] == result_name(i, row[0])
        assert got["result"] == os.path.join("out", line["result"])
        res = lenum.SpectrumResult.load(got["result"])
        assert res.meta["weights_path"] == row[0] and res.meta["warmup"] == 5
        want = expected_stats(d, row[0], warmup=5)
        for name in STATS:
            assert float(line[name]) == pytest.approx(want[name], rel=1e-12, abs=1e-12)
            assert got[name] == pytest.approx(want[name], rel=1e-12, abs=1e-12)
    assert summary["cell"] == [r[2] for r in rows]
    # summary.csv is written through a temporary file: none left behind
    assert sorted(os.listdir(tmp_path / "out")) == sorted(
        [SUMMARY_NAME] + [result_name(i, r[0]) for i, r in enumerate(rows)])


def test_bad_rows_recorded_and_retried(runs, tmp_path):
    d, header, rows = runs
    good = rows[:2]
    bad = [
        ["ckpts/missing.h5", "inputs.h5", "gru", 0, "nan", "no such file"],
        # a group of the right file that does not exist
        ["ckpts/gru.h5:/epoch_999", "inputs.h5", "gru", 999, "nan", "no such group"],
        # inputs of another size than the network's
        ["ckpts/lstm.h5:/epoch_000", "inputs3.h5", "lstm", 0, "nan", "d=3"],
        ["", "inputs.h5", "gru", 0, "nan", "empty"],
    ]
    io.save_inputs(np.zeros((2, T, 3)), d / "inputs3.h5", overwrite=True)
    write_manifest(d / "bad.csv", header, good[:1] + bad + good[1:])
    out = tmp_path / "out"
    summary = sweep(d / "bad.csv", out, scheduler="serial")
    status = [r["status"] for r in summary]
    assert status == ["ok", "error", "error", "error", "error", "ok"]
    errors = [r["error"] for r in summary.failed]
    assert "missing.h5: no such file" in errors[0]
    assert "gru.h5:/epoch_999" in errors[1]
    assert "inputs3.h5" in errors[2] and "input size" in errors[2]
    assert "empty weights" in errors[3]
    for row in summary.failed:
        assert row["result"] is None and all(row[n] is None for n in STATS)
        assert "\n" not in row["error"]
    _, written = read_summary(out / "summary.csv")
    assert [w["status"] for w in written] == status
    assert all(w["result"] == "" and w["max_exponent"] == "" for w in written[1:5])
    assert len(stamps(out)) == 2  # no result file for a failed row

    # a second run retries the failed rows only
    before = stamps(out)
    again = sweep(d / "bad.csv", out, scheduler="serial")
    assert again.skipped == 2 and again.computed == 4
    assert stamps(out) == before
    assert [r["status"] for r in again] == status

    # the command line reports the failure in one line and exits 2
    code = cli.main(["sweep", str(d / "bad.csv"), "-o", str(out), "--no-dask", "--quiet"])
    assert code == 2


def test_options_change_is_not_a_finished_row(runs, tmp_path):
    d, _, _ = runs
    out = tmp_path / "out"
    sweep(d / "manifest.csv", out, scheduler="serial", k=2)
    with pytest.raises(io.OutputExistsError, match=r"k=2 \(now 3\)"):
        sweep(d / "manifest.csv", out, scheduler="serial", k=3)
    before = stamps(out)
    summary = sweep(d / "manifest.csv", out, scheduler="serial", k=3, overwrite=True)
    assert summary.computed == len(summary) and summary.skipped == 0
    after = stamps(out)
    assert all(after[name] != before[name] for name in before)
    assert all(lenum.SpectrumResult.load(r["result"]).k == 3 for r in summary)


def test_manifest_errors(tmp_path, capsys):
    path = tmp_path / "m.csv"
    path.write_text("weights,loss\nw.h5,1\n")
    with pytest.raises(io.FormatError, match=r"m.csv: line 1: missing column\(s\) inputs"):
        read_manifest(path)
    path.write_text("weights,inputs,status\nw.h5,i.h5,done\n")
    with pytest.raises(io.FormatError, match="status are added by the sweep"):
        read_manifest(path)
    path.write_text("weights,inputs\nw.h5,i.h5,extra\n")
    with pytest.raises(io.FormatError, match="line 2: 3 cells"):
        read_manifest(path)
    assert cli.main(["sweep", str(tmp_path / "none.csv"), "-o", str(tmp_path / "o"),
                     "--no-dask"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"lenum: error: {tmp_path / 'none.csv'}: no such file"]


def test_result_names_are_stable_and_safe():
    assert result_name(3, "ckpts/gru g=1.5.h5:/epoch_010") == "row0003_gru_g_1.5_epoch_010.h5"
    assert result_name(12345, "w.hdf5") == "row12345_w.h5"
    assert result_name(0, "") == "row0000_network.h5"
    assert result_name(7, "a/b/../../c:/x/y") == "row0007_c_x_y.h5"
    assert len(result_name(1, "x" * 500 + ".h5")) < 80


def test_missing_dask_is_one_clear_line(runs, tmp_path, monkeypatch, capsys):
    d, _, _ = runs
    # None in sys.modules makes ``import distributed`` raise ImportError
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "lenum\[dask\]"') as info:
        sweep(d / "manifest.csv", tmp_path / "out")
    assert isinstance(info.value, ImportError) and "--no-dask" in str(info.value)
    assert cli.main(["sweep", str(d / "manifest.csv"), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'pip install "lenum[dask]"' in err[0]
    # nothing was computed
    assert not [n for n in os.listdir(tmp_path / "o") if n.endswith(".h5")]


# --------------------------------------------------------------------------- dask


def test_local_cluster_matches_serial(runs, tmp_path):
    pytest.importorskip("distributed")
    d, _, rows = runs
    serial = sweep(d / "manifest.csv", tmp_path / "serial", scheduler="serial")
    dask = sweep(d / "manifest.csv", tmp_path / "dask", workers=2)
    assert dask.computed == len(rows) and [r["status"] for r in dask] == ["ok"] * len(rows)
    for a, b in zip(serial, dask):
        ra = lenum.SpectrumResult.load(a["result"])
        rb = lenum.SpectrumResult.load(b["result"])
        np.testing.assert_allclose(rb.per_sequence, ra.per_sequence, rtol=1e-10, atol=1e-12)
    # the same files with the same names, and a byte-identical summary apart from the folder
    assert sorted(os.listdir(tmp_path / "serial")) == sorted(os.listdir(tmp_path / "dask"))


def run_cli(*args, **popen):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen([sys.executable, "-m", "lenum", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **popen)


def test_resume_after_kill(tmp_path):
    pytest.importorskip("distributed")
    cells = ["rnn_tanh", "lstm", "gru"]
    rows = []
    for i in range(40):
        cell = cells[i % 3]
        io.save_network(tiny_network(cell, i), tmp_path / f"net{i:02d}.h5")
        rows.append([f"net{i:02d}.h5", "inputs.h5", cell, i])
    io.save_inputs(np.random.default_rng(2).normal(size=(2, T, D)), tmp_path / "inputs.h5")
    write_manifest(tmp_path / "manifest.csv", ["weights", "inputs", "cell", "seed"], rows)
    out = tmp_path / "out"

    # its own session, so that the kill reaches the worker processes too
    proc = run_cli("sweep", tmp_path / "manifest.csv", "-o", out, "--workers", "2", "--quiet",
                   start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        while not (out.is_dir() and stamps(out)):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no result file after 120 s"
            time.sleep(0.01)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
    time.sleep(0.2)  # let the killed workers' last writes (if any) settle
    finished = stamps(out)
    assert 0 < len(finished) < len(rows), len(finished)
    assert not os.path.exists(out / "summary.csv")

    # which rows are finished is decided before any scheduler starts, so the rerun runs
    # in-process: the test stays fast and the killed cluster run is what it checks
    proc = run_cli("sweep", tmp_path / "manifest.csv", "-o", out, "--no-dask", "--quiet")
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert f"{len(finished)} already done" in stdout
    after = stamps(out)
    assert len(after) == len(rows)
    # the rows finished before the kill were not recomputed: same inode, same mtime
    assert {name: after[name] for name in finished} == finished
    _, written = read_summary(out / "summary.csv")
    assert [w["status"] for w in written] == ["ok"] * len(rows)
    assert [w["seed"] for w in written] == [str(i) for i in range(40)]
    # temporary files of the writes the kill interrupted are gone
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")]


def test_module_is_importable_by_name():
    # the package may export the function ``sweep``; the module stays reachable
    mod = importlib.import_module("lenum.sweep")
    assert callable(mod.sweep) and callable(mod.run_command)
