"""Baselines for the CPU benchmark: the QR method written the way papers' scripts write it.

Two references compute the Lyapunov spectrum of a one-layer ``rnn_tanh``, ``lstm``
(state h and c, n = 2N) or ``gru`` network, batched over sequences:

* :func:`torch_spectrum` -- the "PyTorch reference approach": at every step the dense
  Jacobian of every sequence is built from the analytic formulas (batched tensors of
  shape (B, n, n)), ``Z = J @ Q`` is one batched matmul, ``torch.linalg.qr`` factorises
  all B blocks at once, signs are fixed so that diag(R) >= 0 and log|diag R| is summed
  in float64.
* :func:`numpy_spectrum` -- the same with NumPy: ``np.matmul`` and ``np.linalg.qr`` on
  stacked (B, n, k) arrays.

Both share one implementation of the cell formulas (:func:`_cell_step`), written
against a tiny array namespace so that the two differ only in the library underneath.
Weights use PyTorch's layout and gate order (SPEC section 1); initial states are zero.
"""

import math

import numpy as np

__all__ = ["CELLS", "numpy_spectrum", "random_weights", "torch_spectrum"]

CELLS = ("rnn_tanh", "lstm", "gru")
GATES = {"rnn_tanh": 1, "lstm": 4, "gru": 3}


def random_weights(cell, N, d, gain=1.5, seed=0):
    """A PyTorch-style state dict whose recurrent weights have spectral scale ``gain``.

    ``gain`` > 1 puts the vanilla network in its chaotic regime, so the spectrum has
    positive and negative exponents (a fair test of the QR step).
    """
    rng = np.random.default_rng(seed)
    G = GATES[cell]
    return {
        "weight_ih_l0": rng.standard_normal((G * N, d)) / math.sqrt(d),
        "weight_hh_l0": gain * rng.standard_normal((G * N, N)) / math.sqrt(N),
        "bias_ih_l0": 0.1 * rng.standard_normal(G * N),
        "bias_hh_l0": 0.1 * rng.standard_normal(G * N),
    }


class _NumpyOps:
    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    def asarray(self, a):
        return np.ascontiguousarray(a, dtype=self.dtype)

    def empty(self, shape):
        return np.empty(shape, dtype=self.dtype)

    def zeros(self, shape, float64=False):
        return np.zeros(shape, dtype=np.float64 if float64 else self.dtype)

    tanh = staticmethod(np.tanh)
    exp = staticmethod(np.exp)

    @staticmethod
    def qr_logdiag(Z):
        Q, R = np.linalg.qr(Z)
        d = np.diagonal(R, axis1=-2, axis2=-1)
        Q = Q * np.where(d < 0, -1.0, 1.0).astype(Z.dtype)[:, None, :]
        with np.errstate(divide="ignore"):
            return Q, np.log(np.abs(d.astype(np.float64)))

    @staticmethod
    def to_numpy(a):
        return np.asarray(a)


class _TorchOps:
    def __init__(self, dtype):
        import torch

        self.torch = torch
        self.dtype = {np.dtype(np.float32): torch.float32,
                      np.dtype(np.float64): torch.float64}[np.dtype(dtype)]

    def asarray(self, a):
        return self.torch.as_tensor(np.ascontiguousarray(a), dtype=self.dtype)

    def empty(self, shape):
        return self.torch.empty(shape, dtype=self.dtype)

    def zeros(self, shape, float64=False):
        return self.torch.zeros(shape, dtype=self.torch.float64 if float64 else self.dtype)

    def tanh(self, a):
        return self.torch.tanh(a)

    def exp(self, a):
        return self.torch.exp(a)

    def qr_logdiag(self, Z):
        torch = self.torch
        Q, R = torch.linalg.qr(Z)
        d = torch.diagonal(R, dim1=-2, dim2=-1)
        sign = torch.where(d < 0, -1.0, 1.0).to(Z.dtype)
        return Q * sign[:, None, :], torch.log(torch.abs(d.to(torch.float64)))

    @staticmethod
    def to_numpy(a):
        return a.numpy()


def _sig(ops, a):
    return 1.0 / (1.0 + ops.exp(-a))


