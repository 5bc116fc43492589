"""The three classic cells against their equations (float64 NumPy), their initialisers and check_grads."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxrnn

I, H, B = 4, 5, 3


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _random_params(cell: jaxrnn.Cell, key: jax.Array) -> dict:
    # Non-zero biases so the equations' bias terms are observable.
    params = cell.init(key, I)
    keys = jax.random.split(jax.random.fold_in(key, 1), len(params))
    return {k: v + 0.3 * jax.random.normal(kk, v.shape, v.dtype) for (k, v), kk in zip(params.items(), keys)}


def _reference_step(cell: jaxrnn.Cell, p: dict, carry, x: np.ndarray):
    """One step written out from the papers / PyTorch docs, in float64 NumPy."""
    p = {k: np.asarray(v, np.float64) for k, v in p.items()}
    x = np.asarray(x, np.float64)
    if isinstance(cell, jaxrnn.LSTM):
        h, c = (np.asarray(a, np.float64) for a in carry)
        W_i, W_h, b = p["w_ih"], p["w_hh"], p["b"]
        gate = lambda k: x @ W_i[:, k * H : (k + 1) * H] + h @ W_h[:, k * H : (k + 1) * H] + b[k * H : (k + 1) * H]  # noqa: E731
        i, f, g, o = _sigmoid(gate(0)), _sigmoid(gate(1)), np.tanh(gate(2)), _sigmoid(gate(3))
        c_new = f * c + i * g
        h_new = o * np.tanh(c_new)
        return (h_new, c_new), h_new
    h = np.asarray(carry, np.float64)
    if isinstance(cell, jaxrnn.GRU):
        W_i, W_h = p["w_ih"], p["w_hh"]
        sl = lambda k: slice(k * H, (k + 1) * H)  # noqa: E731
        r = _sigmoid(x @ W_i[:, sl(0)] + p["b"][sl(0)] + h @ W_h[:, sl(0)])
        z = _sigmoid(x @ W_i[:, sl(1)] + p["b"][sl(1)] + h @ W_h[:, sl(1)])
        n = np.tanh(x @ W_i[:, sl(2)] + p["b"][sl(2)] + r * (h @ W_h[:, sl(2)] + p["b_hn"]))
        h_new = (1 - z) * n + z * h
        return h_new, h_new
    pre = x @ p["w_ih"] + p["b"] + h @ p["w_hh"]
    h_new = np.tanh(pre) if cell.activation == "tanh" else np.maximum(pre, 0.0)
    return h_new, h_new


CELLS = [jaxrnn.SimpleRNN(H), jaxrnn.SimpleRNN(H, activation="relu"), jaxrnn.LSTM(H), jaxrnn.GRU(H)]
IDS = ["elman-tanh", "elman-relu", "lstm", "gru"]


def _random_carry(cell: jaxrnn.Cell, params: dict, key: jax.Array):
    zeros = cell.initial_carry(params, (B,))
    leaves, tree = jax.tree.flatten(zeros)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(tree, [jax.random.normal(k, z.shape, z.dtype) for k, z in zip(keys, leaves)])


@pytest.mark.parametrize("cell", CELLS, ids=IDS)
def test_step_matches_written_out_equations(cell: jaxrnn.Cell) -> None:
    params = _random_params(cell, jax.random.key(0))
    carry = _random_carry(cell, params, jax.random.key(1))
    x = jax.random.normal(jax.random.key(2), (B, I))
    new_carry, y = cell.step(params, carry, x)
    ref_carry, ref_y = _reference_step(cell, params, carry, np.asarray(x))
    np.testing.assert_allclose(y, ref_y, rtol=1e-5, atol=1e-6)
    for a, b in zip(jax.tree.leaves(new_carry), jax.tree.leaves(ref_carry)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # project/recur split is exactly the step
    c2, y2 = cell.recur(params, carry, cell.project(params, x))
    np.testing.assert_array_equal(y, y2)


@pytest.mark.parametrize("cell", CELLS, ids=IDS)
def test_step_without_bias_matches_equations(cell: jaxrnn.Cell) -> None:
    cell = dataclasses.replace(cell, use_bias=False)
    params = _random_params(cell, jax.random.key(3))
    assert "b" not in params and "b_hn" not in params
    carry = _random_carry(cell, params, jax.random.key(4))
    x = jax.random.normal(jax.random.key(5), (B, I))
    zero_bias = {**params, "b": np.zeros(cell.num_blocks * H)}
    if isinstance(cell, jaxrnn.GRU):
        zero_bias["b_hn"] = np.zeros(H)
    _, y = cell.step(params, carry, x)
    _, ref_y = _reference_step(cell, zero_bias, carry, np.asarray(x))
    np.testing.assert_allclose(y, ref_y, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", CELLS, ids=IDS)
def test_check_grads_through_a_step(cell: jaxrnn.Cell) -> None:
    with jax.enable_x64(True):
        cell = dataclasses.replace(cell, dtype=jnp.float64)
        params = _random_params(cell, jax.random.key(6))
        carry = _random_carry(cell, params, jax.random.key(7))
        x = jax.random.normal(jax.random.key(8), (B, I), jnp.float64)
        if cell == jaxrnn.SimpleRNN(H, activation="relu", dtype=jnp.float64):
            x = x + 0.123  # stay away from relu's kink where finite differences are meaningless

        @jax.jit
        def f(params, carry, x):
            new_carry, y = cell.step(params, carry, x)
            return y, new_carry

        check_grads(f, (params, carry, x), order=1, modes=("fwd", "rev"), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("cell", CELLS, ids=IDS)
@pytest.mark.parametrize("fused", [True, False], ids=["fused-backward", "autodiff"])
def test_check_grads_through_a_layer_with_lengths(cell: jaxrnn.Cell, fused: bool) -> None:
    """Reverse mode (to second order) through the fused custom VJP; forward and reverse mode through
    plain autodiff (a custom VJP has no forward mode: `fused_backward=False` is the switch for jvp)."""
    with jax.enable_x64(True):
        layer = jaxrnn.RNN(dataclasses.replace(cell, dtype=jnp.float64), fused_backward=fused)
        params = jax.tree.map(lambda a: a + 0.1, layer.init(jax.random.key(9), I))
        xs = jax.random.normal(jax.random.key(10), (2, 5, I), jnp.float64) + 0.05
        lengths = jnp.array([5, 3])
        f = jax.jit(lambda p, x: layer.apply(p, x, lengths=lengths)[0])
        if fused:
            check_grads(f, (params, xs), order=2, modes=("rev",), atol=1e-6, rtol=1e-6)
        else:
            check_grads(f, (params, xs), order=1, modes=("fwd", "rev"), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("cell", CELLS, ids=IDS)
def test_default_initialisation(cell: jaxrnn.Cell) -> None:
    params = cell.init(jax.random.key(0), 64)
    G = cell.num_blocks
    assert params["w_ih"].shape == (64, G * H) and params["w_hh"].shape == (H, G * H)
    for k in range(G):
        block = np.asarray(params["w_hh"][:, k * H : (k + 1) * H], np.float64)
        np.testing.assert_allclose(block.T @ block, np.eye(H), atol=1e-5)  # orthogonal
        w = np.asarray(params["w_ih"][:, k * H : (k + 1) * H])
        limit = np.sqrt(6.0 / (64 + H))  # Glorot uniform bound per gate
        assert np.abs(w).max() <= limit and np.abs(w).max() > 0.8 * limit
    expected_bias = np.zeros(G * H)
    if isinstance(cell, jaxrnn.LSTM):
        expected_bias[H : 2 * H] = 1.0
    np.testing.assert_array_equal(params["b"], expected_bias)


def test_forget_bias_and_dtype_options() -> None:
    params = jaxrnn.LSTM(3, forget_bias=2.5, dtype=jnp.bfloat16).init(jax.random.key(0), 2)
    assert all(v.dtype == jnp.bfloat16 for v in params.values())
    np.testing.assert_array_equal(np.asarray(params["b"], np.float32), [0, 0, 0, 2.5, 2.5, 2.5, 0, 0, 0, 0, 0, 0])
    carry = jaxrnn.LSTM(3, dtype=jnp.bfloat16).initial_carry(params, (2, 4))
    assert carry.h.shape == (2, 4, 3) and carry.c.dtype == jnp.bfloat16


def test_cells_are_immutable_hashable_configs() -> None:
    assert jaxrnn.LSTM(8) == jaxrnn.LSTM(8) and hash(jaxrnn.LSTM(8)) == hash(jaxrnn.LSTM(8))
    assert jaxrnn.GRU(8) != jaxrnn.GRU(9)
    with pytest.raises(dataclasses.FrozenInstanceError):
        jaxrnn.GRU(8).hidden_size = 3  # type: ignore[misc]
    # hashable configs can be static arguments of jit
    f = jax.jit(lambda cell, p, c, x: cell.step(p, c, x), static_argnums=0)
    cell = jaxrnn.GRU(4)
    p = cell.init(jax.random.key(0), 2)
    _, y = f(cell, p, cell.initial_carry(p, (1,)), jnp.ones((1, 2)))
    _, y_eager = cell.step(p, cell.initial_carry(p, (1,)), jnp.ones((1, 2)))
    np.testing.assert_allclose(y, y_eager, atol=1e-7)


@pytest.mark.parametrize("cell", CELLS, ids=IDS)
def test_step_accepts_any_batch_dims(cell: jaxrnn.Cell) -> None:
    params = _random_params(cell, jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (2, 3, I))
    carry = _random_carry(cell, params, jax.random.key(2))
    carry = jax.tree.map(lambda c: jnp.broadcast_to(c[:1], (2, 3, H)) * jnp.arange(1, 4)[:, None], carry)
    new_carry, y = cell.step(params, carry, x)
    flat_carry, flat_y = cell.step(params, jax.tree.map(lambda c: c.reshape(6, H), carry), x.reshape(6, I))
    np.testing.assert_allclose(y.reshape(6, H), flat_y, atol=1e-6)
    # unbatched
    _, y0 = cell.step(params, jax.tree.map(lambda c: c[0, 0], carry), x[0, 0])
    np.testing.assert_allclose(y0, y[0, 0], atol=1e-6)
