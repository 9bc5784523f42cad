"""File formats (SPEC section 3): weights, inputs, results, paths, atomic writes, errors."""

import os
import stat
import tracemalloc

import h5py
import numpy as np
import pytest

import lenum
from lenum import io
from lenum.errors import FormatError, LenumError, NonFiniteError, ParameterError, ShapeError
from lenum.result import SpectrumResult

GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}


def state_dict(cell, N=4, d=3, layers=1, bias=True, seed=0):
    rng = np.random.default_rng(seed)
    G = GATES[cell]
    sd = {}
    for layer in range(layers):
        sd[f"weight_ih_l{layer}"] = rng.normal(size=(G * N, d if layer == 0 else N)) * 0.5
        sd[f"weight_hh_l{layer}"] = rng.normal(size=(G * N, N)) * 0.5
        if bias:
            sd[f"bias_ih_l{layer}"] = rng.normal(size=G * N) * 0.1
            sd[f"bias_hh_l{layer}"] = rng.normal(size=G * N) * 0.1
    return sd


def make_net(cell="lstm", **kw):
    return lenum.Network(cell, state_dict(cell, **kw))


def dump(path, arrays, attrs=None, group="/"):
    """Write datasets and attributes with plain h5py (a user's own export)."""
    with h5py.File(path, "a") as f:
        g = f.require_group(group)
        for name, value in arrays.items():
            g[name] = value
        for name, value in (attrs or {}).items():
            g.attrs[name] = value


def leftovers(folder):
    return sorted(p for p in os.listdir(folder) if p.endswith(".tmp"))


def make_result(B=3, k=4, local=False, units="nats", **meta):
    rng = np.random.default_rng(1)
    per = rng.normal(size=(B, k))
    per[:, -1] = -np.inf
    loc = rng.normal(size=(B, 5, k)) if local else None
    meta = {"cell": "lstm", "k": k, "warmup": 2, "qr_every": 1, "dtype": "float64",
            "device": "cpu", **meta}
    return SpectrumResult(per, 10, local=loc, units=units, **meta)


def test_public_names():
    # SPEC section 2: the loaders are re-exported at the top level
    for name in ("load_network", "save_network", "load_inputs"):
        assert getattr(lenum, name) is getattr(io, name), name


# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    "path, expected",
    [
        ("a.h5", ("a.h5", "/")),
        ("a.h5:/", ("a.h5", "/")),
        ("a.h5:/epoch_001", ("a.h5", "/epoch_001")),
        ("a.h5:/g/x/", ("a.h5", "/g/x")),
        ("dir/a.h5:/g:/x", ("dir/a.h5:/g", "/x")),  # the last ':/' splits
        ("C:/data/a.h5", ("C:/data/a.h5", "/")),  # a drive letter, not a file "C"
    ],
)
def test_split_path(path, expected):
    assert io.split_path(path) == expected


def test_split_path_keeps_an_existing_file_whole(tmp_path):
    folder = tmp_path / "odd:"
    folder.mkdir()
    path = str(folder / "w.h5")
    io.save_network(make_net(), str(tmp_path / "ok.h5"))
    os.replace(tmp_path / "ok.h5", path)
    assert io.split_path(path) == (path, "/")
    assert io.load_network(path) == make_net()


# --------------------------------------------------------------------------- weights


@pytest.mark.parametrize("cell", sorted(GATES))
@pytest.mark.parametrize("layers, bias", [(1, True), (2, False)])
def test_weights_round_trip(tmp_path, cell, layers, bias):
    net = make_net(cell, layers=layers, bias=bias)
    path = tmp_path / "w.h5"
    io.save_network(net, path)
    back = io.load_network(path)
    assert back == net
    assert back.state_dict().keys() == net.state_dict().keys()
    with h5py.File(path) as f:
        a = f.attrs
        assert a["cell"] == cell and a["lenum_format"] == "weights"
        assert a["lenum_format_version"] == 1
        assert (a["num_layers"], a["hidden_size"], a["input_size"]) == (layers, 4, 3)
        assert sorted(f) == sorted(net.state_dict())


def test_plain_h5py_state_dict_with_cell_attribute_loads(tmp_path):
    sd = state_dict("gru", N=5, d=2, layers=2)
    path = tmp_path / "dump.h5"
    dump(path, {k: v.astype(np.float32) for k, v in sd.items()}, {"cell": "gru"})
    net = io.load_network(path)
    assert (net.cell, net.num_layers, net.hidden_size, net.input_size) == ("gru", 2, 5, 2)
    assert np.array_equal(net.state_dict()["weight_hh_l1"], sd["weight_hh_l1"].astype(np.float32))


