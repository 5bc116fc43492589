"""`RNN` dropout (input, recurrent; Gal & Ghahramani 2016) and zoneout (Krueger et al. 2017).

Masks are read back from cells built so that the mask is visible in the outputs (identity kernels,
ReLU), then the stochastic runs are compared with Python loops over the cell's own `recur`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from tests.families_util import normal, random_params

B, T, H = 32, 5, 8
KEY = jax.random.key(42)


def _identity_relu_rnn(w_hh_scale: float, **kwargs) -> tuple[jaxrnn.RNN, dict]:
    """h_t = relu(x_t + s * h_{t-1}) with I = H: masks show up directly in the outputs."""
    layer = jaxrnn.RNN(jaxrnn.SimpleRNN(H, activation="relu"), **kwargs)
    eye = jnp.eye(H)
    return layer, {"w_ih": eye, "w_hh": w_hh_scale * eye, "b": jnp.zeros(H)}


def test_no_key_means_no_dropout():
    cell = jaxrnn.GRU(H)
    params = random_params(cell, 3)
    xs = jnp.asarray(normal((B, T, 3)))
    plain, _ = jaxrnn.RNN(cell).apply(params, xs)
    noisy_layer = jaxrnn.RNN(cell, dropout=0.5, recurrent_dropout=0.5)
    np.testing.assert_array_equal(noisy_layer.apply(params, xs)[0], plain)
    a, _ = noisy_layer.apply(params, xs, key=KEY)
    b, _ = noisy_layer.apply(params, xs, key=KEY)
    np.testing.assert_array_equal(a, b)  # a key is a seed: same key, same masks
    assert float(jnp.abs(a - plain).max()) > 1e-2


def test_input_dropout_is_one_scaled_mask_per_sequence():
    p = 0.25
    layer, params = _identity_relu_rnn(0.0, dropout=p)
    xs = jnp.asarray(np.abs(normal((B, T, H))) + 0.5)
    ys, _ = layer.apply(params, xs, key=KEY)
    ratio = np.asarray(ys / xs)  # y_t = x_t * m
    np.testing.assert_allclose(ratio, np.broadcast_to(ratio[:, :1], ratio.shape), atol=1e-6)  # same mask every step
    values = np.unique(np.round(ratio, 5))
    np.testing.assert_allclose(values, [0.0, 1 / (1 - p)], rtol=1e-5)
    dropped = float((ratio[:, 0] == 0).mean())
    assert abs(dropped - p) < 0.08, dropped  # 256 units: 3 sigma ~ 0.08
    assert len({tuple(r) for r in ratio[:, 0]}) > 1  # each sequence draws its own mask


def test_recurrent_dropout_is_one_scaled_mask_per_sequence_on_h():
    p = 0.5
    layer, params = _identity_relu_rnn(1.0, recurrent_dropout=p)
    ys, _ = layer.apply(params, jnp.ones((B, T, H)), key=KEY)
    ys = np.asarray(ys)
    # h_t = 1 + m * h_{t-1}: a dropped unit stays at 1 for good, a kept one follows 1, 1+s, 1+s+s^2, ...
    mask = ys[:, 1] - 1.0
    s = 1 / (1 - p)
    np.testing.assert_allclose(np.unique(np.round(mask, 5)), [0.0, s], rtol=1e-5)
    expected = np.cumsum(mask[:, None, :] ** np.arange(T)[None, :, None], axis=1)
    np.testing.assert_allclose(ys, expected, rtol=1e-5)


def test_recurrent_mask_hits_the_matmul_not_the_carry_that_flows_on():
    # Masks depend on the key and the hidden shape only, so the identity RNN reveals the GRU's mask.
    p = 0.5
    probe_layer, probe_params = _identity_relu_rnn(1.0, recurrent_dropout=p)
    mask = probe_layer.apply(probe_params, jnp.ones((B, 2, H)), key=KEY)[0][:, 1] - 1.0

    cell = jaxrnn.GRU(H, reset_after=False)
    params = random_params(cell, 3, seed=1)
    xs = jnp.asarray(normal((B, T, 3), 2))
    ys, _ = jaxrnn.RNN(cell, recurrent_dropout=p).apply(params, xs, key=KEY)

    gal = wrong = jnp.zeros((B, H))
    for t in range(T):
        u = cell.project(params, xs[:, t])
        gal, y = cell.recur(params, gal, u, recurrent_mask=mask)
        np.testing.assert_allclose(ys[:, t], y, atol=2e-6)
        wrong, _ = cell.recur(params, wrong * mask, u)  # masking the carry itself is a different model
    assert float(jnp.abs(ys[:, -1] - wrong).max()) > 1e-2


def test_zoneout_at_inference_is_the_expectation():
    rate = 0.3
    cell = jaxrnn.GRU(H)
    params = random_params(cell, 3, seed=3)
    xs = jnp.asarray(normal((B, T, 3), 4))
    ys, h_final = jaxrnn.RNN(cell, zoneout=rate).apply(params, xs)
    h = jnp.zeros((B, H))
    for t in range(T):
        new, _ = cell.step(params, h, xs[:, t])
        h = rate * h + (1 - rate) * new
        np.testing.assert_allclose(ys[:, t], h, atol=2e-6)
    np.testing.assert_allclose(h_final, h, atol=2e-6)


def test_zoneout_in_training_keeps_random_units_per_step():
    rate = 0.3
    cell = jaxrnn.GRU(H)
    params = random_params(cell, 3, seed=5)
    xs = jnp.asarray(normal((B, T, 3), 6))
    ys = np.asarray(jaxrnn.RNN(cell, zoneout=rate).apply(params, xs, key=KEY)[0])
    prev = np.zeros((B, H), np.float32)
    kept = []
    for t in range(T):
        fresh = np.asarray(cell.step(params, jnp.asarray(prev), xs[:, t])[0])
        is_old, is_new = np.isclose(ys[:, t], prev, atol=1e-6), np.isclose(ys[:, t], fresh, atol=1e-6)
        assert np.all(is_old | is_new)  # every unit is either its previous value or its update
        kept.append(is_old & ~is_new)
        prev = ys[:, t]
    kept = np.stack(kept[1:])  # from t=1 on (h_0 = 0 and the first update can coincide less clearly)
    assert abs(kept.mean() - rate) < 0.05, kept.mean()  # 1024 draws: 3 sigma ~ 0.043
    assert (kept.any(0) & ~kept.all(0)).mean() > 0.5  # masks change from step to step


def test_lstm_zoneout_per_carry_leaf_follows_krueger():
    cell = jaxrnn.LSTM(H)
    params = random_params(cell, 3, seed=7)
    xs = jnp.asarray(normal((4, T, 3), 8))
    rates = jaxrnn.LSTMState(h=0.1, c=0.5)
    ys, final = jaxrnn.RNN(cell, zoneout=rates).apply(params, xs)
    state = cell.initial_carry(params, (4,))
    for t in range(T):
        new, _ = cell.step(params, state, xs[:, t])  # h_t from the un-zoned c_t, as in the paper's eq.
        state = jaxrnn.LSTMState(h=0.1 * state.h + 0.9 * new.h, c=0.5 * state.c + 0.5 * new.c)
        np.testing.assert_allclose(ys[:, t], state.h, atol=2e-6)
    np.testing.assert_allclose(final.c, state.c, atol=2e-6)


def test_noise_with_lengths_and_stacked_keys():
    cell = jaxrnn.GRU(H)
    layer = jaxrnn.Stacked([jaxrnn.RNN(cell, recurrent_dropout=0.3, zoneout=0.2)] * 2)
    params = random_params(layer, 3, seed=9)
    xs = jnp.asarray(normal((2, T, 3), 10))
    ys, _ = layer.apply(params, xs, lengths=jnp.array([T, 2]))
    short, _ = layer.apply(params, xs[1:, :2])
    np.testing.assert_allclose(ys[1, :2], short[0], atol=1e-6)  # inference: padding changes nothing
    noisy, _ = layer.apply(params, xs, lengths=jnp.array([T, 2]), key=KEY)
    np.testing.assert_array_equal(noisy[1, 2:], 0.0)
    assert float(jnp.abs(noisy - ys).max()) > 1e-3


def test_bad_noise_config_names_the_argument():
    with pytest.raises(ValueError, match="'dropout'"):
        jaxrnn.RNN(jaxrnn.GRU(H), dropout=1.0)
    with pytest.raises(ValueError, match="'recurrent_dropout'"):
        jaxrnn.RNN(jaxrnn.GRU(H), recurrent_dropout=-0.1)
    with pytest.raises(ValueError, match="'zoneout'"):
        jaxrnn.RNN(jaxrnn.GRU(H), zoneout="0.1")
    layer = jaxrnn.RNN(jaxrnn.GRU(H), zoneout=jaxrnn.LSTMState(h=0.1, c=0.1))
    with pytest.raises(ValueError, match="'zoneout'.*structure"):
        layer.apply(random_params(layer, 3), jnp.ones((2, T, 3)))
    with pytest.raises(TypeError, match="'key'"):
        jaxrnn.RNN(jaxrnn.GRU(H), dropout=0.1).apply(random_params(jaxrnn.GRU(H), 3), jnp.ones((2, T, 3)), key=3)
