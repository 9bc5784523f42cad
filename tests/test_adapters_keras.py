"""lenum.adapters.keras: Keras 3 SimpleRNN / LSTM / GRU layers and stacks to Network.

Keras runs here on the PyTorch backend (``KERAS_BACKEND=torch``, set before keras is
imported), with every layer in float64.  Keras' type promotion turns float64 x float64
matrix products into float32 ones on every backend but TensorFlow (to match JAX),
so its forward pass is float32-accurate whatever the layers' dtype.

* Forward: Keras' own forward pass of a ``Sequential`` stack (top layer's outputs at
  every step, zero initial state) equals ``lenum.step`` iterated over the sequence, to
  1e-5 absolute plus 1e-6 relative (float32 products over 8 steps: observed errors
  about 3e-7; relu stacks have smaller weights so that they do not amplify it).
  Every cell (SimpleRNN tanh and relu, LSTM, GRU with ``reset_after`` True and False),
  1 and 2 layers, with and without biases; random weights large enough to saturate
  gates.
* Spectra of the converted network are bit-identical to those of the same weights
  transposed and reordered by hand (Keras z, r, h -> PyTorch r, z, n) and entered with
  ``Network.from_state_dict``.
* A ``.keras`` file read by ``lenum.adapters.convert.load_model`` gives the same network.
* Refusals: activations, recurrent activations, Bidirectional, go_backwards, a
  transforming layer between recurrent layers, mixed cells.
"""

import os

import numpy as np
import pytest

pytest.importorskip("torch")  # the Keras backend used by these tests
os.environ["KERAS_BACKEND"] = "torch"
keras = pytest.importorskip("keras")

import lenum  # noqa: E402
from lenum.adapters import keras as lk  # noqa: E402
from lenum.adapters.convert import load_model  # noqa: E402

D, N, B, T = 3, 4, 2, 8
CASES = {  # name -> (layer factory, lenum cell, gates)
    "rnn_tanh": (lambda **kw: keras.layers.SimpleRNN(N, activation="tanh", **kw),
                 "rnn_tanh", 1),
    "rnn_relu": (lambda **kw: keras.layers.SimpleRNN(N, activation="relu", **kw), "rnn_relu", 1),
    "lstm": (lambda **kw: keras.layers.LSTM(N, **kw), "lstm", 4),
    "gru": (lambda **kw: keras.layers.GRU(N, reset_after=True, **kw), "gru", 3),
    "gru_reset_before": (lambda **kw: keras.layers.GRU(N, reset_after=False, **kw),
                         "gru_reset_before", 3),
}


def _model(case, num_layers, bias, seed=0):
    factory, _, _ = CASES[case]
    layers = [keras.Input((T, D), dtype="float64")]
    for _ in range(num_layers):
        layers.append(factory(use_bias=bias, return_sequences=True, dtype="float64"))
    model = keras.Sequential(layers)
    rng = np.random.default_rng(seed)
    # relu stacks amplify Keras' float32 rounding when they expand: keep them contracting
    scale = 0.4 if case == "rnn_relu" else 1.0
    for layer in model.layers:
        layer.set_weights([rng.normal(0, scale, w.shape) for w in layer.get_weights()])
    return model


def _by_hand(case, model):
    """The Keras arrays transposed and reordered gate by gate into PyTorch's layout."""
    _, cell, G = CASES[case]
    sd = {}
    for layer_index, layer in enumerate(model.layers):
        arrays = layer.get_weights()
        kernel, rec = arrays[0].T, arrays[1].T
        bias = arrays[2] if len(arrays) == 3 else None
        if G == 3:  # z, r, h -> r, z, n
            order = lambda a: np.concatenate([a[N:2 * N], a[:N], a[2 * N:]])  # noqa: E731
        else:  # SimpleRNN has one block; LSTM's i, f, c, o is PyTorch's i, f, g, o
            order = lambda a: a  # noqa: E731
        sd[f"weight_ih_l{layer_index}"] = order(kernel)
        sd[f"weight_hh_l{layer_index}"] = order(rec)
        if bias is not None:
            if bias.ndim == 2:  # GRU reset_after: input and recurrent biases
                sd[f"bias_ih_l{layer_index}"] = order(bias[0])
                sd[f"bias_hh_l{layer_index}"] = order(bias[1])
            else:
                sd[f"bias_ih_l{layer_index}"] = order(bias)
    return lenum.Network.from_state_dict(cell, sd)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bias", [True, False])
