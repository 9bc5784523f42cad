"""Running estimates, standard errors and early stopping (tol, max_steps)."""

import warnings

import numpy as np
import pytest

import lenum
from lenum.engine import ConvergenceWarning

# Reference spectrum of ``_noisy_net`` driven by N(0, 1) inputs: a long run (8
# sequences of 250000 steps after 500 warm-up steps) gave these values with standard
# errors of 3e-4..1e-3, twenty times below those of the short runs tested against them.
NOISY_REFERENCE = np.array([-0.71556943, -0.88401904, -1.85540781, -2.4199837, -3.74713439])


def _noisy_net():
    rng = np.random.default_rng(7)
    N, d = 5, 2
    sd = {"weight_ih_l0": rng.normal(size=(N, d)) * 0.5,
          "weight_hh_l0": rng.normal(size=(N, N)) * 1.6 / np.sqrt(N),
          "bias_ih_l0": rng.normal(size=N) * 0.1}
    return lenum.Network.from_state_dict("rnn_tanh", sd)


def _net_at_rest(lam, seed=0):
    """tanh RNN, zero bias and input: at h0 = 0, J_t = W_hh with eigenvalues ``lam``."""
    rng = np.random.default_rng(seed)
    n = len(lam)
    V = rng.normal(size=(n, n))
    W = V @ np.diag(lam) @ np.linalg.inv(V)
    return lenum.Network.from_state_dict(
        "rnn_tanh", {"weight_ih_l0": rng.normal(size=(n, 1)), "weight_hh_l0": W})