def test_torch_state_dict_exported_with_h5py_loads(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.LSTM(3, 6, num_layers=2)
    path = tmp_path / "torch.h5"
    # the three lines the README shows
    with h5py.File(path, "w") as f:
        for name, tensor in model.state_dict().items():
            f[name] = tensor.numpy()
        f.attrs["cell"] = "lstm"
    net = io.load_network(path)
    assert (net.num_layers, net.hidden_size, net.input_size, net.state_size) == (2, 6, 3, 24)
    for name, tensor in model.state_dict().items():
        assert np.array_equal(net.state_dict()[name], tensor.numpy().astype(np.float64))


def test_checkpoint_groups(tmp_path):
    path = tmp_path / "ckpts.h5"
    nets = [make_net("lstm", seed=s) for s in range(3)]
    for i, net in enumerate(nets):
        io.save_network(net, f"{path}:/epoch_{i:03d}")
    with h5py.File(path) as f:
        assert sorted(f) == ["epoch_000", "epoch_001", "epoch_002"]
    for i, net in enumerate(nets):
        assert io.load_network(f"{path}:/epoch_{i:03d}") == net

    # an existing group is not replaced without overwrite; the file is untouched
    before = path.read_bytes()
    with pytest.raises(io.OutputExistsError, match=r"ckpts.h5:/epoch_001: exists"):
        io.save_network(nets[0], f"{path}:/epoch_001")
    assert path.read_bytes() == before
    assert leftovers(tmp_path) == []

    io.save_network(nets[0], f"{path}:/epoch_001", overwrite=True)
    assert io.load_network(f"{path}:/epoch_001") == nets[0]
    assert io.load_network(f"{path}:/epoch_002") == nets[2]

    # the root of a collection is not one network: the message lists the groups
    with pytest.raises(FormatError, match=r"3 weight groups .*/epoch_000.*name one as"):
        io.load_network(path)
    info = io.describe(path)
    assert info["kind"] == "checkpoints"
    assert [g["path"] for g in info["groups"]] == [f"{path}:/epoch_{i:03d}" for i in range(3)]


def test_nested_group_path(tmp_path):
    path = f"{tmp_path / 'runs.h5'}:/run_a/epoch_010"
    io.save_network(make_net("rnn_relu"), path)
    assert io.load_network(path) == make_net("rnn_relu")


def test_existing_file_not_replaced_without_overwrite(tmp_path):
    path = tmp_path / "w.h5"
    io.save_network(make_net(seed=0), path)
    before = path.read_bytes()
    with pytest.raises(io.OutputExistsError) as info:
        io.save_network(make_net(seed=1), path)
    assert isinstance(info.value, LenumError) and isinstance(info.value, FileExistsError)
    assert str(path) in str(info.value)
    assert path.read_bytes() == before
    io.save_network(make_net(seed=1), path, overwrite=True)
    assert io.load_network(path) == make_net(seed=1)
    assert leftovers(tmp_path) == []


def test_new_file_gets_ordinary_permissions(tmp_path):
    path = tmp_path / "w.h5"
    io.save_network(make_net(), path)
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~mask


def test_user_attributes_are_kept(tmp_path):
    path = tmp_path / "w.h5"
    io.save_network(make_net(), path, attrs={"description": "made by hand", "epoch": 3})
    info = io.describe(path)
    assert info["attrs"]["description"] == "made by hand" and info["attrs"]["epoch"] == 3


def _weights_file(tmp_path, mutate=None, attrs=None, cell="lstm"):
    sd = state_dict(cell)
    if mutate:
        mutate(sd)
    path = tmp_path / "bad.h5"
    dump(path, sd, {"cell": cell, **(attrs or {})})
    return path


@pytest.mark.parametrize(
    "mutate, attrs, error, pattern",
    [
        (lambda sd: sd.pop("weight_hh_l0"), None, FormatError, r"bad.h5:/weight_hh_l0: missing dataset"),
        (lambda sd: sd.update(weight_ih_l0=np.ones((16, 3, 1))), None, ShapeError,
         r"bad.h5:/weight_ih_l0: expected shape \(16, d\).*found \(16, 3, 1\)"),
        (lambda sd: sd.update(bias_hh_l0=np.ones(15)), None, ShapeError,
         r"bad.h5:/bias_hh_l0: expected shape \(16,\), found \(15,\)"),
        (lambda sd: sd.update(weight_hh_l0=np.ones((12, 4))), None, ShapeError,
         r"bad.h5:/weight_hh_l0: expected shape \(4\*N, N\)"),
        (lambda sd: sd["weight_hh_l0"].__setitem__((1, 2), np.nan), None, NonFiniteError,
         r"bad.h5:/weight_hh_l0: 1 NaN or Inf"),
        (lambda sd: sd.update({"fc.weight": np.ones((2, 4))}), None, FormatError,
         r"bad.h5:/fc.weight: unexpected dataset .*module prefix"),
        (lambda sd: sd.update(weight_hr_l0=np.ones((4, 4))), None, FormatError, r"proj_size"),
        (lambda sd: sd.pop("weight_ih_l0"), None, FormatError, r"bad.h5:/weight_ih_l0: missing dataset"),
        (None, {"hidden_size": 5}, ShapeError, r"bad.h5:/: attribute hidden_size=5 disagrees"),
        (None, {"lenum_format": "inputs"}, FormatError, r"lenum_format is 'inputs', expected 'weights'"),
        (None, {"lenum_format_version": 2}, FormatError, r"lenum_format_version 2 is newer"),
    ],
)
def test_bad_weights(tmp_path, mutate, attrs, error, pattern):
    path = _weights_file(tmp_path, mutate, attrs)
    with pytest.raises(error, match=pattern):
        io.load_network(path)


def test_unknown_or_missing_cell(tmp_path):
    path = _weights_file(tmp_path, cell="lstm")
    with h5py.File(path, "a") as f:
        f.attrs["cell"] = "rnn"
    with pytest.raises(FormatError, match=r"bad.h5:/: attribute cell='rnn' is not a known cell.*rnn_tanh"):
        io.load_network(path)
    with h5py.File(path, "a") as f:
        del f.attrs["cell"]
    with pytest.raises(FormatError, match=r"bad.h5:/: missing attribute 'cell'"):
        io.load_network(path)


def test_missing_file_not_hdf5_missing_group(tmp_path):
    missing = tmp_path / "nope.h5"
    with pytest.raises(io.MissingFileError, match=r"nope.h5: no such file") as info:
        io.load_network(missing)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, LenumError)
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5\n")
    for load in (io.load_network, io.load_inputs, io.load_result, io.describe):
        with pytest.raises(FormatError, match=r"notes.h5: not an HDF5 file"):
            load(text)
    io.save_network(make_net(), tmp_path / "w.h5")
    with pytest.raises(FormatError, match=r"w.h5:/epoch_9: no such group or dataset"):
        io.load_network(f"{tmp_path / 'w.h5'}:/epoch_9")