def test_forward_matches_keras(case, num_layers, bias):
    model = _model(case, num_layers, bias, seed=num_layers + 2 * bias)
    net = lk.from_model(model)
    _, cell, _ = CASES[case]
    assert (net.cell, net.num_layers, net.hidden_size, net.input_size) == (cell, num_layers, N, D)
    assert net.has_bias() == bias
    x = np.random.default_rng(5).normal(size=(B, T, D))
    want = keras.ops.convert_to_numpy(model(x))
    assert want.dtype == np.float64
    s = np.zeros((B, net.state_size))
    P = 2 if cell == "lstm" else 1
    top = slice((num_layers - 1) * P * N, (num_layers - 1) * P * N + N)
    got = []
    for t in range(T):
        s = lenum.step(net, s, x[:, t])
        got.append(s[:, top])
    np.testing.assert_allclose(np.stack(got, axis=1), want, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("num_layers", [1, 2])
def test_spectrum_equals_hand_entered_weights(case, num_layers):
    model = _model(case, num_layers, bias=num_layers == 1, seed=7)
    net = lk.from_model(model)
    by_hand = _by_hand(case, model)
    assert net == by_hand
    if num_layers == 1:
        assert lk.from_layer(model.layers[0]) == by_hand
    x = np.random.default_rng(6).normal(size=(2, 25, D))
    a = lenum.lyapunov_spectrum(net, x, warmup=5)
    b = lenum.lyapunov_spectrum(by_hand, x, warmup=5)
    np.testing.assert_array_equal(a.per_sequence, b.per_sequence)


def test_readout_and_dropout_layers_allowed():
    model = keras.Sequential([
        keras.Input((T, D)),
        keras.layers.LSTM(N, return_sequences=True),
        keras.layers.Dropout(0.2),
        keras.layers.LSTM(N),
        keras.layers.Dense(2),
    ])
    net = lk.from_model(model)
    assert net.cell == "lstm" and net.num_layers == 2


def test_keras_file(tmp_path):
    model = _model("gru_reset_before", 2, True)
    path = tmp_path / "m.keras"
    model.save(path)
    net = load_model(path)
    assert net == lk.from_model(model)
    assert net.cell == "gru_reset_before"


@pytest.mark.parametrize("make, match", [
    (lambda: keras.layers.SimpleRNN(N, activation="sigmoid"), "activation 'sigmoid'"),
    (lambda: keras.layers.LSTM(N, activation="relu"), "activation 'relu'"),
    (lambda: keras.layers.LSTM(N, recurrent_activation="hard_sigmoid"), "recurrent_activation"),
    (lambda: keras.layers.GRU(N, recurrent_activation="tanh"), "recurrent_activation"),
    (lambda: keras.layers.GRU(N, go_backwards=True), "go_backwards"),
    (lambda: keras.layers.Bidirectional(keras.layers.LSTM(N)), "Bidirectional"),
])
def test_refusals(make, match):
    model = keras.Sequential([keras.Input((T, D)), make()])
    with pytest.raises(lenum.FormatError, match=match):
        lk.from_model(model)


def test_stack_refusals():
    between = keras.Sequential([keras.Input((T, D)), keras.layers.GRU(N, return_sequences=True),
                                keras.layers.Dense(N), keras.layers.GRU(N)])
    with pytest.raises(lenum.FormatError, match="transforms the sequence"):
        lk.from_model(between)
    mixed = keras.Sequential([keras.Input((T, D)), keras.layers.GRU(N, return_sequences=True),
                              keras.layers.LSTM(N)])
    with pytest.raises(lenum.FormatError, match="different kinds"):
        lk.from_model(mixed)
    dense = keras.Sequential([keras.Input((D,)), keras.layers.Dense(2)])
    with pytest.raises(lenum.FormatError, match="no SimpleRNN"):
        lk.from_model(dense)
    with pytest.raises(lenum.ShapeError):
        lk.layer_weights("GRU", np.zeros((D, 3 * N)), np.zeros((N, 3 * N)), np.zeros(3 * N),
                         reset_after=True)
