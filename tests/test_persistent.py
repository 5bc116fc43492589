"""The persistent Pallas LSTM kernel equals the `lax.scan` recurrence, alone and inside `jaxrnn.RNN`.

On CPU the kernel runs in Pallas's interpreter, where the grid runs serially, so with one program
(``block_units = H``); its grid-wide synchronisation between many resident programs is only exercised
by the GPU tests at the end (skipped without a CUDA GPU).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn.cells.lstm import lstm_update
from jaxrnn.kernels import persistent_lstm, persistent_lstm_fits
from jaxrnn.kernels.persistent_lstm import _swap_column_blocks, padded_batch
from jaxrnn.layers import fused as fused_module
from jaxrnn.layers import rnn as rnn_module

ON_GPU = jax.default_backend() == "gpu"


def _scan_reference(xp, w, h0, c0):
    """The LSTM recurrence as `jaxrnn.LSTM` computes it: hh rounded to the dtype, then the gates."""

    def body(carry, u):
        h, c = carry
        z = u + jnp.matmul(h, w, preferred_element_type=jnp.float32).astype(w.dtype)
        c, h = lstm_update(z, c)
        return (h, c), (h, z, c)

    (_, c_last), (hs, zs, cs) = jax.lax.scan(body, (h0, c0), xp)
    return hs, c_last, zs, cs


def _data(steps, batch, hidden, dtype, seed=0):
    k = jax.random.split(jax.random.key(seed), 4)
    xp = jax.random.normal(k[0], (steps, batch, 4 * hidden)).astype(dtype)
    w = (jax.random.normal(k[1], (hidden, 4 * hidden)) / np.sqrt(hidden)).astype(dtype)
    h0 = (0.5 * jax.random.normal(k[2], (batch, hidden))).astype(dtype)
    c0 = jax.random.normal(k[3], (batch, hidden)).astype(dtype)
    return xp, w, h0, c0


def _max_diff(a, b):
    return float(jnp.max(jnp.abs(a.astype(jnp.float32) - b.astype(jnp.float32))))


@pytest.mark.parametrize("sync", ["sentinel", "counter"])
@pytest.mark.parametrize("dtype, tol", [(jnp.float32, 1e-6), (jnp.bfloat16, 2 ** -6)])
def test_kernel_matches_the_scan_recurrence(sync, dtype, tol):
    xp, w, h0, c0 = _data(7, 3, 32, dtype)  # 3 rows: padded to 16 inside
    got = persistent_lstm(xp, w, h0, c0, save_residuals=True, block_units=32, sync=sync, interpret=True)
    want = _scan_reference(xp, w, h0, c0)
    assert [g.shape for g in got] == [(7, 3, 32), (3, 32), (7, 3, 128), (7, 3, 32)]
    for g, r in zip(got, want):
        assert g.dtype == dtype
        assert _max_diff(g, r) <= tol  # bfloat16: one ulp of values in [1, 2) at most


@pytest.mark.parametrize("resident", [True, False])
def test_kernel_options_change_nothing_but_speed(resident):
    xp, w, h0, c0 = _data(5, 16, 32, jnp.float32, seed=1)
    base = persistent_lstm(xp, w, h0, c0, block_units=32, interpret=True)
    other = persistent_lstm(xp, w, h0, c0, block_units=32, resident_weights=resident, prefetch=True, chunk=16, interpret=True)
    for a, b in zip(base, other):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_kernel_under_vmap_runs_each_entry_on_its_own():
    xp, w, h0, c0 = _data(4, 2, 32, jnp.float32, seed=2)
    xps = jnp.stack([xp, -xp])
    ws = jnp.stack([w, 0.5 * w])
    hs, c_last = jax.vmap(lambda x, w_: persistent_lstm(x, w_, h0, c0, block_units=32, interpret=True))(xps, ws)
    for i in range(2):
        want = _scan_reference(xps[i], ws[i], h0, c0)
        np.testing.assert_allclose(hs[i], want[0], atol=1e-6)
        np.testing.assert_allclose(c_last[i], want[1], atol=1e-6)


def test_columns_are_packed_per_program_and_back():
    hidden, units = 48, 16
    cols = jnp.arange(4 * hidden)[None]
    packed = _swap_column_blocks(cols, 4, units)
    # program 0 first holds its units of i, then of f, g, o
    np.testing.assert_array_equal(packed[0, : 4 * units : units], [0, hidden, 2 * hidden, 3 * hidden])
    np.testing.assert_array_equal(_swap_column_blocks(packed, hidden // units, units), cols)


def test_fits_and_padding():
    assert padded_batch(1) == 16 and padded_batch(16) == 16 and padded_batch(17) == 32
    assert persistent_lstm_fits(16, 768, processors=132)
    assert not persistent_lstm_fits(16, 768 * 4, processors=132)  # 192 programs
    assert not persistent_lstm_fits(16, 40, processors=132)  # not a multiple of 16


def test_bad_arguments_are_named():
    xp, w, h0, c0 = _data(3, 2, 32, jnp.float32)
    with pytest.raises(ValueError, match="'w_hh'"):
        persistent_lstm(xp, w[:, :64], h0, c0, interpret=True)
    with pytest.raises(ValueError, match="'block_units'"):
        persistent_lstm(xp, w, h0, c0, block_units=24, interpret=True)
    with pytest.raises(ValueError, match="'c0'"):
        persistent_lstm(xp, w, h0, c0[:1], interpret=True)
    with pytest.raises(ValueError, match="'sync'"):
        persistent_lstm(xp, w, h0, c0, sync="spin", interpret=True)


# ---- inside jaxrnn.RNN: the interpreter stands in for the GPU -----------------------------------------


@pytest.fixture
def interpreted_kernel(monkeypatch):
    """Every eligible plain LSTM layer takes the kernel path, in the interpreter with one program."""

    def options(requested, cell, params, carry, xs, *, plain_steps):
        if requested is False or not plain_steps or type(cell) is not jaxrnn.LSTM:
            return None
        return {"device": "gpu", "interpret": True, "block_units": cell.hidden_size}

    monkeypatch.setattr(rnn_module, "persistent_options", options)


def _loss(layer, params, xs):
    ys, final = layer.apply(params, xs)
    return jnp.sum(jnp.sin(ys) * ys) + sum(jnp.sum(jnp.cos(leaf)) for leaf in jax.tree.leaves(final))


@pytest.mark.parametrize("reverse", [False, True])
def test_rnn_with_the_kernel_matches_the_scan_values_and_gradients(interpreted_kernel, reverse):
    xs = jax.random.normal(jax.random.key(3), (3, 6, 5))
    kernel_layer = jaxrnn.RNN(jaxrnn.LSTM(16), reverse=reverse)
    scan_layer = jaxrnn.RNN(jaxrnn.LSTM(16), reverse=reverse, persistent=False)
    params = kernel_layer.init(jax.random.key(4), 5)
    ys, final = kernel_layer.apply(params, xs)
    ys_ref, final_ref = scan_layer.apply(params, xs)
    np.testing.assert_allclose(ys, ys_ref, atol=1e-6)
    for a, b in zip(final, final_ref):
        np.testing.assert_allclose(a, b, atol=1e-6)
    grads = jax.grad(_loss, argnums=(1, 2))(kernel_layer, params, xs)
    grads_ref = jax.grad(_loss, argnums=(1, 2))(scan_layer, params, xs)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_ref)):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_rnn_falls_back_to_the_scan_when_the_kernel_stalls(interpreted_kernel, monkeypatch):
    real = fused_module.persistent_lstm_with_status

    def stalled(*args, **kwargs):
        outs, _ = real(*args, **kwargs)
        return tuple(jnp.full_like(o, jnp.nan) for o in outs), jnp.bool_(True)

    monkeypatch.setattr(fused_module, "persistent_lstm_with_status", stalled)
    xs = jax.random.normal(jax.random.key(5), (2, 4, 3))
    layer = jaxrnn.RNN(jaxrnn.LSTM(16))
    params = layer.init(jax.random.key(6), 3)
    ys, _ = layer.apply(params, xs)
    ys_ref, _ = jaxrnn.RNN(jaxrnn.LSTM(16), persistent=False).apply(params, xs)
    np.testing.assert_allclose(ys, ys_ref, atol=1e-6)
    grads = jax.grad(_loss, argnums=1)(layer, params, xs)
    assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grads))


def test_masked_steps_keep_the_scan(interpreted_kernel, monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("the kernel ran for steps it cannot compute")

    monkeypatch.setattr(fused_module, "persistent_lstm_with_status", must_not_run)
    xs = jnp.ones((2, 4, 3))
    layer = jaxrnn.RNN(jaxrnn.LSTM(16), zoneout=0.1)
    params = layer.init(jax.random.key(7), 3)
    layer.apply(params, xs)
    jaxrnn.RNN(jaxrnn.LSTM(16)).apply(params, xs, lengths=jnp.array([4, 2]))


@pytest.mark.skipif(ON_GPU, reason="checks the CPU's answer")
def test_persistent_true_on_the_cpu_says_what_is_missing():
    layer = jaxrnn.RNN(jaxrnn.LSTM(16, dtype=jnp.bfloat16), persistent=True)
    params = layer.init(jax.random.key(0), 3)
    with pytest.raises(ValueError, match="persistent=True needs float32 parameters, carry and inputs"):
        layer.apply(params, jnp.ones((2, 4, 3), jnp.bfloat16))


def test_persistent_must_be_a_bool_or_none():
    with pytest.raises(TypeError, match="'persistent'"):
        jaxrnn.RNN(jaxrnn.LSTM(16), persistent="yes")
    # Cho et al.'s GRU (reset before the matmul): no kernel anywhere
    with pytest.raises(ValueError, match="persistent=True needs .*a plain jaxrnn.LSTM"):
        layer = jaxrnn.RNN(jaxrnn.GRU(16, reset_after=False), persistent=True)
        layer.apply(layer.init(jax.random.key(0), 3), jnp.ones((2, 4, 3)))


# ---- on a GPU: many programs, the real synchronisation ------------------------------------------------


@pytest.mark.skipif(not ON_GPU, reason="needs a CUDA GPU")
@pytest.mark.parametrize("batch, hidden", [(5, 64), (16, 768), (64, 1024)])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_gpu_rnn_kernel_matches_the_scan(batch, hidden, dtype):
    dt = jnp.dtype(dtype)
    xs = jax.random.normal(jax.random.key(8), (batch, 48, 32), dt)
    kernel_layer = jaxrnn.RNN(jaxrnn.LSTM(hidden, dtype=dt), persistent=True)
    scan_layer = jaxrnn.RNN(jaxrnn.LSTM(hidden, dtype=dt), persistent=False)
    params = kernel_layer.init(jax.random.key(9), 32)
    tol = 1e-5 if dtype == "float32" else 1e-2  # float16: a few ulps after 48 steps
    ys, final = jax.jit(kernel_layer.apply)(params, xs)
    ys_ref, final_ref = jax.jit(scan_layer.apply)(params, xs)
    assert _max_diff(ys, ys_ref) <= tol and _max_diff(final.c, final_ref.c) <= 4 * tol
    loss = lambda layer, p, x: jnp.sum(layer.apply(p, x)[0].astype(jnp.float32) ** 2)  # noqa: E731
    g = jax.jit(jax.grad(lambda p, x: loss(kernel_layer, p, x), argnums=(0, 1)))(params, xs)
    g_ref = jax.jit(jax.grad(lambda p, x: loss(scan_layer, p, x), argnums=(0, 1)))(params, xs)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref)):
        scale = float(jnp.max(jnp.abs(b.astype(jnp.float32)))) + 1e-6
        assert _max_diff(a, b) <= 20 * tol * scale


@pytest.mark.skipif(not ON_GPU, reason="needs a CUDA GPU")
def test_gpu_bidirectional_in_one_scan_runs_the_kernel_per_direction():
    xs = jax.random.normal(jax.random.key(10), (16, 40, 32))
    layer = jaxrnn.Bidirectional(jaxrnn.RNN(jaxrnn.LSTM(64), persistent=True), fuse_directions=True)
    ref = jaxrnn.Bidirectional(jaxrnn.RNN(jaxrnn.LSTM(64), persistent=False), fuse_directions=True)
    params = layer.init(jax.random.key(11), 32)
    assert _max_diff(jax.jit(layer.apply)(params, xs)[0], jax.jit(ref.apply)(params, xs)[0]) <= 1e-5
