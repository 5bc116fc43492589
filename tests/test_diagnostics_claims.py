"""The measurable claims about gradient profiles at T = 100, measured (numbers in the README).

Measured here (H=16, batch 16, adding problem, linear read-out of the last step), log10 ratio
``log10(||dL/dh_0|| / ||dL/dh_99||)``: SimpleRNN -4.5 (PyTorch-style init -28.4), LSTM -2.8 (chrono -2.5),
GRU -13.3 (chrono -0.5); Lyapunov exponent of the LSTM's (h, c) Jacobian -0.057 (chrono -0.026). The claim
"the SimpleRNN profile decays faster than the LSTM's (forget bias 1) by orders of magnitude" holds for a
SimpleRNN with PyTorch's default U(-1/sqrt(H), 1/sqrt(H)) recurrent weights, but NOT at jaxrnn's default
orthogonal initialisation, where both lose a few decades; after training it holds again (see
tests/test_train_claims.py: training drives the SimpleRNN into saturation).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import jaxrnn
from jaxrnn.diagnostics import jacobian_norms, temporal_grad_profile, vanishing_ratio

T, H, B = 100, 16, 16


def _ratio_fn(layer, batch):
    w = jax.random.normal(jax.random.key(9), (H,)) / np.sqrt(H)
    loss = lambda ys: jnp.mean((ys[:, -1] @ w - batch.targets[:, 0]) ** 2)
    return jax.jit(lambda p: vanishing_ratio(temporal_grad_profile(layer, p, batch.xs, loss)))


def _torch_default_simple_params(key):
    """PyTorch nn.RNN's default: every weight and bias U(-1/sqrt(H), 1/sqrt(H)) (b = b_ih + b_hh)."""
    k = jax.random.split(key, 4)
    s = 1.0 / np.sqrt(H)
    u = lambda kk, shape: jax.random.uniform(kk, shape, minval=-s, maxval=s)
    return {"w_ih": u(k[0], (2, H)), "w_hh": u(k[1], (H, H)), "b": u(k[2], (H,)) + u(k[3], (H,))}


def measure_t100():
    batch = jaxrnn.tasks.adding_problem(jax.random.key(0), B, T)
    out = {}
    simple = jaxrnn.RNN(jaxrnn.SimpleRNN(H))
    ratio = _ratio_fn(simple, batch)
    out["simple"] = float(ratio(simple.init(jax.random.key(1), 2)))
    out["simple_torch_init"] = float(ratio(_torch_default_simple_params(jax.random.key(1))))
    for name, layer in (("lstm", jaxrnn.RNN(jaxrnn.LSTM(H))), ("gru", jaxrnn.RNN(jaxrnn.GRU(H)))):
        ratio = _ratio_fn(layer, batch)
        p = layer.init(jax.random.key(1), 2)
        pc = jaxrnn.chrono_init(layer, p, t_max=T, key=jax.random.key(2))
        out[name], out[name + "_chrono"] = float(ratio(p)), float(ratio(pc))
        if name == "lstm":
            lyap = jax.jit(lambda q: jacobian_norms(layer, q, batch.xs[:2, :40]).lyapunov.mean())
            out["lstm_lyapunov"], out["lstm_chrono_lyapunov"] = float(lyap(p)), float(lyap(pc))
    return out


def test_profiles_at_T100():
    m = measure_t100()
    # GRU at default init (z ~ sigmoid(0) = 1/2 per step) vanishes far faster than the SimpleRNN.
    assert m["gru"] < m["simple"] - 6.0, m
    # Chrono initialisation (Tallec & Ollivier 2018) fixes the GRU.
    assert m["gru_chrono"] > -2.0, m
    # The SimpleRNN-vs-LSTM claim holds with PyTorch's default SimpleRNN init (measured -28.4 vs
    # -2.8) ...
    assert m["simple_torch_init"] < m["lstm"] - 20.0, m
    # ... but at jaxrnn's orthogonal default the SimpleRNN loses at most a couple of decades more than
    # the LSTM (measured -4.5 vs -2.8 here; about equal at H=64): orthogonal W_hh preserves norms.
    assert m["lstm"] - 2.5 < m["simple"] < m["lstm"] + 1.0, m
    # For the LSTM, chrono barely moves the h-profile but lengthens the cell-state memory: the Lyapunov
    # exponent of the full (h, c) step Jacobian moves towards 0.
    assert abs(m["lstm_chrono"] - m["lstm"]) < 1.0, m
    assert m["lstm_lyapunov"] < m["lstm_chrono_lyapunov"] < 0.0, m
    assert m["lstm_chrono_lyapunov"] / m["lstm_lyapunov"] < 0.75, m