# --------------------------------------------------------------------------- inputs


def test_inputs_round_trip_with_state(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 7, 3))
    h0 = rng.normal(size=(2, 5, 4))
    c0 = rng.normal(size=(2, 5, 4))
    path = tmp_path / "in.h5"
    io.save_inputs(x, path, h0=h0, c0=c0)
    with h5py.File(path) as f:
        assert f.attrs["lenum_format"] == "inputs" and f.attrs["lenum_format_version"] == 1
        assert f["inputs"].shape == (5, 7, 3)
    got, gh, gc = io.load_inputs_with_state(path)
    assert np.array_equal(got, x) and np.array_equal(gh, h0) and np.array_equal(gc, c0)
    assert np.array_equal(io.load_inputs(path), x)
    # naming the dataset itself still finds its h0/c0 siblings
    got, gh, _ = io.load_inputs_with_state(f"{path}:/inputs")
    assert np.array_equal(gh, h0)


def test_inputs_shapes_and_types(tmp_path):
    path = tmp_path / "in.h5"
    seq = np.arange(12, dtype=np.int32).reshape(4, 3)
    dump(path, {"inputs": seq, "other/x32": np.ones((2, 4, 3), np.float32)})
    x = io.load_inputs(path)
    assert x.shape == (1, 4, 3) and x.dtype == np.float64  # (T, d) is one sequence
    assert np.array_equal(x[0], seq)
    x32 = io.load_inputs(f"{path}:/other/x32")  # a path may name any dataset
    assert x32.dtype == np.float32 and x32.shape == (2, 4, 3)


