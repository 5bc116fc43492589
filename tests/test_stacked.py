"""`Stacked`: equals hand-chained layers; dropout semantics; residual connections; carries."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn

F, H = 3, 4


def _net(dropout=0.0, residual=False):
    return jaxrnn.Stacked(
        [jaxrnn.Bidirectional(jaxrnn.RNN(jaxrnn.LSTM(H)), merge="sum"), jaxrnn.RNN(jaxrnn.GRU(H)), jaxrnn.RNN(jaxrnn.SimpleRNN(H))],
        dropout=dropout,
        residual=residual,
    )


def test_equals_hand_chained_layers_with_lengths_and_carries():
    net = _net()
    params = net.init(jax.random.key(0), F)
    xs = jax.random.normal(jax.random.key(1), (2, 6, F))
    lengths = jnp.array([6, 3])
    carry = jax.tree.map(lambda c: c + 0.3, net.initial_carry(params, (2,)))
    ys, finals = net.apply(params, xs, lengths=lengths, carry=carry)
    h = xs
    for i, layer in enumerate(net.layers):
        h, final = layer.apply(params[f"layer_{i}"], h, lengths=lengths, carry=carry[i])
        for a, b in zip(jax.tree.leaves(final), jax.tree.leaves(finals[i])):
            np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(ys, h, atol=1e-6)


def test_residual_adds_each_layers_input_after_the_first():
    net = _net(residual=True)
    params = net.init(jax.random.key(0), F)
    xs = jax.random.normal(jax.random.key(1), (2, 5, F))
    ys, _ = net.apply(params, xs)
    h, _ = net.layers[0].apply(params["layer_0"], xs)
    for i in (1, 2):
        out, _ = net.layers[i].apply(params[f"layer_{i}"], h)
        h = out + h
    np.testing.assert_allclose(ys, h, atol=1e-6)


def test_dropout_only_with_a_key_and_reproducible():
    net, plain = _net(dropout=0.5), _net()
    params = net.init(jax.random.key(0), F)
    xs = jax.random.normal(jax.random.key(1), (8, 6, F))
    lengths = jnp.array([6, 5, 4, 3, 2, 1, 6, 6])
    no_key, _ = net.apply(params, xs, lengths=lengths)
    np.testing.assert_array_equal(no_key, plain.apply(params, xs, lengths=lengths)[0])
    a, _ = net.apply(params, xs, lengths=lengths, key=jax.random.key(7))
    b, _ = net.apply(params, xs, lengths=lengths, key=jax.random.key(7))
    c, _ = net.apply(params, xs, lengths=lengths, key=jax.random.key(8))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c) and not np.allclose(a, no_key)
    valid = jaxrnn.sequence_mask(lengths, 6)
    assert np.all(np.asarray(a)[~np.asarray(valid)] == 0.0)


def test_dropout_mask_rate_and_scaling_on_the_first_layer():
    """With the key schedule of `Stacked.apply` (split into 2n keys: n for the layers, n for the
    masks), layer 1 must see layer 0's outputs masked by bernoulli(1 - p) and scaled by 1 / (1 - p)."""
    layer = jaxrnn.RNN(jaxrnn.SimpleRNN(64))
    net = jaxrnn.Stacked([layer, layer], dropout=0.25)
    params = net.init(jax.random.key(0), F)
    xs = jax.random.normal(jax.random.key(1), (16, 20, F))
    key = jax.random.key(3)
    h0, _ = layer.apply(params["layer_0"], xs)
    keep = jax.random.bernoulli(jax.random.split(key, 4)[2], 0.75, h0.shape)
    dropped = jnp.where(keep, h0 / 0.75, 0.0)
    ys, _ = net.apply(params, xs, key=key)
    ys_manual, _ = layer.apply(params["layer_1"], dropped)
    np.testing.assert_allclose(ys, ys_manual, atol=1e-6)
    assert abs(float(jnp.mean(keep)) - 0.75) < 0.02


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_jit_and_grad_through_stacked(dropout):
    net = _net(dropout=dropout)
    params = net.init(jax.random.key(0), F)
    xs = jax.random.normal(jax.random.key(1), (2, 5, F))

    def loss(p):
        return jnp.sum(net.apply(p, xs, key=jax.random.key(2))[0] ** 2)

    g_jit = jax.jit(jax.grad(loss))(params)
    g = jax.grad(loss)(params)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_jit)):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert all(float(jnp.abs(x).sum()) > 0 for x in jax.tree.leaves(g))
