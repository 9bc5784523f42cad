"""lenum.adapters.torch: modules and state dicts to Network, and SpectrumMonitor.

* from_module: for every cell, 1 and 2 layers, with and without biases, batch_first
  either way, torch's own float64 forward pass (outputs of the top layer at every step
  and the final h_n, c_n) equals ``lenum.step`` iterated over the sequence, to 1e-12
  (same float64 expressions, different summation order).  A float32 module matches to
  2e-6 (torch computes in float32, lenum in float64 on the same float32 values).
* Spectra of the converted network are bit-identical to the spectra of the same
  weights entered by hand with ``Network.from_state_dict`` (same float64 arrays).
* from_state_dict: prefixes found or given, cells inferred from the gate rows,
  refusals of bidirectional and projected LSTMs, ambiguous prefixes.
* SpectrumMonitor in a real training loop (a GRU learning a delayed copy): one record
  per ``every`` steps, the first record equal to the spectrum of the initial weights,
  the weights read live (later records differ), saved to HDF5 atomically and read back.
"""

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lenum  # noqa: E402
from lenum.adapters import torch as lt  # noqa: E402

D, N, B, T = 3, 4, 2, 12

FACTORIES = {
    "rnn_tanh": lambda **kw: torch.nn.RNN(D, N, nonlinearity="tanh", **kw),
    "rnn_relu": lambda **kw: torch.nn.RNN(D, N, nonlinearity="relu", **kw),
    "lstm": lambda **kw: torch.nn.LSTM(D, N, **kw),
    "gru": lambda **kw: torch.nn.GRU(D, N, **kw),
}


def _make(cell, num_layers, bias, batch_first=False, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    m = FACTORIES[cell](num_layers=num_layers, bias=bias, batch_first=batch_first, dtype=dtype)
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(2.0)  # beyond PyTorch's small init: saturated gates too
    return m


def _flat_state(cell, h, c):
    """(L, B, N) h and c -> lenum state vectors (B, n)."""
    parts = []
    for layer in range(h.shape[0]):
        parts.append(h[layer])
        if cell == "lstm":
            parts.append(c[layer])
    return np.concatenate(parts, axis=-1)


def _run_both(cell, m, num_layers, batch_first, dtype):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(B, T, D))  # lenum layout
    h0 = rng.normal(scale=0.5, size=(num_layers, B, N))
    c0 = rng.normal(scale=0.5, size=(num_layers, B, N))
    xt = torch.from_numpy(x if batch_first else x.transpose(1, 0, 2).copy()).to(dtype)
    with torch.no_grad():
        if cell == "lstm":
            out, (hn, cn) = m(xt, (torch.from_numpy(h0).to(dtype), torch.from_numpy(c0).to(dtype)))
            cn = cn.double().numpy()
        else:
            out, hn = m(xt, torch.from_numpy(h0).to(dtype))
            cn = None
    out = out.double().numpy()
    if not batch_first:
        out = out.transpose(1, 0, 2)
    net = lt.from_module(m)
    assert net.cell == cell and net.num_layers == num_layers
    assert net.hidden_size == N and net.input_size == D
    # the adapter's own layout conversion gives lenum's (B, T, d)
    np.testing.assert_array_equal(lt.module_inputs(m, xt), xt.double().numpy() if batch_first
                                  else xt.double().numpy().transpose(1, 0, 2))
    s = _flat_state(cell, h0, c0)
    P = 2 if cell == "lstm" else 1
    top = slice((num_layers - 1) * P * N, (num_layers - 1) * P * N + N)
    got = []
    for t in range(T):
        s = lenum.step(net, s, x[:, t])
        got.append(s[:, top])
    got = np.stack(got, axis=1)
    return got, out, s, _flat_state(cell, hn.double().numpy(), cn)


@pytest.mark.parametrize("cell", list(FACTORIES))
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bias", [True, False])
def test_forward_matches_torch_float64(cell, num_layers, bias):
    batch_first = num_layers == 2  # both layouts covered
    m = _make(cell, num_layers, bias, batch_first=batch_first)
    got, out, s, final = _run_both(cell, m, num_layers, batch_first, torch.float64)
    np.testing.assert_allclose(got, out, rtol=0, atol=1e-12)
    np.testing.assert_allclose(s, final, rtol=0, atol=1e-12)
    assert lt.from_module(m).has_bias() == bias


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_forward_matches_torch_float32(cell):
    m = _make(cell, 2, True, dtype=torch.float32)
    got, out, s, final = _run_both(cell, m, 2, False, torch.float32)
    np.testing.assert_allclose(got, out, rtol=0, atol=2e-6)


