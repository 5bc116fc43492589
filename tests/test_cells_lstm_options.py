"""LSTM options (peepholes, projection, layer norm) against equations written out in float64 PyTorch ops.

The reference uses ``torch.nn.functional.layer_norm`` for LN (an implementation nobody here wrote)
and plain tensor algebra for the rest, step by step in a Python loop.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jaxrnn
from tests.families_util import normal, random_params

I, H, P, B, T = 3, 5, 2, 2, 6


def _t(a) -> torch.Tensor:
    return torch.tensor(np.asarray(a), dtype=torch.float64)


def _reference(params: dict, xs: np.ndarray, *, peephole: bool, proj: bool, ln: bool, grads: bool = False):
    """LSTM with the options, one step at a time (Gers 2000 / Sak 2014 / Ba 2016 equations)."""
    p = {k: _t(v).requires_grad_(grads) for k, v in params.items()}
    x = _t(xs)
    h = torch.zeros(x.shape[0], P if proj else H, dtype=torch.float64)
    c = torch.zeros(x.shape[0], H, dtype=torch.float64)
    ln_ = lambda z, w, b=None: torch.nn.functional.layer_norm(z, (z.shape[-1],), w, b, eps=1e-5)  # noqa: E731
    outs = []
    for t in range(x.shape[1]):
        zx, zh = x[:, t] @ p["w_ih"], h @ p["w_hh"]
        if ln:
            zx, zh = ln_(zx, p["ln_ih_scale"]), ln_(zh, p["ln_hh_scale"])
        z = zx + zh + p["b"]
        i, f, g, o = z[:, :H], z[:, H : 2 * H], z[:, 2 * H : 3 * H], z[:, 3 * H :]
        if peephole:
            i = i + p["w_ci"] * c
            f = f + p["w_cf"] * c
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        if peephole:
            o = o + p["w_co"] * c
        c_out = ln_(c, p["ln_c_scale"], p["ln_c_bias"]) if ln else c
        h = torch.sigmoid(o) * torch.tanh(c_out)
        if proj:
            h = h @ p["w_hr"]
        outs.append(h)
    return torch.stack(outs, 1), (h, c), p


# each option alone, and all three together (the default form is covered by the bitwise test below)
OPTIONS = [dict(zip(("peephole", "proj", "ln"), bits)) for bits in [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 1)]]
OPTIONS = [{k: bool(v) for k, v in o.items()} for o in OPTIONS]


@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "-".join(k for k, v in o.items() if v) or "plain")
def test_lstm_options_match_equations(opts):
    cell = jaxrnn.LSTM(H, peephole=opts["peephole"], proj_size=P if opts["proj"] else 0, layer_norm=opts["ln"])
    params = random_params(cell, I, seed=1)
    xs = normal((B, T, I), 2)
    ys, carry = jaxrnn.RNN(cell).apply(params, jnp.asarray(xs))
    ref_ys, (ref_h, ref_c), _ = _reference(params, xs, **opts)
    np.testing.assert_allclose(ys, ref_ys.numpy(), atol=2e-6, rtol=1e-5)
    np.testing.assert_allclose(carry.h, ref_h.numpy(), atol=2e-6, rtol=1e-5)
    np.testing.assert_allclose(carry.c, ref_c.numpy(), atol=2e-6, rtol=1e-5)
    assert ys.shape == (B, T, P if opts["proj"] else H)


def test_lstm_all_options_gradients_match_torch_autograd():
    cell = jaxrnn.LSTM(H, peephole=True, proj_size=P, layer_norm=True)
    params = random_params(cell, I, seed=4)
    xs = normal((B, T, I), 5)
    weights = normal((B, T, P), 6)

    def loss(p):
        ys, _ = jaxrnn.RNN(cell).apply(p, jnp.asarray(xs))
        return jnp.sum(ys * weights)

    grads = jax.grad(loss)(params)
    ref_ys, _, tp = _reference(params, xs, peephole=True, proj=True, ln=True, grads=True)
    (ref_ys * _t(weights)).sum().backward()
    for name, g in grads.items():
        np.testing.assert_allclose(g, tp[name].grad.numpy(), atol=3e-5, rtol=1e-4, err_msg=name)
    # the zero-initialised peepholes and LN shift learn from the first step
    assert all(float(jnp.abs(grads[n]).max()) > 1e-4 for n in ("w_ci", "w_cf", "w_co", "ln_c_bias"))


def test_default_lstm_unchanged_tree_and_bitwise_equations():
    cell = jaxrnn.LSTM(H)
    params = cell.init(jax.random.key(0), I)
    assert {k: v.shape for k, v in params.items()} == {"w_ih": (I, 4 * H), "w_hh": (H, 4 * H), "b": (4 * H,)}
    np.testing.assert_array_equal(params["b"][H : 2 * H], 1.0)
    params = random_params(cell, I, seed=1)
    carry = jaxrnn.LSTMState(h=jnp.asarray(normal((B, H), 2)), c=jnp.asarray(normal((B, H), 3)))
    x = jnp.asarray(normal((B, I), 4))

    def before_options(p, carry, x):  # the formula before the options, op for op
        z = (x @ p["w_ih"] + p["b"]) + carry.h @ p["w_hh"]
        i, f, g, o = jnp.split(z, 4, axis=-1)
        c = jax.nn.sigmoid(f) * carry.c + jax.nn.sigmoid(i) * jnp.tanh(g)
        return c, jax.nn.sigmoid(o) * jnp.tanh(c)

    c, h = jax.jit(before_options)(params, carry, x)
    new, y = jax.jit(cell.step)(params, carry, x)
    np.testing.assert_array_equal(new.c, c)
    np.testing.assert_array_equal(y, h)


def test_option_parameter_shapes():
    cell = jaxrnn.LSTM(H, peephole=True, proj_size=P, layer_norm=True)
    shapes = {k: v.shape for k, v in cell.init(jax.random.key(0), I).items()}
    assert shapes == {
        "w_ih": (I, 4 * H), "w_hh": (P, 4 * H), "b": (4 * H,), "w_ci": (H,), "w_cf": (H,), "w_co": (H,),
        "w_hr": (H, P), "ln_ih_scale": (4 * H,), "ln_hh_scale": (4 * H,), "ln_c_scale": (H,), "ln_c_bias": (H,),
    }
    assert cell.output_size == P
    carry = cell.initial_carry(cell.init(jax.random.key(0), I), (B,))
    assert carry.h.shape == (B, P) and carry.c.shape == (B, H)


def test_layer_norm_projection_happens_outside_the_scan():
    # LN of x W_ih depends on x_t only: project() must already hold it, so recur sees a finished u.
    cell = jaxrnn.LSTM(H, layer_norm=True)
    params = random_params(cell, I, seed=1)
    xs = jnp.asarray(normal((T, I), 2))
    zx = torch.nn.functional.layer_norm(_t(xs @ params["w_ih"]), (4 * H,), _t(params["ln_ih_scale"]), eps=1e-5)
    np.testing.assert_allclose(cell.project(params, xs), (zx + _t(params["b"])).numpy(), atol=2e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(peephole=1), "peephole"),
        (dict(layer_norm="yes"), "layer_norm"),
        (dict(proj_size=-1), "proj_size"),
        (dict(proj_size=2.0), "proj_size"),
    ],
)
def test_bad_options_name_the_argument(kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        jaxrnn.LSTM(H, **kwargs)


def test_lstm_options_with_lengths_and_bidirectional():
    # a padded sequence equals its unpadded run, in both directions
    cell = jaxrnn.LSTM(H, peephole=True, proj_size=P, layer_norm=True)
    layer = jaxrnn.Bidirectional(jaxrnn.RNN(cell))
    params = random_params(layer, I, seed=0)
    xs = jnp.asarray(normal((2, T, I), 1))
    ys, _ = layer.apply(params, xs, lengths=jnp.array([T, 3]))
    ys_short, _ = layer.apply(params, xs[1:, :3])
    np.testing.assert_allclose(ys[1, :3], ys_short[0], atol=1e-6)
    np.testing.assert_array_equal(ys[1, 3:], 0.0)
