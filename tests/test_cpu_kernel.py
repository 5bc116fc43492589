"""The CPU recurrence kernel (`jaxrnn.kernels.cpu_recurrence`): against `lax.scan` written out here,
against PyTorch through `jaxrnn.RNN`, its thread counts, its fallbacks and its errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn.kernels import cpu_recurrence
from jaxrnn.layers import persistent as persistent_module

pytestmark = pytest.mark.skipif(
    jax.default_backend() != "cpu" or cpu_recurrence.unavailable_reason() is not None,
    reason="needs the CPU backend and a C++ compiler",
)


def _lstm_scan(xs, w_ih, w_hh, b, h0, c0, reverse):
    def step(carry, x):
        h, c = carry
        z = x @ w_ih + b + h @ w_hh
        i, f, g, o = jnp.split(z, 4, -1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), (h, z)

    (_, c), (hs, zs) = jax.lax.scan(step, (h0, c0), xs, reverse=reverse)
    return hs, c, zs


def _elman_scan(xs, w_ih, w_hh, b, h0, reverse, act):
    def step(h, x):
        z = x @ w_ih + b + h @ w_hh
        return act(z), (act(z), z)

    _, (hs, zs) = jax.lax.scan(step, h0, xs, reverse=reverse)
    return hs, zs


def _gru_scan(xs, w_ih, w_hh, b, b_hn, h0, reverse):
    """PyTorch's GRU; returns the kernel's saved pre-activations [a_r | a_z | x-half | h-half] too."""

    def step(h, x):
        u, hh = x @ w_ih + b, h @ w_hh
        hidden = h.shape[-1]
        a_rz = u[:, : 2 * hidden] + hh[:, : 2 * hidden]
        r, z = jnp.split(jax.nn.sigmoid(a_rz), 2, -1)
        h_half = hh[:, 2 * hidden :] + b_hn
        n = jnp.tanh(u[:, 2 * hidden :] + r * h_half)
        h = (1 - z) * n + z * h
        return h, (h, jnp.concatenate([a_rz, u[:, 2 * hidden :], h_half], -1))

    _, (hs, zs) = jax.lax.scan(step, h0, xs, reverse=reverse)
    return hs, zs


def _arrays(rng, *shapes, scale=1.0):
    return [jnp.asarray(rng.standard_normal(s) * scale, jnp.float32) for s in shapes]


# batch sizes cover every row-tile height (1-8) and more than one tile; hidden sizes one and several
# 16-unit blocks, split over more threads than blocks too
@pytest.mark.parametrize("steps, batch, inputs, hidden", [(6, 1, 3, 16), (7, 3, 5, 32), (5, 13, 4, 48), (4, 9, 1, 64)])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("threads", [1, 2, 5])
def test_lstm_forward_and_backward_match_the_scan(steps, batch, inputs, hidden, reverse, threads):
    rng = np.random.default_rng(steps * batch + threads)
    xs, w_ih, w_hh, b, h0, c0 = _arrays(
        rng, (steps, batch, inputs), (inputs, 4 * hidden), (hidden, 4 * hidden), (4 * hidden,), (batch, hidden), (batch, hidden),
        scale=0.5,
    )
    hs, c_last, zs, c_prevs = cpu_recurrence.lstm_forward(xs, w_ih, w_hh, b, h0, c0, reverse=reverse, save=True, threads=threads)
    hs_ref, c_ref, zs_ref = _lstm_scan(xs, w_ih, w_hh, b, h0, c0, reverse)
    np.testing.assert_allclose(hs, hs_ref, atol=2e-6)
    np.testing.assert_allclose(c_last, c_ref, atol=2e-6)
    np.testing.assert_allclose(zs, zs_ref, atol=5e-6)
    hs_only, c_only, none_z, none_c = cpu_recurrence.lstm_forward(xs, w_ih, w_hh, b, h0, c0, reverse=reverse, threads=threads)
    np.testing.assert_array_equal(hs_only, hs)  # saving changes nothing
    assert none_z is None and none_c is None

    dys, dh, dc = _arrays(rng, hs.shape, (batch, hidden), (batch, hidden))

    # dL/dz_t by autodiff: the same recurrence driven by z's input part u_t directly
    us = xs @ w_ih + b
    eye = jnp.eye(4 * hidden, dtype=jnp.float32)

    def loss_us(us, h0, c0):
        hs, c, _ = _lstm_scan(us, eye, w_hh, jnp.zeros(4 * hidden), h0, c0, reverse)
        return jnp.sum(hs * dys) + jnp.sum((hs[0] if reverse else hs[-1]) * dh) + jnp.sum(c * dc)

    def loss_weights(w_ih, w_hh, b):
        hs, c, _ = _lstm_scan(xs, w_ih, w_hh, b, h0, c0, reverse)
        return jnp.sum(hs * dys) + jnp.sum((hs[0] if reverse else hs[-1]) * dh) + jnp.sum(c * dc)

    g_us, g_h0, g_c0 = jax.grad(loss_us, argnums=(0, 1, 2))(us, h0, c0)
    g_weights = jax.grad(loss_weights, argnums=(0, 1, 2))(w_ih, w_hh, b)
    dzs, dh0, dc0, *d_weights = cpu_recurrence.lstm_backward(
        xs, hs, h0, zs, c_prevs, dys, dh, dc, w_hh, reverse=reverse, threads=threads
    )
    np.testing.assert_allclose(dzs, g_us, atol=2e-5, rtol=1e-5)
    np.testing.assert_allclose(dh0, g_h0, atol=2e-5, rtol=1e-5)
    np.testing.assert_allclose(dc0, g_c0, atol=2e-5, rtol=1e-5)
    for got, want in zip(d_weights, g_weights, strict=True):  # dw_ih, dw_hh, db
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("activation, act", [("tanh", jnp.tanh), ("relu", jax.nn.relu)])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_elman_forward_and_backward_match_the_scan(activation, act, reverse, threads):
    steps, batch, inputs, hidden = 9, 6, 4, 32
    rng = np.random.default_rng(7 + threads)
    xs, w_ih, w_hh, b, h0, dys, dh = _arrays(
        rng, (steps, batch, inputs), (inputs, hidden), (hidden, hidden), (hidden,), (batch, hidden), (steps, batch, hidden),
        (batch, hidden), scale=0.5,
    )
    w_hh = w_hh / np.sqrt(hidden)
    hs, zs = cpu_recurrence.elman_forward(xs, w_ih, w_hh, b, h0, activation=activation, reverse=reverse, save=True, threads=threads)
    hs_ref, zs_ref = _elman_scan(xs, w_ih, w_hh, b, h0, reverse, act)
    np.testing.assert_allclose(hs, hs_ref, atol=2e-6)
    np.testing.assert_allclose(zs, zs_ref, atol=5e-6)

    us = xs @ w_ih + b
    eye = jnp.eye(hidden, dtype=jnp.float32)

    def loss_us(us, h0):
        hs, _ = _elman_scan(us, eye, w_hh, jnp.zeros(hidden), h0, reverse, act)
        return jnp.sum(hs * dys) + jnp.sum((hs[0] if reverse else hs[-1]) * dh)

    def loss_weights(w_ih, w_hh, b):
        hs, _ = _elman_scan(xs, w_ih, w_hh, b, h0, reverse, act)
        return jnp.sum(hs * dys) + jnp.sum((hs[0] if reverse else hs[-1]) * dh)

    g_us, g_h0 = jax.grad(loss_us, argnums=(0, 1))(us, h0)
    g_weights = jax.grad(loss_weights, argnums=(0, 1, 2))(w_ih, w_hh, b)
    dzs, dh0, *d_weights = cpu_recurrence.elman_backward(
        xs, hs, h0, zs, dys, dh, w_hh, activation=activation, reverse=reverse, threads=threads
    )
    np.testing.assert_allclose(dzs, g_us, atol=2e-5, rtol=1e-5)
    np.testing.assert_allclose(dh0, g_h0, atol=2e-5, rtol=1e-5)
    for got, want in zip(d_weights, g_weights, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("steps, batch, inputs, hidden", [(6, 1, 3, 16), (5, 13, 4, 48)])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("threads", [1, 2, 5])
def test_gru_forward_and_backward_match_the_scan(steps, batch, inputs, hidden, reverse, threads):
    rng = np.random.default_rng(steps * batch + threads)
    xs, w_ih, w_hh, b, b_hn, h0, dys, dh = _arrays(
        rng, (steps, batch, inputs), (inputs, 3 * hidden), (hidden, 3 * hidden), (3 * hidden,), (hidden,), (batch, hidden),
        (steps, batch, hidden), (batch, hidden), scale=0.5,
    )
    hs, zs = cpu_recurrence.gru_forward(xs, w_ih, w_hh, b, b_hn, h0, reverse=reverse, save=True, threads=threads)
    hs_ref, zs_ref = _gru_scan(xs, w_ih, w_hh, b, b_hn, h0, reverse)
    np.testing.assert_allclose(hs, hs_ref, atol=2e-6)
    np.testing.assert_allclose(zs, zs_ref, atol=5e-6)
    hs_only, none_z = cpu_recurrence.gru_forward(xs, w_ih, w_hh, b, b_hn, h0, reverse=reverse, threads=threads)
    np.testing.assert_array_equal(hs_only, hs)
    assert none_z is None

    # the gradients w.r.t. u = x w_ih + b and hh = h w_hh by autodiff, hh's product made an input
    def loss(us, hh_shift, h0):
        def step(h, u_and_shift):
            u, shift = u_and_shift
            hh = h @ w_hh + shift
            r, z = jnp.split(jax.nn.sigmoid(u[:, : 2 * hidden] + hh[:, : 2 * hidden]), 2, -1)
            n = jnp.tanh(u[:, 2 * hidden :] + r * (hh[:, 2 * hidden :] + b_hn))
            h = (1 - z) * n + z * h
            return h, h

        last, hs = jax.lax.scan(step, h0, (us, hh_shift), reverse=reverse)
        return jnp.sum(hs * dys) + jnp.sum(last * dh)

    def loss_weights(w_ih, w_hh, b, b_hn):
        hs, _ = _gru_scan(xs, w_ih, w_hh, b, b_hn, h0, reverse)
        return jnp.sum(hs * dys) + jnp.sum((hs[0] if reverse else hs[-1]) * dh)

    us = xs @ w_ih + b
    g_us, g_hh, g_h0 = jax.grad(loss, argnums=(0, 1, 2))(us, jnp.zeros((steps, batch, 3 * hidden)), h0)
    g_w_ih, g_w_hh, g_b, g_b_hn = jax.grad(loss_weights, argnums=(0, 1, 2, 3))(w_ih, w_hh, b, b_hn)
    dus, dhhs, dh0, dw_ih, dw_hh, db, db_hh = cpu_recurrence.gru_backward(
        xs, hs, h0, zs, dys, dh, w_hh, reverse=reverse, threads=threads
    )
    np.testing.assert_allclose(dus, g_us, atol=2e-5, rtol=1e-5)
    np.testing.assert_allclose(dhhs, g_hh, atol=2e-5, rtol=1e-5)
    np.testing.assert_allclose(dh0, g_h0, atol=2e-5, rtol=1e-5)
    for got, want in ((dw_ih, g_w_ih), (dw_hh, g_w_hh), (db, g_b), (db_hh[2 * hidden :], g_b_hn)):
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-5)


def _both_passes(cell, xs, w_ih, w_hh, b, h0, dys, reverse, **split):
    """Every output of the cell's forward (saving) and backward kernels under one way of splitting the work."""
    K = cpu_recurrence
    if cell == "lstm":
        fwd = K.lstm_forward(xs, w_ih, w_hh, b, h0, h0 * 0.5, reverse=reverse, save=True, **split)
        return fwd + K.lstm_backward(xs, fwd[0], h0, fwd[2], fwd[3], dys, h0, h0, w_hh, reverse=reverse, **split)
    if cell == "gru":
        fwd = K.gru_forward(xs, w_ih, w_hh, b, b[: h0.shape[1]], h0, reverse=reverse, save=True, **split)
        return fwd + K.gru_backward(xs, fwd[0], h0, fwd[1], dys, h0, w_hh, reverse=reverse, **split)
    fwd = K.elman_forward(xs, w_ih, w_hh, b, h0, reverse=reverse, save=True, **split)
    return fwd + K.elman_backward(xs, fwd[0], h0, fwd[1], dys, h0, w_hh, reverse=reverse, **split)