@pytest.mark.parametrize(
    "arrays, obj, error, pattern",
    [
        ({"x": np.ones((2, 3, 1))}, "", FormatError, r"in.h5:/inputs: missing dataset \(the group holds x\)"),
        ({"inputs": np.ones((2, 3, 1, 1))}, "", ShapeError, r"in.h5:/inputs: expected shape \(B, T, d\)"),
        ({"inputs": np.ones((0, 3, 1))}, "", ShapeError, r"in.h5:/inputs: empty inputs"),
        ({"inputs": np.array([[["a"]]], dtype="S1")}, "", FormatError, r"in.h5:/inputs: dtype .* not numeric"),
        ({"inputs": np.ones((2, 3, 1)), "h0": np.ones((1, 3, 4))}, "", ShapeError,
         r"in.h5:/h0: expected shape \(num_layers, B=2, N\), found \(1, 3, 4\)"),
        ({"inputs": np.ones((2, 3, 1)), "c0": np.full((1, 2, 4), np.inf)}, "", NonFiniteError,
         r"in.h5:/c0: 8 NaN or Inf"),
        ({"inputs": np.ones((2, 3, 1))}, ":/missing", FormatError, r"in.h5:/missing: no such group"),
    ],
)
def test_bad_inputs(tmp_path, arrays, obj, error, pattern):
    path = tmp_path / "in.h5"
    dump(path, arrays)
    with pytest.raises(error, match=pattern):
        io.load_inputs(f"{path}{obj}")


def test_nan_in_inputs_is_named(tmp_path):
    x = np.zeros((6, 9, 2))
    x[4, 7, 1] = np.nan
    path = tmp_path / "in.h5"
    dump(path, {"inputs": x})
    with pytest.raises(NonFiniteError, match=r"in.h5:/inputs: NaN or Inf value at sequence 4, step 7, feature 1"):
        io.load_inputs(path)
    with pytest.raises(ValueError):  # NonFiniteError is a ValueError too
        io.describe(path)


def test_weights_file_given_as_inputs(tmp_path):
    io.save_network(make_net(), tmp_path / "w.h5")
    with pytest.raises(FormatError, match=r"lenum_format is 'weights', expected 'inputs'"):
        io.load_inputs(tmp_path / "w.h5")


def test_check_compatible_names_files():
    net = make_net("lstm", N=4, d=3, layers=2)
    names = {"weights": "w.h5", "inputs": "in.h5:/inputs", "h0": "in.h5:/h0", "c0": "in.h5:/c0"}
    x = np.zeros((2, 10, 5))
    with pytest.raises(ShapeError, match=r"in.h5:/inputs: input size d=5 .* 3 \(weight_ih_l0 of w.h5 has shape \(16, 3\)\)"):
        io.check_compatible(net, x, names=names)
    x = np.zeros((2, 10, 3))
    with pytest.raises(ShapeError, match=r"in.h5:/h0: expected shape .* \(2, 2, 4\)"):
        io.check_compatible(net, x, h0=np.zeros((1, 2, 4)), names=names)
    with pytest.raises(ParameterError, match=r"w.h5: k=17 is not between 1 and the state size 16"):
        io.check_compatible(net, x, k=17, names=names)
    with pytest.raises(ParameterError, match=r"in.h5:/inputs: warmup=10 leaves no counted steps \(T=10"):
        io.check_compatible(net, x, warmup=10, names=names)
    with pytest.raises(ShapeError, match=r"c0 given"):
        io.check_compatible(make_net("gru"), x, c0=np.zeros((1, 2, 4)), names=names)
    io.check_compatible(net, x, h0=np.zeros((2, 2, 4)), k=16, warmup=9, names=names)


# --------------------------------------------------------------------------- chunked reading


def test_lazy_inputs_slicing(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 11, 2))
    io.save_inputs(x, tmp_path / "in.h5")
    with io.open_inputs(tmp_path / "in.h5") as inp:
        lazy = inp.x
        assert lazy.shape == (5, 11, 2) and lazy.ndim == 3 and len(lazy) == 5
        assert np.array_equal(lazy[1:4], x[1:4])
        assert np.array_equal(lazy[1:4, 2:9], x[1:4, 2:9])
        assert np.array_equal(lazy[2], x[2])
        assert np.array_equal(lazy[-1, 3], x[-1, 3])
        assert np.array_equal(np.asarray(lazy), x)
    dump(tmp_path / "one.h5", {"inputs": x[0]})
    with io.open_inputs(tmp_path / "one.h5") as inp:
        assert inp.x.shape == (1, 11, 2)
        assert np.array_equal(inp.x[0:1, 3:5], x[None, 0, 3:5])