def _cell_step(ops, cell, W, s, x_t, J):
    """New state (B, n); the Jacobians J (B, n, n) are filled in place.

    The derivatives use the textbook forms (``1 - tanh^2``, ``sigma (1 - sigma)``) that
    reference scripts use; on the benchmark's weights they agree with lenum's
    underflow-safe forms to rounding.
    """
    w_ih, w_hh, b = W[0], W[1], W[2]
    N = w_hh.shape[1]
    h = s[:, :N]
    a = x_t @ w_ih.T + h @ w_hh.T + b  # (B, G N)
    if cell == "rnn_tanh":
        h_new = ops.tanh(a)
        J[:] = (1.0 - h_new * h_new)[:, :, None] * w_hh[None]
        return h_new
    if cell == "lstm":
        c = s[:, N:]
        gi, gf = _sig(ops, a[:, :N]), _sig(ops, a[:, N:2 * N])
        gg, go = ops.tanh(a[:, 2 * N:3 * N]), _sig(ops, a[:, 3 * N:])
        c_new = gf * c + gi * gg
        tc = ops.tanh(c_new)
        h_new = go * tc
        ci = (gg * gi * (1.0 - gi))[:, :, None]
        cf = (c * gf * (1.0 - gf))[:, :, None]
        cg = (gi * (1.0 - gg * gg))[:, :, None]
        co = (tc * go * (1.0 - go))[:, :, None]
        oc = go * (1.0 - tc * tc)
        dc_dh = ci * w_hh[None, :N] + cf * w_hh[None, N:2 * N] + cg * w_hh[None, 2 * N:3 * N]
        J[:, N:, :N] = dc_dh
        J[:, :N, :N] = co * w_hh[None, 3 * N:] + oc[:, :, None] * dc_dh
        J[:, :, N:] = 0.0
        idx = np.arange(N)
        J[:, idx, N + idx] = oc * gf
        J[:, N + idx, N + idx] = gf
        s_new = ops.empty(s.shape)
        s_new[:, :N] = h_new
        s_new[:, N:] = c_new
        return s_new
    # gru: the hidden-side bias of the n gate sits inside r * (W_hn h + b_hn)
    gh_n = h @ w_hh[2 * N:].T + W[3]
    a_r, a_z = a[:, :N], a[:, N:2 * N]
    a_n = (x_t @ w_ih[2 * N:].T + W[4]) + _sig(ops, a_r) * gh_n
    r, z = _sig(ops, a_r), _sig(ops, a_z)
    n = ops.tanh(a_n)
    h_new = (1.0 - z) * n + z * h
    dz = ((h - n) * z * (1.0 - z))[:, :, None]
    dn = (1.0 - z) * (1.0 - n * n)
    dr = (dn * gh_n * r * (1.0 - r))[:, :, None]
    J[:] = (dz * w_hh[None, N:2 * N] + dr * w_hh[None, :N]
            + (dn * r)[:, :, None] * w_hh[None, 2 * N:])
    idx = np.arange(N)
    J[:, idx, idx] += z
    return h_new


def _spectrum(ops, cell, weights, x, q0):
    w_ih = ops.asarray(weights["weight_ih_l0"])
    w_hh = ops.asarray(weights["weight_hh_l0"])
    b_ih = np.asarray(weights["bias_ih_l0"], dtype=np.float64)
    b_hh = np.asarray(weights["bias_hh_l0"], dtype=np.float64)
    N = w_hh.shape[1]
    if cell == "gru":
        # r and z take both biases in a; the n gate keeps b_in and b_hn apart
        b = b_ih + b_hh
        W = (w_ih, w_hh, ops.asarray(b), ops.asarray(b_hh[2 * N:]), ops.asarray(b_ih[2 * N:]))
    else:
        W = (w_ih, w_hh, ops.asarray(b_ih + b_hh))
    B, T, _ = x.shape
    n, k = q0.shape
    s = ops.zeros((B, n))
    Q = ops.asarray(np.broadcast_to(q0, (B, n, k)).copy())
    J = ops.empty((B, n, n))
    logsum = ops.zeros((B, k), float64=True)
    for t in range(T):
        s = _cell_step(ops, cell, W, s, ops.asarray(x[:, t]), J)
        Q, logs = ops.qr_logdiag(J @ Q)
        logsum = logsum + logs
    return ops.to_numpy(logsum) / T


def _check_cell(cell):
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")


def numpy_spectrum(cell, weights, x, q0, dtype="float64"):
    """Per-sequence exponents (B, k) by batched NumPy (``np.matmul``, ``np.linalg.qr``).

    Parameters
    ----------
    cell : {"rnn_tanh", "lstm", "gru"}
    weights : dict
        One layer's PyTorch state dict (``weight_ih_l0`` ... ``bias_hh_l0``).
    x : ndarray (B, T, d)
    q0 : ndarray (n, k)
        Orthonormal initial basis shared by all sequences.
    dtype : {"float64", "float32"}

    Returns
    -------
    ndarray (B, k), float64, nats per step
    """
    _check_cell(cell)
    return _spectrum(_NumpyOps(dtype), cell, weights, x, q0)


def torch_spectrum(cell, weights, x, q0, dtype="float64", threads=None):
    """Per-sequence exponents (B, k) by the PyTorch reference approach.

    Parameters are those of :func:`numpy_spectrum`; ``threads`` sets
    ``torch.set_num_threads`` (the same thread count as lenum's, for a fair
    comparison).  Requires torch.
    """
    import torch

    _check_cell(cell)
    if threads is not None:
        torch.set_num_threads(int(threads))
    with torch.no_grad():
        return _spectrum(_TorchOps(dtype), cell, weights, x, q0)
