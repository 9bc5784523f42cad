"""The GPU path (lenum.gpu) against the CPU kernels and the NumPy oracle.

On machines without a GPU these tests run the kernels in numba's CUDA simulator
(tests/conftest.py sets ``NUMBA_ENABLE_CUDASIM=1`` unless ``LENUM_REAL_GPU=1``), with
tiny sizes and 8-thread blocks: the simulator runs every GPU thread as a Python thread.
A separate check compiles every kernel to PTX for a real GPU (compute capability 8.0)
in a subprocess without the simulator; it is skipped when numba-cuda's CUDA toolkit
libraries are not installed (``pip install "numba-cuda[cu12]"``).

Tolerances: float64 GPU results equal the CPU path to 1e-10 (absolute, on exponents of
order 1; the two differ only in summation order, observed 1e-14) and the oracle to
1e-9.  float32 results equal the float64 CPU path to 5e-5 per exponent on these short
runs (observed up to 4e-6, the same as the CPU path's own float32 error).
"""

import math
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

import lenum
from lenum import engine
from lenum.errors import DeviceError, NonFiniteError

import naive

CELLS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]
CODES = {"rnn_tanh": 0, "rnn_relu": 1, "lstm": 2, "gru": 3}
THREADS = "8"  # small blocks keep the simulator fast; every loop is block-size agnostic
F64_CPU, F64_ORACLE, F32_CPU = 1e-10, 1e-9, 5e-5
ROOT = Path(__file__).resolve().parent.parent


def _gpu_reason():
    from lenum import gpu

    return gpu.unavailable_reason()


needs_gpu = pytest.mark.skipif(_gpu_reason() is not None,
                               reason=f"GPU path not usable: {_gpu_reason()}")


@pytest.fixture(autouse=True)
def _simulator_settings(monkeypatch):
    # The simulator polls its Python threads at every barrier; a short switch
    # interval cuts its run time about threefold.  On a real GPU blocks keep their
    # default size unless LENUM_GPU_THREADS is set by the caller.
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    from numba import config

    if config.ENABLE_CUDASIM:
        monkeypatch.setenv("LENUM_GPU_THREADS", THREADS)
    yield
    sys.setswitchinterval(old)


def _weights(cell, N, d, L, rng, scale=1.0):
    """Random weights; relu units are kept active (bias +5) so J_t is not singular."""
    w = naive.random_weights(cell, N, d, L, rng, scale=scale)
    if cell == "rnn_relu":
        for layer in range(L):
            w[f"weight_hh_l{layer}"] *= 0.2
            w[f"weight_ih_l{layer}"] *= 0.2
            w[f"bias_ih_l{layer}"] = np.abs(w[f"bias_ih_l{layer}"]) + 5.0
    return w


def _orthonormal(B, n, k, rng):
    return np.stack([naive.random_orthonormal(n, k, rng) for _ in range(B)])


# =========================================================================== availability


def test_unavailable_reason_is_none_under_the_simulator():
    from numba import config

    if not config.ENABLE_CUDASIM:
        pytest.skip("not running in the CUDA simulator")
    assert _gpu_reason() is None


def test_unavailable_reason_without_numba_cuda_names_the_extra(monkeypatch):
    import numba

    from lenum import gpu

    # make ``from numba import cuda`` fail as it does where numba.cuda is missing
    monkeypatch.delattr(numba, "cuda", raising=False)
    monkeypatch.setitem(sys.modules, "numba.cuda", None)
    reason = gpu.unavailable_reason()
    assert reason is not None and 'pip install "lenum[gpu]"' in reason


def test_compiler_that_cannot_load_is_a_reason_not_a_mid_run_failure(monkeypatch):
    """numba-cuda loads its NumPy support at the first compile: a numba-cuda older than
    the installed NumPy (0.30.4 under NumPy 2.5) must be reported before a run starts."""
    import numpy

    from lenum import gpu

    monkeypatch.setitem(sys.modules, "numba.cuda.cudaimpl", None)  # import fails
    reason = gpu._compiler_load_problem()
    assert reason is not None and "numba-cuda" in reason
    assert f"NumPy {numpy.__version__}" in reason and "numpy<2.5" in reason
    assert "\n" not in reason


