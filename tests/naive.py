"""Plain-NumPy reference implementations (test oracles) for lenum.

Nothing here imports lenum.  Every function is written for clarity, not speed: loops
over layers and time steps, dense Jacobians, ``np.linalg.qr``.  The names follow the
public API (``step``, ``jacobian``, ``lyapunov_spectrum``) so that a test reads as
"lenum.X equals naive.X".

Conventions (SPEC section 1)
----------------------------
* Weights are a dict keyed like PyTorch's ``state_dict``: ``weight_ih_l{l}`` (G*N, d_l),
  ``weight_hh_l{l}`` (G*N, N), optional ``bias_ih_l{l}``, ``bias_hh_l{l}`` (G*N,).
  Gate rows: LSTM i, f, g, o; GRU r, z, n.
* The state vector holds layer 0 first; within an LSTM layer h comes before c.  So
  n = N*L for rnn/gru and n = 2*N*L for lstm.
* Layer l > 0 takes the *new* hidden state of layer l-1 (same step) as its input.
"""

import numpy as np

__all__ = [
    "GATES",
    "PER_LAYER",
    "random_weights",
    "state_from_h0",
    "step",
    "step_with_gates",
    "jacobian",
    "jacobian_fd",
    "trajectory",
    "lyapunov_spectrum",
    "spectrum_of_network",
    "random_orthonormal",
    "sensitivity",
    "sigmoid",
    "dsigmoid",
    "dtanh",
    "state_size",
]

GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}
PER_LAYER = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 2, "gru": 1}


# --------------------------------------------------------------------------- helpers


def sigmoid(a):
    """Logistic function, without overflow for large |a|."""
    a = np.asarray(a, dtype=np.float64)
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def dsigmoid(a):
    """sigma'(a) = e^{-|a|} / (1 + e^{-|a|})^2: no underflow to 0 where sigma(a) rounds to 1."""
    e = np.exp(-np.abs(np.asarray(a, dtype=np.float64)))
    return e / (1.0 + e) ** 2


def dtanh(a):
    """sech^2(a) = 4 e^{-2|a|} / (1 + e^{-2|a|})^2 (1 - tanh^2 is exactly 0 for |a| > 19)."""
    e = np.exp(-2.0 * np.abs(np.asarray(a, dtype=np.float64)))
    return 4.0 * e / (1.0 + e) ** 2


def _hidden_size(weights):
    return weights["weight_hh_l0"].shape[1]


def _layer_weights(weights, layer):
    w_ih = np.asarray(weights[f"weight_ih_l{layer}"], dtype=np.float64)
    w_hh = np.asarray(weights[f"weight_hh_l{layer}"], dtype=np.float64)
    rows = w_hh.shape[0]
    b_ih = np.asarray(weights.get(f"bias_ih_l{layer}", np.zeros(rows)), dtype=np.float64)
    b_hh = np.asarray(weights.get(f"bias_hh_l{layer}", np.zeros(rows)), dtype=np.float64)
    return w_ih, w_hh, b_ih, b_hh


def state_size(cell, weights, num_layers):
    return PER_LAYER[cell] * _hidden_size(weights) * num_layers


def random_weights(cell, hidden, inputs, num_layers, rng, bias=True, scale=1.0, hh_scale=None):
    """Random weights keyed like PyTorch's state_dict, entries ~ N(0, scale^2 / N).

    ``hh_scale`` (if given) replaces ``scale`` for the recurrent matrices.
    """
    G = GATES[cell]
    hh_scale = scale if hh_scale is None else hh_scale
    std = 1.0 / np.sqrt(hidden)
    w = {}
    for layer in range(num_layers):
        d = inputs if layer == 0 else hidden
        w[f"weight_ih_l{layer}"] = rng.normal(0.0, scale * std, (G * hidden, d))
        w[f"weight_hh_l{layer}"] = rng.normal(0.0, hh_scale * std, (G * hidden, hidden))
        if bias:
            w[f"bias_ih_l{layer}"] = rng.normal(0.0, scale * std, G * hidden)
            w[f"bias_hh_l{layer}"] = rng.normal(0.0, scale * std, G * hidden)
    return w