# threads taking whole rows: 8 and 9 rows each, two chunks of 10 rows each, 1-3 rows each over 5
# threads, more threads than rows
@pytest.mark.parametrize("cell, gates", [("lstm", 4), ("gru", 3), ("elman", 1)])
@pytest.mark.parametrize("batch, threads", [(17, 2), (40, 2), (13, 5), (3, 5)])
def test_splitting_the_batch_gives_the_same_bits_as_splitting_the_units(cell, gates, batch, threads):
    steps, inputs, hidden = 5, 3, 32
    rng = np.random.default_rng(batch * threads)
    xs, w_ih, w_hh, b, h0, dys = _arrays(
        rng, (steps, batch, inputs), (inputs, gates * hidden), (hidden, gates * hidden), (gates * hidden,),
        (batch, hidden), (steps, batch, hidden), scale=0.5,
    )
    for reverse in (False, True):
        by_units = _both_passes(cell, xs, w_ih, w_hh, b, h0, dys, reverse, threads=2, by_rows=False)
        by_rows = _both_passes(cell, xs, w_ih, w_hh, b, h0, dys, reverse, threads=threads, by_rows=True)
        for a, r in zip(by_units, by_rows, strict=True):
            np.testing.assert_array_equal(r, a)


def test_non_finite_values_propagate():
    xs = jnp.ones((3, 2, 2)).at[1, 0, 0].set(jnp.nan)
    layer = jaxrnn.RNN(jaxrnn.LSTM(16), persistent=True, time_major=True)
    params = layer.init(jax.random.key(0), 2)
    ys, _ = layer.apply(params, xs)
    assert bool(jnp.isnan(ys[1:, 0]).all()) and bool(jnp.isfinite(ys[:, 1]).all())
    big = jaxrnn.RNN(jaxrnn.SimpleRNN(16), persistent=True).apply(params_big := jaxrnn.RNN(jaxrnn.SimpleRNN(16)).init(jax.random.key(1), 2), 1e30 * jnp.ones((2, 3, 2)))[0]
    ref = jaxrnn.RNN(jaxrnn.SimpleRNN(16), persistent=False).apply(params_big, 1e30 * jnp.ones((2, 3, 2)))[0]
    np.testing.assert_array_equal(big, ref)  # saturated tanh: exactly +-1 both ways


