"""GRU ``reset_after=False`` against Keras's equations and layout, MGU against Zhou et al. and Flax."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from tests.families_util import normal, random_params

I, H, B, T = 3, 4, 2, 5


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _keras_gru_reset_before(xs, kernel, recurrent_kernel, bias, rec_mask=None):
    """Keras ``GRUCell(reset_after=False)``: blocks ``[z | r | h]``, reset applied before the matmul.

    Written from keras/src/layers/rnn/gru.py; `rec_mask` multiplies ``h_tm1`` inside the recurrent
    matmuls only (Gal & Ghahramani's recurrent dropout), not in the final interpolation.
    """
    h = np.zeros((xs.shape[0], H))
    m = np.ones_like(h) if rec_mask is None else rec_mask
    outs = []
    for t in range(xs.shape[1]):
        matrix_x = xs[:, t] @ kernel + bias
        x_z, x_r, x_h = np.split(matrix_x, 3, axis=-1)
        recurrent_z = (h * m) @ recurrent_kernel[:, :H]
        recurrent_r = (h * m) @ recurrent_kernel[:, H : 2 * H]
        z = _sigmoid(x_z + recurrent_z)
        r = _sigmoid(x_r + recurrent_r)
        recurrent_h = (r * (h * m)) @ recurrent_kernel[:, 2 * H :]
        hh = np.tanh(x_h + recurrent_h)
        h = z * h + (1 - z) * hh
        outs.append(h)
    return np.stack(outs, 1)


def _from_keras_layout(kernel, recurrent_kernel, bias):
    """Keras ``[z | r | h]`` blocks -> jaxrnn ``[r | z | n]``."""
    order = lambda a: np.concatenate([a[..., H : 2 * H], a[..., :H], a[..., 2 * H :]], axis=-1)  # noqa: E731
    return {"w_ih": jnp.asarray(order(kernel)), "w_hh": jnp.asarray(order(recurrent_kernel)), "b": jnp.asarray(order(bias))}


@pytest.fixture
def keras_weights():
    rng = np.random.default_rng(0)
    return (
        rng.standard_normal((I, 3 * H)).astype(np.float32) * 0.6,
        rng.standard_normal((H, 3 * H)).astype(np.float32) * 0.6,
        rng.standard_normal((3 * H,)).astype(np.float32) * 0.5,
        rng.standard_normal((B, T, I)).astype(np.float32),
    )


def test_gru_reset_before_matches_keras_equations(keras_weights):
    kernel, rec, bias, xs = keras_weights
    cell = jaxrnn.GRU(H, reset_after=False)
    params = _from_keras_layout(kernel, rec, bias)
    cell.check_params("test", params)  # same tree as init: no b_hn in this form
    ys, h = jaxrnn.RNN(cell).apply(params, jnp.asarray(xs))
    ref = _keras_gru_reset_before(xs.astype(np.float64), kernel, rec, bias)
    np.testing.assert_allclose(ys, ref, atol=2e-6)
    np.testing.assert_allclose(h, ref[:, -1], atol=2e-6)


def test_gru_reset_before_recurrent_mask_is_only_inside_the_matmuls(keras_weights):
    kernel, rec, bias, xs = keras_weights
    cell = jaxrnn.GRU(H, reset_after=False)
    params = _from_keras_layout(kernel, rec, bias)
    mask = (np.random.default_rng(1).random((B, H)) > 0.4) / 0.6
    h = cell.initial_carry(params, (B,))
    outs = []
    for t in range(T):
        h, y = cell.recur(params, h, cell.project(params, jnp.asarray(xs[:, t])), recurrent_mask=jnp.asarray(mask, jnp.float32))
        outs.append(y)
    ref = _keras_gru_reset_before(xs.astype(np.float64), kernel, rec, bias, rec_mask=mask)
    np.testing.assert_allclose(jnp.stack(outs, 1), ref, atol=3e-6)


def test_gru_parameter_trees_per_form():
    assert sorted(jaxrnn.GRU(H).param_shapes(I)) == ["b", "b_hn", "w_hh", "w_ih"]
    assert sorted(jaxrnn.GRU(H, reset_after=False).param_shapes(I)) == ["b", "w_hh", "w_ih"]
    with pytest.raises(TypeError, match="reset_after"):
        jaxrnn.GRU(H, reset_after=1)


def _zhou_mgu(xs, p):
    """Zhou et al. (2016), eq. (1)-(3): f gates the reset (before the matmul) and weights the candidate."""
    p = {k: np.asarray(v, np.float64) for k, v in p.items()}
    h = np.zeros((xs.shape[0], H))
    outs = []
    for t in range(xs.shape[1]):
        x = xs[:, t]
        f = _sigmoid(x @ p["w_ih"][:, :H] + p["b"][:H] + h @ p["w_hh"][:, :H])
        h_tilde = np.tanh(x @ p["w_ih"][:, H:] + p["b"][H:] + (f * h) @ p["w_hh"][:, H:])
        h = (1 - f) * h + f * h_tilde
        outs.append(h)
    return np.stack(outs, 1)


def test_mgu_matches_zhou_equations():
    cell = jaxrnn.MGU(H)
    params = random_params(cell, I, seed=0)
    xs = normal((B, T, I), 1)
    ys, _ = jaxrnn.RNN(cell).apply(params, jnp.asarray(xs))
    np.testing.assert_allclose(ys, _zhou_mgu(xs.astype(np.float64), params), atol=2e-6)


def test_mgu_gate_bias_defaults_lean_towards_keeping_the_state():
    assert float(jaxrnn.MGU(H).init(jax.random.key(0), I)["b"][0]) == -1.0
    assert float(jaxrnn.MGU(H, reset_after=True).init(jax.random.key(0), I)["b"][0]) == 1.0
    assert float(jaxrnn.MGU(H, gate_bias=0.5).init(jax.random.key(0), I)["b"][0]) == 0.5
    with pytest.raises(TypeError, match="gate_bias"):
        jaxrnn.MGU(H, gate_bias="one")


def test_mgu_reset_after_converts_from_flax_mgucell():
    flax_cell = nn.MGUCell(H)
    xs = jnp.asarray(normal((B, T, I), 2))
    # random values (non-zero biases, so b_hn matters) in the tree MGUCell.init builds
    rng = np.random.default_rng(3)
    dense = lambda fan_in, bias: {"kernel": rng.normal(0, 0.5, (fan_in, H)).astype(np.float32)} | (  # noqa: E731
        {"bias": rng.normal(0, 0.5, H).astype(np.float32)} if bias else {}
    )
    variables = {"params": {"cell": {"if": dense(I, True), "hf": dense(H, False), "in": dense(I, True), "hn": dense(H, True)}}}
    ref = nn.RNN(flax_cell).apply(variables, xs)
    cell, params = jaxrnn.interop.from_flax(flax_cell, variables["params"]["cell"])
    assert cell == jaxrnn.MGU(H, reset_after=True)
    ys, _ = jaxrnn.RNN(cell).apply(params, xs)
    np.testing.assert_allclose(ys, ref, atol=2e-6)
    with pytest.raises(NotImplementedError, match="reset_gate"):
        jaxrnn.interop.from_flax(nn.MGUCell(H, reset_gate=False), variables)