@pytest.fixture(scope="module")
def big_inputs(tmp_path_factory):
    """Inputs much larger than one read (B=40 sequences of 600 steps)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 600, 3))
    path = tmp_path_factory.mktemp("big") / "in.h5"
    io.save_inputs(x, path)
    return path, x


def test_chunked_run_equals_in_memory_and_reads_are_bounded(big_inputs):
    path, x = big_inputs
    net = make_net("lstm", N=3, d=3)
    expected = lenum.lyapunov_spectrum(net, x, warmup=5)
    with io.open_inputs(path) as inp:
        got = lenum.lyapunov_spectrum(net, inp.x, warmup=5, batch_chunk=3)
        assert inp.x.max_rows_read <= 3
        # one read is at most batch_chunk sequences x one time window, never a whole file
        assert inp.x.max_values_read <= 3 * 600 * 3
        assert inp.x.values_read == x.size
    # chunks of 3 sequences factorise one by one, the whole batch in interleaved
    # groups (lenum.lanes): the same arithmetic up to round-off
    np.testing.assert_allclose(got.per_sequence, expected.per_sequence, rtol=0, atol=1e-12)


def test_chunked_run_memory_does_not_hold_the_file(big_inputs):
    path, x = big_inputs
    net = make_net("rnn_tanh", N=3, d=3)
    with io.open_inputs(path) as inp:
        lenum.lyapunov_spectrum(net, inp.x[0:1], warmup=5)  # compile outside the trace
        tracemalloc.start()
        try:
            lenum.lyapunov_spectrum(net, inp.x, warmup=5, batch_chunk=2)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < x.nbytes / 4, (peak, x.nbytes)


def test_peak_memory_does_not_grow_with_T(tmp_path):
    # the same run over 4x more steps, read from a file: the engine's peak (traced
    # Python and NumPy allocations) stays that of one window and of the running history.
    # The history keeps up to engine._HISTORY_POINTS block boundaries; both lengths
    # here give exactly that many (800 blocks taken every 4th, and 200), so the peaks
    # should match whatever the length
    from lenum import engine

    net = make_net("rnn_tanh", N=8, d=3)
    rng = np.random.default_rng(5)
    warmup = 5
    per_point = engine._HISTORY_POINTS * engine._WINDOW
    peaks = {}
    for T in (warmup + per_point, warmup + 4 * per_point):
        path = tmp_path / f"in{T}.h5"
        io.save_inputs(rng.normal(size=(2, T, 3)), path)
        with io.open_inputs(path) as inp:
            lenum.lyapunov_spectrum(net, inp.x[:, :40], warmup=warmup)  # compile outside
            tracemalloc.start()
            try:
                lenum.lyapunov_spectrum(net, inp.x, warmup=warmup)
                _, peaks[T] = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
    short, long = sorted(peaks)
    assert peaks[long] < 1.1 * peaks[short], peaks
    # and far below the inputs, were they read whole
    assert peaks[long] < (2 * long * 3 * 8) / 20, peaks


def test_nan_in_a_late_chunk_stops_the_run(tmp_path):
    x = np.zeros((6, 20, 3))
    x[5, 18, 0] = np.inf
    dump(tmp_path / "in.h5", {"inputs": x})
    with io.open_inputs(tmp_path / "in.h5") as inp:
        with pytest.raises(NonFiniteError, match=r"in.h5:/inputs: NaN or Inf value at sequence 5, step 18"):
            lenum.lyapunov_spectrum(make_net("gru", d=3), inp.x, batch_chunk=2)


# --------------------------------------------------------------------------- results


def test_result_round_trip(tmp_path):
    res = make_result(local=True, units="bits", weights_sha256="ab" * 32, inputs_sha256=None,
                      note="x", flag=True)
    path = tmp_path / "r.h5"
    io.save_result(res, path)
    back = io.load_result(path)
    for name in ("per_sequence", "exponents", "std", "local"):
        assert np.array_equal(getattr(back, name), getattr(res, name)), name
    assert back.steps == res.steps and back.units == "bits"
    assert back.meta == res.meta
    assert type(back.meta["k"]) is int and type(back.meta["flag"]) is bool
    assert SpectrumResult.load(path).meta == res.meta
    with h5py.File(path) as f:
        a = f.attrs
        for key in ("lenum_format", "lenum_format_version", "lenum_version", "cell", "k",
                    "warmup", "steps", "qr_every", "dtype", "device", "units",
                    "weights_sha256", "inputs_sha256", "max_exponent",
                    "kaplan_yorke_dimension", "ks_entropy"):
            assert key in a, key
        assert a["lenum_format"] == "result" and a["max_exponent"] == res.max_exponent
        assert sorted(f) == [
            "exponents", "history", "history_stderr", "history_steps", "local", "local_stats",
            "per_sequence", "std", "stderr",
        ]


def test_result_without_local_and_into_a_group(tmp_path):
    res = make_result()
    path = tmp_path / "results.h5"
    io.save_result(res, f"{path}:/run_1")
    io.save_result(make_result(B=2), f"{path}:/run_2")
    back = io.load_result(f"{path}:/run_1")
    assert back.local is None and np.array_equal(back.per_sequence, res.per_sequence)
    assert io.load_result(f"{path}:/run_2").num_sequences == 2
    res.save(tmp_path / "r.h5")
    with pytest.raises(io.OutputExistsError):
        res.save(tmp_path / "r.h5")
    res.save(tmp_path / "r.h5", overwrite=True)


def test_bad_results(tmp_path):
    path = tmp_path / "r.h5"
    io.save_result(make_result(), path)
    with h5py.File(path, "a") as f:
        del f["std"]
    with pytest.raises(FormatError, match=r"r.h5:/std: missing dataset"):
        io.load_result(path)
    io.save_network(make_net(), tmp_path / "w.h5")
    with pytest.raises(FormatError, match=r"lenum_format is 'weights', expected 'result'"):
        io.load_result(tmp_path / "w.h5")


# --------------------------------------------------------------------------- atomic writes


class Interrupt:
    """Make the n-th dataset creation raise KeyboardInterrupt (a Ctrl-C mid-write)."""

    def __init__(self, monkeypatch, after=1):
        self.calls = 0
        self.after = after
        original = h5py.Group.create_dataset

        def create_dataset(group, *args, **kwargs):
            self.calls += 1
            if self.calls > self.after:
                raise KeyboardInterrupt
            return original(group, *args, **kwargs)

        monkeypatch.setattr(h5py.Group, "create_dataset", create_dataset)


def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    Interrupt(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        io.save_result(make_result(), tmp_path / "r.h5")
    with pytest.raises(KeyboardInterrupt):
        io.save_network(make_net(), tmp_path / "w.h5")
    assert os.listdir(tmp_path) == []


def test_interrupted_group_write_leaves_the_file_unchanged(tmp_path, monkeypatch):
    path = tmp_path / "ckpts.h5"
    io.save_network(make_net(seed=0), f"{path}:/epoch_000")
    before = path.read_bytes()
    Interrupt(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        io.save_network(make_net(seed=1), f"{path}:/epoch_001")
    with pytest.raises(KeyboardInterrupt):
        io.save_network(make_net(seed=1), f"{path}:/epoch_000", overwrite=True)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpts.h5"]


def test_write_into_missing_folder(tmp_path):
    with pytest.raises(io.MissingFileError, match=r"folder .* does not exist"):
        io.save_network(make_net(), tmp_path / "no" / "w.h5")


# --------------------------------------------------------------------------- describe


def test_describe_each_kind(tmp_path):
    io.save_network(make_net("gru", layers=2), tmp_path / "w.h5")
    d = io.describe(tmp_path / "w.h5")
    assert (d["kind"], d["cell"], d["num_layers"], d["state_size"]) == ("weights", "gru", 2, 8)
    io.save_inputs(np.zeros((2, 5, 3)), tmp_path / "in.h5", h0=np.zeros((2, 2, 4)))
    d = io.describe(tmp_path / "in.h5")
    assert (d["kind"], d["sequences"], d["steps"], d["input_size"], d["h0"]) == (
        "inputs", 2, 5, 3, [2, 2, 4])
    io.save_result(make_result(), tmp_path / "r.h5")
    d = io.describe(tmp_path / "r.h5")
    assert (d["kind"], d["k"], d["sequences"]) == ("result", 4, 3)
    dump(tmp_path / "other.h5", {"foo": np.ones(3)})
    with pytest.raises(FormatError, match=r"other.h5:/: not a lenum weights, inputs or result"):
        io.describe(tmp_path / "other.h5")
