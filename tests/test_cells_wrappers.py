"""`LearnableCarry`: the learned initial carry equals passing that carry by hand, and it trains."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from tests.families_util import normal, random_params

I, H, B, T = 3, 4, 3, 5


def test_untrained_wrapper_equals_the_plain_cell():
    cell = jaxrnn.LSTM(H)
    wrapped = jaxrnn.LearnableCarry(cell)
    params = wrapped.init(jax.random.key(0), I)
    np.testing.assert_array_equal(params["carry"].h, 0.0)
    xs = jnp.asarray(normal((B, T, I)))
    ys, _ = jaxrnn.RNN(wrapped).apply(params, xs)
    ref, _ = jaxrnn.RNN(cell).apply(params["cell"], xs)
    # equal to round-off: the plain LSTM's loop runs one [x, h] GEMM per step on CPU, the wrapper's two
    np.testing.assert_allclose(ys, ref, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("cell", [jaxrnn.LSTM(H, proj_size=2), jaxrnn.GRU(H)], ids=["lstmp", "gru"])
def test_learned_carry_equals_an_explicit_initial_carry_with_lengths(cell):
    wrapped = jaxrnn.LearnableCarry(cell)
    params = random_params(wrapped, I, seed=1)  # a non-zero learned carry
    xs = jnp.asarray(normal((B, T, I), 2))
    lengths = jnp.array([T, 2, 0])
    ys, final = jaxrnn.RNN(wrapped).apply(params, xs, lengths=lengths)
    explicit = jax.tree.map(lambda c: jnp.broadcast_to(c, (B, *c.shape)), params["carry"])
    ref, ref_final = jaxrnn.RNN(cell).apply(params["cell"], xs, lengths=lengths, carry=explicit)
    np.testing.assert_allclose(ys, ref, atol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), final, ref_final)
    # a length-0 sequence returns the learned carry itself
    jax.tree.map(lambda f, c: np.testing.assert_array_equal(f[2], c), final, params["carry"])


def test_learned_carry_gradient_matches_finite_differences_in_bidirectional_stacked():
    layer = jaxrnn.Stacked(
        [jaxrnn.Bidirectional(jaxrnn.RNN(jaxrnn.LearnableCarry(jaxrnn.GRU(H)))), jaxrnn.RNN(jaxrnn.LearnableCarry(jaxrnn.LSTM(H)))]
    )
    params = random_params(layer, I, seed=3)
    xs = jnp.asarray(normal((B, T, I), 4))
    lengths = jnp.array([T, 3, 1])

    def loss(p):
        ys, _ = layer.apply(p, xs, lengths=lengths)
        return jnp.sum(jnp.sin(ys))

    grads = jax.jit(jax.grad(loss))(params)
    loss = jax.jit(loss)
    for path in (("layer_0", "forward"), ("layer_0", "backward")):
        g = grads[path[0]][path[1]]["carry"]
        assert float(jnp.abs(g).max()) > 1e-3  # each direction learns its own carry
    # central differences on the deep layer's learned c, in float32 (loss ~ O(1); eps 1e-2)
    eps = 1e-2
    c = params["layer_1"]["carry"].c
    for j in range(H):
        bump = lambda s: {**params, "layer_1": {**params["layer_1"], "carry": params["layer_1"]["carry"]._replace(c=c.at[j].add(s))}}  # noqa: E731
        fd = (loss(bump(eps)) - loss(bump(-eps))) / (2 * eps)
        np.testing.assert_allclose(grads["layer_1"]["carry"].c[j], fd, rtol=2e-2, atol=2e-4)


def test_learned_carry_for_a_conv_cell_is_per_channel():
    cell = jaxrnn.LearnableCarry(jaxrnn.ConvGRU(2, kernel_size=(3,)))
    params = random_params(cell, 1, seed=5)
    assert params["carry"].shape == (2,)
    xs = jnp.asarray(normal((B, T, 6, 1), 6))
    ys, _ = jaxrnn.RNN(cell).apply(params, xs)
    explicit = jnp.broadcast_to(params["carry"], (B, 6, 2))
    ref, _ = jaxrnn.RNN(cell.cell).apply(params["cell"], xs, carry=explicit)
    np.testing.assert_allclose(ys, ref, atol=1e-6)


def test_bad_wrapper_inputs_name_the_argument():
    with pytest.raises(TypeError, match="'cell'"):
        jaxrnn.LearnableCarry("lstm")
    wrapped = jaxrnn.LearnableCarry(jaxrnn.LSTM(H))
    params = random_params(wrapped, I)
    with pytest.raises(ValueError, match="'params'"):
        jaxrnn.RNN(wrapped).apply(params["cell"], jnp.ones((B, T, I)))
    bad = {**params, "carry": jaxrnn.LSTMState(h=jnp.zeros(H + 1), c=jnp.zeros(H))}
    with pytest.raises(ValueError, match=r"params\['carry'\]"):
        jaxrnn.RNN(wrapped).apply(bad, jnp.ones((B, T, I)))