def state_from_h0(cell, h0, c0=None):
    """Full state vectors (B, n) from PyTorch-style h0, c0 of shape (L, B, N)."""
    h0 = np.asarray(h0, dtype=np.float64)
    L, B, N = h0.shape
    parts = []
    for layer in range(L):
        parts.append(h0[layer])
        if cell == "lstm":
            parts.append(np.zeros((B, N)) if c0 is None else np.asarray(c0)[layer])
    return np.concatenate(parts, axis=1)


# --------------------------------------------------------------------------- one layer


def _cell_forward(cell, w_ih, w_hh, b_ih, b_hh, u, h, c=None):
    """One layer, one step.  Returns (h_new, c_new or None, dict of intermediates)."""
    N = w_hh.shape[1]
    gi = w_ih @ u + b_ih
    gh = w_hh @ h + b_hh
    if cell in ("rnn_tanh", "rnn_relu"):
        a = gi + gh
        if cell == "rnn_tanh":
            h_new = np.tanh(a)
        else:
            h_new = np.maximum(a, 0.0)
        return h_new, None, {"a": a}
    if cell == "lstm":
        a = gi + gh
        i = sigmoid(a[0:N])
        f = sigmoid(a[N : 2 * N])
        g = np.tanh(a[2 * N : 3 * N])
        o = sigmoid(a[3 * N : 4 * N])
        c_new = f * c + i * g
        h_new = o * np.tanh(c_new)
        return h_new, c_new, {"i": i, "f": f, "g": g, "o": o, "a": a}
    if cell == "gru":
        ar = gi[0:N] + gh[0:N]
        az = gi[N : 2 * N] + gh[N : 2 * N]
        r = sigmoid(ar)
        z = sigmoid(az)
        hn = gh[2 * N : 3 * N]  # W_hn h + b_hn
        an = gi[2 * N : 3 * N] + r * hn
        n = np.tanh(an)
        h_new = (1.0 - z) * n + z * h
        return h_new, None, {"r": r, "z": z, "n": n, "hn": hn, "ar": ar, "az": az, "an": an}
    raise ValueError(f"unknown cell {cell!r}")