def test_device_gpu_unusable_raises_and_auto_falls_back(monkeypatch, caplog):
    from lenum import gpu

    monkeypatch.setattr(gpu, "unavailable_reason", lambda: "no CUDA driver (test)")
    rng = np.random.default_rng(0)
    net = lenum.Network.from_state_dict("gru", _weights("gru", 2, 2, 1, rng))
    x = rng.normal(size=(3, 2))
    with pytest.raises(DeviceError, match="no CUDA driver"):
        lenum.lyapunov_spectrum(net, x, device="gpu")
    with caplog.at_level("INFO", logger="lenum"):
        res = lenum.lyapunov_spectrum(net, x, device="auto")
    assert res.meta["device"] == "cpu"
    assert "no CUDA driver" in caplog.text


# =========================================================================== one step


@needs_gpu
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_step_and_tangent_match_cpu_and_oracle(cell, num_layers):
    """gpu_stack_step: the new state and Z = J Q per sequence (cross-layer chain for L=2)."""
    from lenum.gpu.host import step_batch

    rng = np.random.default_rng(10 + num_layers)
    N, d, B = 3, 2, 2
    net = lenum.Network.from_state_dict(cell, _weights(cell, N, d, num_layers, rng))
    w = net.state_dict()
    n = net.state_size
    k = min(4, n)
    S = rng.normal(size=(B, n))
    X = rng.normal(size=(B, d))
    Q = _orthonormal(B, n, k, rng)
    S_new, Z = step_batch(CODES[cell], net.packed(np.float64), X, S, Q)
    np.testing.assert_allclose(S_new, lenum.step(net, S, X), rtol=0, atol=1e-13)
    J = lenum.jacobian(net, S, X)
    np.testing.assert_allclose(Z, J @ Q, rtol=0, atol=1e-12)
    for b in range(B):
        np.testing.assert_allclose(S_new[b], naive.step(cell, w, num_layers, S[b], X[b]),
                                   rtol=0, atol=1e-12)
        Jo = naive.jacobian(cell, w, num_layers, S[b], X[b])
        np.testing.assert_allclose(Z[b], Jo @ Q[b], rtol=0, atol=1e-10)


@needs_gpu
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_step_float32(cell):
    from lenum.gpu.host import step_batch

    rng = np.random.default_rng(3)
    net = lenum.Network.from_state_dict(cell, _weights(cell, 3, 2, 2, rng))
    n = net.state_size
    S = rng.normal(size=(2, n))
    X = rng.normal(size=(2, 2))
    Q = _orthonormal(2, n, 3, rng)
    S_new, Z = step_batch(CODES[cell], net.packed(np.float32), X, S, Q)
    assert S_new.dtype == np.float32 and Z.dtype == np.float32
    np.testing.assert_allclose(S_new, lenum.step(net, S, X), rtol=0, atol=1e-5)
    np.testing.assert_allclose(Z, lenum.jacobian(net, S, X) @ Q, rtol=0, atol=1e-5)


@needs_gpu
def test_block_size_does_not_change_results():
    """Every loop is strided by the block size and every reduction has a fixed order
    (P partial sums), so 1, 5 or 33 threads give bit-identical results."""
    from lenum.gpu.host import householder_qr, step_batch

    rng = np.random.default_rng(4)
    net = lenum.Network.from_state_dict("lstm", _weights("lstm", 2, 2, 2, rng))
    n = net.state_size
    S = rng.normal(size=(1, n))
    X = rng.normal(size=(1, 2))
    Q = _orthonormal(1, n, 5, rng)
    ref = step_batch(CODES["lstm"], net.packed(np.float64), X, S, Q, threads=8)
    qref = householder_qr(ref[1], threads=8)
    for threads in (1, 5, 33):
        out = step_batch(CODES["lstm"], net.packed(np.float64), X, S, Q, threads=threads)
        np.testing.assert_array_equal(out[0], ref[0])
        np.testing.assert_array_equal(out[1], ref[1])
        qr = householder_qr(ref[1], threads=threads)
        np.testing.assert_array_equal(qr[0], qref[0])
        np.testing.assert_array_equal(qr[1], qref[1])