def _loss(layer, params, xs, carry):
    ys, final = layer.apply(params, xs, carry=carry)
    return jnp.sum(jnp.sin(ys) * ys) + sum(jnp.sum(jnp.cos(leaf)) for leaf in jax.tree.leaves(final))


@pytest.mark.parametrize(
    "cell",
    [jaxrnn.LSTM(32), jaxrnn.GRU(32), jaxrnn.GRU(16, use_bias=False), jaxrnn.SimpleRNN(32), jaxrnn.SimpleRNN(16, activation="relu")],
    ids=["lstm", "gru", "gru-no-bias", "tanh", "relu"],
)
@pytest.mark.parametrize("reverse", [False, True])
def test_rnn_layer_on_the_kernel_matches_the_scan(cell, reverse):
    xs = jax.random.normal(jax.random.key(3), (5, 11, 7))
    kernel_layer = jaxrnn.RNN(cell, reverse=reverse, persistent=True)
    scan_layer = jaxrnn.RNN(cell, reverse=reverse, persistent=False)
    params = kernel_layer.init(jax.random.key(4), 7)
    carry = jax.tree.map(lambda a: 0.3 * jnp.ones_like(a), kernel_layer.initial_carry(params, (5,)))
    for a, b in zip(jax.tree.leaves(jax.jit(kernel_layer.apply)(params, xs, carry=carry)), jax.tree.leaves(scan_layer.apply(params, xs, carry=carry))):
        np.testing.assert_allclose(a, b, atol=2e-6)
    grads = jax.jit(jax.grad(_loss, argnums=(1, 2, 3)), static_argnums=0)(kernel_layer, params, xs, carry)
    grads_ref = jax.grad(_loss, argnums=(1, 2, 3))(scan_layer, params, xs, carry)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_ref)):
        np.testing.assert_allclose(a, b, atol=2e-5, rtol=2e-5)


