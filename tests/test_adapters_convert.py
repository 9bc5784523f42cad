"""lenum.adapters.convert and the adapters' optional imports.

* load_model / convert: a PyTorch state_dict file (prefixed, nested in a checkpoint
  dict), a whole nn.LSTM saved with torch.save, and an ONNX file give the networks of
  the in-memory adapters; convert writes lenum's weights format, which
  ``lenum.io.load_network`` reads back equal, and refuses to replace a file without
  overwrite.  Pickles of custom classes are refused (no code is unpickled).
* Without the framework, importing an adapter raises an ImportError that is also a
  LenumError, with a one-line message naming the extra to install (checked in a
  subprocess in which the framework's import is blocked).
"""

import subprocess
import sys

import numpy as np
import pytest

import lenum
from lenum.adapters.convert import convert, is_model_path, load_model


def test_unknown_extension_and_missing_file(tmp_path):
    with pytest.raises(lenum.FormatError, match="unknown model file type"):
        load_model(tmp_path / "model.bin")
    with pytest.raises(lenum.FormatError, match="no such file"):
        load_model(tmp_path / "absent.onnx")
    assert is_model_path("a/b.PT") and is_model_path("m.keras") and not is_model_path("w.h5")


@pytest.mark.parametrize("module, what, extra", [
    ("torch", "PyTorch", "torch"), ("onnx", "onnx", "onnx"), ("keras", "Keras 3", "keras"),
])
def test_missing_framework_message(module, what, extra):
    code = (
        "import sys; sys.modules[{m!r}] = None\n"
        "import lenum\n"
        "try:\n"
        "    import lenum.adapters.{m}\n"
        "except ImportError as exc:\n"
        "    assert isinstance(exc, lenum.LenumError)\n"
        "    print(exc)\n"
    ).format(m=module)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == f"lenum.adapters.{module} needs {what}: pip install 'lenum[{extra}]'"


def test_core_imports_no_framework():
    code = ("import sys, lenum, lenum.adapters\n"
            "print(sorted(m for m in ('torch', 'onnx', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_torch_files(tmp_path):
    torch = pytest.importorskip("torch")
    from lenum.adapters import torch as lt

    torch.manual_seed(0)
    model = torch.nn.Module()
    model.rnn = torch.nn.GRU(3, 4, num_layers=2)
    model.fc = torch.nn.Linear(4, 1)
    expected = lt.from_module(model.rnn)
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    torch.save({"epoch": 3, "model_state_dict": model.state_dict()}, tmp_path / "ckpt.pth")
    lstm = torch.nn.LSTM(3, 4)
    torch.save(lstm, tmp_path / "whole.pt")
    torch.save(model, tmp_path / "custom.pt")
    assert load_model(tmp_path / "sd.pt") == expected
    assert load_model(tmp_path / "ckpt.pth") == expected
    assert load_model(tmp_path / "whole.pt") == lt.from_module(lstm)
    with pytest.raises(lenum.FormatError, match="state_dict"):
        load_model(tmp_path / "custom.pt")
    relu = torch.nn.RNN(3, 4, nonlinearity="relu")
    torch.save(relu.state_dict(), tmp_path / "relu.pt")
    assert load_model(tmp_path / "relu.pt", cell="rnn_relu").cell == "rnn_relu"

    io = pytest.importorskip("lenum.io")
    out = tmp_path / "w.h5"
    net = convert(tmp_path / "sd.pt", out)
    assert net == expected
    back = io.load_network(str(out))
    assert back == expected and back.cell == "gru"
    with pytest.raises(FileExistsError):
        convert(tmp_path / "sd.pt", out)
    convert(tmp_path / "whole.pt", out, overwrite=True)
    assert io.load_network(str(out)).cell == "lstm"


def test_onnx_file_roundtrip(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=(1, 9, 2)), "W"),
             numpy_helper.from_array(rng.normal(size=(1, 9, 3)), "R")]
    node = helper.make_node("GRU", ["X", "W", "R"], ["Y"], hidden_size=3)
    graph = helper.make_graph([node], "g",
                              [helper.make_tensor_value_info("X", TensorProto.DOUBLE, [5, 1, 2])],
                              [helper.make_tensor_value_info("Y", TensorProto.DOUBLE,
                                                             [5, 1, 1, 3])],
                              inits)
    onnx.save(helper.make_model(graph), str(tmp_path / "m.onnx"))
    io = pytest.importorskip("lenum.io")
    net = convert(tmp_path / "m.onnx", tmp_path / "w.h5")
    assert net.cell == "gru_reset_before"
    assert io.load_network(str(tmp_path / "w.h5")) == net
