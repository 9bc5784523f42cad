"""The benchmark scripts run end to end on tiny sizes, so that they cannot rot.

They compare lenum with the NumPy and PyTorch references (asserting that the
exponents agree before timing) and time the QR kernels and the tangent variants.
"""

import importlib.util
import os
import sys

import numpy as np
import pytest

BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks")


def load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(BENCH, name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    # registered under its name: a kernel loaded from numba's cache imports its module
    # by name, so the second run of these tests failed on the first run's cache
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_bench_cpu_smoke(capsys):
    rows = load("bench_cpu").main(["--smoke", "--markdown", "--no-startup"])
    out = capsys.readouterr().out
    assert {r["cell"] for r in rows} == {"rnn_tanh", "lstm", "gru"}
    assert {r["dtype"] for r in rows} == {"float64", "float32"}
    for r in rows:
        assert r["lenum"] > 0 and r["numpy"] > 0 and r["floor"] > 0
    assert "| cell | N |" in out


def test_bench_cpu_methods_take_turns():
    # the timed runs alternate between the methods, the order rotated each round, so
    # that a slow spell on the machine cannot fall on one method's runs only
    bench = load("bench_cpu")
    calls = []

    class Fake:
        B, dtype = 2, "float64"

        def inputs(self, T):
            return np.zeros((self.B, T, 1))

        def run(self, method, x):
            calls.append((method, x.shape[1]))
            return np.zeros((self.B, 1))

    bench.measure(Fake(), ["lenum", "numpy", "torch"], target=1e-3, repeats=4,
                  check_steps=3)
    timed = [m for m, T in calls[4:]]  # after the compile call and the check runs
    assert [m for m, _ in calls[:4]] == ["lenum", "lenum", "numpy", "torch"]
    assert timed == ["lenum", "numpy", "torch", "numpy", "torch", "lenum",
                     "torch", "lenum", "numpy", "lenum", "numpy", "torch"]


def test_references_agree_with_lenum():
    pytest.importorskip("torch")
    import lenum

    ref = load("reference")
    rng = np.random.default_rng(0)
    for cell in ref.CELLS:
        w = ref.random_weights(cell, 6, 3)
        net = lenum.Network.from_state_dict(cell, w)
        q0 = lenum.engine.default_basis(net.state_size, net.state_size)
        x = rng.standard_normal((2, 5, 3))
        want = lenum.lyapunov_spectrum(net, x, q0=q0).per_sequence
        np.testing.assert_allclose(ref.numpy_spectrum(cell, w, x, q0), want, atol=1e-9)
        np.testing.assert_allclose(ref.torch_spectrum(cell, w, x, q0, threads=1), want,
                                   atol=1e-9)


def test_bench_thin_smoke(capsys):
    rows = load("bench_thin").main(["--sizes", "16", "--k", "8,16", "--dtype", "float64",
                                    "--repeats", "1", "--budget", "0.001"])
    assert [(r["n"], r["k"]) for r in rows] == [(16, 8), (16, 16)]
    for r in rows:
        assert r["blas"] > 0 and r["thin"] > 0 and r["diff"] < 1e-13
    assert "| float64 | 16 | 16 |" in capsys.readouterr().out


def test_bench_thin_gated_smoke(capsys):
    # the gated products against the formed blocks: equal to the bit, sizes where they
    # do not run (k = 40) left out
    rows = load("bench_thin").main(["--gated", "--sizes", "16", "--k", "8,16,40", "--dtype",
                                    "float64", "--repeats", "1", "--budget", "0.001"])
    assert [(r["cell"], r["k"]) for r in rows] == [("gru", 8), ("gru", 16), ("lstm", 8),
                                                   ("lstm", 16)]
    for r in rows:
        assert r["formed"] > 0 and r["gated"] > 0 and r["same"]
    assert "| lstm | float64 | 16 | 16 |" in capsys.readouterr().out


def test_bench_qr_and_tangent_smoke(capsys):
    rows = load("bench_qr").run([8], ["float64"], ["plain", "lapack", "lanes"],
                                 budget=0.001)
    assert len(rows) == 1 and all(t > 0 for t in rows[0][3].values())
    r = load("bench_shared_gemm").measure(8, 4, 8, "float64")
    assert all(v > 0 for v in r.values())


def test_bench_implicit_q_smoke():
    t = load("bench_implicit_q").measure(8, "float64", repeats=1, budget=1e-5)
    assert all(t[part] > 0 for part in ("geqrf", "orgqr", "gemm", "ormqr", "lanes"))
    assert t["form"] > t["geqrf"] and t["apply"] > t["geqrf"]


def test_bench_held_rows_smoke(capsys):
    rows = load("bench_held_rows").main(["--sizes", "4,6", "--batch", "2", "--target",
                                         "0.001", "--repeats", "1"])
    assert [(cell, N) for cell, N, *_ in rows] == [("rnn_tanh", 4), ("rnn_tanh", 6)]
    assert all(r["held"] > 0 and r["formed"] > 0 for *_, r in rows)
    assert "| held / formed |" in capsys.readouterr().out


def test_bench_lapack_threads_smoke():
    rows = load("bench_lapack_threads").main(["--sizes", "8", "--threads", "1,2", "--work",
                                              "1e4"])
    assert [(n, t) for n, t, _ in rows] == [(8, 1), (8, 2)]
    assert all(len(r) == 4 and min(r) > 0 for *_, r in rows)


def test_bench_qr_every_smoke(capsys):
    rows = load("bench_qr_every").main(["--N", "4", "--T", "40", "--B", "2",
                                        "--intervals", "1,2"])
    assert [(r["dtype"], r["qr_every"]) for r in rows] == [
        ("float64", 1), ("float64", 2), ("float32", 1), ("float32", 2)]
    # the reference row is exact, and the leading exponents survive qr_every = 2
    assert rows[0]["error"] == 0.0 and rows[1]["top_error"] < 1e-8
    assert "| dtype | qr_every |" in capsys.readouterr().out


def test_ab_versions_smoke(capsys):
    """The A/B script imports two copies of the package side by side; two copies of the
    same code must give the same exponents to the bit."""
    root = os.path.join(BENCH, "..")
    rows = load("ab_versions").main([root, root, "--cells", "rnn_tanh", "--sizes", "4",
                                     "--k", "n", "--dtypes", "float64", "--repeats", "1",
                                     "--work", "1e3"])
    out = capsys.readouterr().out
    assert len(rows) == 1 and np.isfinite(rows[0]) and rows[0] > 0
    assert "| rnn_tanh | 4 | 4 | 4 | float64 |" in out and "| 0e+00 |" in out


def test_ab_versions_qr_smoke():
    """--qr times lanes_qr of the two versions in turns; one package on both sides gives
    the same logs to the bit and a finite speed-up (the installed package's compiled
    QR, not two fresh copies: those cost a cold compile each)."""
    import lenum

    k, sp, lead = load("ab_versions").compare_qr({"old": lenum, "new": lenum}, 12, "n",
                                                 "float64", 1)
    assert k == 12 and np.isfinite(sp) and sp > 0 and lead == 0.0


def test_bench_cpu_torch_target_summary():
    # rows below 5x torch are named with the fraction of the floor 5x would take, and
    # flagged where that is more than the floor itself
    bench = load("bench_cpu")
    base = dict(N=64, k=64, dtype="float64", floor=1000.0)
    rows = [dict(base, cell="rnn_tanh", lenum=600.0, torch=100.0),   # 6x: met
            dict(base, cell="gru", lenum=400.0, torch=100.0),        # 4x, needs 0.50
            dict(base, cell="lstm", lenum=500.0, torch=300.0)]       # needs 1.50
    text = bench.torch_target_summary(rows)
    lines = text.splitlines()
    assert lines[0] == "lenum >= 5x torch at 1 of 3 rows"
    assert len(lines) == 3
    assert "gru N=64" in lines[1] and "4.00x" in lines[1] and "need 0.50" in lines[1]
    assert "above the floor" not in lines[1]
    assert "lstm N=64" in lines[2] and "need 1.50" in lines[2]
    assert lines[2].endswith("above the floor")
    assert bench.torch_target_summary(rows[:1]) == "lenum >= 5x torch at 1 of 1 rows"


def test_compile_profile_smoke(capsys):
    seconds, rows = load("compile_profile").main(["--cell", "rnn_tanh", "--hidden", "4",
                                                  "--here"])
    assert seconds > 0 and all(0 <= own <= total + 1e-9 for own, total, _ in rows)
    assert "| own (s) | with callees (s) | function |" in capsys.readouterr().out