def test_kernel_under_vmap_and_in_stacked_bidirectional_networks():
    net = jaxrnn.Stacked([jaxrnn.Bidirectional(jaxrnn.RNN(jaxrnn.LSTM(16), persistent=True)) for _ in range(2)])
    ref = jaxrnn.Stacked([jaxrnn.Bidirectional(jaxrnn.RNN(jaxrnn.LSTM(16), persistent=False)) for _ in range(2)])
    params = net.init(jax.random.key(0), 3)
    xs = jax.random.normal(jax.random.key(1), (2, 4, 6, 3))  # vmapped over the leading axis
    ys = jax.vmap(lambda x: net.apply(params, x)[0])(xs)
    ys_ref = jax.vmap(lambda x: ref.apply(params, x)[0])(xs)
    np.testing.assert_allclose(ys, ys_ref, atol=2e-6)


def test_default_runs_the_kernel_where_it_measured_faster(monkeypatch):
    calls = []
    real = cpu_recurrence.lstm_forward
    monkeypatch.setattr(cpu_recurrence, "lstm_forward", lambda *a, **k: calls.append(a[0].shape) or real(*a, **k))
    layer = jaxrnn.RNN(jaxrnn.LSTM(32))
    params = layer.init(jax.random.key(0), 3)
    layer.apply(params, jnp.ones((2, 4, 3)))
    assert calls == [(4, 2, 3)]
    assert persistent_module.default_on_cpu(16, 256, 4) and not persistent_module.default_on_cpu(256, 512, 4)
    gru_calls = []
    real_gru = cpu_recurrence.gru_forward
    monkeypatch.setattr(cpu_recurrence, "gru_forward", lambda *a, **k: gru_calls.append(a[0].shape) or real_gru(*a, **k))
    gru = jaxrnn.RNN(jaxrnn.GRU(32))
    gru.apply(gru.init(jax.random.key(0), 3), jnp.ones((2, 4, 3)))
    assert gru_calls == [(4, 2, 3)]
    for kw in ({"persistent": False}, {"zoneout": 0.1}):  # asked not to, or steps the kernel cannot compute
        jaxrnn.RNN(jaxrnn.LSTM(32), **kw).apply(params, jnp.ones((2, 4, 3)))
    jaxrnn.RNN(jaxrnn.LSTM(32)).apply(params, jnp.ones((2, 4, 3)), lengths=jnp.array([4, 2]))
    jaxrnn.RNN(jaxrnn.LSTM(20)).apply(jaxrnn.RNN(jaxrnn.LSTM(20)).init(jax.random.key(0), 3), jnp.ones((2, 4, 3)))
    assert len(calls) == 1