def _cell_derivatives(cell, w_ih, w_hh, b_ih, b_hh, u, h, c=None):
    """One layer, one step: new layer state and its derivatives.

    Returns (new_state, A, Bu) where new_state is the layer's new state vector
    ([h] or [h, c]), A = d new_state / d old layer state, Bu = d new_state / d input u.
    Derived by hand from the update equations (independently of lenum).
    """
    N = w_hh.shape[1]
    h_new, c_new, v = _cell_forward(cell, w_ih, w_hh, b_ih, b_hh, u, h, c)
    if cell in ("rnn_tanh", "rnn_relu"):
        if cell == "rnn_tanh":
            d = dtanh(v["a"])
        else:
            d = (v["a"] > 0).astype(np.float64)  # derivative at 0 is 0
        return h_new, d[:, None] * w_hh, d[:, None] * w_ih
    if cell == "lstm":
        i, f, g, o, a = v["i"], v["f"], v["g"], v["o"], v["a"]
        di = dsigmoid(a[0:N])
        df = dsigmoid(a[N : 2 * N])
        dg = dtanh(a[2 * N : 3 * N])
        do = dsigmoid(a[3 * N : 4 * N])
        tc = np.tanh(c_new)
        dtc = dtanh(c_new)

        def blocks(W):
            Wi, Wf, Wg, Wo = W[0:N], W[N : 2 * N], W[2 * N : 3 * N], W[3 * N : 4 * N]
            dc = (c * df)[:, None] * Wf + (g * di)[:, None] * Wi + (i * dg)[:, None] * Wg
            dh = (tc * do)[:, None] * Wo + (o * dtc)[:, None] * dc
            return dh, dc

        dh_dh, dc_dh = blocks(w_hh)
        dh_du, dc_du = blocks(w_ih)
        dc_dc = np.diag(f)
        dh_dc = np.diag(o * dtc * f)
        A = np.block([[dh_dh, dh_dc], [dc_dh, dc_dc]])
        Bu = np.vstack([dh_du, dc_du])
        return np.concatenate([h_new, c_new]), A, Bu
    if cell == "gru":
        r, z, n, hn = v["r"], v["z"], v["n"], v["hn"]
        dr = dsigmoid(v["ar"])
        dz = dsigmoid(v["az"])
        dn = dtanh(v["an"])

        def jac(W, wrt_h):
            Wr, Wz, Wn = W[0:N], W[N : 2 * N], W[2 * N : 3 * N]
            if wrt_h:
                # n's argument: W_in u + b_in + r * (W_hn h + b_hn)
                dn_arg = (hn * dr)[:, None] * Wr + r[:, None] * Wn
            else:
                dn_arg = Wn + (hn * dr)[:, None] * Wr
            dn_ = dn[:, None] * dn_arg
            dz_ = dz[:, None] * Wz
            out = (1.0 - z)[:, None] * dn_ + (h - n)[:, None] * dz_
            if wrt_h:
                out = out + np.diag(z)
            return out

        return h_new, jac(w_hh, True), jac(w_ih, False)
    raise ValueError(f"unknown cell {cell!r}")


# --------------------------------------------------------------------------- whole network


def _split(cell, weights, num_layers, s):
    N = _hidden_size(weights)
    P = PER_LAYER[cell]
    out = []
    for layer in range(num_layers):
        blk = s[layer * P * N : (layer + 1) * P * N]
        out.append((blk[:N], blk[N:] if P == 2 else None))
    return out


def _step1(cell, weights, num_layers, s, x):
    s = np.asarray(s, dtype=np.float64)
    u = np.asarray(x, dtype=np.float64)
    new = []
    for layer, (h, c) in enumerate(_split(cell, weights, num_layers, s)):
        h_new, c_new, _ = _cell_forward(cell, *_layer_weights(weights, layer), u, h, c)
        new.append(h_new)
        if c_new is not None:
            new.append(c_new)
        u = h_new
    return np.concatenate(new)