@pytest.mark.parametrize("cell", list(FACTORIES))
@pytest.mark.parametrize("num_layers", [1, 2])
def test_spectrum_equals_hand_entered_weights(cell, num_layers):
    m = _make(cell, num_layers, bias=num_layers == 1, seed=3)
    by_hand = lenum.Network.from_state_dict(
        cell, {k: v.detach().numpy().copy() for k, v in m.state_dict().items()}
    )
    net = lt.from_module(m)
    assert net == by_hand
    x = np.random.default_rng(4).normal(size=(2, 30, D))
    a = lenum.lyapunov_spectrum(net, x, warmup=5)
    b = lenum.lyapunov_spectrum(by_hand, x, warmup=5)
    np.testing.assert_array_equal(a.per_sequence, b.per_sequence)
    assert not np.any(np.isnan(a.exponents))  # a dead ReLU layer gives -inf


def test_module_containing_an_rnn():
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.LSTM(D, N, num_layers=2)
            self.fc = torch.nn.Linear(N, 1)

    model = Model()
    assert lt.from_module(model) == lt.from_module(model.rnn)
    model.other = torch.nn.GRU(D, N)
    with pytest.raises(lenum.FormatError, match="several recurrent modules"):
        lt.from_module(model)
    assert lt.from_module(model, name="other").cell == "gru"
    with pytest.raises(lenum.FormatError, match="contains no"):
        lt.from_module(torch.nn.Linear(2, 2))


def test_refusals():
    with pytest.raises(lenum.FormatError, match="bidirectional"):
        lt.from_module(torch.nn.GRU(D, N, bidirectional=True))
    with pytest.raises(lenum.FormatError, match="proj_size"):
        lt.from_module(torch.nn.LSTM(D, N, proj_size=2))
    with pytest.raises(lenum.FormatError, match="bidirectional"):
        lt.from_state_dict(torch.nn.LSTM(D, N, bidirectional=True).state_dict())
    with pytest.raises(lenum.FormatError, match="projections"):
        lt.from_state_dict(torch.nn.LSTM(D, N, proj_size=2).state_dict())


def test_from_state_dict_with_prefix_and_inferred_cell():
    for cell in FACTORIES:
        inner = _make(cell, 2, True)
        wrapper = torch.nn.Module()
        wrapper.encoder = torch.nn.Module()
        wrapper.encoder.rnn = inner
        wrapper.head = torch.nn.Linear(N, 2)
        sd = wrapper.state_dict()
        assert any(k.startswith("encoder.rnn.") for k in sd)
        expected = "rnn_tanh" if cell == "rnn_relu" else cell  # relu is not in the weights
        net = lt.from_state_dict(sd, prefix="encoder.rnn.")
        assert net.cell == expected
        assert net == lenum.Network.from_state_dict(
            expected, {k[len("encoder.rnn."):]: v.numpy() for k, v in sd.items()
                       if k.startswith("encoder.rnn.")})
        assert lt.from_state_dict(sd) == net  # the single prefix is found
        assert lt.from_state_dict(sd, cell=cell).cell == cell
    sd = dict(sd)
    sd.update({"decoder.rnn." + k: v for k, v in torch.nn.GRU(D, N).state_dict().items()})
    with pytest.raises(lenum.FormatError, match="several recurrent modules"):
        lt.from_state_dict(sd)
    assert lt.from_state_dict(sd, prefix="decoder.rnn.").cell == "gru"
    with pytest.raises(lenum.FormatError, match="no recurrent weights"):
        lt.from_state_dict({"fc.weight": torch.zeros(2, 2)})
    with pytest.raises(lenum.ShapeError):
        lt.from_state_dict(torch.nn.GRU(D, N).state_dict(), cell="lstm")