def test_threads_follow_the_work_per_step(monkeypatch):
    assert cpu_recurrence.default_threads(1, 16, 1) == 1  # one block: one thread
    assert cpu_recurrence.default_threads(1, 64, 1) == 1  # 4K multiply-adds a step
    monkeypatch.setattr(cpu_recurrence, "cores", lambda: 2)
    assert cpu_recurrence.default_threads(64, 512, 4) == 2
    assert cpu_recurrence.default_threads(4, 16, 4) == 1  # one unit block, too few rows to split
    assert cpu_recurrence.default_threads(256, 16, 4) == 2  # one unit block, but rows enough for two
    small, large = 256 * 1024, 5 << 20  # LSTM (I, H) = (64, 256) forward, (128, 512) forward
    assert cpu_recurrence.default_by_rows(16, 2, small) and cpu_recurrence.default_by_rows(32, 2, small)
    assert not cpu_recurrence.default_by_rows(15, 2, small) and not cpu_recurrence.default_by_rows(64, 1, small)
    assert not cpu_recurrence.default_by_rows(64, 2, large) and cpu_recurrence.default_by_rows(128, 2, large)
    near = 160 * 512  # LSTM (I, H) = (32, 128) forward: one 8-row tile a chunk, an even number a thread
    assert [cpu_recurrence.row_chunks(b, 2, near) for b in (16, 24, 32, 40, 256)] == [2, 2, 4, 4, 32]
    assert cpu_recurrence.row_chunks(256, 2, small) == 2  # each weight read serves a thread's rows