# =========================================================================== spectra


def _both(net, x, **kw):
    cpu = lenum.lyapunov_spectrum(net, x, device="cpu", **kw)
    gpu = lenum.lyapunov_spectrum(net, x, device="gpu", **kw)
    assert gpu.meta["device"] == "gpu"
    return cpu, gpu


@needs_gpu
@pytest.mark.parametrize("cell", CELLS)
def test_stack_spectrum_matches_cpu_and_oracle(cell):
    """Two layers, k < n, warm-up, qr_every=2, keep_local, h0 (and c0), two chunks."""
    rng = np.random.default_rng(20)
    N, d, L, B, T = 2, 2, 2, 2, 6
    w = _weights(cell, N, d, L, rng)
    net = lenum.Network.from_state_dict(cell, w)
    n = net.state_size
    k = 3
    x = rng.normal(size=(B, T, d))
    h0 = 0.5 * rng.normal(size=(L, B, N))
    c0 = 0.5 * rng.normal(size=(L, B, N)) if cell == "lstm" else None
    kw = dict(k=k, warmup=1, qr_every=2, keep_local=True, h0=h0, c0=c0, batch_chunk=1)
    cpu, gpu = _both(net, x, **kw)
    np.testing.assert_allclose(gpu.per_sequence, cpu.per_sequence, rtol=0, atol=F64_CPU)
    np.testing.assert_allclose(gpu.local, cpu.local, rtol=0, atol=F64_CPU)
    q0 = engine.default_basis(n, k)
    for b in range(B):
        s0 = naive.state_from_h0(cell, h0[:, b:b + 1], None if c0 is None else c0[:, b:b + 1])[0]
        expect = naive.spectrum_of_network(cell, w, L, x[b], s0, q0, warmup=1, qr_every=2)
        np.testing.assert_allclose(gpu.per_sequence[b], expect, rtol=0, atol=F64_ORACLE)


@needs_gpu
@pytest.mark.parametrize("cell", CELLS)
def test_full_spectrum_float64_and_float32(cell):
    """k = n, one layer, qr_every=1: float64 equals the CPU path and obeys the sum rule;
    float32 equals it within F32_CPU."""
    rng = np.random.default_rng(30)
    N, d, T = 2, 2, 5
    w = _weights(cell, N, d, 1, rng)
    net = lenum.Network.from_state_dict(cell, w)
    x = rng.normal(size=(T, d))
    cpu, gpu = _both(net, x)
    np.testing.assert_allclose(gpu.per_sequence, cpu.per_sequence, rtol=0, atol=F64_CPU)
    # sum rule: sum of exponents = mean log|det J_t|
    _, jacs = naive.trajectory(cell, w, 1, x, np.zeros(net.state_size))
    logdet = np.mean([np.linalg.slogdet(J)[1] for J in jacs])
    assert abs(gpu.exponents.sum() - logdet) < F64_ORACLE
    g32 = lenum.lyapunov_spectrum(net, x, device="gpu", dtype="float32")
    assert g32.meta["dtype"] == "float32"
    np.testing.assert_allclose(g32.per_sequence, cpu.per_sequence, rtol=0, atol=F32_CPU)


