"""Temporal gradient norms ||dL/dh_t||, ||dL/dx_t||, vanishing ratio and decay rate against references
computed independently: back-propagation through time written out with per-step Jacobians
(`jax.jacrev` of one `cell.step`, float64, numpy), and `jax.grad` of Python-unrolled networks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import jaxrnn
from jaxrnn.diagnostics import (
    TemporalGradNorms,
    decay_rate,
    temporal_grad_norms,
    temporal_grad_profile,
    vanishing_ratio,
    zero_probe,
)

CELLS = [
    pytest.param(lambda dt: jaxrnn.SimpleRNN(4, dtype=dt), id="simple"),
    pytest.param(lambda dt: jaxrnn.LSTM(4, dtype=dt), id="lstm"),
    pytest.param(lambda dt: jaxrnn.GRU(4, dtype=dt), id="gru"),
]


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _loss_parts(seed: int, batch: int, steps: int, hidden: int, dtype):
    rng = np.random.default_rng(seed)
    v = jnp.asarray(rng.normal(size=(hidden,)), dtype)
    target = jnp.asarray(rng.normal(size=(batch, steps)), dtype)
    return v, target


def _bptt_reference(cell, params, xs, loss_of_outputs):
    """dL/dh_t and dL/dx_t per example and step by BPTT written out (float64 numpy).

    G_t = dL/dcarry_t = e_h(dL/dy_t) + J_{t+1}^T G_{t+1};  dL/dh_t = h-part of G_t;  dL/dx_t = K_t^T G_t
    with J_t = d carry_t / d carry_{t-1} and K_t = d carry_t / d x_t from jax.jacrev of one `cell.step`;
    the forward pass is the same Python loop of single steps (outputs y_t = h_t for these cells).
    """
    xs = np.asarray(xs, np.float64)
    B, T, _ = xs.shape
    local, flat0, hidden_idx = _local_step(cell, params)
    D = flat0.shape[0]
    ys = np.zeros((B, T, len(hidden_idx)))
    jacs = [[None] * T for _ in range(B)]
    carries = [[flat0] * (T + 1) for _ in range(B)]
    for b in range(B):
        for t in range(T):
            nxt, jac = local(params, carries[b][t], jnp.asarray(xs[b, t]))
            carries[b][t + 1] = nxt
            ys[b, t] = np.asarray(nxt)[hidden_idx]
            jacs[b][t] = [np.asarray(j, np.float64) for j in jac]
    dl_dy = np.asarray(jax.jit(jax.grad(loss_of_outputs))(jnp.asarray(ys)), np.float64)  # partial dL/dy_t

    dh = np.zeros((B, T, len(hidden_idx)))
    dx = np.zeros((B, T, xs.shape[-1]))
    for b in range(B):
        g_next = np.zeros(D)  # J_{t+1}^T G_{t+1}
        for t in reversed(range(T)):
            g = g_next.copy()
            g[hidden_idx] += dl_dy[b, t]
            dh[b, t] = g[hidden_idx]
            jac_c, jac_x = jacs[b][t]
            dx[b, t] = jac_x.T @ g
            g_next = jac_c.T @ g
    return dh, dx


_LOCAL_STEPS: dict = {}


def _local_step(cell, params):
    """Jitted ``(carry_t, (d carry_t / d carry_{t-1}, d carry_t / d x_t))`` of one step on a flat carry,
    cached per cell (one compile per cell and dtype), plus the zero carry and the positions of h in it."""
    flat0, unravel = ravel_pytree(cell.initial_carry(params, ()))
    hidden_idx = np.asarray(cell.hidden(unravel(jnp.arange(flat0.shape[0], dtype=flat0.dtype)))).astype(int)
    if cell not in _LOCAL_STEPS:

        def step_flat(p, c, x):
            return ravel_pytree(cell.step(p, unravel(c), x)[0])[0]

        _LOCAL_STEPS[cell] = jax.jit(lambda p, c, x: (step_flat(p, c, x), jax.jacrev(step_flat, argnums=(1, 2))(p, c, x)))
    return _LOCAL_STEPS[cell], flat0, hidden_idx


def _jit_profile(layer, loss, **kwargs):
    """`temporal_grad_profile` compiled as one program (eager mode compiles every op separately)."""
    return jax.jit(lambda p, x: temporal_grad_profile(layer, p, x, loss, **kwargs))


def _all_steps_loss(v, target):
    return lambda ys: jnp.mean((jnp.tanh(ys @ v) - target) ** 2)


@pytest.mark.parametrize("make_cell", CELLS)
def test_profile_matches_bptt_in_float64_and_float32(make_cell):
    B, T = 3, 7
    with jax.enable_x64(True):
        cell = make_cell(jnp.float64)
        layer = jaxrnn.RNN(cell)
        params = layer.init(jax.random.key(0), input_size=2)
        xs = jax.random.normal(jax.random.key(1), (B, T, 2), jnp.float64)
        v, target = _loss_parts(0, B, T, 4, jnp.float64)
        loss = _all_steps_loss(v, target)
        dh, dx = _bptt_reference(cell, params, xs, loss)
        both = jax.jit(
            lambda p, x: (temporal_grad_profile(layer, p, x, loss), temporal_grad_norms(layer, p, x, loss, per_example=True))
        )
        prof, per_ex = both(params, xs)
        loss_at_zero_probe = float(loss(layer.apply(params, xs)[0]))
    expected = np.sqrt((dh**2).sum(axis=(0, 2)))
    np.testing.assert_allclose(prof.hidden, expected, rtol=1e-10)
    np.testing.assert_allclose(prof.inputs, np.sqrt((dx**2).sum(axis=(0, 2))), rtol=1e-10)
    np.testing.assert_allclose(prof.log10_hidden, np.log10(expected), atol=1e-10)
    np.testing.assert_allclose(prof.log10_inputs, np.log10(np.sqrt((dx**2).sum(axis=(0, 2)))), atol=1e-10)
    np.testing.assert_allclose(per_ex, np.sqrt((dh**2).sum(axis=2)), rtol=1e-10)
    assert float(prof.loss) == pytest.approx(loss_at_zero_probe, rel=1e-12)

    # The same network in float32 against the float64 reference.
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    layer32 = jaxrnn.RNN(make_cell(jnp.float32))
    loss32 = _all_steps_loss(f32(v), f32(target))
    norms32 = _jit_profile(layer32, loss32)(jax.tree.map(f32, params), f32(xs)).hidden
    np.testing.assert_allclose(norms32, expected, rtol=2e-5)


def test_lengths_per_example_match_truncated_sequences(x64):
    cell = jaxrnn.LSTM(4, dtype=jnp.float64)
    layer = jaxrnn.RNN(cell)
    B, T = 3, 8
    lengths = np.array([8, 5, 2])
    params = layer.init(jax.random.key(5), input_size=2)
    xs = jax.random.normal(jax.random.key(6), (B, T, 2), jnp.float64)
    v, target = _loss_parts(2, B, T, 4, jnp.float64)
    mask = jnp.asarray(np.arange(T)[None, :] < lengths[:, None], jnp.float64)

    def loss(ys):
        return jnp.sum(mask * (jnp.tanh(ys @ v) - target) ** 2) / B

    per_ex = jax.jit(lambda p, x, n: temporal_grad_norms(layer, p, x, loss, lengths=n, per_example=True))(
        params, xs, jnp.asarray(lengths)
    )
    for b, n in enumerate(lengths):
        xb = xs[b : b + 1, :n]
        tb = target[b : b + 1, :n]
        dh, _ = _bptt_reference(cell, params, xb, lambda ys: jnp.sum((jnp.tanh(ys @ v) - tb) ** 2) / B)
        np.testing.assert_allclose(per_ex[b, :n], np.sqrt((dh[0] ** 2).sum(-1)), rtol=1e-10)
        np.testing.assert_array_equal(per_ex[b, n:], 0.0)
    ratio = vanishing_ratio(per_ex, lengths=jnp.asarray(lengths))
    expected = [np.log10(per_ex[b, 0] / per_ex[b, n - 1]) for b, n in enumerate(lengths)]
    np.testing.assert_allclose(ratio, expected, rtol=1e-10)


def _unrolled_stack_loss(cells, params, xs, v, target):
    """Loss of a Python-unrolled [Bidirectional(LSTM), RNN(GRU)] stack as a function of per-step
    perturbations of every hidden state: the brute-force twin of `probe=`."""

    def run(cell, p, inputs, perturb, reverse):
        T = inputs.shape[1]
        carry = cell.initial_carry(p, (inputs.shape[0],))
        outs = [None] * T
        for t in (reversed(range(T)) if reverse else range(T)):
            carry, y = cell.step(p, carry, inputs[:, t])
            carry = cell.with_hidden(carry, cell.hidden(carry) + perturb[:, t])
            outs[t] = y + perturb[:, t]
        return jnp.stack(outs, axis=1)

    def loss(perturbs):
        pf, pb, p1 = perturbs
        f = run(cells[0], params["layer_0"]["forward"], xs, pf, False)
        b = run(cells[1], params["layer_0"]["backward"], xs, pb, True)
        top = run(cells[2], params["layer_1"], jnp.concatenate([f, b], -1), p1, False)
        return jnp.mean((jnp.tanh(top @ v) - target) ** 2)

    return loss


def test_stacked_bidirectional_per_layer_match_unrolled_jacrev(x64):
    lstm, gru = jaxrnn.LSTM(3, dtype=jnp.float64), jaxrnn.GRU(4, dtype=jnp.float64)
    layer = jaxrnn.Stacked([jaxrnn.Bidirectional(jaxrnn.RNN(lstm)), jaxrnn.RNN(gru)])
    B, T = 2, 6
    params = layer.init(jax.random.key(7), input_size=2)
    xs = jax.random.normal(jax.random.key(8), (B, T, 2), jnp.float64)
    v, target = _loss_parts(3, B, T, 4, jnp.float64)
    prof = _jit_profile(layer, _all_steps_loss(v, target))(params, xs)

    zeros = (jnp.zeros((B, T, 3)), jnp.zeros((B, T, 3)), jnp.zeros((B, T, 4)))
    brute = jax.jit(jax.grad(_unrolled_stack_loss([lstm, lstm, gru], params, xs, v, target)))(zeros)
    expected = [np.sqrt((np.asarray(g) ** 2).sum(axis=(0, 2))) for g in brute]
    (fwd, bwd), top = prof.hidden
    np.testing.assert_allclose(fwd, expected[0], rtol=1e-10)
    np.testing.assert_allclose(bwd, expected[1], rtol=1e-10)
    np.testing.assert_allclose(top, expected[2], rtol=1e-10)
    probe = zero_probe(layer, params, xs)
    assert jax.tree.map(jnp.shape, probe) == (((B, T, 3), (B, T, 3)), (B, T, 4))


def test_float32_underflow_case_matches_float64():
    """True norms ~1e-30..1e-37: float32 sqrt(sum(g**2)) gives 0 there; the scaled norm does not."""
    H, B, T = 8, 4, 60
    w = np.linalg.qr(np.random.default_rng(0).normal(size=(H, H)))[0] * 0.25
    params64 = {
        "w_ih": np.random.default_rng(1).normal(size=(2, H)) * 0.5,
        "w_hh": w,
        "b": np.zeros(H),
    }
    xs64 = np.random.default_rng(2).normal(size=(B, T, 2)) * 0.1
    v64 = np.random.default_rng(3).normal(size=(H,))
    with jax.enable_x64(True):
        p = jax.tree.map(jnp.asarray, params64)
        loss64 = lambda ys: jnp.mean((ys[:, -1] @ jnp.asarray(v64) - 1.0) ** 2)
        ref = np.asarray(_jit_profile(jaxrnn.RNN(jaxrnn.SimpleRNN(H, dtype=jnp.float64)), loss64)(p, jnp.asarray(xs64)).hidden)
    assert 1e-38 < ref[0] < 1e-28, ref[0]  # the regime the test is about

    layer = jaxrnn.RNN(jaxrnn.SimpleRNN(H))
    p32 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params64)
    xs32 = jnp.asarray(xs64, jnp.float32)
    loss32 = lambda ys: jnp.mean((ys[:, -1] @ jnp.asarray(v64, jnp.float32) - 1.0) ** 2)
    prof = _jit_profile(layer, loss32)(p32, xs32)
    early = ref < 1e-20
    np.testing.assert_allclose(np.asarray(prof.hidden)[early], ref[early], rtol=1e-3)
    np.testing.assert_allclose(np.asarray(prof.log10_hidden), np.log10(ref), atol=1e-3)

    # The naive float32 norm of the very same gradients underflows to exactly 0.
    g = jax.jit(jax.grad(lambda pr: loss32(layer.apply(p32, xs32, probe=pr)[0])))(jnp.zeros((B, T, H)))
    naive = jnp.sqrt(jnp.sum(g**2, axis=(0, 2)))
    assert float(naive[0]) == 0.0 and ref[0] > 0


def test_scale_recovers_norms_below_float32_range():
    """With a power-of-two backward seed, log10 norms around 1e-45 (below float32) come out right."""
    H, B, T = 4, 2, 40
    w = np.linalg.qr(np.random.default_rng(4).normal(size=(H, H)))[0] * 0.08
    params64 = {"w_ih": np.random.default_rng(5).normal(size=(2, H)), "w_hh": w, "b": np.zeros(H)}
    xs64 = np.random.default_rng(6).normal(size=(B, T, 2)) * 0.1
    with jax.enable_x64(True):
        layer64 = jaxrnn.RNN(jaxrnn.SimpleRNN(H, dtype=jnp.float64))
        ref = _jit_profile(layer64, lambda ys: jnp.mean(ys[:, -1] ** 2))(
            jax.tree.map(jnp.asarray, params64), jnp.asarray(xs64)
        )
    ref_log = np.asarray(ref.log10_hidden)
    assert ref_log[0] < -44, ref_log[0]
    layer = jaxrnn.RNN(jaxrnn.SimpleRNN(H))
    p32 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params64)
    plain = _jit_profile(layer, lambda ys: jnp.mean(ys[:, -1] ** 2))(p32, jnp.asarray(xs64, jnp.float32))
    assert float(plain.hidden[0]) == 0.0  # float32 cannot hold these gradients at all
    scaled = _jit_profile(layer, lambda ys: jnp.mean(ys[:, -1] ** 2), scale=2.0**100)(p32, jnp.asarray(xs64, jnp.float32))
    np.testing.assert_allclose(np.asarray(scaled.log10_hidden), ref_log, atol=1e-4)
    np.testing.assert_allclose(float(vanishing_ratio(scaled)), ref_log[0] - ref_log[-1], atol=1e-4)


def test_vanishing_ratio_and_decay_rate_formulas():
    t = np.arange(50)
    norms = 10.0 ** (0.2 * t - 12.0)
    assert float(vanishing_ratio(jnp.asarray(norms))) == pytest.approx(-0.2 * 49, rel=1e-5)
    assert float(decay_rate(jnp.asarray(norms))) == pytest.approx(0.2, rel=1e-5)
    # A least-squares slope, checked against numpy's polyfit on noisy data; zeros (log -inf) are skipped.
    rng = np.random.default_rng(0)
    logs = 0.05 * t - 3 + rng.normal(size=50) * 0.3
    noisy = 10.0**logs
    noisy[[3, 17]] = 0.0
    keep = noisy > 0
    expected = np.polyfit(t[keep], logs[keep], 1)[0]
    assert float(decay_rate(jnp.asarray(noisy, jnp.float32))) == pytest.approx(expected, rel=1e-3)
    batch = jnp.asarray(np.stack([norms, noisy]))
    np.testing.assert_allclose(decay_rate(batch), [0.2, expected], rtol=1e-3)
    # Pytrees (per layer) map through.
    out = vanishing_ratio((jnp.asarray(norms), jnp.asarray(norms[::-1])))
    np.testing.assert_allclose(out, [-9.8, 9.8], rtol=1e-5)


def test_profile_accepts_a_model_and_jit():
    model = jaxrnn.models.SequenceRegressor(jaxrnn.RNN(jaxrnn.GRU(5)), output_size=1)
    params = model.init(jax.random.key(0), input_size=2)
    batch = jaxrnn.tasks.adding_problem(jax.random.key(1), 4, 12)
    loss = lambda out: jnp.mean((out - batch.targets) ** 2)
    prof = jax.jit(lambda p: temporal_grad_profile(model, p, batch.xs, loss))(params)
    assert isinstance(prof, TemporalGradNorms)
    # Same numbers as differentiating the layer + head by hand with a zero probe.
    def by_hand(pr):
        ys, _ = model.layer.apply(params["layer"], batch.xs, probe=pr)
        return loss(model.head.apply(params["head"], ys[:, -1]))

    g = jax.jit(jax.grad(by_hand))(jnp.zeros((4, 12, 5)))
    np.testing.assert_allclose(prof.hidden, np.sqrt((np.asarray(g, np.float64) ** 2).sum(axis=(0, 2))), rtol=1e-5)


def test_bad_arguments_are_named():
    layer = jaxrnn.RNN(jaxrnn.LSTM(3))
    params = layer.init(jax.random.key(0), input_size=2)
    xs = jnp.ones((2, 5, 2))
    with pytest.raises(ValueError, match="'scale'"):
        temporal_grad_profile(layer, params, xs, lambda ys: ys.sum(), scale=0.0)
    with pytest.raises(TypeError, match="'loss_fn'"):
        temporal_grad_profile(layer, params, xs, None)
    with pytest.raises(ValueError, match="'loss_fn' must return a scalar"):
        temporal_grad_profile(layer, params, xs, lambda ys: ys)
    with pytest.raises(TypeError, match="'xs'"):
        temporal_grad_profile(layer, params, jnp.ones((2, 5, 2), jnp.int32), lambda ys: ys.sum())
    with pytest.raises(TypeError, match="'layer'"):
        temporal_grad_profile(jaxrnn.LSTM(3), params, xs, lambda ys: ys.sum())
    with pytest.raises(ValueError, match="'lengths'"):
        vanishing_ratio(jnp.ones((5,)), lengths=jnp.array([3, 2]))
