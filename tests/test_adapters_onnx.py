"""lenum.adapters.onnx: RNN / LSTM / GRU operators to Network.

Models are built with ``onnx.helper`` (no exporter needed): one operator per layer,
chained through ``Squeeze`` as exporters do, weights as initializers in ONNX's layout
and gate order.

* Forward: ONNX's own reference implementation (``onnx.reference.ReferenceEvaluator``,
  float64) gives the top layer's outputs at every step; ``lenum.step`` iterated over
  the sequence on the converted network equals them to 1e-12.  For every cell, 1 and 2
  layers, with and without B, and both GRU variants (``linear_before_reset`` 1 and 0).
  onnxruntime (float32 only for these operators), where installed, agrees to 2e-5.
* Spectra of the converted network are bit-identical to those of the same weights
  reordered by hand into PyTorch's gate order and entered with
  ``Network.from_state_dict``.
* Refusals: bidirectional, reverse, peepholes, clip, non-default activations,
  weights that are graph inputs, mixed operators.
"""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

import lenum  # noqa: E402
from lenum.adapters import onnx as lo  # noqa: E402

D, N, B, T = 3, 4, 2, 10
GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}
CASES = {  # name -> (op, attributes, lenum cell)
    "rnn_tanh": ("RNN", {}, "rnn_tanh"),
    "rnn_relu": ("RNN", {"activations": ["Relu"]}, "rnn_relu"),
    "lstm": ("LSTM", {}, "lstm"),
    "gru": ("GRU", {"linear_before_reset": 1}, "gru"),
    "gru_reset_before": ("GRU", {}, "gru_reset_before"),
}


def _weights(op, num_layers, bias, rng):
    G = GATES[op]
    layers = []
    for layer in range(num_layers):
        d = D if layer == 0 else N
        w = {"W": rng.normal(0, 1.0, (1, G * N, d)), "R": rng.normal(0, 1.0, (1, G * N, N))}
        if bias:
            w["B"] = rng.normal(0, 0.5, (1, 2 * G * N))
        layers.append(w)
    return layers