def test_half_precision_and_grad_tensors():
    m = torch.nn.GRU(D, N).to(torch.bfloat16)
    net = lt.from_module(m)
    np.testing.assert_array_equal(net.state_dict()["weight_hh_l0"],
                                  m.weight_hh_l0.detach().double().numpy())


def _train_loop(model, head, monitor, steps, every_call):
    """A GRU learning to output its input of two steps earlier."""
    opt = torch.optim.Adam(list(model.parameters()) + list(head.parameters()), lr=0.05)
    g = torch.Generator().manual_seed(0)
    for i in range(steps):
        x = torch.randn(8, 10, 1, generator=g)
        y = torch.roll(x, 2, dims=1)
        every_call(monitor, i)
        out, _ = model(x)
        loss = torch.mean((head(out)[:, 2:] - y[:, 2:]) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(loss.detach())


def test_spectrum_monitor_in_training_loop(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.GRU(1, 4, batch_first=True)
    head = torch.nn.Linear(4, 1)
    probe = torch.randn(3, 40, 1, generator=torch.Generator().manual_seed(1))
    initial = lenum.Network.from_state_dict(
        "gru", {k: v.detach().numpy().copy() for k, v in model.state_dict().items()})
    monitor = lt.SpectrumMonitor(model, probe, every=10, k=3, warmup=5)

    def call(mon, i):
        mon(i, lr=0.05)  # before the update: record 0 is the initial network

    _train_loop(model, head, monitor, 35, call)
    assert [r["step"] for r in monitor.history] == [0, 10, 20, 30]
    ref = lenum.lyapunov_spectrum(initial, probe.numpy(), k=3, warmup=5)
    np.testing.assert_array_equal(monitor.history[0]["exponents"], ref.exponents)
    assert not np.array_equal(monitor.history[0]["exponents"], monitor.history[-1]["exponents"])
    for rec in monitor.history:
        assert rec["exponents"].shape == (3,)
        assert rec["max_exponent"] == rec["exponents"].max()
        assert np.isfinite(rec["kaplan_yorke_dimension"]) and rec["lr"] == 0.05

    path = tmp_path / "history.h5"
    monitor.save(path)
    monitor.save(path)  # its own file: replaced without overwrite=True
    back = lt.load_history(path)
    np.testing.assert_array_equal(back["step"], [0, 10, 20, 30])
    np.testing.assert_array_equal(back["exponents"],
                                  np.stack([r["exponents"] for r in monitor.history]))
    np.testing.assert_array_equal(back["kaplan_yorke_dimension"],
                                  [r["kaplan_yorke_dimension"] for r in monitor.history])
    assert back["attrs"]["lenum_format"] == "history"
    assert back["attrs"]["cell"] == "gru" and back["attrs"]["every"] == 10
    assert back["attrs"]["warmup"] == 5
    assert [p for p in os.listdir(tmp_path) if p != "history.h5"] == []  # no temp left

    other = lt.SpectrumMonitor(model, probe, every=10, k=3)
    with pytest.raises(FileExistsError):
        other.save(path)
    assert lt.load_history(path)["step"].shape == (4,)  # untouched
    other.save(path, overwrite=True)
    assert "step" not in lt.load_history(path)  # an empty history


def test_spectrum_monitor_counts_calls():
    model = torch.nn.RNN(2, 3)  # (T, B, d) layout
    probe = torch.randn(20, 2, 2)
    monitor = lt.SpectrumMonitor(model, probe, every=3)
    assert monitor.inputs.shape == (2, 20, 2)
    records = [monitor.step() for _ in range(7)]
    assert [r is not None for r in records] == [True, False, False, True, False, False, True]
    assert [r["step"] for r in monitor.history] == [0, 3, 6]
    assert monitor.history[0]["exponents"].shape == (3,)


def test_spectrum_monitor_rejects_bad_inputs():
    with pytest.raises(lenum.ShapeError):
        lt.SpectrumMonitor(torch.nn.GRU(2, 3), torch.randn(5, 1, 4))
    with pytest.raises(lenum.ParameterError):
        lt.SpectrumMonitor(torch.nn.GRU(2, 3), torch.randn(5, 1, 2), every=0)
    with pytest.raises(lenum.FormatError):
        lt.SpectrumMonitor(torch.nn.GRU(2, 3, bidirectional=True), torch.randn(5, 1, 2))
