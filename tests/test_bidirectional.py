"""`Bidirectional`: each padded sequence equals its own unpadded run; merges; composition."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn

F, H = 3, 4


@pytest.mark.parametrize("cell", [jaxrnn.LSTM(H), jaxrnn.GRU(H), jaxrnn.SimpleRNN(H)], ids=["lstm", "gru", "elman"])
def test_padded_batch_equals_each_sequence_alone(cell):
    layer = jaxrnn.Bidirectional(jaxrnn.RNN(cell))
    params = layer.init(jax.random.key(0), F)
    xs = jax.random.normal(jax.random.key(1), (3, 7, F))
    lengths = jnp.array([7, 4, 2])
    ys, (c_f, c_b) = jax.jit(layer.apply)(params, xs, lengths=lengths)
    for b, n in enumerate(np.asarray(lengths)):
        ys_b, (cf_b, cb_b) = layer.apply(params, xs[b, :n])  # unbatched, unpadded
        np.testing.assert_allclose(ys[b, :n], ys_b, atol=1e-6)
        assert np.all(np.asarray(ys[b, n:]) == 0.0)
        for got, want in zip(jax.tree.leaves((c_f, c_b)), jax.tree.leaves((cf_b, cb_b))):
            np.testing.assert_allclose(got[b], want, atol=1e-6)


def test_backward_half_is_the_reversed_sequence():
    """The backward half at step t has read x[n-1], ..., x[t] (brute force, one sequence)."""
    cell = jaxrnn.GRU(H)
    layer = jaxrnn.Bidirectional(jaxrnn.RNN(cell))
    params = layer.init(jax.random.key(0), F)
    xs = jax.random.normal(jax.random.key(1), (6, F))
    ys, _ = layer.apply(params, xs[None], lengths=jnp.array([4]))
    p_b = params["backward"]
    h = cell.initial_carry(p_b)
    expected = {}
    for t in range(3, -1, -1):
        h, y = cell.step(p_b, h, xs[t])
        expected[t] = y
    for t in range(4):
        np.testing.assert_allclose(ys[0, t, H:], expected[t], atol=1e-6)


@pytest.mark.parametrize("merge", ["concat", "sum", "mean", "mul"])
def test_merges(merge):
    fwd = jaxrnn.RNN(jaxrnn.LSTM(H))
    layer = jaxrnn.Bidirectional(fwd, merge=merge)
    params = layer.init(jax.random.key(0), F)
    xs = jax.random.normal(jax.random.key(1), (2, 5, F))
    ys, _ = layer.apply(params, xs)
    a, _ = fwd.apply(params["forward"], xs)
    b, _ = dataclasses.replace(fwd, reverse=True).apply(params["backward"], xs)
    expected = {"concat": jnp.concatenate([a, b], -1), "sum": a + b, "mean": (a + b) / 2, "mul": a * b}[merge]
    np.testing.assert_allclose(ys, expected, atol=1e-6)
    assert ys.shape[-1] == layer.output_size


def test_default_backward_copies_config_with_its_own_params():
    layer = jaxrnn.Bidirectional(jaxrnn.RNN(jaxrnn.GRU(H), unroll=2))
    assert layer.backward.reverse and layer.backward.unroll == 2 and layer.backward.cell == jaxrnn.GRU(H)
    params = layer.init(jax.random.key(0), F)
    assert not np.allclose(params["forward"]["w_hh"], params["backward"]["w_hh"])


def test_different_cells_each_way():
    layer = jaxrnn.Bidirectional(jaxrnn.RNN(jaxrnn.LSTM(3)), jaxrnn.RNN(jaxrnn.GRU(5)))
    params = layer.init(jax.random.key(0), F)
    ys, (cf, cb) = layer.apply(params, jnp.ones((2, 4, F)))
    assert ys.shape == (2, 4, 8) and isinstance(cf, jaxrnn.LSTMState) and cb.shape == (2, 5)
    a, _ = jaxrnn.RNN(jaxrnn.LSTM(3)).apply(params["forward"], jnp.ones((2, 4, F)))
    np.testing.assert_allclose(ys[..., :3], a, atol=1e-6)


@pytest.mark.parametrize("cell", [jaxrnn.LSTM(H), jaxrnn.GRU(H), jaxrnn.SimpleRNN(H)], ids=["lstm", "gru", "elman"])
def test_fused_directions_equal_two_scans(cell):
    """fuse_directions=True (one vmapped scan) gives the same outputs, carries and gradients,
    with lengths, initial carries, probes and dropout keys."""
    rnn = jaxrnn.RNN(cell, dropout=0.2, recurrent_dropout=0.2)
    two, one = jaxrnn.Bidirectional(rnn), jaxrnn.Bidirectional(rnn, fuse_directions=True)
    params = two.init(jax.random.key(0), F)
    xs = jax.random.normal(jax.random.key(1), (3, 7, F))
    lengths = jnp.array([7, 4, 0])
    carry = jax.tree.map(lambda c: c + 0.2, two.initial_carry(params, (3,)))
    probe = (jnp.zeros((3, 7, H)), jnp.zeros((3, 7, H)))

    def loss(layer, p, x, pr, key):
        ys, finals = layer.apply(p, x, lengths=lengths, carry=carry, probe=pr, key=key)
        return jnp.sum(ys * jnp.sin(ys)) + sum(jnp.sum(leaf) for leaf in jax.tree.leaves(finals)), (ys, finals)

    for key in (None, jax.random.key(5)):
        (v2, aux2), g2 = jax.value_and_grad(lambda *a: loss(two, *a, key), argnums=(0, 1, 2), has_aux=True)(params, xs, probe)
        (v1, aux1), g1 = jax.value_and_grad(lambda *a: loss(one, *a, key), argnums=(0, 1, 2), has_aux=True)(params, xs, probe)
        for a, b in zip(jax.tree.leaves((aux1, g1)), jax.tree.leaves((aux2, g2))):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_fused_directions_need_one_shared_config():
    with pytest.raises(ValueError, match="fuse_directions=True needs"):
        jaxrnn.Bidirectional(jaxrnn.RNN(jaxrnn.LSTM(3)), jaxrnn.RNN(jaxrnn.GRU(3)), fuse_directions=True)


def test_fuse_directions_none_follows_the_backend_where_results_stay_the_same(monkeypatch):
    """fuse_directions=None fuses where the backend gains from it (GPU / TPU) and only for configs
    whose results one scan reproduces exactly; True / False are kept as given."""
    from jaxrnn.layers import bidirectional

    plain = jaxrnn.RNN(jaxrnn.LSTM(H))
    assert jaxrnn.Bidirectional(plain).runs_in_one_scan() is (jax.default_backend() != "cpu")
    assert jaxrnn.Bidirectional(plain, fuse_directions=True).runs_in_one_scan()
    assert not jaxrnn.Bidirectional(plain, fuse_directions=False).runs_in_one_scan()

    monkeypatch.setattr(bidirectional, "default_fuse_directions", lambda: True)
    assert jaxrnn.Bidirectional(plain).runs_in_one_scan()
    assert jaxrnn.Bidirectional(jaxrnn.RNN(jaxrnn.LSTM(H), dropout=0.1)).runs_in_one_scan()
    for unfusable in (
        jaxrnn.Bidirectional(plain, jaxrnn.RNN(jaxrnn.GRU(H))),  # two configs
        jaxrnn.Bidirectional(jaxrnn.RNN(jaxrnn.LSTM(H), zoneout=0.1)),  # per-step masks would be reordered
        jaxrnn.Bidirectional(jaxrnn.RNN(jaxrnn.LSTM(H), time_major=True)),
        jaxrnn.Bidirectional(jaxrnn.RNN(jaxrnn.GRU(H), method="deer")),
    ):
        assert not unfusable.runs_in_one_scan()

    # the auto-fused layer gives what two scans give (outputs and gradients)
    auto, two = jaxrnn.Bidirectional(plain), jaxrnn.Bidirectional(plain, fuse_directions=False)
    params = two.init(jax.random.key(0), F)
    xs = jax.random.normal(jax.random.key(1), (2, 6, F))
    lengths = jnp.array([6, 3])
    loss = lambda layer, p: jnp.sum(jnp.sin(layer.apply(p, xs, lengths=lengths)[0]))  # noqa: E731
    for a, b in zip(jax.tree.leaves(jax.value_and_grad(lambda p: loss(auto, p))(params)),
                    jax.tree.leaves(jax.value_and_grad(lambda p: loss(two, p))(params))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_fuse_directions_must_be_none_or_bool():
    with pytest.raises(TypeError, match="'fuse_directions' must be None or a bool, got 1"):
        jaxrnn.Bidirectional(jaxrnn.RNN(jaxrnn.LSTM(H)), fuse_directions=1)