def _model(op, attrs, layers, dtype=np.float64, extra_inputs=None):
    """A graph X -> op -> Squeeze -> op -> ... -> Y (top layer's outputs, (T, B, N))."""
    elem = TensorProto.DOUBLE if dtype == np.float64 else TensorProto.FLOAT
    nodes, inits = [], [numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")]
    x = "X"
    for layer, w in enumerate(layers):
        names = []
        for key in ("W", "R", "B"):
            if key in w:
                name = f"{key}_{layer}"
                inits.append(numpy_helper.from_array(w[key].astype(dtype), name))
                names.append(name)
        inputs = [x] + names + (extra_inputs or [])
        nodes.append(helper.make_node(op, inputs, [f"Y4_{layer}", f"Yh_{layer}"],
                                      name=f"rnn{layer}", hidden_size=N, **attrs))
        x = f"Y_{layer}" if layer < len(layers) - 1 else "Y"
        nodes.append(helper.make_node("Squeeze", [f"Y4_{layer}", "axes"], [x]))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("X", elem, [T, B, D])],
        [helper.make_tensor_value_info("Y", elem, [T, B, N])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def _by_hand(op, layers):
    """The same weights in PyTorch's gate order, written out gate by gate."""
    # ONNX LSTM i, o, f, c -> PyTorch i, f, g, o; ONNX GRU z, r, h -> PyTorch r, z, n
    order = {"RNN": (0,), "LSTM": (0, 2, 3, 1), "GRU": (1, 0, 2)}[op]

    def reorder(a):
        return np.concatenate([a[k * N:(k + 1) * N] for k in order])

    sd = {}
    for layer, w in enumerate(layers):
        sd[f"weight_ih_l{layer}"] = reorder(w["W"][0])
        sd[f"weight_hh_l{layer}"] = reorder(w["R"][0])
        if "B" in w:
            G = GATES[op]
            sd[f"bias_ih_l{layer}"] = reorder(w["B"][0, :G * N])
            sd[f"bias_hh_l{layer}"] = reorder(w["B"][0, G * N:])
    return sd


def _lenum_outputs(net, x):
    """Top layer's h at every step, (T, B, N), from lenum.step; x is (T, B, D)."""
    s = np.zeros((B, net.state_size))
    P = 2 if net.cell == "lstm" else 1
    top = slice((net.num_layers - 1) * P * N, (net.num_layers - 1) * P * N + N)
    out = []
    for t in range(T):
        s = lenum.step(net, s, x[t])
        out.append(s[:, top])
    return np.stack(out)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bias", [True, False])
def test_forward_matches_onnx_reference(case, num_layers, bias):
    op, attrs, cell = CASES[case]
    rng = np.random.default_rng(num_layers * 7 + bias)
    layers = _weights(op, num_layers, bias, rng)
    model = _model(op, attrs, layers)
    net = lo.from_onnx(model)
    assert (net.cell, net.num_layers, net.hidden_size, net.input_size) == (cell, num_layers, N, D)
    assert net.has_bias() == bias
    x = rng.normal(size=(T, B, D))
    if case == "rnn_relu":
        pytest.skip("onnx's reference RNN knows no Relu: see the onnxruntime test")
    (want,) = ReferenceEvaluator(model).run(None, {"X": x})
    np.testing.assert_allclose(_lenum_outputs(net, x), want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("case", list(CASES))
def test_forward_matches_onnxruntime_float32(case):
    ort = pytest.importorskip("onnxruntime")
    op, attrs, cell = CASES[case]
    rng = np.random.default_rng(2)
    layers = _weights(op, 2, True, rng)
    model = _model(op, attrs, layers, dtype=np.float32)
    net = lo.from_onnx(model)
    x = rng.normal(size=(T, B, D)).astype(np.float32)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (want,) = sess.run(None, {"X": x})
    np.testing.assert_allclose(_lenum_outputs(net, x.astype(np.float64)), want, rtol=0, atol=2e-5)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("num_layers", [1, 2])
def test_spectrum_equals_hand_entered_weights(case, num_layers):
    op, attrs, cell = CASES[case]
    rng = np.random.default_rng(11)
    layers = _weights(op, num_layers, num_layers == 1, rng)
    net = lo.from_onnx(_model(op, attrs, layers))
    by_hand = lenum.Network.from_state_dict(cell, _by_hand(op, layers))
    assert net == by_hand
    x = rng.normal(size=(2, 25, D))
    a = lenum.lyapunov_spectrum(net, x, warmup=5)
    b = lenum.lyapunov_spectrum(by_hand, x, warmup=5)
    np.testing.assert_array_equal(a.per_sequence, b.per_sequence)


def test_load_onnx_file(tmp_path):
    rng = np.random.default_rng(0)
    layers = _weights("LSTM", 2, True, rng)
    model = _model("LSTM", {}, layers)
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    net = lo.load_onnx(path)
    assert net == lo.from_onnx(model) and net.source == str(path)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all \xff\xff")
    with pytest.raises(lenum.FormatError, match="bad.onnx"):
        lo.load_onnx(bad)


@pytest.mark.parametrize("attrs, extra, match", [
    ({"direction": "bidirectional"}, None, "bidirectional"),
    ({"direction": "reverse"}, None, "reverse"),
    ({"clip": 3.0}, None, "clip"),
    ({"activations": ["HardSigmoid", "Tanh", "Tanh"]}, None, "activations"),
    ({"input_forget": 1}, None, "input_forget"),
    ({}, ["", "", "", "P"], "peephole"),
])
def test_lstm_refusals(attrs, extra, match):
    rng = np.random.default_rng(0)
    layers = _weights("LSTM", 1, True, rng)
    model = _model("LSTM", attrs, layers) if extra is None else _unchecked(layers, extra)
    with pytest.raises(lenum.FormatError, match=match):
        lo.from_onnx(model)


def _info(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.DOUBLE, shape)


def _unchecked(layers, extra):
    """An LSTM with a peephole input P (a graph input; the checker is not needed)."""
    w = layers[0]
    inits = [numpy_helper.from_array(w[k], f"{k}_0") for k in ("W", "R", "B")]
    node = helper.make_node("LSTM", ["X", "W_0", "R_0", "B_0"] + extra, ["Y"], hidden_size=N)
    graph = helper.make_graph([node], "g", [_info("X", [T, B, D])], [_info("Y", None)], inits)
    return helper.make_model(graph)


def test_other_refusals():
    rng = np.random.default_rng(0)
    with pytest.raises(lenum.FormatError, match="activations"):
        lo.from_onnx(_model("RNN", {"activations": ["Sigmoid"]}, _weights("RNN", 1, True, rng)))
    with pytest.raises(lenum.FormatError, match="activations"):
        lo.from_onnx(_model("GRU", {"activations": ["Sigmoid", "Relu"]},
                            _weights("GRU", 1, True, rng)))
    # operators of different kinds in one stack
    lstm = _model("LSTM", {}, _weights("LSTM", 1, True, rng))
    gru = _model("GRU", {}, _weights("GRU", 2, True, rng))
    mixed = onnx.ModelProto()
    mixed.CopyFrom(gru)
    del mixed.graph.node[0]
    mixed.graph.node.insert(0, lstm.graph.node[0])
    mixed.graph.initializer.extend(lstm.graph.initializer)
    with pytest.raises(lenum.FormatError, match="different kinds"):
        lo.from_onnx(mixed)
    # weights that are not stored in the model
    node = helper.make_node("GRU", ["X", "W", "R"], ["Y"], hidden_size=N)
    graph = helper.make_graph([node], "g", [_info("X", [T, B, D])], [_info("Y", None)])
    with pytest.raises(lenum.FormatError, match="not an initializer"):
        lo.from_onnx(helper.make_model(graph))
    # no recurrent operator at all
    graph = helper.make_graph([helper.make_node("Relu", ["X"], ["Y"])], "g",
                              [_info("X", [T, B, D])], [_info("Y", None)])
    with pytest.raises(lenum.FormatError, match="no RNN, LSTM or GRU"):
        lo.from_onnx(helper.make_model(graph))
