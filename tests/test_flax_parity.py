"""Exact parity with Flax linen cells and `nn.RNN` / `nn.Bidirectional` on converted parameters."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

import jaxrnn
from jaxrnn.interop import carry_from_flax, carry_to_flax, from_flax

FLAX_CELLS = {
    "LSTMCell": lambda h: nn.LSTMCell(h),
    "OptimizedLSTMCell": lambda h: nn.OptimizedLSTMCell(h),
    "GRUCell": lambda h: nn.GRUCell(h),
    "SimpleCell": lambda h: nn.SimpleCell(h),
    "SimpleCell-relu": lambda h: nn.SimpleCell(h, activation_fn=jax.nn.relu),
}
B, T, F, H = 3, 6, 4, 5


def _randomise(variables: dict, key: jax.Array) -> dict:
    # Flax initialises biases to zero: random ones make the bias mapping observable.
    leaves, tree = jax.tree.flatten(variables)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(tree, [jax.random.normal(k, v.shape, v.dtype) * 0.5 for k, v in zip(keys, leaves)])


def _setup(name: str):
    flax_cell = FLAX_CELLS[name](H)
    xs = jax.random.normal(jax.random.key(0), (B, T, F))
    rnn = nn.RNN(flax_cell)
    variables = _randomise(rnn.init(jax.random.key(1), xs), jax.random.key(2))
    cell, params = from_flax(flax_cell, variables["params"]["cell"])
    return flax_cell, rnn, variables, cell, params, xs


@pytest.mark.parametrize("name", list(FLAX_CELLS))
def test_single_step_matches(name: str) -> None:
    flax_cell = FLAX_CELLS[name](H)
    x = jax.random.normal(jax.random.key(0), (B, F))
    carry0 = flax_cell.initialize_carry(jax.random.key(1), x.shape)
    variables = _randomise(flax_cell.init(jax.random.key(1), carry0, x), jax.random.key(3))
    carry0 = jax.tree.map(lambda c: jax.random.normal(jax.random.key(4), c.shape), carry0)
    flax_carry, flax_y = flax_cell.apply(variables, carry0, x)
    cell, params = from_flax(flax_cell, variables)
    carry, y = cell.step(params, carry_from_flax(cell, carry0), x)
    np.testing.assert_allclose(y, flax_y, atol=1e-6)
    for a, b in zip(jax.tree.leaves(carry_to_flax(cell, carry)), jax.tree.leaves(flax_carry)):
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("name", list(FLAX_CELLS))
@pytest.mark.parametrize("reverse", [False, True])
def test_rnn_outputs_carry_and_gradients_padded(name: str, reverse: bool) -> None:
    flax_cell, _, variables, cell, params, xs = _setup(name)
    rnn = nn.RNN(flax_cell, return_carry=True, reverse=reverse, keep_order=True)
    lengths = jnp.array([T, 3, 1])
    valid = jaxrnn.sequence_mask(lengths, T)[..., None]
    w = jax.random.normal(jax.random.key(5), (B, T, H))

    def flax_loss(v, xs):
        carry, ys = rnn.apply(v, xs, seq_lengths=lengths)
        # Flax leaves padded outputs unzeroed: compare on the valid steps only.
        return jnp.sum(jnp.where(valid, ys, 0) * w) + jnp.sum(jax.tree.leaves(carry)[0]), (carry, ys)

    layer = jaxrnn.RNN(cell, reverse=reverse)

    def ours_loss(p, xs):
        ys, carry = layer.apply(p, xs, lengths=lengths)
        flax_carry = carry_to_flax(cell, carry)
        return jnp.sum(ys * w) + jnp.sum(jax.tree.leaves(flax_carry)[0]), (flax_carry, ys)

    (lf, (cf, yf)), (gvf, gxf) = jax.jit(jax.value_and_grad(flax_loss, argnums=(0, 1), has_aux=True))(variables, xs)
    (lo, (co, yo)), (gpo, gxo) = jax.jit(jax.value_and_grad(ours_loss, argnums=(0, 1), has_aux=True))(params, xs)
    np.testing.assert_allclose(yo, jnp.where(valid, yf, 0), atol=1e-6)
    for a, b in zip(jax.tree.leaves(co), jax.tree.leaves(cf)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(lo, lf, atol=1e-5)
    np.testing.assert_allclose(gxo, gxf, atol=1e-5)
    # The Flax -> jaxrnn map is a concatenation (no sums), so it maps gradients too.
    _, expected = from_flax(flax_cell, gvf["params"]["cell"])
    for k in params:
        np.testing.assert_allclose(gpo[k], expected[k], atol=1e-5, err_msg=k)


@pytest.mark.parametrize("name", ["LSTMCell", "GRUCell"])
def test_bidirectional_padded_matches_flax(name: str) -> None:
    flax_f, flax_b = FLAX_CELLS[name](H), FLAX_CELLS[name](H)
    xs = jax.random.normal(jax.random.key(0), (B, T, F))
    lengths = jnp.array([2, T, 4])
    bi = nn.Bidirectional(nn.RNN(flax_f), nn.RNN(flax_b))
    variables = _randomise(bi.init(jax.random.key(1), xs, seq_lengths=lengths), jax.random.key(2))
    ys_flax = bi.apply(variables, xs, seq_lengths=lengths)
    cell_f, p_f = from_flax(flax_f, variables["params"]["forward_rnn"]["cell"])
    cell_b, p_b = from_flax(flax_b, variables["params"]["backward_rnn"]["cell"])
    layer = jaxrnn.Bidirectional(jaxrnn.RNN(cell_f), jaxrnn.RNN(cell_b))
    ys, _ = layer.apply({"forward": p_f, "backward": p_b}, xs, lengths=lengths)
    valid = jaxrnn.sequence_mask(lengths, T)[..., None]
    np.testing.assert_allclose(ys, jnp.where(valid, ys_flax, 0), atol=1e-6)


def test_unsupported_flax_options_are_rejected() -> None:
    with pytest.raises(NotImplementedError, match="residual"):
        from_flax(nn.SimpleCell(3, residual=True), {"i": {}, "h": {}})
    with pytest.raises(TypeError, match="'module'"):
        from_flax(nn.Dense(3), {"kernel": jnp.ones((2, 3))})
    with pytest.raises(ValueError, match="'params'"):
        from_flax(nn.GRUCell(3), {k: {"kernel": jnp.ones((2, 3)), "bias": jnp.ones(3)} for k in ["ir", "iz", "in", "hr", "hz", "hn"]})