def test_tol_stops_early_at_rest_with_exact_exponents():
    lam = np.array([1.3, -0.9, 0.5])
    net = _net_at_rest(lam)
    x = np.zeros((2, 20000, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        res = lenum.lyapunov_spectrum(net, x, warmup=100, tol=1e-6)
    # J is constant, so every block mean is the same once Q has aligned: the first
    # check (8 blocks per sequence, 16 block means) already passes
    assert res.steps < 19900 and res.meta["converged"] is True
    assert np.all(res.stderr < 1e-6)
    np.testing.assert_allclose(res.exponents, np.log(np.abs(lam)), atol=1e-9)
    assert res.history_steps[-1] == res.steps


def test_stderr_covers_the_long_run_value():
    """Over 20 independent short runs, the long-run value lies within 2 standard errors
    in at least 80% of (run, exponent) cases; a normal estimate would give 95%."""
    net = _noisy_net()
    hits = []
    for seed in range(20):
        x = np.random.default_rng(seed).normal(size=(2, 1100, 2))
        res = lenum.lyapunov_spectrum(net, x, warmup=100)
        assert np.all(np.isfinite(res.stderr)) and np.all(res.stderr > 0)
        hits.append(np.abs(res.exponents - NOISY_REFERENCE) < 2 * res.stderr)
    coverage = np.mean(hits)
    assert coverage >= 0.8, coverage


def test_tol_on_a_noisy_network():
    net = _noisy_net()
    x = np.random.default_rng(100).normal(size=(2, 40000, 2))
    res = lenum.lyapunov_spectrum(net, x, warmup=100, tol=0.01)
    assert res.meta["converged"] is True and res.meta["tol"] == 0.01
    assert res.steps < 39900
    assert np.all(res.stderr < 0.01)
    assert np.all(np.abs(res.exponents - NOISY_REFERENCE) < 4 * 0.01)
    # the history ends at the estimate and its error shrinks along the run
    np.testing.assert_allclose(res.history[-1], res.exponents, rtol=1e-12)
    np.testing.assert_allclose(res.history_stderr[-1], res.stderr, rtol=1e-12)
    assert np.all(res.history_stderr[-1] < res.history_stderr[1])
    assert np.all(np.diff(res.history_steps) > 0)


def test_input_running_out_warns_and_says_not_converged():
    net = _noisy_net()
    x = np.random.default_rng(0).normal(size=(1, 600, 2))
    with pytest.warns(ConvergenceWarning, match="input ran out"):
        res = lenum.lyapunov_spectrum(net, x, warmup=50, tol=1e-6)
    assert res.meta["converged"] is False and res.steps == 550
    with pytest.warns(ConvergenceWarning, match="max_steps"):
        res = lenum.lyapunov_spectrum(net, x, warmup=50, tol=1e-6, max_steps=200)
    assert res.meta["converged"] is False and res.steps == 200


def test_max_steps_equals_a_shorter_input():
    net = _noisy_net()
    x = np.random.default_rng(3).normal(size=(3, 900, 2))
    res = lenum.lyapunov_spectrum(net, x, warmup=40, max_steps=333, qr_every=2,
                                  keep_local=True)
    short = lenum.lyapunov_spectrum(net, x[:, :373], warmup=40, qr_every=2, keep_local=True)
    assert res.steps == 333 and res.meta["max_steps"] == 333
    np.testing.assert_array_equal(res.per_sequence, short.per_sequence)
    np.testing.assert_array_equal(res.local, short.local)
    np.testing.assert_array_equal(res.stderr, short.stderr)


def test_chunks_pool_to_the_same_error_and_history():
    net = _noisy_net()
    x = np.random.default_rng(4).normal(size=(4, 700, 2))
    whole = lenum.lyapunov_spectrum(net, x, warmup=20, batch_chunk=4)
    parts = lenum.lyapunov_spectrum(net, x, warmup=20, batch_chunk=1)
    np.testing.assert_array_equal(whole.per_sequence, parts.per_sequence)
    np.testing.assert_allclose(parts.stderr, whole.stderr, rtol=1e-10)
    np.testing.assert_allclose(parts.history, whole.history, rtol=1e-12)
    np.testing.assert_array_equal(parts.history_steps, whole.history_steps)


def test_tol_stops_each_chunk_on_its_own():
    net = _noisy_net()
    x = np.random.default_rng(5).normal(size=(3, 30000, 2))
    res = lenum.lyapunov_spectrum(net, x, warmup=50, tol=0.02, batch_chunk=2,
                                  keep_local=True)
    assert res.meta["converged"] is True
    # each chunk met tol alone, so the pooled error is below it
    assert np.all(res.stderr < 0.02)
    assert not np.isnan(res.per_sequence).any()
    if "steps_min" in res.meta:  # the chunks stopped at different block boundaries
        assert res.meta["steps_min"] < res.steps
        assert np.isnan(res.local).any()
    assert res.local.shape == (3, res.steps, 5)


def test_minus_inf_exponent_has_zero_error_and_no_nan():
    rng = np.random.default_rng(0)
    J = rng.normal(size=(2, 300, 3, 3))
    J[..., :, 2] = 0.0
    J[..., 2, :] = 0.0  # the third direction is annihilated at every step
    res = lenum.spectrum_from_jacobians(J)
    assert res.exponents[2] == -np.inf and res.stderr[2] == 0.0
    assert not np.isnan(res.history).any() and not np.isnan(res.history_stderr).any()
    assert np.all(np.isfinite(res.stderr[:2]))


def test_units_bits_scale_errors_and_history():
    net = _noisy_net()
    x = np.random.default_rng(6).normal(size=(2, 500, 2))
    nats = lenum.lyapunov_spectrum(net, x)
    bits = lenum.lyapunov_spectrum(net, x, units="bits")
    np.testing.assert_allclose(bits.stderr, nats.stderr / np.log(2), rtol=1e-12)
    np.testing.assert_allclose(bits.history, nats.history / np.log(2), rtol=1e-12)


def test_local_stats():
    net = _noisy_net()
    x = np.random.default_rng(8).normal(size=(2, 400, 2))
    res = lenum.lyapunov_spectrum(net, x, warmup=10, keep_local=True)
    s = res.local_stats()
    # with qr_every = 1 the mean of the local exponents is the time average
    np.testing.assert_allclose(s["mean"], res.exponents, rtol=1e-10)
    np.testing.assert_allclose(s["variance"], res.local.reshape(-1, 5).var(0), rtol=1e-10)
    assert s["fraction_max_positive"] == pytest.approx(np.mean(res.local[..., 0] > 0))
    assert s["samples"] == 2 * 390
    with pytest.raises(ValueError, match="keep_local"):
        lenum.lyapunov_spectrum(net, x).local_stats()


def test_bad_tol_and_max_steps():
    net = _noisy_net()
    x = np.zeros((1, 10, 2))
    for bad in (0, -1.0, float("nan"), "a"):
        with pytest.raises(lenum.ParameterError, match="tol"):
            lenum.lyapunov_spectrum(net, x, tol=bad)
    with pytest.raises(lenum.ParameterError, match="max_steps"):
        lenum.lyapunov_spectrum(net, x, max_steps=0)


def test_hand_built_result_falls_back_to_spread_over_sequences():
    per = np.array([[1.0, -1.0], [3.0, -2.0]])
    res = lenum.SpectrumResult(per, 10)
    np.testing.assert_allclose(res.stderr, res.std / np.sqrt(2))
    assert res.history.shape == (1, 2) and res.history_steps.tolist() == [10]
    assert np.isinf(lenum.SpectrumResult(per[:1], 10).stderr).all()


def test_result_file_keeps_errors_history_and_local_stats(tmp_path):
    import h5py

    net = _noisy_net()
    x = np.random.default_rng(9).normal(size=(2, 600, 2))
    res = lenum.lyapunov_spectrum(net, x, warmup=10, keep_local=True, tol=0.5)
    res.save(tmp_path / "r.h5")
    back = lenum.SpectrumResult.load(tmp_path / "r.h5")
    np.testing.assert_array_equal(back.stderr, res.stderr)
    np.testing.assert_array_equal(back.history_steps, res.history_steps)
    np.testing.assert_array_equal(back.history, res.history)
    np.testing.assert_array_equal(back.history_stderr, res.history_stderr)
    assert back.meta == res.meta and back.meta["converged"] is True
    with h5py.File(tmp_path / "r.h5") as f:
        np.testing.assert_array_equal(f["local_stats/mean"][()], res.local_stats()["mean"])
        assert f["local_stats"].attrs["fraction_max_positive"] == pytest.approx(
            res.local_stats()["fraction_max_positive"])