@needs_gpu
def test_windows_and_chunks_carry_the_device_state(monkeypatch):
    """Short windows (device state kept between them) and chunks of one sequence give
    the result of one long window."""
    rng = np.random.default_rng(40)
    net = lenum.Network.from_state_dict("lstm", _weights("lstm", 2, 2, 1, rng))
    x = rng.normal(size=(3, 7, 2))
    kw = dict(k=2, warmup=2, qr_every=2, keep_local=True)
    whole = lenum.lyapunov_spectrum(net, x, device="gpu", **kw)
    monkeypatch.setattr(engine, "_WINDOW", 2)
    monkeypatch.setattr(engine, "_MIN_BLOCK", 2, raising=False)
    split = lenum.lyapunov_spectrum(net, x, device="gpu", batch_chunk=2, **kw)
    cpu = lenum.lyapunov_spectrum(net, x, device="cpu", batch_chunk=2, **kw)
    np.testing.assert_allclose(split.per_sequence, whole.per_sequence, rtol=0, atol=F64_CPU)
    np.testing.assert_allclose(split.local, cpu.local, rtol=0, atol=F64_CPU)
    np.testing.assert_allclose(split.per_sequence, cpu.per_sequence, rtol=0, atol=F64_CPU)


@needs_gpu
def test_zero_jacobian_direction_gives_minus_inf_not_nan():
    """A GRU with W_hh = 0 and z = 0.5 has J = diag(z): finite exponents log 0.5; a relu
    unit that is dead for the whole run gives an exact zero column: -inf, never NaN."""
    rng = np.random.default_rng(50)
    w = _weights("rnn_relu", 2, 1, 1, rng)
    w["weight_hh_l0"] = np.diag([0.5, 0.3])
    w["weight_ih_l0"] = np.zeros((2, 1))
    w["bias_ih_l0"] = np.array([1.0, -1.0])  # unit 1 stays at 0: its derivative is 0
    w["bias_hh_l0"] = np.zeros(2)
    net = lenum.Network.from_state_dict("rnn_relu", w)
    res = lenum.lyapunov_spectrum(net, np.zeros((4, 1)), device="gpu",
                                  q0=np.eye(2))
    assert not np.isnan(res.per_sequence).any()
    assert res.per_sequence[0, 1] == -np.inf
    assert abs(res.per_sequence[0, 0] - math.log(0.5)) < 1e-12


@needs_gpu
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_bad_inputs_and_overflow_raise():
    rng = np.random.default_rng(60)
    net = lenum.Network.from_state_dict("rnn_tanh", _weights("rnn_tanh", 2, 2, 1, rng))
    x = rng.normal(size=(2, 3, 2))
    x[1, 2, 0] = np.nan
    with pytest.raises(NonFiniteError, match="sequence 1, step 2"):
        lenum.lyapunov_spectrum(net, x, device="gpu")
    # one unit, so that no 0 * inf = NaN turns the overflowed state into a dead unit
    net = lenum.Network.from_state_dict(
        "rnn_relu", {"weight_ih_l0": np.zeros((1, 1)), "weight_hh_l0": np.array([[1e30]])}
    )
    with pytest.raises(NonFiniteError, match="overflowed"):
        lenum.lyapunov_spectrum(net, np.ones((4, 1)), device="gpu", dtype="float32",
                                h0=np.ones((1, 1)))


# =========================================================================== benchmark