@pytest.mark.parametrize(
    "cell, kw, xs_dtype, message",
    [
        (jaxrnn.LSTM(20), {}, jnp.float32, "a multiple of 16, got 20"),
        (jaxrnn.LSTM(16, peephole=True), {}, jnp.float32, "a plain jaxrnn.LSTM"),
        (jaxrnn.GRU(16, reset_after=False), {}, jnp.float32, "jaxrnn.GRU with reset_after"),
        (jaxrnn.LSTM(16), {"zoneout": 0.1}, jnp.float32, "no lengths, zoneout"),
        (jaxrnn.LSTM(16, dtype=jnp.bfloat16), {}, jnp.bfloat16, "float32 parameters"),
    ],
)
def test_persistent_true_names_what_is_missing(cell, kw, xs_dtype, message):
    layer = jaxrnn.RNN(cell, persistent=True, **kw)
    params = layer.init(jax.random.key(0), 3)
    with pytest.raises(ValueError, match=message):
        layer.apply(params, jnp.ones((2, 4, 3), xs_dtype))


def test_without_a_compiler_the_scan_runs_and_true_says_why(monkeypatch, tmp_path):
    monkeypatch.setattr(cpu_recurrence, "_state", {})
    monkeypatch.setenv("CXX", "no-such-compiler-jaxrnn")
    monkeypatch.setenv("JAXRNN_KERNEL_CACHE", str(tmp_path))
    reason = cpu_recurrence.unavailable_reason()
    assert reason is not None and "no-such-compiler-jaxrnn" in reason
    layer = jaxrnn.RNN(jaxrnn.LSTM(16))
    params = layer.init(jax.random.key(0), 3)
    ys, _ = layer.apply(params, jnp.ones((2, 4, 3)))
    ys_ref, _ = jaxrnn.RNN(jaxrnn.LSTM(16), persistent=False).apply(params, jnp.ones((2, 4, 3)))
    np.testing.assert_array_equal(ys, ys_ref)
    with pytest.raises(ValueError, match="the compiled kernel .*no C\\+\\+ compiler"):
        jaxrnn.RNN(jaxrnn.LSTM(16), persistent=True).apply(params, jnp.ones((2, 4, 3)))


def test_kernel_builds_once_into_its_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("JAXRNN_KERNEL_CACHE", str(tmp_path))
    first = cpu_recurrence._build()
    assert first.parent == tmp_path and first.exists()
    stamp = first.stat().st_mtime_ns
    assert cpu_recurrence._build() == first and first.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary file left behind
