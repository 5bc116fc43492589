"""`RNN`: the scan against a step-by-step Python loop, `lengths` semantics, layouts and knobs."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn

F, H = 3, 4
CELLS = {"elman": jaxrnn.SimpleRNN(H), "lstm": jaxrnn.LSTM(H), "gru": jaxrnn.GRU(H)}


def _python_loop(cell, params, xs, carry, lengths=None, reverse=False):
    """Reference: one `cell.step` per time step in a Python loop over each sequence (batch [B, T, F])."""
    ys = np.zeros((xs.shape[0], xs.shape[1], H), np.float32)
    finals = []
    for b in range(xs.shape[0]):
        n = xs.shape[1] if lengths is None else int(lengths[b])
        c = jax.tree.map(lambda a: a[b], carry)
        order = range(n - 1, -1, -1) if reverse else range(n)
        for t in order:
            c, y = cell.step(params, c, xs[b, t])
            ys[b, t] = np.asarray(y)
        finals.append(c)
    return ys, jax.tree.map(lambda *a: jnp.stack(a), *finals)


def _setup(name, batch=3, steps=6, seed=0):
    cell = CELLS[name]
    params = cell.init(jax.random.key(seed), F)
    params = jax.tree.map(lambda a: a + 0.2, params)  # non-trivial biases
    xs = jax.random.normal(jax.random.key(seed + 1), (batch, steps, F))
    return cell, params, xs


def _assert_tree_close(a, b, atol=1e-5):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol)


@pytest.mark.parametrize("name", list(CELLS))
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("jit", [False, True])
def test_scan_matches_python_loop_with_lengths(name, reverse, jit):
    cell, params, xs = _setup(name)
    lengths = jnp.array([6, 4, 1])
    carry = jax.tree.map(lambda c: c + 0.5, cell.initial_carry(params, (3,)))
    layer = jaxrnn.RNN(cell, reverse=reverse)
    apply = jax.jit(layer.apply) if jit else layer.apply
    ys, final = apply(params, xs, lengths=lengths, carry=carry)
    ref_ys, ref_final = _python_loop(cell, params, xs, carry, lengths, reverse)
    np.testing.assert_allclose(ys, ref_ys, atol=1e-5)
    _assert_tree_close(final, ref_final)
    # past each length the outputs are exactly zero
    for b, n in enumerate(lengths):
        assert np.all(np.asarray(ys[b, int(n) :]) == 0.0)


@pytest.mark.parametrize("name", list(CELLS))
@pytest.mark.parametrize("unroll,remat", [(1, False), (3, False), (True, False), (1, True), (4, True)])
def test_unroll_and_remat_do_not_change_values_or_gradients(name, unroll, remat):
    cell, params, xs = _setup(name, steps=7)
    lengths = jnp.array([7, 5, 0])

    def loss(layer, p, x):
        ys, final = layer.apply(p, x, lengths=lengths)
        return jnp.sum(ys**2) + sum(jnp.sum(c) for c in jax.tree.leaves(final))

    base = jax.value_and_grad(lambda p, x: loss(jaxrnn.RNN(cell), p, x), argnums=(0, 1))(params, xs)
    other = jax.jit(jax.value_and_grad(lambda p, x: loss(jaxrnn.RNN(cell, unroll=unroll, remat=remat), p, x), argnums=(0, 1)))(
        params, xs
    )
    _assert_tree_close(base, other, atol=1e-5)


@pytest.mark.parametrize("name", list(CELLS))
def test_length_zero_returns_the_initial_carry_exactly(name):
    cell, params, xs = _setup(name)
    carry = jax.tree.map(lambda c: c + jnp.arange(3.0)[:, None], cell.initial_carry(params, (3,)))
    for reverse in (False, True):
        ys, final = jaxrnn.RNN(cell, reverse=reverse).apply(params, xs, lengths=jnp.array([0, 2, 0]), carry=carry)
        for leaf, init in zip(jax.tree.leaves(final), jax.tree.leaves(carry)):
            np.testing.assert_array_equal(leaf[0], init[0])
            np.testing.assert_array_equal(leaf[2], init[2])
        assert np.all(np.asarray(ys[0]) == 0) and np.all(np.asarray(ys[2]) == 0)


@pytest.mark.parametrize("name", list(CELLS))
def test_final_carry_equals_running_the_unpadded_sequence(name):
    cell, params, xs = _setup(name, batch=2, steps=8)
    lengths = jnp.array([8, 3])
    layer = jaxrnn.RNN(cell)
    ys, final = layer.apply(params, xs, lengths=lengths)
    ys_short, final_short = layer.apply(params, xs[1:, :3])
    np.testing.assert_allclose(ys[1, :3], ys_short[0], atol=1e-6)
    _assert_tree_close(jax.tree.map(lambda c: c[1], final), jax.tree.map(lambda c: c[0], final_short), atol=1e-6)
    # the padding's content must not matter
    garbage = xs.at[1, 3:].set(1e3)
    ys_g, final_g = layer.apply(params, garbage, lengths=lengths)
    np.testing.assert_array_equal(ys_g, ys)
    _assert_tree_close(final_g, final, atol=0)


@pytest.mark.parametrize("name", list(CELLS))
def test_any_number_of_batch_dims(name):
    cell, params, xs = _setup(name, batch=6, steps=5)
    lengths = jnp.array([5, 4, 3, 2, 1, 0])
    layer = jaxrnn.RNN(cell)
    ys, final = layer.apply(params, xs, lengths=lengths)
    ys2, final2 = layer.apply(params, xs.reshape(2, 3, 5, F), lengths=lengths.reshape(2, 3))
    np.testing.assert_allclose(ys2.reshape(6, 5, H), ys, atol=1e-6)
    _assert_tree_close(jax.tree.map(lambda c: c.reshape(6, H), final2), final, atol=1e-6)
    # no batch dim at all
    ys0, final0 = layer.apply(params, xs[0], lengths=jnp.array(5))
    np.testing.assert_allclose(ys0, ys[0], atol=1e-6)
    _assert_tree_close(final0, jax.tree.map(lambda c: c[0], final), atol=1e-6)


@pytest.mark.parametrize("name", list(CELLS))
def test_time_major_equals_batch_major(name):
    cell, params, xs = _setup(name, batch=2, steps=5)
    lengths = jnp.array([5, 2])
    ys, final = jaxrnn.RNN(cell, reverse=True).apply(params, xs, lengths=lengths)
    ys_tm, final_tm = jaxrnn.RNN(cell, reverse=True, time_major=True).apply(
        params, jnp.swapaxes(xs, 0, 1), lengths=lengths
    )
    np.testing.assert_allclose(jnp.swapaxes(ys_tm, 0, 1), ys, atol=1e-6)
    _assert_tree_close(final_tm, final, atol=1e-6)


@pytest.mark.parametrize("name", list(CELLS))
def test_reverse_equals_forward_on_sequences_reversed_within_length(name):
    cell, params, xs = _setup(name, batch=3, steps=6)
    lengths = jnp.array([6, 4, 1])
    ys_rev, final_rev = jaxrnn.RNN(cell, reverse=True).apply(params, xs, lengths=lengths)
    flipped = jaxrnn.reverse_padded(xs, lengths)
    ys_fwd, final_fwd = jaxrnn.RNN(cell).apply(params, flipped, lengths=lengths)
    np.testing.assert_allclose(jaxrnn.reverse_padded(ys_fwd, lengths), ys_rev, atol=1e-6)
    _assert_tree_close(final_fwd, final_rev, atol=1e-6)


def test_reverse_padded_and_sequence_mask():
    xs = jnp.arange(8.0).reshape(2, 4, 1)
    out = jaxrnn.reverse_padded(xs, jnp.array([3, 0]))
    np.testing.assert_array_equal(out[..., 0], [[2, 1, 0, 3], [4, 5, 6, 7]])
    np.testing.assert_array_equal(jaxrnn.reverse_padded(xs, None)[..., 0], [[3, 2, 1, 0], [7, 6, 5, 4]])
    np.testing.assert_array_equal(
        jaxrnn.sequence_mask(jnp.array([2, 0, 3]), 3), [[True, True, False], [False, False, False], [True, True, True]]
    )


def test_probe_zero_is_identity_and_gives_dl_dh():
    """d loss / d probe_t equals the brute-force derivative w.r.t. h_t from splitting the scan at t."""
    cell, params, xs = _setup("lstm", batch=1, steps=5)
    layer = jaxrnn.RNN(cell)
    ys, _ = layer.apply(params, xs)
    zeros = jnp.zeros_like(ys)
    ys_p, _ = layer.apply(params, xs, probe=zeros)
    np.testing.assert_array_equal(ys, ys_p)

    def loss_from_probe(probe):
        out, final = layer.apply(params, xs, probe=probe)
        return jnp.sum(out**2) + jnp.sum(final.c)

    g_probe = jax.grad(loss_from_probe)(zeros)
    t = 2
    head, carry_t = layer.apply(params, xs[:, : t + 1])

    def loss_from_h(h_t):
        c = carry_t._replace(h=h_t)
        tail, final = layer.apply(params, xs[:, t + 1 :], carry=c)
        return jnp.sum(head[:, :t] ** 2) + jnp.sum(h_t**2) + jnp.sum(tail**2) + jnp.sum(final.c)

    np.testing.assert_allclose(g_probe[:, t], jax.grad(loss_from_h)(carry_t.h), atol=1e-6)


@pytest.mark.parametrize(
    "options,remat",
    [
        ({"time_major": True}, True),  # k = 2: three chunks and a short one
        ({"time_major": True, "reverse": True}, 3),
        ({"dropout": 0.3, "recurrent_dropout": 0.2}, 2),
        ({"zoneout": 0.25, "reverse": True}, 5),  # one chunk and a short one, met first
        ({}, 50),  # k > T: one chunk
    ],
    ids=["time-major", "time-major-reverse", "dropouts", "zoneout-reverse", "k-above-T"],
)
def test_remat_chunks_equal_one_scan_in_every_layout(options, remat):
    """remat slices each chunk out of the caller's layout (and runs T mod k steps as a short chunk):
    values and gradients w.r.t. params, inputs, initial carry and the probe match the plain scan,
    with lengths, noise keys and two batch dimensions."""
    cell = jaxrnn.LSTM(H)
    params = jax.tree.map(lambda a: a + 0.1, cell.init(jax.random.key(0), F))
    time_major = options.get("time_major", False)
    shape = (7, 2, 3, F) if time_major else (2, 3, 7, F)
    xs = jax.random.normal(jax.random.key(1), shape)
    probe = jnp.zeros((*shape[:-1], H))
    carry = jax.tree.map(lambda c: c + 0.3, cell.initial_carry(params, (2, 3)))
    lengths = jnp.array([[7, 4, 0], [6, 7, 1]])
    key = jax.random.key(2) if "dropout" in options or "zoneout" in options else None

    def loss(layer, *args):
        ys, final = layer.apply(args[0], args[1], lengths=lengths, carry=args[2], probe=args[3], key=key)
        return jnp.sum(jnp.sin(ys) * ys) + sum(jnp.sum(jnp.cos(c)) for c in jax.tree.leaves(final))

    grads = [
        jax.jit(jax.value_and_grad(functools.partial(loss, layer), argnums=(0, 1, 2, 3)))(params, xs, carry, probe)
        for layer in (jaxrnn.RNN(cell, **options), jaxrnn.RNN(cell, remat=remat, **options))
    ]
    _assert_tree_close(*grads, atol=2e-5)