@needs_gpu
def test_benchmark_smoke_mode(capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "benchmarks" / "bench_gpu.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = bench.main(["--smoke"])
    out = capsys.readouterr().out
    assert rows and "seq-steps/s" in out
    assert all(r["max_diff"] < 1e-8 for r in rows if r.get("max_diff") is not None)


@needs_gpu
def test_float32_accuracy_script_smoke_mode(capsys):
    """The float32-vs-float64 comparison script runs (tiny network, torch on the CPU)."""
    pytest.importorskip("torch")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import gpu_float32_accuracy as acc

        rows = acc.main(["--smoke"])
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    out = capsys.readouterr().out
    assert rows and "lenum f32-f64" in out
    # a 3-unit network over 3 steps: float32 round-off only, for lenum and torch alike
    assert all(r["lenum_f32"] < 1e-4 and r["torch_f32"] < 1e-4 for r in rows)


# =========================================================================== PTX

_PTX_SCRIPT = textwrap.dedent("""
    import os, sys, types
    import lenum.gpu
    print("REASON " + repr(lenum.gpu.unavailable_reason()), flush=True)
    from importlib.util import find_spec
    if find_spec("numba_cuda") is None:
        # numba's own CUDA target (deprecated) is not lenum's: the gpu extra installs
        # numba-cuda. Where a system libnvvm is found, the old target fails to compile
        print("SKIP " + "numba-cuda (lenum's gpu extra) is not installed")
        sys.exit(0)
    try:
        from numba.cuda.cudadrv import nvvm
        ok = nvvm.is_available()
    except Exception as exc:
        ok = False
    if not ok:
        print("SKIP " + "numba-cuda's CUDA toolkit libraries (NVVM) are not installed")
        sys.exit(0)
    from numba import cuda
    if not cuda.is_available():
        # device functions are typed for the current device's compute capability;
        # with no device, supply the target's
        import numba.cuda.dispatcher as dispatcher
        dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=(8, 0))
    from lenum.gpu.kernels import build
    opt = os.environ.get("LENUM_PTX_OPT") == "1"
    for dt in ("float64", "float32"):
        ks = build(dt)
        for name, sig in ks.signatures.items():
            try:
                ptx, _ = cuda.compile_ptx(ks.py_funcs[name], sig, cc=(8, 0), opt=opt)
            except TypeError:  # an older numba.cuda without the opt argument
                ptx, _ = cuda.compile_ptx(ks.py_funcs[name], sig, cc=(8, 0))
            assert ".entry" in ptx
            f32 = ptx.count("fma.rn.f32") + ptx.count("mul.rn.f32") + ptx.count("mul.f32")
            print("OK", dt, name, len(ptx), f32)
""")


@pytest.fixture(scope="module")
def ptx_job():
    """The PTX compilation, started in the background when this module's first test
    runs (compiling takes tens of seconds; the simulator tests run meanwhile)."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    out = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen([sys.executable, "-c", _PTX_SCRIPT], cwd=ROOT, env=env,
                            stdout=out, stderr=subprocess.STDOUT, text=True)
    yield proc, out
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    out.close()


_PTX_TESTS = ("test_every_kernel_compiles_to_ptx",
              "test_unavailable_reason_outside_the_simulator_is_one_line")


@pytest.fixture(autouse=True, scope="module")
def _start_ptx(request):
    # start the compilation early, but only when a test that needs it is selected
    if any(item.name in _PTX_TESTS for item in request.session.items
           if item.module is request.module):
        request.getfixturevalue("ptx_job")
    yield


def _ptx_output(ptx_job):
    proc, out = ptx_job
    try:
        proc.wait(timeout=600)
    except subprocess.TimeoutExpired:
        pytest.fail("PTX compilation did not finish in 600 s")
    out.seek(0)
    return out.read()


def test_every_kernel_compiles_to_ptx(ptx_job):
    """Each kernel, float64 and float32, compiles for compute capability 8.0.

    The simulator runs plain Python, so only a real compilation catches code that
    cannot become GPU code.  ``LENUM_PTX_OPT=1`` compiles with full optimisation (as on
    a GPU; slower); by default NVVM optimisation is off, which still types and lowers
    every kernel.
    """
    text = _ptx_output(ptx_job)
    skip = [ln for ln in text.splitlines() if ln.startswith("SKIP ")]
    if skip:
        pytest.skip(skip[0][5:])
    assert ptx_job[0].returncode == 0, text
    lines = [line.split() for line in text.splitlines() if line.startswith("OK")]
    assert len(lines) == 6, text
    for _, dt, name, _, f32 in lines:
        # float32 kernels compute the tangent in float32 (not promoted to float64)
        if dt == "float32" and name != "gpu_qr_batch":
            assert int(f32) > 0, text


def test_unavailable_reason_outside_the_simulator_is_one_line(ptx_job):
    """The real-driver answer, from the subprocess that compiles the PTX."""
    text = _ptx_output(ptx_job)
    line = [ln for ln in text.splitlines() if ln.startswith("REASON ")]
    assert line, text
    reason = eval(line[0][len("REASON "):])
    if reason is None:
        pytest.skip("a usable GPU is present")
    assert any(word in reason for word in ("driver", "device", "NVVM", "numba.cuda"))