def step(cell, weights, num_layers, s, x):
    """One forward step of the whole network on state vector(s) s (n,) or (B, n).

    x is (d,) or (B, d) (broadcast against s).
    """
    s = np.asarray(s, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if s.ndim == 1 and x.ndim == 1:
        return _step1(cell, weights, num_layers, s, x)
    S, X = np.broadcast_arrays(np.atleast_2d(s)[:, :, None], np.atleast_2d(x)[:, None, :])
    S, X = S[:, :, 0], X[:, 0, :]
    return np.stack([_step1(cell, weights, num_layers, a, b) for a, b in zip(S, X)])


def step_with_gates(cell, weights, num_layers, s, x):
    """Like :func:`step` for one state vector, also returning each layer's intermediates."""
    s = np.asarray(s, dtype=np.float64)
    u = np.asarray(x, dtype=np.float64)
    new, gates = [], []
    for layer, (h, c) in enumerate(_split(cell, weights, num_layers, s)):
        h_new, c_new, v = _cell_forward(cell, *_layer_weights(weights, layer), u, h, c)
        new.append(h_new)
        if c_new is not None:
            new.append(c_new)
        gates.append(v)
        u = h_new
    return np.concatenate(new), gates


def _jacobian1(cell, weights, num_layers, s, x):
    N = _hidden_size(weights)
    P = PER_LAYER[cell]
    m = P * N
    n = m * num_layers
    J = np.zeros((n, n))
    u = np.asarray(x, dtype=np.float64)
    du_ds = None  # derivative of the current layer's input w.r.t. the full old state
    for layer, (h, c) in enumerate(_split(cell, weights, num_layers, np.asarray(s, float))):
        new, A, Bu = _cell_derivatives(cell, *_layer_weights(weights, layer), u, h, c)
        rows = slice(layer * m, (layer + 1) * m)
        J[rows, rows] += A
        if du_ds is not None:
            J[rows, :] += Bu @ du_ds  # chain through the new h of the layer below
        du_ds = J[layer * m : layer * m + N, :].copy()  # d h^l_new / d s
        u = new[:N]
    return J


def jacobian(cell, weights, num_layers, s, x):
    """Analytic Jacobian dF/ds of one step: (n, n), or (B, n, n) for batched s / x."""
    s = np.asarray(s, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if s.ndim == 1 and x.ndim == 1:
        return _jacobian1(cell, weights, num_layers, s, x)
    S, X = np.broadcast_arrays(np.atleast_2d(s)[:, :, None], np.atleast_2d(x)[:, None, :])
    return np.stack(
        [_jacobian1(cell, weights, num_layers, a, b) for a, b in zip(S[:, :, 0], X[:, 0, :])]
    )


def jacobian_fd(cell, weights, num_layers, s, x, eps=1e-6):
    """Central finite-difference Jacobian of :func:`step` w.r.t. the whole state.

    Error: truncation O(eps^2 |F'''|) plus round-off O(machine_eps |F| / eps); with
    eps = 1e-6 in float64 both are around 1e-10 for O(1) weights and states.
    """
    s = np.asarray(s, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if s.ndim == 2 or x.ndim == 2:
        S, X = np.broadcast_arrays(np.atleast_2d(s)[:, :, None], np.atleast_2d(x)[:, None, :])
        return np.stack(
            [
                jacobian_fd(cell, weights, num_layers, a, b, eps)
                for a, b in zip(S[:, :, 0], X[:, 0, :])
            ]
        )
    n = s.size
    J = np.empty((n, n))
    for j in range(n):
        e = np.zeros(n)
        e[j] = eps
        J[:, j] = (step(cell, weights, num_layers, s + e, x) - step(cell, weights, num_layers, s - e, x)) / (
            2.0 * eps
        )
    return J


def trajectory(cell, weights, num_layers, x, s0, method="analytic", eps=1e-6):
    """States s_1..s_T and Jacobians J_1..J_T along one input sequence x (T, d).

    J_t = dF/ds at (s_{t-1}, x_t).  Returns (states (T, n), jacobians (T, n, n)).
    """
    s = np.asarray(s0, dtype=np.float64).copy()
    states, jacs = [], []
    for xt in np.asarray(x, dtype=np.float64):
        if method == "analytic":
            jacs.append(jacobian(cell, weights, num_layers, s, xt))
        else:
            jacs.append(jacobian_fd(cell, weights, num_layers, s, xt, eps))
        s = step(cell, weights, num_layers, s, xt)
        states.append(s)
    return np.array(states), np.array(jacs)


# --------------------------------------------------------------------------- QR method


def lyapunov_spectrum(jacobians, q0, warmup=0, qr_every=1, return_local=False):
    """Lyapunov exponents of a Jacobian sequence by the QR (Benettin) method.

    jacobians: (T, n, n), J_1..J_T in time order (the product is J_T ... J_1).
    q0: (n, k) orthonormal.

    Convention (SPEC section 1: warm-up steps "advance the state and the basis (with
    QR) but are not counted"; counted steps = T - warmup):

    * For t = 1..T (1-based): Z = J_t Q.
    * Warm-up steps (t <= warmup) take a QR every step and count nothing.
    * Counted steps, c = t - warmup = 1..T-warmup, take a QR when
      ``c % qr_every == 0 or t == T`` (the last step always reorthonormalises, so
      nothing is lost) and add log diag(R) to a float64 sum.  The sum therefore holds
      exactly the growth of steps warmup+1..T, whatever qr_every is.
    * Exponents = sum / (T - warmup).

    QR: ``np.linalg.qr`` (LAPACK Householder) with signs fixed so that diag(R) >= 0.
    A zero diagonal entry of R gives -inf (log 0); the QR goes on with the orthonormal
    column LAPACK returns.

    With ``return_local=True`` also returns local exponents (S, k): log diag(R) divided
    by the number of steps the QR covers (qr_every, or fewer for the last block), one
    row per counted QR.
    """
    J = np.asarray(jacobians, dtype=np.float64)
    T = J.shape[0]
    Q = np.array(q0, dtype=np.float64)
    k = Q.shape[1]
    total = np.zeros(k)
    local = []
    last_qr = warmup  # step of the last counted QR (or the end of the warm-up)
    for t in range(1, T + 1):
        Q = J[t - 1] @ Q
        counted = t > warmup
        if not counted or (t - warmup) % qr_every == 0 or t == T:
            Q, R = np.linalg.qr(Q)
            d = np.diag(R).copy()
            Q = Q * np.where(d < 0, -1.0, 1.0)[None, :]
            if counted:
                with np.errstate(divide="ignore"):
                    logd = np.log(np.abs(d))
                total += logd
                local.append(logd / (t - last_qr))
                last_qr = t
    exps = total / (T - warmup)
    if return_local:
        return exps, np.array(local).reshape(-1, k)
    return exps


def spectrum_of_network(
    cell, weights, num_layers, x, s0, q0, warmup=0, qr_every=1, method="analytic"
):
    """Exponents of a network along one input sequence x (T, d) from state s0 (n,)."""
    _, jacs = trajectory(cell, weights, num_layers, x, s0, method=method)
    return lyapunov_spectrum(jacs, q0, warmup=warmup, qr_every=qr_every)


def random_orthonormal(n, k, rng):
    """An (n, k) matrix with orthonormal columns."""
    q, r = np.linalg.qr(rng.normal(size=(n, k)))
    return q * np.sign(np.diag(r))[None, :]


def sensitivity(jacobians, q0, warmup=0, qr_every=1, rel=1e-14, draws=2, seed=0,
                return_local=False):
    """How much the exponents move when every J_t gets a random perturbation of norm
    about ``rel * ||J_t||`` (the size of a backward-stable computation's error when rel
    is a small multiple of the machine epsilon).  Returns the largest change over
    ``draws`` draws, per exponent (k,) (and per local exponent (S, k) with
    ``return_local``); -inf exponents that stay -inf count as unchanged.

    A well-conditioned spectrum moves by about ``rel``; near-degenerate exponents whose
    finite-time values cross, and ill-conditioned products between QRs, amplify it.
    Two correct float64 implementations differ by about this much at rel ~ 1e-14.
    """
    J = np.asarray(jacobians, dtype=np.float64)
    rng = np.random.default_rng(seed)
    base, base_local = lyapunov_spectrum(J, q0, warmup, qr_every, return_local=True)
    n = J.shape[1]
    norms = np.linalg.norm(J, ord=2, axis=(1, 2))
    worst, worst_local = np.zeros_like(base), np.zeros_like(base_local)
    for _ in range(draws):
        G = rng.normal(size=J.shape) / n
        pert, pert_local = lyapunov_spectrum(
            J + rel * norms[:, None, None] * G, q0, warmup, qr_every, return_local=True
        )
        for w, p, b in ((worst, pert, base), (worst_local, pert_local, base_local)):
            with np.errstate(invalid="ignore"):
                diff = np.abs(p - b)
            diff[p == b] = 0.0
            np.maximum(w, diff, out=w)
    if return_local:
        return worst, worst_local
    return worst
